"""A loopback HTTP endpoint that speaks Sentry's envelope protocol, for tests.

It runs its own event loop in a thread, so blocking ``sentry_sdk.flush()`` calls
from the test (sync or async) are answered while they wait.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

ENVELOPE_PATH = re.compile(r"/api/([^/]+)/envelope/")


@dataclass(frozen=True)
class Item:
    headers: dict[str, Any]
    payload: bytes

    @property
    def type(self) -> str:
        return str(self.headers.get("type", ""))

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.payload)
        return value


@dataclass(frozen=True)
class Envelope:
    project: str
    headers: dict[str, Any]
    items: list[Item]
    raw: bytes  # the whole decompressed body


class EnvelopeError(ValueError):
    """A request body that is not a well-formed envelope."""


def decompress(body: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise EnvelopeError(f"unsupported Content-Encoding {encoding!r}")


def parse_envelope(raw: bytes, project: str = "") -> Envelope:
    """Envelope header line, then items: a header line and a payload of ``length`` bytes
    (or up to the next newline when ``length`` is absent)."""
    header_line, _, rest = raw.partition(b"\n")
    headers = json.loads(header_line)
    items: list[Item] = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_headers = json.loads(item_line)
        length = item_headers.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            if len(rest) < length:
                raise EnvelopeError("item payload shorter than its length header")
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        items.append(Item(item_headers, payload))
    return Envelope(project, headers, items, raw)


class EnvelopeSink:
    """``with EnvelopeSink() as sink:`` serves ``POST /api/<project>/envelope/`` on 127.0.0.1."""

    def __init__(self) -> None:
        self._envelopes: list[Envelope] = []
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.ServerRunner | None = None
        self.port = 0

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/1"

    def __enter__(self) -> EnvelopeSink:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        # aiohttp's low-level server: Sentry's aiohttp integration traces web.Application
        # requests, and tracing the endpoint's own requests would feed back into it.
        # Decompress here, not in aiohttp, so the test sees exactly what was on the wire.
        server = web.Server(self._receive, auto_decompress=False)
        self._runner = web.ServerRunner(server)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.BaseRequest) -> web.Response:
        match = ENVELOPE_PATH.fullmatch(request.path)
        if request.method != "POST" or match is None:
            return web.Response(status=404)
        if "sentry_key=publickey" not in request.headers.get("X-Sentry-Auth", ""):
            return web.Response(status=401)
        body = await request.read()
        try:
            raw = decompress(body, request.headers.get("Content-Encoding", ""))
            envelope = parse_envelope(raw, match.group(1))
        except (EnvelopeError, ValueError, OSError):
            return web.Response(status=400)
        with self._changed:
            self._envelopes.append(envelope)
            self._changed.notify_all()
        return web.json_response({"id": envelope.headers.get("event_id")})

    @property
    def envelopes(self) -> list[Envelope]:
        with self._changed:
            return list(self._envelopes)

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [i.json() for e in self.envelopes for i in e.items if i.type == kind]

    def wait_for(self, predicate: Callable[[EnvelopeSink], bool], timeout_s: float = 10.0) -> None:
        """Block until ``predicate(self)`` holds; AssertionError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("the envelope endpoint did not receive what was expected")
                self._changed.wait(remaining)
