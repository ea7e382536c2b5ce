"""``observer check``: passes on fresh output, fails with one clear line per problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from observer import cli
from observer.stack import checks, layout
from tests.stack.conftest import requires


def _check(
    directory: Path, capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[int, str, str]:
    code = cli.main(["check", *options, str(directory)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow  # real tools or real time: make test, not test-fast
def test_fresh_output_passes_every_check(
    generated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _check(generated, capsys)
    assert code == 0, err
    assert "ok       files parse" in out
    assert "problem" not in err


def test_a_file_that_does_not_parse_is_named(
    generated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (generated / layout.GRAFANA_DATASOURCE).write_text("datasources: [unclosed\n")
    code, out, err = _check(generated, capsys, "--no-tools")
    assert code == 1
    assert "skipped  promtool check config (--no-tools)" in out
    assert f"problem: {layout.GRAFANA_DATASOURCE}: does not parse" in err


BILLION_LAUGHS = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
)


@pytest.mark.parametrize("target", ["datasource", "rules"])
def test_an_alias_bomb_in_a_generated_file_is_refused_not_expanded(
    generated: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    """9^9 values from a few hundred bytes: reported as a problem in one line, and no
    check (the parse, the build context, the rule names) expands it."""
    path = (
        layout.GRAFANA_DATASOURCE
        if target == "datasource"
        else layout.RULES_DIR + "/observer.rules.yml"
    )
    (generated / path).write_text(BILLION_LAUGHS + "\n")
    code, _out, err = _check(generated, capsys, "--no-tools")
    assert code == 1
    assert f"problem: {path}: does not parse" in err
    assert "values (aliases of aliases?)" in err


def test_a_hand_edited_file_is_reported_as_out_of_date(
    generated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = generated / layout.PROMETHEUS_CONFIG
    path.write_text(path.read_text().replace("15s", "30s"))
    code, _out, err = _check(generated, capsys, "--no-tools")
    assert code == 1
    assert f"problem: {layout.PROMETHEUS_CONFIG}: differs from what the configuration makes" in err


def test_a_missing_file_is_reported(generated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (generated / layout.COMPOSE_FILE).unlink()
    code, _out, err = _check(generated, capsys, "--no-tools")
    assert code == 1
    assert f"problem: {layout.COMPOSE_FILE}: missing" in err


@requires("promtool")
def test_a_broken_rule_file_fails_the_tool_checks(generated: Path) -> None:
    path = generated / "prometheus/rules/observer.rules.yml"
    path.write_text(path.read_text().replace("expr:", "exprr:", 1))
    (tool_check,) = [c for c in checks.all_checks() if c.name == "promtool check config"]
    problems = tool_check.run(generated)
    assert problems and all(line.startswith("promtool check config") for line in problems)


def test_an_unpinned_image_and_an_extra_port_are_reported(generated: Path) -> None:
    path = generated / layout.COMPOSE_FILE
    text = path.read_text().replace("prom/alertmanager:v0.27.0", "prom/alertmanager:latest")
    extra = text.replace("- 127.0.0.1:9093:9093", "- 127.0.0.1:9093:9093\n    - 9094:9094")
    assert extra != text
    path.write_text(extra)
    problems = checks.compose_shape(generated)
    assert any("not pinned" in line for line in problems), problems
    assert any("publishes 9094:9094" in line for line in problems), problems


def test_a_dashboard_panel_without_a_description_fails_the_lint(generated: Path) -> None:
    path = generated / layout.GRAFANA_DASHBOARDS_DIR / "observer.json"
    document = json.loads(path.read_text())
    panel = next(p for p in document["panels"] if p.get("type") != "row")
    panel["description"] = ""
    path.write_text(json.dumps(document))
    problems = checks.dashboard_lint(generated)
    assert problems
    assert all(line.startswith("grafana/dashboards/observer.json: ") for line in problems)


def test_a_skipped_check_says_which_binary_is_missing(generated: Path) -> None:
    absent = checks.Check("needs a tool", lambda _dir: ["never run"], needs="no-such-tool-here")
    report, problems = checks.run_checks(generated, [absent])
    assert report == ["skipped  needs a tool (no-such-tool-here not installed)"]
    assert problems == []


def test_a_missing_folder_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _check(tmp_path / "absent", capsys)
    assert code == 1
    assert "is not a folder" in err
