"""Shutting the exchange down is bounded whatever its speed and whatever its clients do.

Each close runs in a task given at most 10 s, so that a regression fails here instead of
hanging the run (not ``asyncio.wait_for``: on Python 3.11 a close that swallowed the
cancellation would make it return as if the close had finished).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import defaultdict
from urllib.parse import urlsplit

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect

from observer.config_values import SIM_MAX_SPEED
from observer.credentials import demo_credentials
from observer.kis.h0stcnt0 import INDEX
from observer.sim import SimExchange
from tests.sim import kis
from tests.sim.conftest import busiest, settings
from tests.sim.test_ws import _next_control

CLOSE_BOUND_SECONDS = 10.0


@pytest.mark.parametrize("speed", [90, 200, SIM_MAX_SPEED])
async def test_closes_right_after_a_client_leaves_mid_push(
    http: aiohttp.ClientSession, speed: float
) -> None:
    """A client that reads frames, then closes its session while pushes to it are under
    way; the exchange is closed the moment the client's close returns. The push loop must
    not lose the cancellation that close() sends it (it did at 90x: close() never returned).
    """
    sim = SimExchange(settings(speed=speed))
    await sim.start()
    try:
        approval = await kis.approval_key(http, sim.rest_url, demo_credentials("leaves"))
        records: dict[str, list[list[str]]] = defaultdict(list)
        async with connect(sim.ws_url) as ws:
            for code in busiest(sim, 10):
                await ws.send(kis.subscribe_message(approval, code))
                assert (await _next_control(ws))[1] == "OPSP0000"

            def on_text(text: str) -> None:
                if text.startswith("0|"):
                    for record in kis.parse_data_frame(text):
                        records[record[INDEX["MKSC_SHRN_ISCD"]]].append(record)

            await kis.receive_until(
                ws, lambda: sum(len(r) >= 20 for r in records.values()) >= 3, on_text
            )
    finally:
        await _close_within_bound(sim)
    assert sim.stats()["ws_sessions_open"] == 0


@pytest.mark.slow  # seconds of flooding until the kernel buffers are full (more under load)
async def test_closes_while_a_client_has_stopped_reading(http: aiohttp.ClientSession) -> None:
    """A client registers the busiest symbols at the top speed, sends junk without reading
    a reply or a frame, until the exchange's buffers toward it are full and it stops
    reading the client in turn. Closing the exchange then must not wait on that client."""
    sim = SimExchange(settings(speed=SIM_MAX_SPEED))
    await sim.start()
    ws: ClientConnection | None = None
    try:
        approval = await kis.approval_key(http, sim.rest_url, demo_credentials("stops reading"))
        ws = await _connect_small_buffers(sim.ws_url)
        for code in busiest(sim, 41):
            await ws.send(kis.subscribe_message(approval, code))
        assert await _flood_until_unread(ws), "the exchange never stopped reading the client"
        assert sim.stats()["ws_sessions_open"] == 1  # not yet dropped as a slow client
        await _close_within_bound(sim)
        assert sim.stats()["ws_sessions_open"] == 0
    finally:
        if ws is not None:
            ws.transport.abort()
        await _close_within_bound(sim)


async def _close_within_bound(sim: SimExchange) -> None:
    closing = asyncio.create_task(sim.close())
    await asyncio.wait({closing}, timeout=CLOSE_BOUND_SECONDS)
    if not closing.done():
        closing.cancel()
        pytest.fail(f"SimExchange.close() still running after {CLOSE_BOUND_SECONDS:g} s")
    closing.result()


async def _connect_small_buffers(url: str) -> ClientConnection:
    """A client whose kernel buffers are small and whose frames are not compressed, so that
    the exchange's side fills up within a second or two once it stops reading."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, (parts.hostname, parts.port))
    return await connect(url, sock=raw, compression=None, max_queue=1)


async def _flood_until_unread(ws: ClientConnection, bound_s: float = 30.0) -> bool:
    """Send one-byte junk messages (each earns a JSON refusal) until one cannot leave within
    half a second: the exchange has stopped reading us. False if that never happens."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        try:
            async with asyncio.timeout(0.5):
                await ws.send("x")
        except TimeoutError:
            return True
    return False
