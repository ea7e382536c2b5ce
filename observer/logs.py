"""Structured one-line logs on stderr, with registered secrets masked as a last line of defence.

A line reads ``2026-11-24T11:40:36.123Z info observer.track_a sweep done symbols=2500 …``:
UTC time, level, logger, then the message (``key=value`` pairs by convention).
Newlines in messages and exceptions are escaped so one event stays one line.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable


class OneLineFormatter(logging.Formatter):
    """``<UTC ISO time> <level> <logger> <message>[ exc="<type>: <text>"]`` on one line."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname.lower()} {record.name} "
        line += record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line += f' exc="{type(error).__name__}: {error}"'
        return line.replace("\r", "\\r").replace("\n", "\\n")


class SecretMask(logging.Filter):
    """Replaces every registered secret value in a record's message with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        if len(secret) >= 8 and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            masked = message
            for secret in self._secrets:
                masked = masked.replace(secret, "***")
            if masked != message:
                record.msg, record.args = masked, None
        return True


def configure(level: str = "INFO", *, secrets: Iterable[str] = ()) -> SecretMask:
    """Send Observer's logs to stderr as one-liners; returns the mask to register more secrets."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter())
    mask = SecretMask(secrets)
    handler.addFilter(mask)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # websockets dumps every frame at DEBUG, subscribe messages (and their approval key) too.
    logging.getLogger("websockets").setLevel(logging.INFO)
    return mask
