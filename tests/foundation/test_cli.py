"""The command line contract: subcommands listed, errors as one line, config errors exit 2."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from observer.cli import SUBCOMMANDS, main
from observer.credentials import demo_credentials
from tests.foundation.test_config import BILLION_LAUGHS

WITHIN_S = 30.0


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("OBSERVER_")}
    return subprocess.run(
        [sys.executable, "-m", "observer", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean | (env or {}),
        cwd=cwd,
    )


def test_help_lists_every_subcommand() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for name in ("run", "sim", "generate", "check", "stack", "db", "cluster"):
        assert name in result.stdout
    assert set(SUBCOMMANDS) == {"run", "sim", "generate", "check", "stack", "db", "cluster"}


def test_the_parser_loads_none_of_the_machinery() -> None:
    """Every subcommand's arguments without the runtime's libraries, so ``--help`` and a
    refused option start fast (issue 11); each ``main`` imports what it runs."""
    code = "import sys; from observer.cli import build_parser; build_parser(); print(*sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded = {name.partition(".")[0] for name in result.stdout.split()} | set(result.stdout.split())
    heavy = {"aiohttp", "websockets", "pydantic", "jsonschema", "grafanalib", "psycopg"}
    heavy |= {"sentry_sdk", "observer.config", "observer.runtime", "observer.sim", "exporter"}
    assert heavy & loaded == set()


@pytest.mark.slow  # real tools or real time: make test, not test-fast
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


# Issue 14 items 7-10: the real entry point refuses each of these with exit 2 and one
# line naming the key (and the variable it came from), before anything starts.
RUN_CASES = [
    (BILLION_LAUGHS, [], {}, "YAML expands to more than 10000 values"),
    ("rate_limit:\n  rate_per_second: .inf\n", [], {}, "rate_limit.rate_per_second = inf"),
    ("sim:\n  start_at: 2026-02-30 10:00:00\n", [], {}, "sim.start_at = '2026-02-30 10:00:00'"),
    ("sim:\n  start_at: '9999-12-31 23:59:59'\n", [], {}, "outside the simulator's clock"),
    ("sim:\n  speed: .inf\n", [], {}, "sim.speed = inf"),
    ('storage:\n  path: "db\\0"\n', [], {}, "storage.path = 'db\\x00'"),
    ("exporter:\n  listen: " + "h" * 64 + ":80\n", [], {}, "exporter.listen = 'hhh"),
    ("exporter:\n  listen: '[]:0'\n", [], {}, "exporter.listen = '[]:0'"),
    (None, ["--data-dir", "a-file"], {}, "data_dir = 'a-file' (from the command line): exists"),
    (None, ["--export-dir", "/proc/1/x"], {}, "exporter.export_dir = '/proc/1/x'"),
    (None, [], {"OBSERVER_DATA_DIR": "a-file"}, "data_dir = 'a-file' (from OBSERVER_DATA_DIR)"),
    (None, [], {"OBSERVER_SIM__SPEED": "1.0e300"}, "(from OBSERVER_SIM__SPEED)"),
    (None, [], {"OBSERVER_LOG_LEVEL": "loud"}, "log_level = 'LOUD' (from OBSERVER_LOG_LEVEL)"),
    (None, [], {"OBSERVER_SENTRY__DSN": "garbage"}, "sentry.dsn: not a valid Sentry DSN"),
    (None, [], {"SENTRY_DSN": "garbage"}, "SENTRY_DSN: not a valid Sentry DSN"),
    (
        None,
        ["--rest-url", "http://" + "h" * 64 + ":80", "--ws-url", "ws://127.0.0.1:9"],
        {},
        "provider.rest_url = 'http://hhh",
    ),
]


def _prepare(tmp_path: Path, config: str | None, args: list[str]) -> list[str]:
    (tmp_path / "a-file").write_text("not a directory\n")
    if config is None:
        return args
    (tmp_path / "observer.yaml").write_text(config)
    return ["--config", "observer.yaml", *args]


def _assert_refused(code: int, stdout: str, stderr: str, expected: str) -> None:
    assert code == 2, stderr[-2000:]
    assert expected in stderr
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr
    assert stdout == ""  # nothing started: no exporter_url, no simulator URLs


@pytest.mark.parametrize(("config", "args", "env", "expected"), RUN_CASES)
def test_run_refuses_bad_values_in_one_line_before_starting(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    config: str | None,
    args: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    """The CLI's own entry, in-process: fast enough for every case."""
    argv = ["run", *_prepare(tmp_path, config, args)]
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("OBSERVER_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(argv)
    captured = capsys.readouterr()
    _assert_refused(code, captured.out, captured.err, expected)
    assert not (tmp_path / "var" / "observer.sqlite").exists()


@pytest.mark.parametrize(("config", "args", "env", "expected"), RUN_CASES[::3])
def test_observer_process_refuses_bad_values_in_one_line(
    tmp_path: Path, config: str | None, args: list[str], env: dict[str, str], expected: str
) -> None:
    """A handful of the cases above through ``python -m observer``: exit status and stderr."""
    result = run_cli("run", *_prepare(tmp_path, config, args), env=env, cwd=tmp_path)
    _assert_refused(result.returncode, result.stdout, result.stderr, expected)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--speed", "inf"], "sim.speed = inf (from the command line)"),
        (["--start-at", "0001-01-01 00:00:01"], "sim.start_at = '0001-01-01 00:00:01'"),
        (["--start-at", "2026-02-30 10:00:00"], "not a date and time that exists"),
        (["--listen", "h" * 64 + ":8080"], "--listen 'hhh"),
        (["--ws-listen", "[]:0"], "--ws-listen '[]:0'"),
    ],
)
def test_sim_refuses_bad_values_in_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code = main(["sim", *args])
    captured = capsys.readouterr()
    _assert_refused(code, captured.out, captured.err, expected)


def test_sim_process_refuses_an_infinite_speed() -> None:
    result = run_cli("sim", "--speed", "inf")
    _assert_refused(result.returncode, result.stdout, result.stderr, "sim.speed = inf")


def test_log_level_option_is_case_insensitive() -> None:
    result = run_cli("run", "--log-level", "loud")
    assert result.returncode == 2 and "--log-level" in result.stderr
    help_text = " ".join(run_cli("run", "--help").stdout.split())
    assert "--log-level" in help_text and ":PORT = every interface" in help_text


async def test_listen_on_every_interface_warns_without_web_config(tmp_path: Path) -> None:
    """``--listen :PORT`` binds every interface (IPv4 and IPv6) and says it is open."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OBSERVER_")}
    env |= {"OBSERVER_SIM__SYMBOLS": "20", "OBSERVER_LOG_LEVEL": "info"}
    with socket.socket(socket.AF_INET6) as probe:  # a port free on both families, most likely
        probe.bind(("::", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "observer", "run", "--listen", f":{port}", "--log-level", "WaRnInG",
        "--data-dir", str(tmp_path / "var"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), WITHIN_S)).decode()
        assert line.startswith("exporter_url "), line
        assert int(line.rsplit(":", 1)[1]) == port
        for host in ("127.0.0.1", "[::1]"):
            status = await asyncio.to_thread(_get_status, f"http://{host}:{port}/healthz")
            assert status == 200, host
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), WITHIN_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    lines = stderr.decode().splitlines()
    assert any(
        " warning " in line and "every interface without web-config" in line for line in lines
    )
    assert not [line for line in lines if " info " in line]  # --log-level wins over the variable


def _get_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status)


def _kis_env() -> dict[str, str]:
    credentials = demo_credentials("cli-token-directory")
    return {"KIS_APP_KEY": credentials.app_key, "KIS_APP_SECRET": credentials.app_secret}


KIS_ARGS = ["--provider", "kis", "--rest-url", "http://127.0.0.1:9", "--ws-url", "ws://127.0.0.1:9"]


async def test_run_tightens_a_loose_token_directory_before_starting(tmp_path: Path) -> None:
    """Issue 14 item 15: ``<data_dir>/tokens`` at 0777 is 0700 before the exporter binds."""
    tokens = tmp_path / "var" / "tokens"
    tokens.mkdir(parents=True)
    os.chmod(tokens, 0o777)
    env = {key: value for key, value in os.environ.items() if not key.startswith("OBSERVER_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "observer", "run", *KIS_ARGS, "--listen", "127.0.0.1:0",
        "--data-dir", str(tmp_path / "var"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env | _kis_env(),
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), WITHIN_S)).decode()
        assert line.startswith("exporter_url "), line
        assert stat.S_IMODE(tokens.stat().st_mode) == 0o700
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), WITHIN_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    first_lines = stderr.decode().splitlines()[:3]
    assert any("token directory tightened to 0700" in line for line in first_lines)


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory of another user needs root")
def test_run_refuses_a_token_directory_of_another_user(tmp_path: Path) -> None:
    tokens = tmp_path / "var" / "tokens"
    tokens.mkdir(parents=True, mode=0o777)
    os.chown(tokens, 65534, 65534)
    result = run_cli("run", *KIS_ARGS, "--data-dir", str(tmp_path / "var"), env=_kis_env())
    _assert_refused(result.returncode, result.stdout, result.stderr, "token directory")
    assert "owned by uid 65534" in result.stderr and "data_dir = " in result.stderr
