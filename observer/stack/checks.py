"""Validation of a generated stack folder: each check returns problem lines, empty when fine.

The folder is compared with what the stack configuration that made it renders
(the defaults when none is given). Files missing stop the check there: the
report names them and says the rest was skipped. Pure parsing checks always run;
checks that need a binary (``promtool``, ``docker-compose``) report that they
were skipped when it is not installed, so ``observer check`` says exactly what
it verified.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import dashboards
import rules
from observer.config_yaml import load_generated_yaml
from observer.errors import ConfigError
from observer.stack import compose, layout
from observer.stack import files as stack_files
from observer.stack.config import StackConfig

# promtool test rules alone takes about 10 s of CPU: room for a busy machine.
COMMAND_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Check:
    """A named check of a folder; ``needs`` is the binary it runs, if any; a failed
    ``gate`` skips the checks after it."""

    name: str
    run: Callable[[Path], list[str]]
    needs: str | None = None
    gate: bool = False


@dataclass(frozen=True, slots=True)
class Expected:
    """What the folder should hold: the rendered files and how to regenerate them."""

    files: dict[str, str]
    regenerate: str


def expected_files(
    directory: Path, config: StackConfig | None, config_path: Path | None
) -> Expected:
    """The files ``observer generate`` would write into ``directory`` for ``config``."""
    command = f"observer generate --out {directory}"
    if config_path is not None:
        command += f" --config {config_path}"
    files = stack_files.render_files(config=config, out_dir=directory)
    return Expected(files=files, regenerate=command)


def files_present(expected: Expected, directory: Path) -> list[str]:
    """Every file the configuration makes is there."""
    missing = [relative for relative in expected.files if not (directory / relative).is_file()]
    if not missing:
        return []
    if len(missing) == len(expected.files):
        return [f"no generated file in {directory}; run `{expected.regenerate}`"]
    return [f"{relative}: missing; run `{expected.regenerate}`" for relative in missing]


def parse_files(directory: Path) -> list[str]:
    """Every YAML and JSON file parses."""
    problems = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(directory)
        try:
            if path.suffix in (".yml", ".yaml"):
                load_generated_yaml(path)
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
        except (ConfigError, ValueError) as exc:
            problems.append(f"{relative}: does not parse: {exc}")
    return problems


def dashboard_lint(directory: Path) -> list[str]:
    """Every dashboard under ``grafana/dashboards`` passes the dashboard linter."""
    problems = []
    for path in sorted((directory / layout.GRAFANA_DASHBOARDS_DIR).glob("*.json")):
        relative = path.relative_to(directory)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue  # parse_files names it
        problems += [f"{relative}: {line}" for line in dashboards.lint.lint_dashboard(document)]
    return problems


def up_to_date(expected: Expected, directory: Path) -> list[str]:
    """Every file is what the configuration makes (drift against it, not the defaults)."""
    problems = []
    for relative, text in expected.files.items():
        path = directory / relative
        if path.is_file() and path.read_text(encoding="utf-8") != text:
            problems.append(
                f"{relative}: differs from what the configuration makes; "
                f"run `{expected.regenerate}`"
            )
    return problems


def build_context(directory: Path) -> list[str]:
    """compose's build context holds the Dockerfile it names."""
    path = directory / layout.COMPOSE_FILE
    document = load_generated_yaml(path) or {}
    problems = []
    for name, service in sorted((document.get("services") or {}).items()):
        build = service.get("build")
        if not isinstance(build, dict):
            continue
        context = (directory / str(build.get("context", "."))).resolve()
        dockerfile = context / str(build.get("dockerfile", "Dockerfile"))
        if not dockerfile.is_file():
            problems.append(
                f"{layout.COMPOSE_FILE}: service {name} builds from {context}, which has no "
                f"{dockerfile.name}; set compose.build_context in the stack configuration"
            )
    return problems


def secret_files(config: StackConfig, _directory: Path) -> list[str]:
    """The files Alertmanager reads receiver secrets from exist (their content is not read)."""
    return [
        f"{layout.ALERTMANAGER_CONFIG}: secret file {path} does not exist"
        for path in config.secret_files()
        if not path.is_file()
    ]


def _allowed_ports(services: dict[str, Any]) -> set[str]:
    """The four UI/API ports, and each cluster member's own loopback port."""
    ports = {
        layout.OBSERVER_PORT,
        layout.PROMETHEUS_PORT,
        layout.ALERTMANAGER_PORT,
        layout.GRAFANA_PORT,
        layout.VICTORIAMETRICS_PORT,
    }
    count = sum(1 for name in services if name.startswith("observer-"))
    ports |= {compose.member_port(index) for index in range(1, count + 1)}
    return {str(port) for port in ports}


def compose_shape(directory: Path) -> list[str]:
    """Healthchecks everywhere, pinned images, passwords required, only the stack's ports."""
    path = directory / layout.COMPOSE_FILE
    if not path.is_file():
        return [f"{layout.COMPOSE_FILE}: missing"]
    document = load_generated_yaml(path) or {}
    services = document.get("services") or {}
    problems = []
    allowed = _allowed_ports(services)
    for name, service in sorted(services.items()):
        if "healthcheck" not in service:
            problems.append(f"{layout.COMPOSE_FILE}: service {name} has no healthcheck")
        image = str(service.get("image", ""))
        if "build" not in service and (":" not in image or image.endswith(":latest")):
            problems.append(f"{layout.COMPOSE_FILE}: service {name} image {image!r} not pinned")
        for mapping in service.get("ports") or []:
            host_port = str(mapping).split(":")[-2] if str(mapping).count(":") else str(mapping)
            if host_port not in allowed:
                problems.append(f"{layout.COMPOSE_FILE}: service {name} publishes {mapping}")
    password = (services.get("grafana") or {}).get("environment", {})
    if compose.REQUIRED_PASSWORD not in password.values():
        problems.append(f"{layout.COMPOSE_FILE}: Grafana admin password is not required")
    if "postgres" in services:
        environment = services["postgres"].get("environment") or {}
        if environment.get("POSTGRES_PASSWORD") != compose.REQUIRED_POSTGRES_PASSWORD:
            problems.append(f"{layout.COMPOSE_FILE}: PostgreSQL password is not required")
    return problems


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    try:
        result = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"{' '.join(argv)}: {exc}"]
    if result.returncode == 0:
        return []
    output = (result.stdout + result.stderr).strip().splitlines()
    return [f"{' '.join(argv)}: {line}" for line in output] or [f"{argv[0]} failed"]


def promtool_config(directory: Path) -> list[str]:
    """``promtool check config`` (it also checks the rule files the config names)."""
    if not (directory / layout.PROMETHEUS_CONFIG).is_file():
        return [f"{layout.PROMETHEUS_CONFIG}: missing"]
    return _run(["promtool", "check", "config", layout.PROMETHEUS_CONFIG], directory)


# Compose's required substitutions, ${NAME:?message}: each gets a placeholder for the check.
REQUIRED_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?")


def compose_config(directory: Path) -> list[str]:
    """``docker-compose config`` accepts the file (placeholders for the required variables)."""
    env = dict(os.environ)
    text = (directory / layout.COMPOSE_FILE).read_text(encoding="utf-8")
    for variable in {compose.PASSWORD_VARIABLE, *REQUIRED_VARIABLE.findall(text)}:
        env[variable] = "placeholder-for-validation"
    return _run(["docker-compose", "-f", layout.COMPOSE_FILE, "config", "--quiet"], directory, env)


def _against(
    check: Callable[[Expected, Path], list[str]],
    expected: Expected | None,
    config: StackConfig | None,
) -> Callable[[Path], list[str]]:
    """``check`` of a folder against ``expected`` (None: what ``config`` renders for it)."""

    def run(directory: Path) -> list[str]:
        return check(expected or expected_files(directory, config, None), directory)

    return run


def all_checks(expected: Expected | None = None, config: StackConfig | None = None) -> list[Check]:
    return [
        Check("files present", _against(files_present, expected, config), gate=True),
        Check("files parse", parse_files),
        Check("generated files up to date", _against(up_to_date, expected, config)),
        Check("compose shape", compose_shape),
        Check("compose build context", build_context),
        Check("receiver secret files", partial(secret_files, config or StackConfig())),
        Check("dashboard lint", dashboard_lint),
        Check("docker-compose config", compose_config, needs="docker-compose"),
        Check("promtool check config", promtool_config, needs="promtool"),
        Check(
            "rules: promtool check/test rules, amtool check-config",
            rules.check_files,
            needs="promtool",
        ),
    ]


def run_checks(
    directory: Path,
    checks: list[Check] | None = None,
    *,
    tools: bool = True,
    config: StackConfig | None = None,
    config_path: Path | None = None,
) -> tuple[list[str], list[str]]:
    """Run ``checks`` (default: all, against ``config``) on ``directory``: (report, problems).

    ``tools=False`` skips the checks that run a binary (they take seconds). A failed gate
    check (files missing) reports every later check as skipped.
    """
    report: list[str] = []
    problems: list[str] = []
    if checks is None:
        checks = all_checks(expected_files(directory, config, config_path), config)
    gated = ""
    for check in checks:
        if gated:
            report.append(f"skipped  {check.name} ({gated})")
            continue
        if check.needs and not tools:
            report.append(f"skipped  {check.name} (--no-tools)")
            continue
        if check.needs and shutil.which(check.needs) is None:
            report.append(f"skipped  {check.name} ({check.needs} not installed)")
            continue
        found = check.run(directory)
        problems += found
        report.append(f"{'FAILED' if found else 'ok':8} {check.name}")
        if found and check.gate:
            gated = f"{check.name} failed"
    return report, problems
