"""The native stack: real ``prometheus`` and ``prometheus-alertmanager`` on loopback, port 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from observer.stack import files as stack_files
from observer.stack import layout
from observer.stack.native import (
    Binaries,
    NativeStack,
    StackError,
    binaries_available,
    stop_detached,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not binaries_available(), reason="Debian binaries not installed"),
]

NAMES = ("prometheus", "alertmanager")


def _files() -> dict[str, str]:
    return stack_files.render_files()


async def _loaded_config(prometheus_url: str) -> str:
    url = f"{prometheus_url}/api/v1/status/config"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        text: str = (await response.json())["data"]["yaml"]
        return text


async def test_both_start_ready_with_rewritten_targets_and_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "stack"
    async with NativeStack(_files(), observer_target="127.0.0.1:1", data_dir=data_dir) as stack:
        assert (data_dir / "prometheus.pid").is_file()
        assert (data_dir / "alertmanager.pid").is_file()
        # The configuration Prometheus loaded (target discovery itself takes seconds).
        loaded = yaml.safe_load(await _loaded_config(stack.prometheus_url))
        (job,) = loaded["scrape_configs"]
        assert job["job_name"] == "observer"
        assert job["static_configs"] == [{"targets": ["127.0.0.1:1"]}]
        config = yaml.safe_load((data_dir / "prometheus.yml").read_text())
        (manager,) = config["alerting"]["alertmanagers"]
        assert manager["static_configs"] == [{"targets": [stack.alertmanager_url[7:]]}]
        assert _all_files(config["rule_files"])
        pid = int((data_dir / "prometheus.pid").read_text())
    assert not (data_dir / "prometheus.pid").exists()
    assert _gone(pid)


def _all_files(paths: list[str]) -> bool:
    return bool(paths) and all(Path(path).is_file() for path in paths)


def _gone(pid: int) -> bool:
    """The process has exited (it may linger as a zombie until its parent reaps it)."""
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


async def test_a_temporary_data_dir_is_removed_on_exit() -> None:
    async with NativeStack(_files(), observer_target="127.0.0.1:1") as stack:
        data_dir = stack.data_dir
        assert (data_dir / "prometheus.yml").is_file()
    assert not data_dir.exists()


async def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    stack = NativeStack(
        _files(), data_dir=tmp_path, binaries=Binaries(prometheus="no-such-prometheus")
    )
    with pytest.raises(StackError, match="no-such-prometheus"):
        await stack.start()


async def test_a_bad_alertmanager_config_fails_with_its_log(tmp_path: Path) -> None:
    files = _files()
    files[layout.ALERTMANAGER_CONFIG] = "route: {}\n"
    with pytest.raises(StackError, match="alertmanager exited during start-up"):
        await NativeStack(files, data_dir=tmp_path / "stack").start()
    assert not (tmp_path / "stack" / "alertmanager.pid").exists()


def test_stack_up_detached_then_down(tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    stack_files.write_files(_files(), generated)
    data_dir = tmp_path / "stack"
    observer = [sys.executable, "-m", "observer"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore::ResourceWarning"}
    try:
        _detached_up_then_down(observer, generated, data_dir, env)
    finally:
        stop_detached(data_dir)  # a safety net: whatever its pid files still name


def _detached_up_then_down(
    observer: list[str], generated: Path, data_dir: Path, env: dict[str, str]
) -> None:
    up = subprocess.run(
        [*observer, "stack", "up", "--detach", "--generated", str(generated),
         "--data-dir", str(data_dir), "--prometheus-port", "0", "--alertmanager-port", "0",
         "--observer", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=90, check=False, env=env,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    lines = dict(line.split(maxsplit=1) for line in up.stdout.splitlines()[:3])
    assert lines["prometheus"].startswith("http://127.0.0.1:")
    pids = [int((data_dir / f"{name}.pid").read_text()) for name in NAMES]
    assert all(Path(f"/proc/{pid}").exists() for pid in pids)
    state = yaml.safe_load((data_dir / "stack.json").read_text())
    assert state["prometheus_url"] == lines["prometheus"]
    down = subprocess.run(
        [*observer, "stack", "down", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "stopped: prometheus, alertmanager"
    assert not any(Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids if _exists(pid))
    assert not (data_dir / "prometheus.pid").exists()


def _exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_stack_up_in_the_foreground_stops_both_on_sigterm(tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    stack_files.write_files(_files(), generated)
    data_dir = tmp_path / "stack"
    env = {**os.environ, "PYTHONWARNINGS": "ignore::ResourceWarning"}
    process = subprocess.Popen(
        [sys.executable, "-m", "observer", "stack", "up", "--generated", str(generated),
         "--data-dir", str(data_dir), "--prometheus-port", "0", "--alertmanager-port", "0",
         "--observer", "127.0.0.1:1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]  # blocks until they are printed
        assert lines[0].startswith("prometheus   http://127.0.0.1:"), lines
        pids = [int((data_dir / f"{name}.pid").read_text()) for name in NAMES]
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        stop_detached(data_dir)  # a safety net: whatever its pid files still name
    assert process.returncode == 0, err
    assert out.strip().endswith("stopped")
    assert all(_gone(pid) for pid in pids)
    assert not (data_dir / "prometheus.pid").exists()
