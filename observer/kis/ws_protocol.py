"""``SessionProtocol``: what Track B's KIS WebSocket session decides, with no socket and no clock.

Sans I/O, after websockets' ``ClientProtocol``: the protocol is told what
happened — an approval key came, the connection opened, a text frame
arrived, time advanced to T, the connection closed, a symbol was
(un)registered — and answers with the actions its I/O loop
(``observer.kis.ws.TrackBSession``) carries out: send these frames, close
for a reason, reconnect after N seconds, hand these records, replies or
malformed frames to the listener. Times are monotonic seconds passed in,
never read here, so every timing rule runs on virtual time in tests.

The rules (kis-protocol.md "WebSocket"):

- ``PINGPONG`` heartbeats are echoed verbatim. Library pings stay off in the
  transport: whether the server answers them is unsure.
- Data-idle watchdog: no data frame for ``idle_timeout_seconds`` while the
  market is open and something is registered closes with ``idle``. Heartbeats
  and replies are not data: a session that only heart-beats is stalled.
- Reconnects wait a capped, jittered exponential back-off (``Backoff``) that
  resets only once data arrives again, so a server that accepts and then fails
  cannot cause a storm.
- Replies: ``OPSP8996`` (app key already in use) closes with ``refused`` and
  waits the back-off cap; ``OPSP0011`` (invalid approval) closes with
  ``approval`` and asks for a renewed key; ``OPSP0008`` (max registrations)
  means the server does not hold the symbol: it leaves the registrations (the
  listener releases its slot; no unsubscribe follows). ``OPSP0002`` (already
  subscribed), ``OPSP0003`` (unsubscribe not found) and the rest are only
  reported.
- At most ``MAX_REGISTRATIONS`` (41) symbols are held at the server: one
  registered beyond that waits, and takes the place of the next one
  unregistered, unsubscribe first. After every (re)connect every held symbol
  is subscribed again, in code order.
"""

from __future__ import annotations

import enum
import json
import math
import random
from dataclasses import dataclass

from metrics.labels import ReconnectReason
from observer.kis import h0stcnt0
from observer.kis.frames import (
    ControlReply,
    FrameError,
    Heartbeat,
    parse_message,
    parse_trade_frame,
)
from observer.records import Trade

__all__ = [
    "MAX_REGISTRATIONS",
    "Action",
    "Backoff",
    "Close",
    "Connected",
    "Malformed",
    "Records",
    "Replied",
    "Send",
    "SessionEnded",
    "SessionProtocol",
    "control_message",
]

MAX_REGISTRATIONS = 41  # per session, in all (kis-protocol.md); the 42nd gets OPSP0008
ALREADY_IN_USE = "OPSP8996"
INVALID_APPROVAL = "OPSP0011"
MAX_REGISTRATIONS_REFUSED = "OPSP0008"
SUBSCRIBE, UNSUBSCRIBE = "1", "2"


@dataclass(frozen=True, slots=True)
class Send:
    """Send this text frame (a subscribe, an unsubscribe or a heartbeat echo)."""

    text: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection; ``closed()`` then ends the session with this reason."""

    reason: ReconnectReason


@dataclass(slots=True)  # not frozen: one per data frame, and a frozen __init__ costs twice
class Records:
    """A data frame's trades, in wire order, for the listener."""

    trades: list[Trade]


@dataclass(frozen=True, slots=True)
class Malformed:
    """A message that could not be read: counted and skipped."""

    error: FrameError


@dataclass(frozen=True, slots=True)
class Replied:
    """A control reply, for the listener (OPSP0008 releases a slot there)."""

    reply: ControlReply


@dataclass(frozen=True, slots=True)
class Connected:
    """Every held registration was sent again: the session is registered."""


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The connection is gone for ``reason``; connect again after ``reconnect_after_seconds``."""

    reason: ReconnectReason
    reconnect_after_seconds: float


Action = Send | Close | Records | Malformed | Replied | Connected


class Backoff:
    """Capped exponential back-off with equal jitter (pure: the random source is injected).

    Attempt n waits between half and all of ``min(cap, initial * 2**n)``.
    """

    def __init__(self, initial_seconds: float, cap_seconds: float, rng: random.Random) -> None:
        self.initial_seconds = initial_seconds
        self.cap_seconds = max(cap_seconds, initial_seconds)
        self._rng = rng
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_seconds, self.initial_seconds * 2.0 ** min(self.attempt, 62))
        self.attempt += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def longest(self) -> float:
        """The cap, for refusals that will not clear quickly (OPSP8996)."""
        self.attempt += 1
        return self.cap_seconds

    def reset(self) -> None:
        self.attempt = 0


def control_message(approval_key: str, tr_type: str, symbol: str) -> str:
    """A subscribe (``"1"``) or unsubscribe (``"2"``) text frame for ``H0STCNT0``."""
    return json.dumps(
        {
            "header": {
                "approval_key": approval_key,
                "custtype": "P",
                "tr_type": tr_type,
                "content-type": "utf-8",
            },
            "body": {"input": {"tr_id": h0stcnt0.TR_ID, "tr_key": symbol}},
        }
    )


class _State(enum.Enum):
    CLOSED = "closed"  # no connection: connecting, or waiting to
    OPEN = "open"
    CLOSING = "closing"  # a Close was decided; waiting for ``closed()``


class SessionProtocol:
    """The state of one app key's session: registrations, approval key, watchdog, back-off.

    Not thread-safe and not async: every method returns at once. ``idle_deadline``
    is when ``advance`` must next be called (``math.inf`` while not open).
    """

    def __init__(
        self,
        *,
        idle_timeout_seconds: float,
        backoff: Backoff,
        max_registrations: int = MAX_REGISTRATIONS,
    ) -> None:
        self.backoff = backoff
        self.max_registrations = max_registrations
        self.idle_deadline = math.inf
        self._idle_s = idle_timeout_seconds
        self._state = _State.CLOSED
        self._close_reason: ReconnectReason | None = None
        self._key: str | None = None
        self._renew_key = False
        self._held: set[str] = set()  # at the server, or subscribed on the next open
        self._waiting: list[str] = []  # registered beyond the cap, oldest first

    # --- registrations -------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._state is _State.OPEN

    def registered(self) -> frozenset[str]:
        """Every registered symbol, held at the server or waiting for a place."""
        return frozenset(self._held.union(self._waiting))

    def held(self) -> frozenset[str]:
        """The symbols held at the server (at most ``max_registrations``)."""
        return frozenset(self._held)

    def register(self, symbol: str) -> list[Action]:
        """Keep ``symbol`` registered: its subscribe if open and a place is free."""
        if symbol in self._held or symbol in self._waiting:
            return []
        if len(self._held) >= self.max_registrations:
            self._waiting.append(symbol)
            return []
        self._held.add(symbol)
        return self._control(SUBSCRIBE, symbol)

    def unregister(self, symbol: str) -> list[Action]:
        """Stop ``symbol``: its unsubscribe, then the subscribe of the first one waiting."""
        if symbol in self._waiting:
            self._waiting.remove(symbol)
            return []
        if symbol not in self._held:
            return []
        self._held.discard(symbol)
        actions = self._control(UNSUBSCRIBE, symbol)
        if self._waiting:
            promoted = self._waiting.pop(0)
            self._held.add(promoted)
            actions += self._control(SUBSCRIBE, promoted)
        return actions

    # --- connection life -----------------------------------------------------
    def key_wanted(self) -> bool | None:
        """None while an approval key is held; else whether to renew it (after OPSP0011)."""
        return None if self._key is not None else self._renew_key

    def key_received(self, key: str) -> None:
        self._key = key
        self._renew_key = False

    def opened(self, now: float) -> list[Action]:
        """The connection is open: subscribe every held symbol again, then ``Connected``.

        Raises RuntimeError without an approval key (``key_received`` first).
        """
        if self._key is None:
            raise RuntimeError("opened before an approval key was received")
        self._state = _State.OPEN
        self._close_reason = None
        self.idle_deadline = now + self._idle_s
        actions: list[Action] = [
            Send(control_message(self._key, SUBSCRIBE, symbol)) for symbol in sorted(self._held)
        ]
        actions.append(Connected())
        return actions

    def data(self, raw: str | bytes, now: float) -> list[Trade] | None:
        """A data frame's trades (the data-idle watchdog and back-off reset as by
        ``receive``), or None when ``raw`` is anything else or unreadable: then
        ``receive`` says what to do. The loop's fast path: nearly every message is a
        data frame, and this allocates nothing but the trades.
        """
        if type(raw) is not str or raw[:2] != "0|":
            return None
        try:
            trades = parse_trade_frame(raw)
        except FrameError:
            return None
        self.idle_deadline = now + self._idle_s
        if self.backoff.attempt:
            self.backoff.reset()
        return trades

    def receive(self, raw: str | bytes, now: float) -> list[Action]:
        """One message received at ``now`` (while open): what to do about it (never nothing).

        A data frame gives ``[Records]`` alone (the loop's fast path relies on it), a
        heartbeat its echo, a reply ``Replied`` (then ``Close`` for OPSP8996 and
        OPSP0011), anything unreadable ``Malformed``.
        """
        if isinstance(raw, str) and raw[:2] == "0|":  # nearly every message: parse it directly
            try:
                trades = parse_trade_frame(raw)
            except FrameError as exc:
                return [Malformed(exc)]
            self.idle_deadline = now + self._idle_s
            if self.backoff.attempt:
                self.backoff.reset()
            return [Records(trades)]
        try:
            message = parse_message(raw)
        except FrameError as exc:
            return [Malformed(exc)]
        if isinstance(message, Heartbeat):
            return [Send(message.text)]
        if isinstance(message, ControlReply):
            return self._reply(message)
        self.idle_deadline = now + self._idle_s
        self.backoff.reset()
        return [Records(message.trades)]

    def advance(self, now: float, *, market_open: bool) -> list[Action]:
        """Time is ``now``: ``Close(idle)`` when the data-idle watchdog fires.

        Past the deadline with the market closed or nothing registered, no data is
        due: the watchdog starts over from ``now``.
        """
        if self._state is not _State.OPEN or now < self.idle_deadline:
            return []
        if market_open and (self._held or self._waiting):
            return [self._close(ReconnectReason.IDLE)]
        self.idle_deadline = now + self._idle_s
        return []

    def closed(self) -> SessionEnded:
        """The connection closed (or never opened, or the key could not be had).

        The reason is the one a ``Close`` gave, else ``drop`` after an open and
        ``error`` before; the delay is the next back-off, the cap after ``refused``.
        """
        if self._close_reason is not None:
            reason = self._close_reason
        elif self._state is _State.CLOSED:
            reason = ReconnectReason.ERROR
        else:
            reason = ReconnectReason.DROP
        self._state = _State.CLOSED
        self._close_reason = None
        self.idle_deadline = math.inf
        if reason is ReconnectReason.REFUSED:
            return SessionEnded(reason, self.backoff.longest())
        return SessionEnded(reason, self.backoff.next_delay())

    # --- helpers -------------------------------------------------------------
    def _control(self, tr_type: str, symbol: str) -> list[Action]:
        if self._state is not _State.OPEN or self._key is None:
            return []  # the next open sends every held symbol
        return [Send(control_message(self._key, tr_type, symbol))]

    def _close(self, reason: ReconnectReason) -> Close:
        self._state = _State.CLOSING
        self._close_reason = reason
        self.idle_deadline = math.inf
        return Close(reason)

    def _reply(self, reply: ControlReply) -> list[Action]:
        code = reply.msg_cd
        if code == ALREADY_IN_USE:
            return [Replied(reply), self._close(ReconnectReason.REFUSED)]
        if code == INVALID_APPROVAL:
            self._key = None
            self._renew_key = True
            return [Replied(reply), self._close(ReconnectReason.APPROVAL)]
        if code == MAX_REGISTRATIONS_REFUSED:
            self._held.discard(reply.tr_key)  # the server holds it not
        return [Replied(reply)]
