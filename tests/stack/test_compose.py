"""``compose.yaml``: docker-compose accepts it, refuses it without the Grafana password."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml

from observer.config import load_settings
from observer.stack import compose, layout
from tests.stack.conftest import requires


def _compose_config(directory: Path, password: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != compose.PASSWORD_VARIABLE}
    if password is not None:
        env[compose.PASSWORD_VARIABLE] = password
    return subprocess.run(
        ["docker-compose", "-f", str(directory / layout.COMPOSE_FILE), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _services(directory: Path) -> dict[str, Any]:
    document = yaml.safe_load((directory / layout.COMPOSE_FILE).read_text())
    services: dict[str, Any] = document["services"]
    return services


@requires("docker-compose")
def test_docker_compose_accepts_the_file_with_a_password(generated: Path) -> None:
    result = _compose_config(generated, password="s3cret-for-test")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    grafana_env = resolved["services"]["grafana"]["environment"]
    assert grafana_env["GF_SECURITY_ADMIN_PASSWORD"] == "s3cret-for-test"
    assert grafana_env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


@requires("docker-compose")
def test_docker_compose_refuses_the_file_without_a_password(generated: Path) -> None:
    result = _compose_config(generated, password=None)
    assert result.returncode != 0
    assert compose.PASSWORD_VARIABLE in result.stderr


def test_four_services_each_with_a_healthcheck(generated: Path) -> None:
    services = _services(generated)
    assert sorted(services) == ["alertmanager", "grafana", "observer", "prometheus"]
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name


def test_only_the_four_ui_and_api_ports_are_published(generated: Path) -> None:
    published = sorted(
        mapping for service in _services(generated).values() for mapping in service["ports"]
    )
    # Only Grafana, which asks for a password, listens beyond the host's loopback.
    assert published == [
        "127.0.0.1:9090:9090",
        "127.0.0.1:9093:9093",
        "127.0.0.1:9464:9464",
        "3000:3000",
    ]


def test_observers_status_page_links_the_published_ui_ports(generated: Path) -> None:
    environment = _services(generated)["observer"]["environment"]
    links = load_settings(environ=environment).exporter.links
    published = {
        name: int(port.rsplit(":", 1)[1])
        for name in ("prometheus", "alertmanager", "grafana")
        for port in _services(generated)[name]["ports"]
    }
    assert links == {name: f"http://localhost:{port}" for name, port in published.items()}


def test_images_are_pinned_and_observer_is_built_from_the_repository(generated: Path) -> None:
    services = _services(generated)
    for name in ("prometheus", "alertmanager", "grafana"):
        image = services[name]["image"]
        tag = image.rsplit(":", 1)[1]
        assert tag[0].isdigit() or tag.startswith("v"), image
    build = services["observer"]["build"]
    assert (generated / build["context"] / build["dockerfile"]).name == "Dockerfile"
    assert services["observer"]["command"] == ["run", "--listen", "0.0.0.0:9464"]


def test_prometheus_and_grafana_keep_data_in_named_volumes(generated: Path) -> None:
    document = yaml.safe_load((generated / layout.COMPOSE_FILE).read_text())
    assert set(document["volumes"]) == {"prometheus-data", "grafana-data"}
    services = document["services"]
    assert "prometheus-data:/prometheus" in services["prometheus"]["volumes"]
    assert "grafana-data:/var/lib/grafana" in services["grafana"]["volumes"]


def test_mounted_folders_exist_in_the_generated_output(generated: Path) -> None:
    for service in _services(generated).values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (generated / source).is_dir(), volume


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        path.parent.name
        for path in root.glob("*/__init__.py")
        if any(fnmatch.fnmatch(path.parent.name, pattern) for pattern in patterns)
    }
    copied = {
        words[1]
        for words in (line.split() for line in (root / "Dockerfile").read_text().splitlines())
        if words and words[0] == "COPY"
    }
    assert packages and packages <= copied, sorted(packages - copied)


def test_dockerfile_runs_as_an_unprivileged_user_on_a_slim_base() -> None:
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    lines = [line.split() for line in dockerfile.splitlines() if line and not line.startswith("#")]
    base = next(words[1] for words in lines if words[0] == "FROM")
    assert "slim" in base and ":" in base
    users = [words[1] for words in lines if words[0] == "USER"]
    assert users and users[-1] not in ("root", "0")
