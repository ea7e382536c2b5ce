"""Structured one-line logs on stderr, with registered secrets masked as a last line of defence.

A line reads ``2026-11-24T11:40:36.123Z info observer.track_a sweep done symbols=2500 …``:
UTC time, level, logger, then the message (``key=value`` pairs by convention).
Newlines in messages and exceptions are escaped so one event stays one line; a flood of
one kind of warning or error is cut to 5 lines per 10 s, saying how many were suppressed.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from observer.scrubbing import scrub_credential_shapes

MIN_SECRET_LENGTH = 8  # shorter values would mask ordinary words


class SecretMask:
    """The secret values to mask: credentials at start, tokens and approval keys as they come."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if len(secret) >= MIN_SECRET_LENGTH and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def apply(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class LogBudget:
    """At most ``lines`` log lines per ``window_seconds``; the rest are only counted.

    ``spend()`` answers whether a line may be written now and, if so, how many
    were held back since the last one (for a ``suppressed=`` field), so a burst
    (41 slot claims at once) is a few lines and a count, never a flood.
    """

    def __init__(
        self,
        lines: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lines = lines
        self.window_seconds = window_seconds
        self._clock = clock
        self._window_start = -float("inf")
        self._spent = 0
        self._suppressed = 0

    def spend(self) -> int | None:
        """None: stay silent (counted). Otherwise the lines held back since the last one."""
        now = self._clock()
        if now - self._window_start >= self.window_seconds:
            self._window_start, self._spent = now, 0
        if self._spent >= self.lines:
            self._suppressed += 1
            return None
        self._spent += 1
        held, self._suppressed = self._suppressed, 0
        return held


class OneLineFormatter(logging.Formatter):
    """``<UTC ISO time> <level> <logger> <message>[ exc="<type>: <text>"]`` on one line.

    Every registered secret in the finished line (message and exception) is ``***``;
    credential shapes (``Authorization:`` values, ``Basic …``, ``Bearer …``, JWTs) are
    ``[Filtered]`` whoever logged them (aiohttp's errors quote raw request bytes).
    """

    def __init__(self, mask: SecretMask | None = None) -> None:
        super().__init__()
        self.mask = mask or SecretMask()

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname.lower()} {record.name} "
        line += record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line += f' exc="{type(error).__name__}: {error}"'
        line = scrub_credential_shapes(self.mask.apply(line))
        return line.replace("\r", "\\r").replace("\n", "\\n")


class RepeatFilter(logging.Filter):
    """At most ``lines`` warnings or errors of one kind per ``window_seconds`` (a
    ``LogBudget`` each); the next one let through says how many were held back
    (``… suppressed=412``). INFO and DEBUG lines pass untouched.

    A kind is the logger, the level and the message's format string, so a flood of one
    error (``socket.accept() out of system resource``, refused connections) costs a few
    lines per window however fast it comes (issue 14: 75 MB in 45 s). At most
    ``max_kinds`` kinds are tracked, the least recent forgotten first.
    """

    def __init__(
        self,
        lines: int = 5,
        window_seconds: float = 10.0,
        *,
        max_kinds: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._lines, self._window_s, self._clock = lines, window_seconds, clock
        self._max_kinds = max_kinds
        self._budgets: OrderedDict[tuple[str, int, str], LogBudget] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind = (record.name, record.levelno, str(record.msg)[:200])
        budget = self._budgets.get(kind)
        if budget is None:
            budget = LogBudget(self._lines, self._window_s, clock=self._clock)
            self._budgets[kind] = budget
            while len(self._budgets) > self._max_kinds:
                self._budgets.popitem(last=False)
        self._budgets.move_to_end(kind)
        held = budget.spend()
        if held is None:
            return False
        if held:
            record.msg = f"{record.msg} suppressed={held}"
        return True


def configure(level: str = "INFO", *, secrets: Iterable[str] = ()) -> SecretMask:
    """Send Observer's logs to stderr as one-liners; returns the mask to register more secrets.

    ``level`` is a level name in any case (``debug``, ``INFO``).
    """
    mask = SecretMask(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(mask))
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # A library's own level never lets through what the chosen level would not.
    logging.getLogger("aiohttp.access").setLevel(max(logging.WARNING, root.level))
    # websockets dumps frames at DEBUG, subscribe messages too, with the approval key cut
    # short ("00aeef02-c562-407b...") where the mask cannot recognise it.
    logging.getLogger("websockets").setLevel(max(logging.INFO, root.level))
    return mask
