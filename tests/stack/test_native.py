"""The native stack: real ``prometheus`` and ``prometheus-alertmanager`` on loopback, port 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from observer.stack import files as stack_files
from observer.stack import layout
from observer.stack.native import Binaries, NativeStack, StackError, binaries_available
from tests.stack.poll import until

pytestmark = pytest.mark.skipif(not binaries_available(), reason="Debian binaries not installed")

# Until the rules package writes alertmanager/alertmanager.yml, a minimal valid one.
MINIMAL_ALERTMANAGER = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'


def _files() -> dict[str, str]:
    files = stack_files.render_files()
    files.setdefault(layout.ALERTMANAGER_CONFIG, MINIMAL_ALERTMANAGER)
    return files


async def _listed(url: str, key: str) -> list[dict[str, Any]] | None:
    """The non-empty list under data.<key> of a Prometheus API answer, or None."""
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        items: list[dict[str, Any]] = (await response.json())["data"][key]
        return items or None


async def test_both_start_ready_with_rewritten_targets_and_stop(tmp_path: Path) -> None:
    data_dir = tmp_path / "stack"
    async with NativeStack(_files(), observer_target="127.0.0.1:1", data_dir=data_dir) as stack:
        assert (data_dir / "prometheus.pid").is_file()
        assert (data_dir / "alertmanager.pid").is_file()
        active = await until(
            lambda: _listed(f"{stack.prometheus_url}/api/v1/targets", "activeTargets"),
            timeout_seconds=20,
            what="the observer target listed",
        )
        assert [target["labels"]["job"] for target in active] == ["observer"]
        assert active[0]["scrapeUrl"] == "http://127.0.0.1:1/metrics"
        managers = await until(
            lambda: _listed(f"{stack.prometheus_url}/api/v1/alertmanagers", "activeAlertmanagers"),
            timeout_seconds=20,
            what="the Alertmanager listed",
        )
        assert [item["url"] for item in managers] == [f"{stack.alertmanager_url}/api/v2/alerts"]
        pid = int((data_dir / "prometheus.pid").read_text())
    assert not (data_dir / "prometheus.pid").exists()
    assert _gone(pid)


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
    up = subprocess.run(
        [*observer, "stack", "up", "--detach", "--generated", str(generated),
         "--data-dir", str(data_dir), "--prometheus-port", "0", "--alertmanager-port", "0",
         "--observer", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=90, check=False, env=env,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    lines = dict(line.split(maxsplit=1) for line in up.stdout.splitlines()[:3])
    assert lines["prometheus"].startswith("http://127.0.0.1:")
    pids = [int((data_dir / f"{name}.pid").read_text()) for name in ("prometheus", "alertmanager")]
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
