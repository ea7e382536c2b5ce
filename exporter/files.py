"""The file export: ``metrics.prom`` and ``summary.json`` rewritten atomically every N seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)


def write_atomically(directory: Path, name: str, data: bytes) -> None:
    """Replace ``directory/name`` with ``data`` so readers see the old or the new file whole."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, directory / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class FileExporter:
    """Periodically writes what ``produce`` returns (file name → bytes) into ``directory``.

    ``prepare`` runs on the event loop before each write (scrape-time values);
    ``produce`` and the writes run in a worker thread. A failed write is logged
    and retried at the next interval. ``close()`` writes once more, then stops.
    """

    def __init__(
        self,
        directory: Path,
        produce: Callable[[], Mapping[str, bytes]],
        interval_seconds: float,
        prepare: Callable[[], None] = lambda: None,
    ) -> None:
        self.directory = directory
        self._produce = produce
        self._prepare = prepare
        self._interval_seconds = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.write_now()
        self._task = asyncio.create_task(self._loop(), name="file-export")

    async def write_now(self) -> None:
        self._prepare()
        await asyncio.to_thread(self._write_all)

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self.write_now()

    def _write_all(self) -> None:
        for name, data in self._produce().items():
            write_atomically(self.directory, name, data)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_seconds)
            try:
                await self.write_now()
            except OSError as exc:
                log.warning("file export failed dir=%s error=%s", self.directory, exc.strerror)
