"""One long-running binary: start with its log in a file, wait until ready, stop cleanly.

Also the pid-file helpers ``observer stack down`` uses to stop processes that
a detached ``observer stack up`` left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from observer.errors import ObserverError

LOG_TAIL_BYTES = 2000


class StackError(ObserverError):
    """A stack binary is missing, would not start, or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` right now (another process may take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def log_tail(path: Path, limit: int = LOG_TAIL_BYTES) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace").strip()


class ManagedProcess:
    """A child process with stdout and stderr in ``log_path``, in its own session.

    ``stop()`` sends SIGTERM, waits up to ``stop_timeout_seconds`` and then
    kills; it is safe to call twice and after the process died by itself.
    """

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise StackError(f"{self.name} is not running")
        return self._process.pid

    def start(self) -> None:
        try:
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            raise StackError(f"cannot start {self.name} ({self.argv[0]}): {exc}") from exc

    def exited(self) -> bool:
        return self._process is not None and self._process.poll() is not None

    async def wait_ready(self, url: str, timeout_seconds: float) -> None:
        """Poll ``url`` until it answers 200; StackError with the log tail otherwise."""
        deadline = time.monotonic() + timeout_seconds
        client_timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=client_timeout) as http:
            while time.monotonic() < deadline:
                if self.exited():
                    raise StackError(self._failure("exited during start-up"))
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(url) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise StackError(self._failure(f"not ready at {url} after {timeout_seconds:g} s"))

    def address_in_use(self) -> bool:
        return self.exited() and "address already in use" in log_tail(self.log_path).lower()

    async def stop(self, stop_timeout_seconds: float = 10.0) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                await asyncio.to_thread(process.wait, stop_timeout_seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)
        self._process = None

    def release(self) -> int:
        """Forget the process without stopping it (``stack up --detach``); returns its pid."""
        pid = self.pid
        self._process = None
        return pid

    def _failure(self, what: str) -> str:
        tail = log_tail(self.log_path)
        return f"{self.name} {what}; log {self.log_path}:\n{tail}"


def write_pid_file(path: Path, pid: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(f"{pid}\n", encoding="utf-8")
    temporary.replace(path)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers signal 0 but has no command line any more.
    return bool(_cmdline(pid))


def stop_pid_file(pid_file: Path, marker: str, timeout_seconds: float = 10.0) -> bool:
    """Stop the process named in ``pid_file`` if its command line contains ``marker``.

    ``marker`` (the data directory) guards against a pid reused by an
    unrelated process. Returns True when a process was stopped. The pid file
    is removed in every case.
    """
    try:
        pid = int(pid_file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return False
    stopped = False
    if _alive(pid) and any(marker in part for part in _cmdline(pid)):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_seconds
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped = True
    pid_file.unlink(missing_ok=True)
    return stopped
