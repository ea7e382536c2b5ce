"""``TrackBSession``: the I/O loop of the one KIS WebSocket session of an app key.

Every decision — registrations and their restore, ``PINGPONG`` echoes, the
data-idle watchdog, the reconnect back-off, what each ``OPSP`` reply means —
is taken by the sans-I/O ``SessionProtocol`` (``observer.kis.ws_protocol``);
this loop only fetches the approval key, opens the transport, moves frames
both ways, keeps the watchdog's one timer and sleeps the back-off. The
transport is injected (default: ``websockets.connect`` with library pings
off); parsing is ``observer.kis.frames`` and everything else happens in the
injected ``SessionListener``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from metrics.labels import ReconnectReason
from observer.config import TrackBSettings
from observer.errors import ObserverError
from observer.kis.errors import describe_transport_error
from observer.kis.frames import ControlReply, FrameError
from observer.kis.ws_protocol import (
    Action,
    Backoff,
    Close,
    Connected,
    Malformed,
    Records,
    Replied,
    Send,
    SessionEnded,
    SessionProtocol,
)
from observer.records import Trade

log = logging.getLogger(__name__)

ApprovalKeyProvider = Callable[[bool], Awaitable[str]]
"""``async (renew) -> approval key``; ``renew`` is true after the server said OPSP0011."""
MarketOpen = Callable[[], bool]

OPEN_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 1.0


class Connection(Protocol):
    """One open WebSocket: ``recv`` raises when it closes (ConnectionClosed or OSError)."""

    async def send(self, message: str, /) -> None: ...

    async def recv(self) -> str | bytes: ...


Transport = Callable[[str], AbstractAsyncContextManager[Connection]]
"""``transport(url)``: opens a Connection on entry (raising when it cannot), closes it on exit."""

CLOSED = (OSError, WebSocketException, TimeoutError, EOFError)
"""What a transport raises when its connection ends or cannot open: reconnect later."""


def websockets_transport(url: str) -> AbstractAsyncContextManager[Connection]:
    """The real transport: ``websockets.connect``, library pings off (kis-protocol.md:
    whether the server answers them is unsure), opening within 10 s, closing within 1 s."""
    return connect(
        url,
        ping_interval=None,
        open_timeout=OPEN_TIMEOUT_SECONDS,
        close_timeout=CLOSE_TIMEOUT_SECONDS,
        compression=None,
        proxy=None,
    )


class SessionListener(Protocol):
    """What the session tells its owner; ``on_trades`` is awaited (back-pressure)."""

    async def on_trades(self, trades: list[Trade]) -> None: ...

    def on_malformed(self, error: FrameError) -> None: ...

    def on_connected(self) -> None: ...

    def on_disconnected(self, reason: str) -> None: ...

    def on_reply(self, reply: ControlReply) -> None: ...


class TrackBSession:
    """Keeps one WebSocket open and registered for the symbols it is given."""

    def __init__(
        self,
        ws_url: str,
        *,
        approval_key: ApprovalKeyProvider,
        settings: TrackBSettings,
        listener: SessionListener,
        market_open: MarketOpen,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        transport: Transport = websockets_transport,
    ) -> None:
        self._url = ws_url
        self._approval = approval_key
        self._listener = listener
        self._market_open = market_open
        self._clock = monotonic
        self._transport = transport
        self.protocol = SessionProtocol(
            idle_timeout_seconds=settings.idle_timeout_seconds,
            backoff=Backoff(
                settings.reconnect_initial_seconds,
                settings.reconnect_max_seconds,
                rng or random.Random(),
            ),
        )
        self._outbox: deque[Action] = deque()
        self._wakeup = asyncio.Event()

    @property
    def backoff(self) -> Backoff:
        return self.protocol.backoff

    @property
    def connected(self) -> bool:
        """The connection is open and its registrations were sent."""
        return self.protocol.is_open

    def registered(self) -> frozenset[str]:
        """Symbols the session keeps registered (restored after every reconnect)."""
        return self.protocol.registered()

    def register(self, symbol: str) -> None:
        """Keep ``symbol`` registered; sent now if connected, else on the next connect."""
        self._queue(self.protocol.register(symbol))

    def unregister(self, symbol: str) -> None:
        self._queue(self.protocol.unregister(symbol))

    async def run(self) -> None:
        """Connect, receive and reconnect until cancelled (never returns otherwise).

        Connecting times out after 10 s with the default transport; cancellation
        closes the connection (waiting at most 1 s for the close handshake).
        Listener exceptions propagate.
        """
        while True:
            ended = await self._session_once()
            self._listener.on_disconnected(ended.reason)
            delay = ended.reconnect_after_seconds
            if ended.reason is ReconnectReason.REFUSED:
                log.error(
                    "websocket refused: app key already in use (OPSP8996); retry in %.1fs", delay
                )
            else:
                log.warning(
                    "websocket session ended reason=%s; reconnect in %.2fs", ended.reason, delay
                )
            await asyncio.sleep(delay)

    def _queue(self, actions: list[Action]) -> None:
        if actions:
            self._outbox.extend(actions)
            self._wakeup.set()

    async def _session_once(self) -> SessionEnded:
        """One connection's life, from the approval key to the close."""
        protocol = self.protocol
        renew = protocol.key_wanted()
        if renew is not None:
            try:
                protocol.key_received(await self._approval(renew))
            except (ObserverError, OSError, TimeoutError) as exc:
                log.warning("approval key request failed: %s", exc)  # names URL and OS error
                return protocol.closed()
        try:
            async with self._transport(self._url) as connection:
                await self._serve(connection)
        except ConnectionClosed:
            pass  # a close: the protocol tells a drop (after the open) from an error
        except CLOSED as exc:
            # A refused handshake, a protocol violation or a network error.
            log.warning("websocket failed: %s", describe_transport_error("GET", self._url, exc))
        finally:
            ended = protocol.closed()  # on cancellation too: not connected any more
        return ended

    async def _serve(self, connection: Connection) -> None:
        # Changes made while restoring (the protocol is open already) wait in the
        # outbox and go after it, in order: the server never holds more than allowed.
        self._outbox.clear()
        if await self._apply(connection, self.protocol.opened(self._clock())):
            return
        sender = asyncio.create_task(self._send_queued(connection))
        try:
            await self._receive(connection)
        finally:
            sender.cancel()
            await asyncio.wait({sender})

    async def _send_queued(self, connection: Connection) -> None:
        """Send queued frames until cancelled; a closed connection ends it quietly
        (the receive loop sees the close too, and the next open restores everything)."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._outbox:
                    action = self._outbox.popleft()
                    if isinstance(action, Send):
                        await connection.send(action.text)
        except CLOSED:
            return

    async def _receive(self, connection: Connection) -> None:
        """Receive until the protocol closes the session (or the connection ends: raises).

        The data-idle watchdog is one timer (``_IdleTimer``), armed again only when
        it fires early, not a timeout per receive; it interrupts a ``recv`` only
        (cancelling it loses nothing), never the listener. Data frames, nearly every
        message, go to the listener directly; the rest through ``_apply``.
        """
        protocol = self.protocol
        clock = self._clock
        listener = self._listener
        timer = _IdleTimer(protocol, clock)
        try:
            while True:
                now = clock()
                if now >= protocol.idle_deadline:
                    if await self._apply(
                        connection, protocol.advance(now, market_open=self._market_open())
                    ):
                        return
                    continue
                timer.arm(protocol.idle_deadline - now)
                timer.receiving = True
                try:
                    raw = await connection.recv()
                except asyncio.CancelledError:
                    if timer.interrupted():
                        continue
                    raise
                finally:
                    timer.receiving = False
                now = clock()
                trades = protocol.data(raw, now)
                if trades is not None:
                    await listener.on_trades(trades)
                    continue
                actions = protocol.receive(raw, now)
                first = actions[0]
                if type(first) is Records:
                    await listener.on_trades(first.trades)
                elif await self._apply(connection, actions):
                    return
        finally:
            timer.cancel()

    async def _apply(self, connection: Connection, actions: list[Action]) -> bool:
        """Carry out ``actions`` in order; True when one closes the session."""
        listener = self._listener
        for action in actions:
            if isinstance(action, Records):
                await listener.on_trades(action.trades)
            elif isinstance(action, Send):
                await connection.send(action.text)
            elif isinstance(action, Malformed):
                listener.on_malformed(action.error)
            elif isinstance(action, Replied):
                listener.on_reply(action.reply)
            elif isinstance(action, Connected):
                listener.on_connected()
            elif isinstance(action, Close):
                return True
        return False


class _IdleTimer:
    """The data-idle watchdog of one ``_receive``: a single loop timer, not one per frame.

    Armed for the time left until the protocol's ``idle_deadline``; when it fires
    it looks at the deadline again: if data moved it, it arms itself for the time
    left; if not and the receiving task waits in ``recv``, it cancels that task,
    which ``interrupted`` then tells apart from a cancellation from outside (as
    ``asyncio.timeout`` does). While the listener runs it does nothing: the
    receive loop checks the deadline itself before its next ``recv``.
    """

    def __init__(self, protocol: SessionProtocol, clock: Callable[[], float]) -> None:
        self._protocol = protocol
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "runs inside a task"
        self._task = task
        self._cancelling = task.cancelling()  # cancellations from outside already pending
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False
        self.receiving = False

    def arm(self, remaining: float) -> None:
        """Fire after ``remaining`` seconds, unless already armed."""
        if self._handle is None:
            self._handle = self._loop.call_later(remaining, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def interrupted(self) -> bool:
        """Whether the CancelledError just caught came from this timer (and only from it)."""
        if not self._fired:
            return False
        self._fired = False
        return self._task.uncancel() <= self._cancelling

    def _fire(self) -> None:
        self._handle = None
        remaining = self._protocol.idle_deadline - self._clock()
        if remaining > 0:
            self.arm(remaining)
        elif self.receiving and not self._fired:
            self._fired = True
            self._task.cancel()
