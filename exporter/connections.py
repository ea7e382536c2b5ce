"""The exporter's connections: a cap on how many are open, and how long a client may dawdle.

aiohttp alone holds any connection that trickles a header or says nothing (its keep-alive
time-out is an hour), and asyncio's TLS server gives each accepted connection a 256 KiB
read buffer before a byte is read, so a few hundred idle clients cost the process
hundreds of megabytes (issue 14). ``GatedSite`` serves an aiohttp runner like
``web.TCPSite``, but every accepted connection first passes a gate:

- beyond ``ConnectionLimits.max_connections`` open ones (fewer when the descriptor
  limit leaves less room, ``DESCRIPTORS_KEPT_FOR_COLLECTOR`` kept) it is closed at once,
  before any TLS work or buffer;
- from its acceptance, the TLS handshake and the first request head must arrive within
  ``header_timeout_seconds``, else the connection is closed;
- between requests, aiohttp closes it after ``idle_timeout_seconds`` without a complete
  request head (its keep-alive time-out, which also bounds a later head's trickle);
- a malformed request is answered 400 without echoing, or logging, its bytes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import ssl
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)
_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")
# Descriptors left to the collector beyond those open when the exporter starts: its REST
# connection pool (about 40, twice that with the embedded simulator), the WebSocket, SQLite
# and its WAL, file exports, the stack's pipes, Sentry. A full exporter must not make them
# fail (issue 14: 1,100 idle connections under `ulimit -n 1024` broke 21 REST calls).
DESCRIPTORS_KEPT_FOR_COLLECTOR = 256


def connection_cap(max_connections: int, descriptors_free: int | None) -> int:
    """Connections to hold at most: ``max_connections``, lowered to the descriptors free
    beyond those kept for the collector (None: no limit known), but never below 1."""
    if descriptors_free is None:
        return max_connections
    return max(1, min(max_connections, descriptors_free - DESCRIPTORS_KEPT_FOR_COLLECTOR))


def descriptors_free() -> int | None:
    """Descriptors this process may still open (RLIMIT_NOFILE's soft limit less those
    open now); None when unlimited or unknown."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        return soft - len(os.listdir("/proc/self/fd"))
    except OSError:  # no /proc: count nothing open
        return soft


def raise_descriptor_limit() -> int | None:
    """Raise RLIMIT_NOFILE's soft limit to the hard one (as Go programs do); the new soft
    limit, or None when it is unlimited. A refusal leaves it as it was."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass
    return None if soft == resource.RLIM_INFINITY else soft


@dataclass(frozen=True, kw_only=True)
class ConnectionLimits:
    """How many connections the exporter holds, and how long each may take."""

    max_connections: int = 128
    header_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 75.0


class GatedSite(web.BaseSite):
    """An aiohttp site on ``host:port`` whose connections pass a ``_Gate`` (cap, time-outs)."""

    __slots__ = ("_gates", "_host", "_limits", "_port", "cap", "refused")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        limits: ConnectionLimits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host, self._port = host, port
        self._limits = limits
        self._gates: set[_Gate] = set()
        self.cap = limits.max_connections  # lowered at start to the descriptors free
        self.refused = 0  # connections closed at once: the cap was reached

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def open_connections(self) -> int:
        return len(self._gates)

    async def start(self) -> None:
        """Bind; the cap is ``max_connections`` or what the descriptor limit leaves room for."""
        free = descriptors_free()
        self.cap = connection_cap(self._limits.max_connections, free)
        if self.cap < self._limits.max_connections:
            log.warning(
                "exporter connections capped at %d, below exporter.max_connections=%d: "
                "%s descriptors free, %d kept for the collector (raise ulimit -n)",
                *(self.cap, self._limits.max_connections, free, DESCRIPTORS_KEPT_FOR_COLLECTOR),
            )
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Gate(self), self._host, self._port, backlog=self._backlog
        )

    async def stop(self) -> None:
        """Stop accepting; connections not yet handed to aiohttp (in the TLS handshake) end."""
        await super().stop()
        for gate in list(self._gates):
            gate.abandon()

    def _admit(self, gate: _Gate) -> bool:
        if len(self._gates) >= self.cap:
            self.refused += 1
            log.warning("exporter connection refused: %d open, the cap", len(self._gates))
            return False
        self._gates.add(gate)
        return True

    def _release(self, gate: _Gate) -> None:
        self._gates.discard(gate)

    def _new_handler(self) -> web.RequestHandler:
        server = self._runner.server
        assert server is not None  # BaseSite's constructor checked it
        return _RequestHandler(
            server,
            loop=asyncio.get_running_loop(),
            keepalive_timeout=self._limits.idle_timeout_seconds,
            access_log=None,  # type: ignore[arg-type]  # aiohttp's way to turn it off
        )


class _RequestHandler(web.RequestHandler):
    """aiohttp's handler, but a malformed request is answered and logged without its bytes.

    aiohttp puts the offending bytes into the error (``Invalid header value char:
    b'Authorization: Basic cHJv\\x01…'``), logs it at ERROR and sends it back as the
    400 body: a whole credential with one stray control byte (issue 14). Here the log
    line and the body name the error's kind only.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        log.info(
            "exporter bad request from %s: %s (HTTP %d)", request.remote, type(exc).__name__, status
        )
        response = web.Response(status=status, text="Bad request\n")
        response.force_close()
        return response


class _Gate(asyncio.Protocol):
    """One accepted connection: admitted under the cap, then TLS, then aiohttp's handler.

    Until the first request head is complete a timer runs from the acceptance; when it
    fires the connection is aborted. Bytes that arrive before the handler is attached
    (TLS delivers them as the handshake ends) are kept and handed over in order.
    """

    def __init__(self, site: GatedSite) -> None:
        self._site = site
        self._raw: asyncio.Transport | None = None
        self._handler: web.RequestHandler | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tls: asyncio.Task[None] | None = None
        self._early: list[bytes] = []
        self._tail = b""
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._raw = transport
        if not self._site._admit(self):
            transport.abort()
            self._closed = True
            return
        limits, loop = self._site._limits, asyncio.get_running_loop()
        self._timer = loop.call_later(limits.header_timeout_seconds, self._head_timed_out)
        context = self._site._ssl_context
        if context is None:
            self._attach(transport)
        else:
            self._tls = loop.create_task(self._start_tls(context, limits.header_timeout_seconds))

    async def _start_tls(self, context: ssl.SSLContext, timeout_s: float) -> None:
        assert self._raw is not None
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self._raw, self, context, server_side=True, ssl_handshake_timeout=timeout_s
            )
        except asyncio.CancelledError:
            self._end()
            raise
        except (OSError, ssl.SSLError, EOFError) as exc:  # the client's handshake failed
            log.debug("exporter TLS handshake failed: %s", type(exc).__name__)
            self._end()
            return
        if transport is None or self._closed:  # lost as the handshake ended
            self._end()
            return
        self._attach(transport)

    def _attach(self, transport: asyncio.Transport) -> None:
        self._handler = self._site._new_handler()
        self._handler.connection_made(transport)
        for data in self._early:
            self._handler.data_received(data)
        self._early.clear()

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if any(end in seen for end in _HEAD_ENDS):
                self._timer.cancel()
                self._timer = None
            self._tail = seen[-3:]
        if self._handler is None:
            self._early.append(data)
        else:
            self._handler.data_received(data)

    def eof_received(self) -> None:  # None: the transport closes (aiohttp answers so too)
        if self._handler is not None:
            self._handler.eof_received()

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end()
        if self._handler is not None:
            self._handler.connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._timer = None
        log.debug("exporter connection closed: no request head in time")
        self.abandon()

    def abandon(self) -> None:
        """Abort the connection (a TLS handshake in progress fails and ends it)."""
        if self._raw is not None:
            self._raw.abort()
        if self._tls is not None and not self._tls.done():
            self._tls.cancel()
        if self._handler is None:
            self._end()

    def _end(self) -> None:
        """Give the slot back, once; stop the head timer."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._site._release(self)
