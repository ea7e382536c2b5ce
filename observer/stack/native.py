"""Prometheus and Alertmanager from the Debian packages, on loopback, with the generated configs.

``async with NativeStack(...) as stack`` writes ``prometheus.yml`` (targets
rewritten to ``observer_target`` and the chosen Alertmanager port, rule files
made absolute) and ``alertmanager.yml`` into a data directory, starts
``prometheus-alertmanager`` then ``prometheus``, waits for both ``/-/ready``
and stops both on exit. Ports 0 pick free ones (retried when taken between
the pick and the bind). Pid files in the data directory let ``observer stack
down`` stop a detached stack.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType

from observer.stack import files as stack_files
from observer.stack import layout, prometheus
from observer.stack.process import (
    ManagedProcess,
    StackError,
    free_port,
    stop_pid_file,
    write_pid_file,
)

PORT_ATTEMPTS = 5
STATE_FILE = "stack.json"

__all__ = ["Binaries", "NativeStack", "StackError", "binaries_available", "stop_detached"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Binaries:
    """The executables: Debian names by default."""

    prometheus: str = "prometheus"
    alertmanager: str = "prometheus-alertmanager"


def binaries_available(binaries: Binaries = Binaries()) -> bool:
    """True when both executables are on PATH."""
    return all(shutil.which(name) for name in (binaries.prometheus, binaries.alertmanager))


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class NativeStack:
    """Prometheus and Alertmanager around one Observer exporter.

    ``generated`` is a folder written by ``observer generate``, or the files
    themselves (``observer.stack.files.render_files(...)``), or None to
    render the default profile now. ``data_dir`` None uses a temporary folder
    removed on exit. Raises StackError when a binary is missing, fails to
    start, or is not ready within ``ready_timeout_seconds``.
    """

    def __init__(
        self,
        generated: Path | Mapping[str, str] | None = None,
        *,
        observer_target: str = f"127.0.0.1:{layout.OBSERVER_PORT}",
        data_dir: Path | None = None,
        host: str = "127.0.0.1",
        prometheus_port: int = 0,
        alertmanager_port: int = 0,
        ready_timeout_seconds: float = 60.0,
        prometheus_args: Sequence[str] = (),
        binaries: Binaries = Binaries(),
    ) -> None:
        self._generated = generated
        self._observer_target = observer_target
        self._requested_dir = data_dir
        self._host = host
        self._ports = {"prometheus": prometheus_port, "alertmanager": alertmanager_port}
        self._ready_timeout_seconds = ready_timeout_seconds
        self._prometheus_args = list(prometheus_args)
        self._binaries = binaries
        self._processes: list[ManagedProcess] = []
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self.data_dir = Path()
        self.prometheus_url = ""
        self.alertmanager_url = ""

    async def __aenter__(self) -> NativeStack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        if not binaries_available(self._binaries):
            raise StackError(
                f"{self._binaries.prometheus} and {self._binaries.alertmanager} must be on PATH "
                "(Debian packages prometheus and prometheus-alertmanager)"
            )
        self.data_dir = self._make_data_dir()
        try:
            source_dir = self._source_dir()
            alertmanager_config = source_dir / layout.ALERTMANAGER_CONFIG
            if not alertmanager_config.is_file():
                raise StackError(f"no {alertmanager_config}: run `observer generate` first")
            self.alertmanager_url = await self._start_alertmanager(alertmanager_config)
            self.prometheus_url = await self._start_prometheus(source_dir)
            self._write_state()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop both processes (Prometheus first) and remove pid files and a temporary folder."""
        for process in reversed(self._processes):
            await process.stop()
            (self.data_dir / f"{process.name}.pid").unlink(missing_ok=True)
        self._processes.clear()
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    def detach(self) -> dict[str, int]:
        """Leave both processes running after this object is gone; returns their pids.

        Needs a given ``data_dir``: a temporary one would be removed under them.
        """
        if self._temporary is not None:
            raise StackError("a detached stack needs a data directory that outlives it")
        pids = {process.name: process.release() for process in self._processes}
        self._processes.clear()
        return pids

    def _make_data_dir(self) -> Path:
        if self._requested_dir is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="observer-stack-")
            return Path(self._temporary.name)
        directory = self._requested_dir.resolve()
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _source_dir(self) -> Path:
        """The folder the generated files are read from (written here when given as text)."""
        if isinstance(self._generated, Path):
            return self._generated.resolve()
        generated = self._generated
        if generated is None:
            generated = stack_files.render_files()
        config_dir = self.data_dir / "generated"
        stack_files.write_files(dict(generated), config_dir)
        return config_dir

    async def _start_alertmanager(self, config: Path) -> str:
        storage = self.data_dir / "alertmanager-data"
        storage.mkdir(exist_ok=True)

        def argv(port: int) -> list[str]:
            return [
                self._binaries.alertmanager,
                f"--config.file={config}",
                f"--storage.path={storage}",
                f"--web.listen-address={self._host}:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ]

        return await self._start("alertmanager", argv)

    async def _start_prometheus(self, source_dir: Path) -> str:
        config_text = (source_dir / layout.PROMETHEUS_CONFIG).read_text(encoding="utf-8")
        config_path = self.data_dir / "prometheus.yml"
        config_path.write_text(
            prometheus.rewrite(
                config_text,
                observer_target=self._observer_target,
                alertmanager_target=self.alertmanager_url.removeprefix("http://"),
                base_dir=PurePosixPath(source_dir / layout.PROMETHEUS_DIR),
            ),
            encoding="utf-8",
        )
        storage = self.data_dir / "prometheus-data"
        storage.mkdir(exist_ok=True)

        def argv(port: int) -> list[str]:
            return [
                self._binaries.prometheus,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={storage}",
                f"--web.listen-address={self._host}:{port}",
                "--log.level=warn",
                *self._prometheus_args,
            ]

        return await self._start("prometheus", argv)

    async def _start(self, name: str, argv: Callable[[int], list[str]]) -> str:
        requested = self._ports[name]
        for _attempt in range(PORT_ATTEMPTS if requested == 0 else 1):
            port = requested or free_port(self._host)
            process = ManagedProcess(name, argv(port), self.data_dir / f"{name}.log")
            process.start()
            self._processes.append(process)
            # Written at once, so `stack down` finds a process even if we die while it starts.
            pid_file = self.data_dir / f"{name}.pid"
            write_pid_file(pid_file, process.pid)
            url = _url(self._host, port)
            try:
                await process.wait_ready(f"{url}/-/ready", self._ready_timeout_seconds)
            except StackError:
                if requested == 0 and process.address_in_use():
                    self._processes.remove(process)
                    await process.stop()
                    pid_file.unlink(missing_ok=True)
                    continue
                raise
            return url
        raise StackError(f"{name}: no free port on {self._host} after {PORT_ATTEMPTS} attempts")

    def _write_state(self) -> None:
        state = {"prometheus_url": self.prometheus_url, "alertmanager_url": self.alertmanager_url}
        (self.data_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", "utf-8")


def stop_detached(data_dir: Path) -> list[str]:
    """Stop the processes a detached stack left in ``data_dir``; returns the names stopped."""
    directory = data_dir.resolve()
    stopped = [
        name
        for name in ("prometheus", "alertmanager")
        if stop_pid_file(directory / f"{name}.pid", marker=str(directory))
    ]
    (directory / STATE_FILE).unlink(missing_ok=True)
    return stopped
