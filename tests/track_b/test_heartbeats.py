"""Heartbeats on a loopback server that sends nothing else: echoed verbatim, never data.

The watchdog's timing cases run on virtual time in ``test_protocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from observer.config import TrackBSettings
from observer.kis.ws import TrackBSession
from tests.track_b.rig import Recorder, wait_for

PING = '{"header":{"tr_id":"PINGPONG","datetime":"20261124093015"}}'
SETTINGS = TrackBSettings(
    idle_timeout_seconds=0.4, reconnect_initial_seconds=0.01, reconnect_max_seconds=0.05
)


class HeartbeatOnly:
    """A WebSocket server that sends PINGPONG every 50 ms and keeps what clients send."""

    def __init__(self) -> None:
        self.received: list[str | bytes] = []
        self.url = ""

    async def handler(self, ws: ServerConnection) -> None:
        reader = asyncio.create_task(self._read(ws))
        try:
            while True:
                await ws.send(PING)
                await asyncio.sleep(0.05)  # the heartbeat period, not a wait for a condition
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()

    async def _read(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                self.received.append(message)

    def echoes(self) -> int:
        return self.received.count(PING)


@contextlib.asynccontextmanager
async def heartbeat_server() -> AsyncIterator[HeartbeatOnly]:
    server = HeartbeatOnly()
    async with serve(server.handler, "127.0.0.1", 0, ping_interval=None) as running:
        server.url = f"ws://127.0.0.1:{running.sockets[0].getsockname()[1]}"
        yield server


async def run_session(
    server: HeartbeatOnly, recorder: Recorder, *, market_open: bool
) -> TrackBSession:
    async def approval_key(renew: bool) -> str:
        return "approval-key-for-a-loopback-server"

    session = TrackBSession(
        server.url,
        approval_key=approval_key,
        settings=SETTINGS,
        listener=recorder,
        market_open=lambda: market_open,
    )
    session.register("005930")
    return session


async def test_heartbeats_are_echoed_and_do_not_keep_a_silent_session_alive() -> None:
    async with heartbeat_server() as server:
        recorder = Recorder()
        session = await run_session(server, recorder, market_open=True)
        task = asyncio.create_task(session.run())
        await wait_for(lambda: "idle" in recorder.reasons, "the watchdog", 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert server.echoes() >= 3  # echoed verbatim, several times before the watchdog fired
    assert recorder.connects >= 1 and recorder.records == 0
