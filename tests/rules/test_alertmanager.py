"""Alertmanager routes by severity (checked with amtool's own router) and inhibits warnings."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

import rules
from rules.render import ALERTMANAGER_PATH


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("am") / "alertmanager.yml"
    path.write_text(rules.render_files()[ALERTMANAGER_PATH], encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=HighAPIErrorRate", "severity=critical"], "critical"),
        (["alertname=APILatencyHigh", "severity=warning"], "warning"),
        (["alertname=Watchdog", "severity=none"], "watchdog"),
        (["alertname=Other"], "warning"),
    ],
)
def test_routes_by_severity(config_file: Path, labels: list[str], receiver: str) -> None:
    done = subprocess.run(
        ["amtool", "config", "routes", "test", f"--config.file={config_file}", *labels],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert done.stdout.strip() == receiver


def test_inhibitions_and_matchers_syntax(config_file: Path) -> None:
    text = config_file.read_text(encoding="utf-8")
    config = yaml.safe_load(text)
    assert {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["alertname", "instance"],
    } in config["inhibit_rules"]
    assert "match:" not in text and "match_re:" not in text
    assert "source_match:" not in text and "target_match:" not in text


def test_default_receivers_post_to_the_documented_sink(config_file: Path) -> None:
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    hooks = {
        r["name"]: [c["url"] for c in r.get("webhook_configs", [])] for r in config["receivers"]
    }
    assert hooks == {
        "critical": [rules.DEFAULT_WEBHOOK_URL],
        "warning": [rules.DEFAULT_WEBHOOK_URL],
        "watchdog": [],
    }
    runbook = (Path(__file__).resolve().parents[2] / "docs/runbook.md").read_text("utf-8")
    assert rules.DEFAULT_WEBHOOK_URL in runbook
