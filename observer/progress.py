"""A progress line in the log every ``log.progress_seconds``: what Observer is doing now.

    progress sweep=812/2500 rate=19.9/s limit=20/s eta_s=85 sweeps=0 slots=30/41
    gaps=2 queue=14

``sweep`` is Track A's current sweep (symbols answered of the universe), ``rate``
its answers per second against the REST limit, ``eta_s`` the seconds left at
that rate (``-`` while unknown), ``sweeps`` how many finished; ``slots`` the
Track B slots held of its capacity; ``gaps`` the gaps detected since start;
``queue`` the records waiting for the storage writer. The first line comes one
interval after start, so a person tailing the log never waits long for a sign.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Progress:
    """What one progress line says."""

    sweep_done: int
    sweep_total: int
    rate: float
    rate_limit: float
    eta_seconds: float | None
    sweeps: int
    slots_held: int
    slots_capacity: int
    gaps: int
    queue: int


def progress_line(progress: Progress) -> str:
    """The ``key=value`` text of one progress line (pure)."""
    eta = "-" if progress.eta_seconds is None else f"{progress.eta_seconds:.0f}"
    return (
        f"progress sweep={progress.sweep_done}/{progress.sweep_total} "
        f"rate={progress.rate:.1f}/s limit={progress.rate_limit:g}/s eta_s={eta} "
        f"sweeps={progress.sweeps} slots={progress.slots_held}/{progress.slots_capacity} "
        f"gaps={progress.gaps} queue={progress.queue}"
    )


class ProgressLog:
    """Logs ``progress_line(read())`` at info every ``interval_seconds`` until cancelled."""

    def __init__(self, read: Callable[[], Progress], *, interval_seconds: float) -> None:
        self._read = read
        self._interval = interval_seconds

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            log.info("%s", progress_line(self._read()))
