"""The simulator's per-app-key REST rate limit: sliding, fixed or bucket windows (pure).

KIS does not publish how it measures its 20 calls/s (``kis-protocol.md`` "Rate
limits"), so the simulator offers three ways; the default is the strictest.
Only admitted calls use up the allowance: a refused call does not push the
window further out.

- ``sliding``: at most ``rate`` admitted calls in any 1 s window (rolling log).
- ``fixed``: a 1 s window opens at the first call after the previous one ended
  and admits ``rate`` calls; calls fired together are therefore counted together
  whatever the wall-clock second boundaries.
- ``bucket``: a token bucket of ``rate`` tokens refilled at ``rate`` per second.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal, Protocol

Window = Literal["sliding", "fixed", "bucket"]
WINDOW_SECONDS = 1.0


class Limiter(Protocol):
    def admit(self, now: float) -> bool:
        """True if a call at real time ``now`` is within the limit (and count it)."""
        ...


class SlidingWindow:
    def __init__(self, rate: float) -> None:
        self.capacity = max(1, math.floor(rate))
        self._admitted: deque[float] = deque()

    def admit(self, now: float) -> bool:
        while self._admitted and self._admitted[0] <= now - WINDOW_SECONDS:
            self._admitted.popleft()
        if len(self._admitted) >= self.capacity:
            return False
        self._admitted.append(now)
        return True


class FixedWindow:
    def __init__(self, rate: float) -> None:
        self.capacity = max(1, math.floor(rate))
        self._window_start = -math.inf
        self._count = 0

    def admit(self, now: float) -> bool:
        if now >= self._window_start + WINDOW_SECONDS:
            self._window_start = now
            self._count = 0
        if self._count >= self.capacity:
            return False
        self._count += 1
        return True


class TokenBucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._last: float | None = None

    def admit(self, now: float) -> bool:
        if self._last is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


def new_limiter(window: Window, rate: float) -> Limiter:
    if window == "sliding":
        return SlidingWindow(rate)
    if window == "fixed":
        return FixedWindow(rate)
    return TokenBucket(rate)


class RateLimits:
    """One limiter per app key, created on first use."""

    def __init__(self, window: Window, rate: float) -> None:
        self.window: Window = window
        self.rate = rate
        self._by_key: dict[str, Limiter] = {}

    def admit(self, app_key: str, now: float) -> bool:
        limiter = self._by_key.get(app_key)
        if limiter is None:
            limiter = self._by_key[app_key] = new_limiter(self.window, self.rate)
        return limiter.admit(now)
