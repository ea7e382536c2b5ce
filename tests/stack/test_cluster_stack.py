"""``cluster.observers: N``: N members with their own keys, a postgres service, file_sd targets.

The real tools judge the output: promtool loads the targets file the configuration names,
docker-compose resolves it with the variables set and refuses it when the database password
or a member's key is missing, and ``observer check --config`` passes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from observer import cli
from observer.config import load_settings
from observer.stack import compose, layout
from tests.stack.conftest import requires

MEMBERS = 3
PASSWORD = "pg-pass-never-in-output"


def _environment(**unset: bool) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KIS_APP_", "POSTGRES_", "GF_ADMIN"))
    }
    env[compose.PASSWORD_VARIABLE] = "grafana-pass"
    env[compose.POSTGRES_PASSWORD_VARIABLE] = PASSWORD
    for index in range(1, MEMBERS + 1):
        env[f"KIS_APP_KEY_{index}"] = f"key-{index}"
        env[f"KIS_APP_SECRET_{index}"] = f"secret-{index}"
    return {key: value for key, value in env.items() if not unset.get(key)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(stack.yaml, the folder generated from it) for three members and a selector."""
    base = tmp_path_factory.mktemp("cluster")
    config = base / "stack.yaml"
    config.write_text(
        yaml.safe_dump(
            {"cluster": {"observers": MEMBERS}, "prometheus": {"selectors": {"site": "seoul"}}}
        )
    )
    out = base / "gen"
    assert cli.main(["generate", "--config", str(config), "--out", str(out)]) == 0
    return config, out


def _services(out: Path) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((out / layout.COMPOSE_FILE).read_text())["services"]
    return services


def test_members_are_file_sd_targets_with_the_selectors(cluster: tuple[Path, Path]) -> None:
    _, out = cluster
    groups = json.loads((out / layout.PROMETHEUS_TARGETS).read_text())
    assert groups == [
        {
            "targets": ["observer-1:9464", "observer-2:9464", "observer-3:9464"],
            "labels": {"site": "seoul"},
        }
    ]
    job = yaml.safe_load((out / layout.PROMETHEUS_CONFIG).read_text())["scrape_configs"][0]
    assert job["file_sd_configs"] == [{"files": ["targets/observer.json"]}]
    assert "static_configs" not in job


def test_each_member_has_its_own_key_cluster_mode_and_the_shared_database(
    cluster: tuple[Path, Path],
) -> None:
    _, out = cluster
    services = _services(out)
    assert sorted(services) == [
        "alertmanager",
        "grafana",
        "observer-1",
        "observer-2",
        "observer-3",
        "postgres",
        "prometheus",
    ]
    for index in range(1, MEMBERS + 1):
        environment = services[f"observer-{index}"]["environment"]
        assert environment["KIS_APP_KEY"].startswith(f"${{KIS_APP_KEY_{index}:?")
        assert environment["KIS_APP_SECRET"].startswith(f"${{KIS_APP_SECRET_{index}:?")
        assert environment["OBSERVER_CLUSTER__ENABLED"] == "true"
        assert "@postgres:5432/" in environment["OBSERVER_STORAGE__URL"]
        assert services[f"observer-{index}"]["ports"] == [f"127.0.0.1:{9463 + index}:9464"]
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:15"
    assert (
        postgres["environment"]["POSTGRES_PASSWORD"]
        == "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    )
    assert "ports" not in postgres  # reached by the members only


def _compose_config(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-f", str(out / layout.COMPOSE_FILE), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@requires("docker-compose")
def test_docker_compose_resolves_each_members_settings(cluster: tuple[Path, Path]) -> None:
    _, out = cluster
    result = _compose_config(out, _environment())
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == PASSWORD
    for index in range(1, MEMBERS + 1):
        environment = services[f"observer-{index}"]["environment"]
        assert environment["KIS_APP_KEY"] == f"key-{index}"
        # What compose hands the container is a configuration Observer accepts.
        settings = load_settings(environ=environment)
        assert settings.cluster.enabled and settings.cluster.member_id == f"observer-{index}"
        assert settings.storage.url == f"postgresql://observer:{PASSWORD}@postgres:5432/observer"


@requires("docker-compose")
@pytest.mark.parametrize("variable", ["POSTGRES_PASSWORD", "KIS_APP_KEY_2", "KIS_APP_SECRET_3"])
def test_docker_compose_refuses_without_a_password_or_a_key(
    cluster: tuple[Path, Path], variable: str
) -> None:
    _, out = cluster
    result = _compose_config(out, _environment(**{variable: True}))
    assert result.returncode != 0
    assert variable in result.stderr


def test_no_password_is_written_into_the_output(cluster: tuple[Path, Path]) -> None:
    _, out = cluster
    text = (out / layout.COMPOSE_FILE).read_text()
    assert "POSTGRES_PASSWORD:-" not in text and PASSWORD not in text


@requires("promtool")
@requires("amtool")
@requires("docker-compose")
@pytest.mark.slow  # real tools or real time: make test, not test-fast
def test_observer_check_passes_for_the_cluster_stack(
    cluster: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, out = cluster
    code = cli.main(["check", str(out), "--config", str(config)])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    for name in ("compose shape", "docker-compose config", "promtool check config"):
        assert f"ok       {name}\n" in captured.out, captured.out


@pytest.mark.parametrize(
    ("prometheus", "key"),
    [({"file_sd": "targets.json"}, "prometheus.file_sd"), ({"targets": ["a:1"]}, "targets")],
)
def test_cluster_with_its_own_target_list_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prometheus: dict[str, Any], key: str
) -> None:
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump({"cluster": {"observers": 2}, "prometheus": prometheus}))
    assert cli.main(["generate", "--config", str(path), "--out", str(tmp_path / "gen")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and key in err, err
