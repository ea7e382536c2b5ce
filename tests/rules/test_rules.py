"""Generated rules pass promtool and amtool, every alert is unit-tested and documented."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

import rules
from metrics.promql import known_metric_names
from rules import recording
from rules.check import check_files, untested_alerts
from rules.model import AlertRule, RecordingRule, RuleError
from rules.params import DEFAULT, DEFAULT_RUNBOOK_BASE_URL, E2E, ProfileError, RuleParams
from rules.promtest import unit_tests
from rules.render import (
    ALERTMANAGER_PATH,
    RULES_PATH,
    TESTS_PATH,
    all_definitions,
    dump_yaml,
    rule_groups,
    source_definitions,
)
from rules.runbook import render_runbook

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ALERTS = {
    "HighAPIErrorRate": "critical",
    "SystemDowntime": "critical",
    "UniverseSizeAnomaly": "warning",
    "RapidUniverseExpansion": "warning",
    "TrackACollectionDelayed": "warning",
    "TrackANoSnapshots": "critical",
    "TrackBSlotStarvation": "critical",
    "TrackBCollectionSlow": "warning",
    "TokenValidityLow": "warning",
    "TokenExpired": "critical",
    "TokenRefreshFailure": "critical",
    "HighGapDetectionRate": "warning",
    "HighSeverityGapsDetected": "critical",
    "GapDetectionLatency": "warning",
    "RateLimitTokenStarvation": "warning",
    "RateLimitHighDelay": "warning",
    "APILatencyHigh": "warning",
    "APIUnresponsive": "critical",
    "APICatastrophicErrors": "critical",
}
PARAMS = RuleParams()


def write(files: dict[str, str], directory: Path) -> Path:
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory


def load(files: dict[str, str], path: str) -> Any:
    return yaml.safe_load(files[path])


@pytest.fixture(scope="module")
def default_files() -> dict[str, str]:
    return rules.render_files()


def test_binaries_are_installed() -> None:
    for binary in ("promtool", "amtool"):
        assert shutil.which(binary), f"{binary} is needed (make system-deps)"


@pytest.mark.slow  # real tools or real time: make test, not test-fast
def test_promtool_and_amtool_accept_the_default_files(
    default_files: dict[str, str], tmp_path: Path
) -> None:
    assert check_files(write(default_files, tmp_path)) == []


def test_e2e_profile_fires_in_seconds_to_the_given_webhook(tmp_path: Path) -> None:
    url = "http://127.0.0.1:45678/hook"
    files = rules.render_files("e2e", webhook_url=url)
    assert check_files(write(files, tmp_path)) == []
    groups = load(files, RULES_PATH)["groups"]
    assert {g["interval"] for g in groups} == {"1s"}
    fors = [r["for"] for g in groups for r in g["rules"] if "for" in r]
    assert fors and all(re.fullmatch(r"\d+s", f) for f in fors), fors
    am = load(files, ALERTMANAGER_PATH)
    urls = {c["url"] for r in am["receivers"] for c in r.get("webhook_configs", [])}
    assert urls == {url}
    assert {r["name"] for r in am["receivers"]} == {"critical", "warning", "watchdog"}
    assert am["route"]["group_wait"] == "1s"
    default_names = {d.rule.alert for d in all_definitions(PARAMS)}
    e2e_names = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert e2e_names == default_names


RANGE = re.compile(r"\[(\d+)([smhd])\]")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def range_seconds(expr: str) -> list[int]:
    return [int(n) * UNIT_SECONDS[unit] for n, unit in RANGE.findall(expr)]


def test_e2e_profile_scales_every_range_window_of_the_same_rules() -> None:
    default = [r for g in rule_groups(PARAMS) for r in g.rules]
    e2e = [r for g in rule_groups(RuleParams(profile=E2E)) for r in g.rules]
    assert len(default) == len(e2e)
    scaled = 0
    for designed, fast in zip(default, e2e, strict=True):
        expected = [max(2, seconds // 60) for seconds in range_seconds(designed.expr)]
        assert range_seconds(fast.expr) == expected, (designed.expr, fast.expr)
        scaled += len(expected)
    assert scaled > 20
    by_name = {r.alert: r.expr for r in e2e if isinstance(r, AlertRule)}
    assert by_name["APIUnresponsive"].endswith('observer_system_uptime_seconds{job="observer"} > 5')
    assert "[15s]" in by_name["HighSeverityGapsDetected"]


def test_unknown_profile_and_bad_parameters_are_refused() -> None:
    with pytest.raises(ProfileError):
        rules.render_files("staging")
    with pytest.raises(ProfileError):
        rules.render_files(webhook_url="ftp://x")
    with pytest.raises(ProfileError):
        rules.render_files(memory_limit_bytes=0)


def test_source_alerts_are_all_there_with_their_severity() -> None:
    got = {d.rule.alert: d.rule.severity for d in source_definitions(PARAMS)}
    assert got == SOURCE_ALERTS
    severities = list(got.values())
    assert severities.count("critical") == 9 and severities.count("warning") == 10


def test_operational_alerts_exist() -> None:
    by_name = {d.rule.alert: d.rule for d in all_definitions(PARAMS)}
    assert 'up{job="observer"} == 0' in by_name["ObserverDown"].expr
    assert by_name["Watchdog"].expr == "vector(1)"
    assert by_name["ObserverCPUHigh"].for_seconds == 300
    assert by_name["ObserverMemoryNearLimit"].for_seconds == 180
    assert "changes(process_start_time_seconds" in by_name["ObserverRestartLoop"].expr
    burns = [d.rule for d in all_definitions(PARAMS) if d.rule.alert.endswith("BudgetBurn")]
    assert {(b.severity, b.expr.count("0.144"), b.expr.count("0.06")) for b in burns} == {
        ("critical", 2, 0),
        ("warning", 0, 2),
    }


def test_storage_alerts_watch_write_errors_and_queue_fill() -> None:
    by_name = {d.rule.alert: d.rule for d in all_definitions(PARAMS)}
    errors = by_name["StorageWriteErrors"]
    assert "increase(observer_storage_write_errors_total" in errors.expr
    assert (errors.severity, errors.for_seconds) == ("critical", 300)
    fill = by_name["StorageQueueFilling"]
    assert fill.expr == (
        'instance:observer_storage_queue_depth:ratio_of_capacity{job="observer"} > 0.8'
    )
    assert (fill.severity, fill.for_seconds) == ("warning", 300)
    recorded = {r.record: r.expr for r in recording.recording_rules(PARAMS)}
    assert "observer_storage_queue_capacity" in recorded[recording.STORAGE_QUEUE_FILL]
    unavailable = by_name["StorageUnavailable"]
    assert unavailable.expr == 'observer_storage_available{job="observer"} == 0'
    assert (unavailable.severity, unavailable.for_seconds) == ("warning", 0)


def test_rate_floors_are_gated_on_market_open() -> None:
    by_name = {d.rule.alert: d.rule for d in all_definitions(PARAMS)}
    for name in ("TrackANoSnapshots", "APIUnresponsive", "TrackBCollectionSlow"):
        assert 'observer_market_open{job="observer"} == 1' in by_name[name].expr, name


def test_every_alert_has_a_firing_and_a_silent_unit_test(default_files: dict[str, str]) -> None:
    tests = load(default_files, TESTS_PATH)["tests"]
    firing: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for test in tests:
        for check in test["alert_rule_test"]:
            for expected in check["exp_alerts"]:
                firing.add((check["alertname"], expected["exp_labels"]["severity"]))
            if not check["exp_alerts"]:
                silent.add(check["alertname"])
    alerts = {(a.alert, a.severity) for g in rule_groups(PARAMS) for a in g.alerts}
    assert alerts - firing == set()
    assert {name for name, _ in alerts} - silent == {"Watchdog"}


def test_annotations_are_complete_and_link_to_runbook_sections() -> None:
    anchors = {
        "#" + line[3:].strip().lower()
        for line in (ROOT / "docs/runbook.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }
    for definition in all_definitions(PARAMS):
        rule = definition.rule
        assert rule.severity in ("critical", "warning", "none")
        assert "{{" in rule.description and "{{" not in rule.summary
        base, _, anchor = rule.runbook_url.partition("#")
        assert base == DEFAULT_RUNBOOK_BASE_URL and "#" + anchor in anchors, rule.alert
        assert base.startswith("https://"), "runbook links are absolute"


def test_runbook_is_up_to_date() -> None:
    committed = (ROOT / "docs/runbook.md").read_text(encoding="utf-8")
    assert committed == render_runbook(), "run: .venv/bin/python -m rules.runbook"


def selector_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        elif isinstance(node, promql_parser.MatrixSelector):
            visit(node.vector_selector)

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return names


def test_every_metric_read_exists_in_the_catalog_or_is_recorded() -> None:
    recorded = {r.record for r in recording.recording_rules(PARAMS)}
    known = known_metric_names() | recorded
    for group in rule_groups(PARAMS):
        for rule in group.rules:
            unknown = selector_names(rule.expr) - known
            assert not unknown, (rule, unknown)


def test_rendering_is_stable_and_ordered(default_files: dict[str, str]) -> None:
    assert rules.render_files() == default_files
    first = load(default_files, RULES_PATH)["groups"][1]["rules"][0]
    assert list(first) == ["alert", "expr", "for", "labels", "annotations"]


def test_a_wrong_expectation_makes_promtool_fail(tmp_path: Path) -> None:
    definition = next(d for d in all_definitions(PARAMS) if d.rule.alert == "TokenExpired")
    case = definition.firing[0]
    wrong = replace(definition, firing=(replace(case, value=-60),))
    rules_file = tmp_path / "observer.rules.yml"
    rules_file.write_text(rules.render_files()[RULES_PATH], encoding="utf-8")
    groups = tuple(g.name for g in rule_groups(PARAMS))
    document = unit_tests((wrong,), rule_file=rules_file.name, group_order=groups)
    (tmp_path / "t.yml").write_text(dump_yaml(document), encoding="utf-8")
    done = subprocess.run(
        ["promtool", "test", "rules", "t.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode != 0 and "-2m 0s" in done.stdout + done.stderr


def test_check_files_reports_missing_and_untested(tmp_path: Path) -> None:
    assert check_files(tmp_path) == [
        f"missing {tmp_path / RULES_PATH}",
        f"missing {tmp_path / ALERTMANAGER_PATH}",
    ]
    files = rules.render_files()
    tests = load(files, TESTS_PATH)
    tests["tests"] = [t for t in tests["tests"] if "Watchdog" not in t["name"]]
    files[TESTS_PATH] = dump_yaml(tests)
    write(files, tmp_path)
    assert untested_alerts(tmp_path / RULES_PATH, tmp_path / TESTS_PATH) == ["Watchdog"]


GOOD: dict[str, Any] = {
    "alert": "SomethingBroke",
    "expr": "up == 0",
    "for_seconds": 60,
    "severity": "warning",
    "summary": "Something broke.",
    "description": "On {{ $labels.instance }}.",
    "runbook_url": "docs/runbook.md#somethingbroke",
}


@pytest.mark.parametrize(
    "change",
    [
        {"alert": "something_broke"},
        {"severity": "page"},
        {"expr": "rate(up[5m]"},
        {"summary": "Broke on {{ $labels.instance }}."},
        {"summary": "lower case and no stop"},
        {"description": "No value or label."},
        {"description": "{{ $value }} plain values format differently in Go."},
        {"runbook_url": "docs/runbook.md"},
    ],
)
def test_invalid_alert_rules_are_refused(change: dict[str, Any]) -> None:
    AlertRule(**GOOD)  # the baseline is valid
    with pytest.raises(RuleError):
        AlertRule(**{**GOOD, **change})


@pytest.mark.parametrize("name", ["api_error_ratio", "instance:Bad:rate5m", "a:b"])
def test_recording_names_are_level_metric_operations(name: str) -> None:
    RecordingRule(record="instance:observer_x:rate5m", expr="up")
    with pytest.raises(RuleError):
        RecordingRule(record=name, expr="up")


def test_alert_for_follows_the_profile() -> None:
    default = {d.rule.alert: d.rule.for_seconds for d in all_definitions(RuleParams())}
    e2e = {d.rule.alert: d.rule.for_seconds for d in all_definitions(RuleParams(profile=E2E))}
    assert default["HighAPIErrorRate"] == 300 and e2e["HighAPIErrorRate"] == 5
    assert default["Watchdog"] == e2e["Watchdog"] == 0
    assert DEFAULT.unit_tests and not E2E.unit_tests
