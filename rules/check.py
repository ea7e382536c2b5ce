"""Validation of generated rule and Alertmanager files with promtool and amtool.

Each check runs only when its binary is on PATH; what a missing binary cannot
check is not reported as a problem. Every alert in the rule files must have a
promtool test when a test file is present.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from observer.config_yaml import load_generated_yaml
from rules.render import ALERTMANAGER_PATH, RULES_PATH, TESTS_PATH

# promtool test rules is CPU-bound (about 10 s of CPU for every case): room for a busy machine.
TIMEOUT_SECONDS = 300.0


def _run(argv: list[str], cwd: Path) -> str | None:
    """None when the command succeeds, else its command line and output."""
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        return f"{' '.join(argv)}: timed out after {TIMEOUT_SECONDS:g} s"
    if done.returncode == 0:
        return None
    return f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}".rstrip()


def _alert_names(path: Path) -> set[str]:
    document = load_generated_yaml(path) or {}
    return {
        rule["alert"]
        for group in document.get("groups", [])
        for rule in group.get("rules", [])
        if "alert" in rule
    }


def _tested_names(path: Path) -> set[str]:
    document = load_generated_yaml(path) or {}
    return {
        check["alertname"]
        for test in document.get("tests", [])
        for check in test.get("alert_rule_test", [])
        if check.get("exp_alerts")
    }


def untested_alerts(rules_file: Path, tests_file: Path) -> list[str]:
    """Alerts of ``rules_file`` that no test in ``tests_file`` expects to fire."""
    return sorted(_alert_names(rules_file) - _tested_names(tests_file))


def check_files(directory: Path) -> list[str]:
    """Problems found in the rule, test and Alertmanager files under ``directory``."""
    rules_file = directory / RULES_PATH
    tests_file = directory / TESTS_PATH
    am_file = directory / ALERTMANAGER_PATH
    problems = [f"missing {p}" for p in (rules_file, am_file) if not p.is_file()]
    if problems:
        return problems
    if tests_file.is_file():
        untested = untested_alerts(rules_file, tests_file)
        problems += [f"alert {name} has no firing unit test" for name in untested]
    promtool, amtool = shutil.which("promtool"), shutil.which("amtool")
    commands: list[tuple[list[str], Path]] = []
    if promtool:
        commands.append(
            ([promtool, "check", "rules", "--lint=all", rules_file.name], rules_file.parent)
        )
        if tests_file.is_file():
            commands.append(([promtool, "test", "rules", tests_file.name], tests_file.parent))
    if amtool:
        commands.append(([amtool, "check-config", am_file.name], am_file.parent))
    for argv, cwd in commands:
        problem = _run(argv, cwd)
        if problem:
            problems.append(problem)
    return problems
