"""``TrackBSession``: the one KIS WebSocket session of an app key, kept alive and registered.

- Approval key from an injected async provider, fetched again after ``OPSP0011``.
- ``PINGPONG`` heartbeats are echoed verbatim; library pings are off
  (``ping_interval=None``): whether the server answers them is unsure
  (kis-protocol.md), so the session never depends on them.
- Data-idle watchdog: no data frame for ``idle_timeout_seconds`` while the
  market is open and something is registered → reconnect. Heartbeats and
  replies do not count as data: a session that only heart-beats is stalled.
- Reconnects wait a capped, jittered exponential back-off (``Backoff``) that
  resets only once real data arrives again, so a server that accepts and then
  fails cannot cause a storm; ``OPSP8996`` (app key already in use) waits the
  cap every time and is logged as an error.
- After every (re)connect every registered symbol is subscribed again.
The session only moves bytes; parsing is ``observer.kis.frames`` and
everything else happens in the injected ``SessionListener``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from observer.config import TrackBSettings
from observer.errors import ObserverError
from observer.kis.frames import (
    ControlReply,
    FrameError,
    Heartbeat,
    parse_message,
    parse_trade_frame,
)
from observer.kis.ws_protocol import SUBSCRIBE, UNSUBSCRIBE, Backoff, control_message
from observer.records import Trade

log = logging.getLogger(__name__)

ApprovalKeyProvider = Callable[[bool], Awaitable[str]]
"""``async (renew) -> approval key``; ``renew`` is true after the server said OPSP0011."""
MarketOpen = Callable[[], bool]

ALREADY_IN_USE = "OPSP8996"
INVALID_APPROVAL = "OPSP0011"
OPEN_TIMEOUT_SECONDS = 10.0
CLOSE_TIMEOUT_SECONDS = 1.0


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
    ) -> None:
        self._url = ws_url
        self._approval = approval_key
        self._settings = settings
        self._listener = listener
        self._market_open = market_open
        self._clock = monotonic
        self.backoff = Backoff(
            settings.reconnect_initial_seconds,
            settings.reconnect_max_seconds,
            rng or random.Random(),
        )
        self._key: str | None = None
        self._renew_key = False
        self._desired: set[str] = set()
        self._outbox: deque[tuple[str, str]] = deque()
        self._wakeup = asyncio.Event()
        self._last_data = 0.0
        self.connected = False

    def registered(self) -> frozenset[str]:
        """Symbols the session keeps registered (restored after every reconnect)."""
        return frozenset(self._desired)

    def register(self, symbol: str) -> None:
        """Keep ``symbol`` registered; sent now if connected, else on the next connect."""
        if symbol not in self._desired:
            self._desired.add(symbol)
            self._queue(SUBSCRIBE, symbol)

    def unregister(self, symbol: str) -> None:
        if symbol in self._desired:
            self._desired.discard(symbol)
            self._queue(UNSUBSCRIBE, symbol)

    async def run(self) -> None:
        """Connect, receive and reconnect until cancelled (never returns otherwise).

        Connecting times out after 10 s; cancellation closes the socket, waiting at
        most 1 s for the close handshake. Listener exceptions propagate.
        """
        while True:
            reason = await self._session_once()
            self._listener.on_disconnected(reason)
            if reason == "refused":
                delay = self.backoff.longest()
                log.error(
                    "websocket refused: app key already in use (OPSP8996); retry in %.1fs", delay
                )
            else:
                delay = self.backoff.next_delay()
                log.warning("websocket session ended reason=%s; reconnect in %.2fs", reason, delay)
            await asyncio.sleep(delay)

    def _queue(self, tr_type: str, symbol: str) -> None:
        if self.connected:
            self._outbox.append((tr_type, symbol))
            self._wakeup.set()

    async def _session_once(self) -> str:
        """One connection's life; the reconnect reason (a RECONNECT_REASONS value)."""
        try:
            if self._key is None:
                self._key = await self._approval(self._renew_key)
                self._renew_key = False
        except (ObserverError, OSError, TimeoutError) as exc:
            log.warning("approval key request failed: %s", type(exc).__name__)
            return "error"
        opened = False
        try:
            async with connect(
                self._url,
                ping_interval=None,
                open_timeout=OPEN_TIMEOUT_SECONDS,
                close_timeout=CLOSE_TIMEOUT_SECONDS,
                compression=None,
                proxy=None,
            ) as ws:
                opened = True
                return await self._serve(ws, self._key)
        except ConnectionClosed:
            return "drop" if opened else "error"
        except (OSError, WebSocketException, TimeoutError) as exc:
            # A refused handshake, a protocol violation or a network error: reconnect later.
            log.warning("websocket failed: %s", type(exc).__name__)
            return "drop" if opened else "error"
        finally:
            self.connected = False

    async def _serve(self, ws: ClientConnection, key: str) -> str:
        # Changes made while restoring are queued (connected is already true) and sent
        # after it, in order, so the server never holds more than the table allows.
        self._outbox.clear()
        self.connected = True
        for symbol in sorted(self._desired):
            await ws.send(control_message(key, SUBSCRIBE, symbol))
        self._listener.on_connected()
        sender = asyncio.create_task(self._send_queued(ws, key))
        try:
            return await self._receive(ws)
        finally:
            sender.cancel()
            await asyncio.wait({sender})

    async def _send_queued(self, ws: ClientConnection, key: str) -> None:
        """Send queued (un)subscribes until cancelled; a closed socket ends it quietly
        (the receive loop sees the close too, and the next connect restores everything)."""
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._outbox:
                    tr_type, symbol = self._outbox.popleft()
                    await ws.send(control_message(key, tr_type, symbol))
        except ConnectionClosed:
            return

    async def _receive(self, ws: ClientConnection) -> str:
        """Receive until the session must end; the reconnect reason.

        The data-idle watchdog is one timer (``_IdleTimer``), armed again only when
        it fires early, not a timeout per receive; it interrupts a ``recv`` only
        (cancelling it loses nothing), never the listener. Data frames, nearly every
        message, are parsed here directly; the rest goes through ``_handle``.
        """
        self._last_data = self._clock()
        idle = self._settings.idle_timeout_seconds
        timer = _IdleTimer(self)
        listener = self._listener
        backoff = self.backoff
        try:
            while True:
                remaining = self._last_data + idle - self._clock()
                if remaining <= 0:
                    if self._market_open() and self._desired:
                        return "idle"
                    self._last_data = self._clock()  # closed market or nothing registered
                    continue
                timer.arm(remaining)
                timer.receiving = True
                try:
                    raw = await ws.recv()
                except asyncio.CancelledError:
                    if timer.interrupted():
                        continue
                    raise
                finally:
                    timer.receiving = False
                if isinstance(raw, str) and raw[:2] == "0|":
                    try:
                        trades = parse_trade_frame(raw)
                    except FrameError as exc:
                        listener.on_malformed(exc)
                        continue
                    self._last_data = self._clock()
                    if backoff.attempt:
                        backoff.reset()
                    await listener.on_trades(trades)
                    continue
                reason = await self._handle(ws, raw)
                if reason is not None:
                    return reason
        finally:
            timer.cancel()

    async def _handle(self, ws: ClientConnection, raw: str | bytes) -> str | None:
        try:
            message = parse_message(raw)
        except FrameError as exc:
            self._listener.on_malformed(exc)
            return None
        if isinstance(message, Heartbeat):
            await ws.send(message.text)
            return None
        if isinstance(message, ControlReply):
            self._listener.on_reply(message)
            if message.msg_cd == ALREADY_IN_USE:
                return "refused"
            if message.msg_cd == INVALID_APPROVAL:
                self._key = None
                self._renew_key = True
                return "approval"
            return None
        self._last_data = self._clock()
        self.backoff.reset()
        await self._listener.on_trades(message.trades)
        return None


class _IdleTimer:
    """The data-idle watchdog of one ``_receive``: a single loop timer, not one per frame.

    Armed for the time left until the session would be idle; when it fires it
    looks at when data last came: if it came since, it arms itself for the time
    left; if not and the receiving task waits in ``recv``, it cancels that task,
    which ``interrupted`` then tells apart from a cancellation from outside (as
    ``asyncio.timeout`` does). While the listener runs it does nothing: the
    receive loop checks the idle time itself before its next ``recv``.
    """

    def __init__(self, session: TrackBSession) -> None:
        self._session = session
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
        session = self._session
        remaining = session._last_data + session._settings.idle_timeout_seconds - session._clock()
        if remaining > 0:
            self.arm(remaining)
        elif self.receiving and not self._fired:
            self._fired = True
            self._task.cancel()
