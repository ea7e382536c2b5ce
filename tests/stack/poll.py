"""Wait for a condition with a bound, never a fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def until(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout_seconds: float,
    what: str,
    interval_seconds: float = 0.1,
) -> T:
    """Call ``probe`` until it returns something other than None or False; AssertionError after."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        result = await probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout_seconds:g} s: {what}")
        await asyncio.sleep(interval_seconds)
