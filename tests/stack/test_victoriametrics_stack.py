"""``victoriametrics.enabled``: Prometheus remote-writes to a VictoriaMetrics service, and
Grafana offers it as a second data source the dashboard's ``$datasource`` variable lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from observer import cli
from observer.stack import layout
from tests.stack.conftest import requires


@pytest.fixture(scope="module")
def with_vm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("vm")
    config = base / "stack.yaml"
    config.write_text(yaml.safe_dump({"victoriametrics": {"enabled": True}}))
    out = base / "gen"
    assert cli.main(["generate", "--config", str(config), "--out", str(out)]) == 0
    return config, out


def _load(out: Path, relative: str) -> Any:
    return yaml.safe_load((out / relative).read_text())


def test_prometheus_remote_writes_to_the_victoriametrics_service(
    with_vm: tuple[Path, Path],
) -> None:
    _, out = with_vm
    config = _load(out, layout.PROMETHEUS_CONFIG)
    assert config["remote_write"] == [{"url": "http://victoriametrics:8428/api/v1/write"}]
    service = _load(out, layout.COMPOSE_FILE)["services"]["victoriametrics"]
    assert service["image"].startswith("victoriametrics/victoria-metrics:v")
    assert "-retentionPeriod=1y" in service["command"]
    assert "-httpListenAddr=:8428" in service["command"]
    assert service["ports"] == ["127.0.0.1:8428:8428"]
    assert "victoriametrics-data" in _load(out, layout.COMPOSE_FILE)["volumes"]


def test_grafana_offers_both_sources_to_the_dashboards_variable(
    with_vm: tuple[Path, Path],
) -> None:
    _, out = with_vm
    sources = {s["uid"]: s for s in _load(out, layout.GRAFANA_DATASOURCE)["datasources"]}
    assert sources["prometheus"]["isDefault"] is True
    vm = sources["victoriametrics"]
    assert vm["url"] == "http://victoriametrics:8428" and vm["isDefault"] is False
    dashboard = json.loads((out / layout.GRAFANA_DASHBOARDS_DIR / "observer.json").read_text())
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    # A datasource variable lists every source whose type is its query: both are "prometheus".
    assert {source["type"] for source in sources.values()} == {variable["query"]}


def test_without_the_setting_there_is_no_victoriametrics(generated: Path) -> None:
    assert "remote_write" not in _load(generated, layout.PROMETHEUS_CONFIG)
    assert "victoriametrics" not in _load(generated, layout.COMPOSE_FILE)["services"]
    assert len(_load(generated, layout.GRAFANA_DATASOURCE)["datasources"]) == 1


@requires("promtool")
@requires("amtool")
@requires("docker-compose")
@pytest.mark.slow  # real tools or real time: make test, not test-fast
def test_observer_check_passes_with_victoriametrics(
    with_vm: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, out = with_vm
    code = cli.main(["check", str(out), "--config", str(config)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    for name in ("compose shape", "docker-compose config", "promtool check config"):
        assert f"ok       {name}\n" in captured.out, captured.out


@pytest.mark.parametrize("period", ["0d", "12", "1 y", "6mo"])
def test_a_retention_period_without_a_unit_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], period: str
) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump({"victoriametrics": {"retention_period": period}}))
    assert cli.main(["generate", "--config", str(path), "--out", str(tmp_path / "gen")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "victoriametrics.retention_period" in err, err
