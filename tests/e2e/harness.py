"""End-to-end harness: a real ``observer run`` subprocess, native Prometheus and Alertmanager,
a webhook sink, and small clients for their HTTP APIs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from observer.stack import files as stack_files
from observer.stack.process import write_pid_file
from tests.stack.poll import until

# Short timings so that faults show within seconds. The simulated market runs ten times
# faster, so every subscribed symbol trades within seconds and a gap ends soon after its
# cause (gap lengths are real seconds). A token may be issued every 10 s on
# both sides; a gap of 8 s is high severity; a silent WebSocket is replaced after 15 s and
# a refused one retried within 2 s.
OBSERVER_CONFIG = """\
log_level: INFO
sim:
  symbols: 120
  speed: 10
  token_min_interval_seconds: 10
token:
  min_issue_interval_seconds: 10
track_b:
  idle_timeout_seconds: 15
  reconnect_max_seconds: 2
gaps:
  medium_after_seconds: 4
  high_after_seconds: 8
"""
SIM_LINE = re.compile(r"embedded simulator rest=(\S+)")
START_TIMEOUT_SECONDS = 60.0


def e2e_files(webhook_url: str) -> dict[str, str]:
    """The e2e profile of the generated files: the rules' ``for`` and range windows in seconds."""
    return stack_files.render_files("e2e", webhook_url=webhook_url)


class WebhookSink:
    """Alertmanager's webhook receiver: records every notification with its arrival time."""

    def __init__(self) -> None:
        self.notifications: list[tuple[float, dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        self.notifications.append((time.monotonic(), await request.json()))
        return web.Response(text="ok")


@dataclass
class ObserverProcess:
    """``observer run`` with the embedded simulator, in its own process."""

    data_dir: Path
    listen: str = "127.0.0.1:0"
    process: subprocess.Popen[bytes] | None = None
    exporter_url: str = ""
    sim_url: str = ""
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir / "observer.log"

    @property
    def target(self) -> str:
        return self.exporter_url.removeprefix("http://")

    async def start(self) -> None:
        stdout_path = self._spawn()
        exporter_url = await until(
            lambda: self._line(stdout_path, re.compile(r"^exporter_url (\S+)", re.M)),
            timeout_seconds=START_TIMEOUT_SECONDS,
            what="observer run printing its exporter URL",
        )
        self.sim_url = await until(
            lambda: self._line(self.log_path, SIM_LINE),
            timeout_seconds=START_TIMEOUT_SECONDS,
            what="the embedded simulator's URL in the log",
        )
        self.exporter_url = exporter_url
        self.listen = self.target  # a restart binds the same port, as a restarted service would

    def _spawn(self) -> Path:
        """Start the process; returns the file its stdout goes to."""
        config = self.data_dir / "observer.yaml"
        config.write_text(OBSERVER_CONFIG, encoding="utf-8")
        stdout_path = self.data_dir / "observer.out"
        argv = [sys.executable, "-m", "observer", "run", "--config", str(config)]
        argv += ["--listen", self.listen, "--data-dir", str(self.data_dir / "data")]
        with stdout_path.open("wb") as stdout, self.log_path.open("ab") as stderr:
            self.process = subprocess.Popen(
                argv, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=_environment()
            )
        write_pid_file(self.data_dir / "observer.pid", self.process.pid)
        return stdout_path

    async def _line(self, path: Path, pattern: re.Pattern[str]) -> str | None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"observer run exited {self.process.returncode}: {self.tail()}")
        found = pattern.findall(_read(path))
        return found[-1] if found else None

    def tail(self) -> str:
        return self.log_path.read_bytes()[-3000:].decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL: no goodbye, as when the process is killed by the OOM killer."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, 20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)
        self.process = None


def _environment() -> dict[str, str]:
    """The test's environment without OBSERVER_* settings, so only the harness config counts."""
    return {key: value for key, value in os.environ.items() if not key.startswith("OBSERVER_")}


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "replace") if path.exists() else ""


class Api:
    """Prometheus, Alertmanager and simulator HTTP calls."""

    def __init__(self, http: aiohttp.ClientSession, prometheus_url: str, alertmanager_url: str):
        self.http = http
        self.prometheus_url = prometheus_url
        self.alertmanager_url = alertmanager_url

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; AssertionError when Prometheus rejects it."""
        url = f"{self.prometheus_url}/api/v1/query"
        async with self.http.post(url, data={"query": expr}) as response:
            body = await response.json()
        assert body.get("status") == "success", f"{expr}: {body}"
        result = body["data"]["result"]
        if body["data"]["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    async def alerts(self) -> list[dict[str, Any]]:
        """Alerts Alertmanager holds now (active, silenced or inhibited)."""
        async with self.http.get(f"{self.alertmanager_url}/api/v2/alerts") as response:
            assert response.status == 200
            alerts: list[dict[str, Any]] = await response.json()
        return alerts

    async def alert_names(self) -> set[str]:
        return {alert["labels"]["alertname"] for alert in await self.alerts()}

    async def fault(self, sim_url: str, body: dict[str, Any] | None) -> None:
        """POST a fault to the simulator, or DELETE every fault when ``body`` is None."""
        if body is None:
            async with self.http.delete(f"{sim_url}/sim/faults") as response:
                assert response.status == 200, await response.text()
            return
        async with self.http.post(f"{sim_url}/sim/faults", json=body) as response:
            assert response.status == 200, await response.text()


@contextlib.asynccontextmanager
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        yield http
