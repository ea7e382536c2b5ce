"""The command line contract: subcommands listed, errors as one line, config errors exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from observer.cli import SUBCOMMANDS, main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "observer", *args], capture_output=True, text=True, timeout=60
    )


def test_help_lists_every_subcommand() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for name in ("run", "sim", "generate", "check", "stack", "db"):
        assert name in result.stdout
    assert set(SUBCOMMANDS) == {"run", "sim", "generate", "check", "stack", "db"}


def test_every_subcommand_has_its_own_help() -> None:
    for name in SUBCOMMANDS:
        result = run_cli(name, "--help")
        assert result.returncode == 0, (name, result.stderr)
        assert "Traceback" not in result.stderr


def test_bad_config_file_exits_2_with_key_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("track_b:\n  capacity: 99\n")
    result = run_cli("run", "--config", str(bad))
    assert result.returncode == 2
    assert "track_b.capacity = 99" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_progress_interval_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("log:\n  progress_seconds: -5\n")
    result = run_cli("run", "--config", str(bad))
    assert result.returncode == 2
    assert "log.progress_seconds = -5" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["nope"])
    assert exit_info.value.code == 2
