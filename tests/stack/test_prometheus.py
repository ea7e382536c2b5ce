"""``prometheus.yml`` and Grafana provisioning: promtool accepts them; intervals agree."""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml

from observer.stack import grafana, layout, prometheus
from tests.stack.conftest import requires


@requires("promtool")
def test_promtool_accepts_the_generated_config(generated: Path) -> None:
    result = subprocess.run(
        ["promtool", "check", "config", layout.PROMETHEUS_CONFIG],
        cwd=generated,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@requires("promtool")
def test_promtool_rejects_a_config_naming_a_missing_rule_file(generated: Path) -> None:
    path = generated / layout.PROMETHEUS_CONFIG
    config = yaml.safe_load(path.read_text())
    config["rule_files"] = ["rules/missing.rules.yml"]
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        ["promtool", "check", "config", layout.PROMETHEUS_CONFIG],
        cwd=generated,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0


def test_observer_is_scraped_every_15_seconds_and_grafana_knows_it(generated: Path) -> None:
    config = yaml.safe_load((generated / layout.PROMETHEUS_CONFIG).read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "observer"
    assert job["scrape_interval"] == "15s"
    assert job["static_configs"] == [{"targets": ["observer:9464"]}]
    datasources = yaml.safe_load((generated / layout.GRAFANA_DATASOURCE).read_text())
    (source,) = datasources["datasources"]
    assert source["jsonData"]["timeInterval"] == job["scrape_interval"]
    assert source["url"] == "http://prometheus:9090"


def test_alerts_go_to_the_alertmanager_service(generated: Path) -> None:
    config = yaml.safe_load((generated / layout.PROMETHEUS_CONFIG).read_text())
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["alertmanager:9093"]


def test_rewrite_points_targets_at_loopback_and_makes_rule_paths_absolute() -> None:
    text = prometheus.render(prometheus.COMPOSE, ["prometheus/rules/observer.rules.yml"])
    rewritten = yaml.safe_load(
        prometheus.rewrite(
            text,
            observer_target="127.0.0.1:4000",
            alertmanager_target="127.0.0.1:4001",
            base_dir=PurePosixPath("/data/prometheus"),
        )
    )
    assert rewritten["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:4000"]}]
    alerting = rewritten["alerting"]["alertmanagers"][0]["static_configs"]
    assert alerting == [{"targets": ["127.0.0.1:4001"]}]
    assert rewritten["rule_files"] == ["/data/prometheus/rules/observer.rules.yml"]
    assert rewritten["global"]["scrape_interval"] == "15s"


def test_rewrite_refuses_a_config_without_the_observer_job() -> None:
    with pytest.raises(prometheus.PrometheusConfigError):
        prometheus.rewrite(
            "scrape_configs: []\nalerting: {alertmanagers: []}\n",
            observer_target="127.0.0.1:1",
            alertmanager_target="127.0.0.1:2",
        )


@pytest.mark.parametrize(("seconds", "text"), [(15, "15s"), (1, "1s"), (0.5, "500ms")])
def test_durations(seconds: float, text: str) -> None:
    assert prometheus.duration(seconds) == text


def test_dashboard_provider_reads_the_folder_compose_mounts() -> None:
    (provider,) = grafana.dashboard_provider()["providers"]
    assert provider["options"]["path"] == layout.GRAFANA_DASHBOARDS_MOUNT
    assert provider["allowUiUpdates"] is False
