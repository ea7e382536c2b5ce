"""``TrackBSession``'s loop over an in-memory transport: what the protocol decides reaches the wire.

No socket: the transport is a pair of queues. The timing rules themselves are
tested on virtual time in ``test_protocol``; here the loop is checked to carry
the actions out (restore, echo, records, replies, close, reconnect) and to
accept any transport. The real-socket cases are in ``test_session``,
``test_heartbeats`` and ``test_faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from metrics.registry import Metrics
from observer.backfill import Page
from observer.config import GapSettings, TrackBSettings
from observer.gaps import GapWindow
from observer.kis.ws import Connection, TrackBSession
from observer.records import Gap, Trade, Trigger, TriggerKind
from observer.track_b import TrackB
from tests.track_b.frames_util import frame, trade
from tests.track_b.rig import Recorder, wait_for

PING = '{"header":{"tr_id":"PINGPONG","datetime":"20261124093015"}}'
SETTINGS = TrackBSettings(
    idle_timeout_seconds=30.0, reconnect_initial_seconds=0.01, reconnect_max_seconds=0.02
)


def reply(msg_cd: str, symbol: str, rt_cd: str = "1") -> str:
    return json.dumps(
        {
            "header": {"tr_id": "H0STCNT0", "tr_key": symbol, "encrypt": "N"},
            "body": {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": "...", "output": {}},
        }
    )


class _Link:
    """One in-memory connection: what the server pushes, what the client sent."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[str | None] = asyncio.Queue()  # None: the server closes
        self.sent: list[str] = []

    async def send(self, message: str, /) -> None:
        self.sent.append(message)

    async def recv(self) -> str | bytes:
        message = await self.incoming.get()
        if message is None:
            raise ConnectionResetError("closed by the test")
        return message

    def registrations(self) -> list[tuple[str, str]]:
        """(tr_type, symbol) of every subscribe/unsubscribe sent, in order."""
        out = []
        for text in self.sent:
            if text != PING:
                message = json.loads(text)
                out.append((message["header"]["tr_type"], message["body"]["input"]["tr_key"]))
        return out


class MemoryTransport:
    """A Transport whose connections are ``_Link``s, one per open, kept in ``links``."""

    def __init__(self) -> None:
        self.links: list[_Link] = []
        self.urls: list[str] = []

    def __call__(self, url: str) -> AbstractAsyncContextManager[Connection]:
        return self._open(url)

    @contextlib.asynccontextmanager
    async def _open(self, url: str) -> AsyncIterator[Connection]:
        self.urls.append(url)
        link = _Link()
        self.links.append(link)
        yield link


async def test_the_loop_restores_echoes_delivers_and_reconnects_after_a_drop() -> None:
    transport = MemoryTransport()
    recorder = Recorder()
    keys: list[bool] = []

    async def approval_key(renew: bool) -> str:
        keys.append(renew)
        return "key"

    session = TrackBSession(
        "ws://memory",
        approval_key=approval_key,
        settings=SETTINGS,
        listener=recorder,
        market_open=lambda: True,
        transport=transport,
    )
    session.register("005930")
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: recorder.connects == 1, "connected", 5)
        first = transport.links[0]
        assert first.registrations() == [("1", "005930")]
        session.register("000660")  # while open: through the outbox
        await first.incoming.put(PING)
        await first.incoming.put(frame([trade("005930", volume=3, cumulative=3)]))
        await first.incoming.put(reply("OPSP0002", "005930"))
        await wait_for(lambda: recorder.records == 1 and recorder.replies, "record and reply", 5)
        assert PING in first.sent
        assert first.registrations() == [("1", "005930"), ("1", "000660")]
        assert session.connected
        await first.incoming.put(None)  # the server drops the connection
        await wait_for(lambda: recorder.connects == 2, "reconnected", 5)
        assert recorder.reasons == ["drop"]
        assert transport.links[1].registrations() == [("1", "000660"), ("1", "005930")]
        assert transport.urls == ["ws://memory", "ws://memory"] and keys == [False]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not session.connected


async def test_the_loop_closes_on_the_protocols_word_and_reconnects_with_a_new_key() -> None:
    transport = MemoryTransport()
    recorder = Recorder()
    keys: list[bool] = []

    async def approval_key(renew: bool) -> str:
        keys.append(renew)
        return f"key-{len(keys)}"

    session = TrackBSession(
        "ws://memory",
        approval_key=approval_key,
        settings=SETTINGS,
        listener=recorder,
        market_open=lambda: True,
        transport=transport,
    )
    session.register("005930")
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: recorder.connects == 1, "connected", 5)
        await transport.links[0].incoming.put(reply("OPSP0011", "005930"))
        await wait_for(lambda: recorder.connects == 2, "reconnected", 5)
        assert recorder.reasons == ["approval"] and keys == [False, True]
        assert '"approval_key": "key-2"' in transport.links[1].sent[0]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_idle_watchdog_interrupts_a_waiting_receive() -> None:
    transport = MemoryTransport()
    recorder = Recorder()

    async def approval_key(renew: bool) -> str:
        return "key"

    session = TrackBSession(
        "ws://memory",
        approval_key=approval_key,
        settings=SETTINGS.model_copy(update={"idle_timeout_seconds": 0.05}),
        listener=recorder,
        market_open=lambda: True,
        transport=transport,
    )
    session.register("005930")
    task = asyncio.create_task(session.run())
    try:
        await wait_for(lambda: "idle" in recorder.reasons, "the watchdog", 5)
        assert recorder.records == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()  # the watchdog's cancellation never swallowed the test's


async def test_track_b_takes_a_transport_and_releases_a_slot_refused_with_opsp0008(
    metrics: Metrics,
) -> None:
    transport = MemoryTransport()
    stored: list[Trade | Gap | GapWindow] = []

    class Sink:
        async def put(self, record: Trade | Gap | GapWindow) -> None:
            stored.append(record)

        async def put_many(self, records: list[Trade | Gap | GapWindow], /) -> None:
            stored.extend(records)

    async def approval_key(renew: bool) -> str:
        return "key"

    async def no_page(symbol: str, before: str, business_date: str) -> Page:
        raise AssertionError("no backfill in this test")

    track = TrackB(
        SETTINGS.model_copy(update={"min_hold_seconds": 0}),
        GapSettings(),
        ws_url="ws://memory",
        approval_key=approval_key,
        fetch_page=no_page,
        sink=Sink(),
        metrics=metrics,
        transport=transport,
    )
    for symbol in ("005930", "000660"):
        track.offer(Trigger(symbol=symbol, kind=TriggerKind.PRICE_MOVE, score=1.0, at=0.0))
    task = asyncio.create_task(track.run())
    try:
        await wait_for(lambda: track.session.connected, "connected", 5)
        link = transport.links[0]
        await link.incoming.put(frame([trade("005930", volume=2, cumulative=2)]))
        await link.incoming.put(reply("OPSP0008", "000660"))
        await wait_for(lambda: track.table.allocated == 1 and len(stored) == 1, "released", 5)
        assert [t.symbol for t in stored if isinstance(t, Trade)] == ["005930"]
        assert track.session.registered() == {"005930"}
        assert link.registrations() == [("1", "000660"), ("1", "005930")]  # no unsubscribe
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
