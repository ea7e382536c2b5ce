"""Simulated time: a start instant and a speed, driven by an injectable real clock."""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """Simulated Unix seconds = ``start`` + real seconds elapsed × ``speed``.

    The market model runs on this clock; tokens and rate limits run on the real
    clock (``real()``), because clients pace themselves in real seconds.
    """

    def __init__(
        self, *, start: float, speed: float, real: Callable[[], float] = time.monotonic
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start = start
        self.speed = speed
        self.real = real
        self._real_origin = real()

    def now(self) -> float:
        """Simulated Unix seconds now."""
        return self.start + (self.real() - self._real_origin) * self.speed


class ManualClock:
    """A real-clock stand-in for pure tests: time moves only when told to."""

    def __init__(self, start: float = 0.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds
