"""A stack configuration adapts every generated file; the real tools accept the result.

Generated with a configuration unlike the defaults (another job and a selector, webhook
and Slack receivers whose secrets live in files, changed thresholds and ``for``, extra
labels, an absolute runbook URL): promtool, amtool and docker-compose accept it, the unit
tests follow the configured thresholds, no secret reaches the output, and ``observer
check`` passes against that configuration and reports drift against another.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from observer import cli
from observer.stack import files as stack_files
from observer.stack import layout
from observer.stack.config import StackConfig, load_stack_config
from rules.render import ALERTMANAGER_PATH, RULES_PATH, TESTS_PATH
from tests.stack.conftest import REPO, requires

WEBHOOK_TOKEN = "tok-3f9a1c-never-in-output"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/sl4ck-never-in-output"


def _write_config(directory: Path, **changes: Any) -> Path:
    (directory / "secrets").mkdir(exist_ok=True)
    (directory / "secrets/webhook-token").write_text(WEBHOOK_TOKEN + "\n")
    (directory / "secrets/slack-url").write_text(SLACK_URL + "\n")
    document: dict[str, Any] = {
        "prometheus": {
            "job": "kis-observer",
            "selectors": {"cluster": "seoul"},
            "scrape_interval_seconds": 30,
            "targets": ["observer:9464"],
        },
        "alerts": {
            "labels": {"team": "markets", "environment": "staging"},
            "runbook_base_url": "https://runbooks.example.org/observer",
            "rules": {
                "StorageQueueFilling": {"threshold": 0.9, "for_seconds": 600},
                "StorageWriteErrors": {"threshold": 30},
                "ObserverDown": {"for_seconds": 180},
                "HighAPIErrorRate": {"threshold": 0.1, "for_seconds": 600},
                "APILatencyHigh": {"threshold": 3},
            },
        },
        "alertmanager": {
            "receivers": [
                {
                    "name": "oncall",
                    "webhook": [
                        {
                            "url": "https://pager.example.org/hook",
                            "bearer_token_file": "secrets/webhook-token",
                        }
                    ],
                },
                {
                    "name": "chat",
                    "slack": [{"api_url_file": "secrets/slack-url", "channel": "#observer"}],
                },
                {"name": "deadman"},
            ],
            "routes": [
                {"receiver": "oncall", "matchers": ['severity="critical"']},
                {"receiver": "chat", "matchers": ['severity="warning"', 'team="markets"']},
            ],
            "default_receiver": "chat",
            "watchdog_receiver": "deadman",
        },
        "dashboard": {"title": "KRX Observer", "uid": "krx-observer", "refresh": "1m"},
    }
    for section, values in changes.items():
        document[section] = {**document.get(section, {}), **values}
    path = directory / "stack.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(stack.yaml, the folder `observer generate --config stack.yaml --out` wrote)."""
    base = tmp_path_factory.mktemp("configured")
    config = _write_config(base)
    out = base / "gen"
    assert cli.main(["generate", "--config", str(config), "--out", str(out)]) == 0
    return config, out


def _load(out: Path, relative: str) -> Any:
    return yaml.safe_load((out / relative).read_text(encoding="utf-8"))


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["check", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@requires("promtool")
@requires("amtool")
@requires("docker-compose")
@pytest.mark.slow  # real tools or real time: make test, not test-fast
def test_observer_check_runs_every_tool_and_passes(
    configured: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, out = configured
    code, report, err = _check(capsys, str(out), "--config", str(config))
    assert code == 0, err
    for name in (
        "files present",
        "generated files up to date",
        "compose build context",
        "receiver secret files",
        "docker-compose config",
        "promtool check config",
        "rules: promtool check/test rules, amtool check-config",
    ):
        assert f"ok       {name}\n" in report, report


@requires("promtool")
@pytest.mark.slow  # real tools or real time: make test, not test-fast
def test_unit_tests_follow_the_configured_thresholds(
    configured: tuple[Path, Path], tmp_path: Path
) -> None:
    _config, out = configured
    groups = _load(out, RULES_PATH)["groups"]
    rules = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    assert rules["StorageQueueFilling"]["expr"].endswith("> 0.9")
    assert rules["StorageQueueFilling"]["for"] == "10m"
    assert rules["StorageWriteErrors"]["expr"].endswith("> 30")
    assert rules["ObserverDown"]["for"] == "3m"
    assert "> 0.1 and" in rules["HighAPIErrorRate"]["expr"]
    assert rules["HighAPIErrorRate"]["for"] == "10m"
    assert rules["APILatencyHigh"]["expr"].endswith("> 3")
    # The default profile's unit tests expect the built-in 0.8 and 5m: against the
    # configured rules they fail, so the tests written with them check the configuration.
    rules_dir = tmp_path / "prometheus/rules"
    rules_dir.mkdir(parents=True)
    (rules_dir / "observer.rules.yml").write_text((out / RULES_PATH).read_text())
    default_tests = stack_files.render_files(out_dir=tmp_path)[TESTS_PATH]
    (rules_dir / "observer.rules.test.yml").write_text(default_tests)
    done = subprocess.run(
        ["promtool", "test", "rules", "observer.rules.test.yml"],
        cwd=rules_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "StorageQueueFilling" in done.stdout + done.stderr


def test_every_file_follows_the_configuration(configured: tuple[Path, Path]) -> None:
    _config, out = configured
    prometheus = _load(out, layout.PROMETHEUS_CONFIG)
    (job,) = prometheus["scrape_configs"]
    assert job["job_name"] == "kis-observer" and job["scrape_interval"] == "30s"
    assert job["static_configs"] == [{"targets": ["observer:9464"], "labels": {"cluster": "seoul"}}]
    for group in _load(out, RULES_PATH)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["team"] == "markets", rule["alert"]
                assert rule["labels"]["environment"] == "staging"
                assert rule["annotations"]["runbook_url"].startswith(
                    "https://runbooks.example.org/observer#"
                )
            assert 'job="kis-observer",cluster="seoul"' in rule["expr"] or rule["expr"] in (
                "vector(1)"
            )
    am = _load(out, ALERTMANAGER_PATH)
    receivers = {r["name"]: r for r in am["receivers"]}
    assert receivers["chat"]["slack_configs"][0]["api_url_file"] == str(
        config_dir(out) / "secrets/slack-url"
    )
    assert am["route"]["routes"][0]["receiver"] == "deadman"
    board = (out / "grafana/dashboards/observer.json").read_text()
    assert '"title": "KRX Observer"' in board and '"uid": "krx-observer"' in board
    fill = next(
        panel for panel in json.loads(board)["panels"] if panel.get("title") == "Write queue fill"
    )
    steps = fill["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None, 0.9]
    runbook = (out / "runbook.md").read_text()
    assert "Threshold 0.9 (share of storage.queue_size in use; built in 0.8)" in runbook
    assert '`team="markets"`' in runbook and "`chat`: slack." in runbook
    compose = _load(out, layout.COMPOSE_FILE)
    assert compose["services"]["observer"]["build"]["context"] == str(REPO)
    mounts = compose["services"]["alertmanager"]["volumes"]
    assert (
        f"{config_dir(out) / 'secrets/slack-url'}:{config_dir(out) / 'secrets/slack-url'}:ro"
        in (mounts)
    )


def config_dir(out: Path) -> Path:
    return out.parent.resolve()


def test_no_secret_reaches_the_output(configured: tuple[Path, Path]) -> None:
    _config, out = configured
    for relative, text in stack_files.read_files(out).items():
        assert WEBHOOK_TOKEN not in text and SLACK_URL not in text, relative


def test_check_reports_drift_against_another_configuration(
    configured: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _config, out = configured
    other = _write_config(tmp_path, dashboard={"title": "Another"})
    code, _report, err = _check(capsys, str(out), "--config", str(other), "--no-tools")
    assert code == 1
    assert (
        "problem: grafana/dashboards/observer.json: differs from what the configuration makes"
        in err
    )
    code, _report, err = _check(capsys, str(out), "--no-tools")  # against the defaults
    assert code == 1 and "prometheus/prometheus.yml: differs" in err


def test_a_missing_secret_file_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(tmp_path)
    generated = tmp_path / "gen"
    assert cli.main(["generate", "--config", str(config), "--out", str(generated)]) == 0
    (tmp_path / "secrets/slack-url").unlink()
    code, _report, err = _check(capsys, str(generated), "--config", str(config), "--no-tools")
    assert code == 1 and "secret file" in err and "slack-url does not exist" in err


def test_an_empty_folder_says_what_is_missing_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report, err = _check(capsys, str(tmp_path))
    assert code == 1
    assert report.splitlines()[0] == "FAILED   files present"
    assert "ok " not in report
    assert all(line.startswith("skipped  ") for line in report.splitlines()[1:])
    assert err.splitlines()[0] == (
        f"problem: no generated file in {tmp_path}; run `observer generate --out {tmp_path}`"
    )


def test_print_defaults_is_a_configuration_that_makes_the_default_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["generate", "--print-defaults"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "defaults.yaml"
    path.write_text(text)
    document = yaml.safe_load(text)
    assert document["alerts"]["rules"]["StorageQueueFilling"] == {
        "threshold": 0.8,
        "for_seconds": 300,
    }
    assert document["alerts"]["rules"]["TrackAFreshnessBudgetBurn:critical"] == {
        "threshold": 14.4,
        "for_seconds": 120,
    }
    assert document["alerts"]["rules"]["TrackAFreshnessBudgetBurn:warning"]["threshold"] == 6
    assert document["alerts"]["rules"]["Watchdog"] == {"for_seconds": 0}
    config = load_stack_config(path)
    assert stack_files.render_files(config=config, out_dir=tmp_path) == stack_files.render_files(
        config=StackConfig(), out_dir=tmp_path
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"alertmanager": {"receivers": [{"name": "x", "slack": [{"api_url": "https://h"}]}]}},
            "api_url: secrets are read from files, never written here; give api_url_file",
        ),
        ({"alerts": {"runbook_base_url": "docs/runbook.md"}}, "alerts.runbook_base_url"),
        ({"alerts": {"rules": {"NoSuchAlert": {"for_seconds": 60}}}}, "alerts.rules.NoSuchAlert"),
        (
            {"alerts": {"rules": {"Watchdog": {"threshold": 2}}}},
            "alerts.rules.Watchdog.threshold: Watchdog has no threshold to set",
        ),
        ({"alerts": {"labels": {"severity": "x"}}}, "alerts.labels"),
        ({"prometheus": {"scrap_interval_seconds": 5}}, "prometheus.scrap_interval_seconds"),
        ({"alertmanager": {"default_receiver": "nobody"}}, "no receiver named nobody"),
        (
            {"alerts": {"rules": {"TrackAFreshnessBudgetBurn:warning": {"threshold": 20}}}},
            "the warning burn rate must be below the critical one (14.4)",
        ),
        (
            {"alerts": {"rules": {"StorageQueueFilling": {"threshold": 1.5}}}},
            "alerts.rules.StorageQueueFilling.threshold = 1.5: must be 0.05 to 0.99",
        ),
    ],
)
def test_a_bad_configuration_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(change))
    code = cli.main(["generate", "--config", str(path), "--out", str(tmp_path / "gen")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "gen").exists()


def test_aliases_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text("a: &x [1, 2]\nb: *x\n")
    assert cli.main(["generate", "--config", str(path)]) == 2
    assert "aliases are not accepted" in capsys.readouterr().err


@requires("promtool")
@requires("amtool")
@requires("docker-compose")
@pytest.mark.slow  # real tools or real time: make test, not test-fast
def test_pagerduty_email_and_file_sd_pass_the_tools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pd-key").write_text("pd-routing-key-never-in-output\n")
    (tmp_path / "smtp-password").write_text("smtp-pw-never-in-output\n")
    (tmp_path / "targets.yml").write_text(
        "- targets: ['10.0.0.5:9464']\n  labels: {cluster: busan}\n"
    )
    document = {
        "prometheus": {"selectors": {"cluster": "busan"}, "file_sd": "targets.yml"},
        "alertmanager": {
            "receivers": [
                {"name": "pager", "pagerduty": [{"routing_key_file": "pd-key"}]},
                {
                    "name": "mail",
                    "email": [
                        {
                            "to": "oncall@example.org",
                            "from": "observer@example.org",
                            "smarthost": "smtp.example.org:587",
                            "auth_username": "observer",
                            "auth_password_file": "smtp-password",
                        }
                    ],
                },
            ],
            "routes": [{"receiver": "pager", "matchers": ['severity="critical"']}],
            "default_receiver": "mail",
            "watchdog_receiver": "mail",
        },
    }
    config = tmp_path / "stack.yaml"
    config.write_text(yaml.safe_dump(document))
    out = tmp_path / "gen"
    assert cli.main(["generate", "--config", str(config), "--out", str(out)]) == 0
    capsys.readouterr()
    code, _report, err = _check(capsys, str(out), "--config", str(config))
    assert code == 0, err
    (job,) = _load(out, layout.PROMETHEUS_CONFIG)["scrape_configs"]
    assert job["file_sd_configs"] == [{"files": [str(tmp_path / "targets.yml")]}]
    volumes = _load(out, layout.COMPOSE_FILE)["services"]["prometheus"]["volumes"]
    assert f"{tmp_path / 'targets.yml'}:{tmp_path / 'targets.yml'}:ro" in volumes
    for relative, text in stack_files.read_files(out).items():
        assert "never-in-output" not in text, relative
