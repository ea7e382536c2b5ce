"""Every fault kind over real sockets: its effect, and that ``DELETE /sim/faults`` ends it."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from observer.credentials import demo_credentials
from observer.kis.h0stcnt0 import INDEX
from observer.sim import SimExchange
from tests.sim import kis
from tests.sim.conftest import busiest


async def inject(http: aiohttp.ClientSession, sim: SimExchange, body: object) -> kis.Reply:
    return await kis.call(http, "POST", sim.rest_url + "/sim/faults", json_body=body)  # type: ignore[arg-type]


async def clear(http: aiohttp.ClientSession, sim: SimExchange) -> None:
    reply = await kis.call(http, "DELETE", sim.rest_url + "/sim/faults")
    assert reply.status == 200
    assert sim.stats()["active_faults"] == []


class Stream:
    """One subscribed session, sorting what arrives into records, controls and garbage."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.records: list[list[str]] = []
        self.malformed: list[str] = []

    def on_text(self, text: str) -> None:
        if text.startswith("0|"):
            try:
                self.records.extend(kis.parse_data_frame(text))
            except (AssertionError, ValueError):
                self.malformed.append(text)
            return
        try:
            json.loads(text)
        except ValueError:
            self.malformed.append(text)

    async def until(self, done: Any, timeout_s: float = 20.0) -> None:
        await kis.receive_until(self.ws, done, self.on_text, timeout_s)

    def series(self) -> list[tuple[int, int]]:
        return [(int(r[INDEX["ACML_VOL"]]), int(r[INDEX["CNTG_VOL"]])) for r in self.records]


async def subscribe(http: aiohttp.ClientSession, sim: SimExchange, code: str) -> Stream:
    approval = await kis.approval_key(http, sim.rest_url, demo_credentials("faults"))
    ws = await connect(sim.ws_url)
    await ws.send(kis.subscribe_message(approval, code))
    stream = Stream(ws)
    return stream


async def test_frame_drop_makes_a_jump_of_the_dropped_volume_and_backfill_fills_it(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    code = busiest(sim, 1)[0]
    stream = await subscribe(http, sim, code)
    async with stream.ws:
        await stream.until(lambda: len(stream.records) >= 3)
        assert (
            await inject(http, sim, {"kind": "frame_drop", "symbol": code, "count": 3})
        ).status == 200
        await stream.until(lambda: len(stream.records) >= 12 and not sim.stats()["active_faults"])
        series = stream.series()
        jumps = [
            (n, series[n][0] - series[n - 1][0] - series[n][1])
            for n in range(1, len(series))
            if series[n][0] != series[n - 1][0] + series[n][1]
        ]
        assert len(jumps) == 1
        n, jump = jumps[0]
        stats = sim.stats()
        assert stats["records_dropped"][code] == 3
        assert jump == stats["volume_dropped"][code] > 0

        # Backfill: the trades-by-time endpoint returns exactly the dropped ones.
        creds = demo_credentials("backfill")
        token = (await kis.token(http, sim.rest_url, creds)).body["access_token"]
        before, after = series[n - 1][0], series[n][0] - series[n][1]
        rows = await kis.all_trades_down_to(http, sim.rest_url, creds, token, code, before)
        missing = sorted(
            (int(r["acml_vol"]), int(r["cntg_vol"]))
            for r in rows
            if before < int(r["acml_vol"]) <= after
        )
        assert len(missing) == 3 and sum(v for _, v in missing) == jump
        generated = [
            (t.cumulative_volume, t.volume)
            for t in sim.generated_trades(code)
            if before < t.cumulative_volume <= after
        ]
        assert missing == generated

        # A long drop ends with DELETE: records flow on without further jumps.
        await inject(http, sim, {"kind": "frame_drop", "symbol": code, "count": 100000})
        await clear(http, sim)
        seen = len(stream.records)
        await stream.until(lambda: len(stream.records) >= seen + 10)
        tail = stream.series()[seen + 3 :]
        assert all(b[0] == a[0] + b[1] for a, b in itertools.pairwise(tail))


async def test_ws_stall_keeps_sessions_silent_until_cleared(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    stream = await subscribe(http, sim, busiest(sim, 1)[0])
    async with stream.ws:
        await stream.until(lambda: len(stream.records) >= 2)
        assert (await inject(http, sim, {"kind": "ws_stall", "seconds": 60})).status == 200
        frames_before = sum(sim.stats()["frames_sent"].values())
        await asyncio.sleep(0.6)  # observe an absence: a dozen pushes would have happened
        stats = sim.stats()
        assert sum(stats["frames_sent"].values()) == frames_before
        assert stats["ws_sessions_open"] == 1 and stats["active_faults"][0]["kind"] == "ws_stall"
        await clear(http, sim)
        seen = len(stream.records)
        await stream.until(lambda: len(stream.records) > seen)


async def test_ws_drop_closes_sessions_and_reconnecting_works(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    code = busiest(sim, 1)[0]
    stream = await subscribe(http, sim, code)
    await stream.until(lambda: len(stream.records) >= 1)
    assert (await inject(http, sim, {"kind": "ws_drop"})).status == 200
    with pytest.raises(ConnectionClosed):
        await stream.until(lambda: False, timeout_s=10)
    await kis.poll(lambda: _equals(sim.stats()["ws_sessions_open"], 0))
    await clear(http, sim)
    again = await subscribe(http, sim, code)  # the app key's session slot is free again
    async with again.ws:
        await again.until(lambda: len(again.records) >= 1)


async def test_token_expire_then_a_new_token_works(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    creds = demo_credentials("expire")
    first = (await kis.token(http, sim.rest_url, creds)).body["access_token"]
    code = sim.universe_codes()[0]
    assert (await kis.price(http, sim.rest_url, creds, first, code)).status == 200
    assert (await inject(http, sim, {"kind": "token_expire"})).status == 200
    expired = await kis.price(http, sim.rest_url, creds, first, code)
    assert expired.body["rt_cd"] == "1" and expired.body["msg_cd"] == "EGW00123"
    await clear(http, sim)
    replies: list[kis.Reply] = []

    async def granted() -> bool:
        replies.append(await kis.token(http, sim.rest_url, creds))
        return replies[-1].status == 200

    await kis.poll(granted)  # the one-per-minute rule still holds (0.3 s in these tests)
    second = replies[-1].body["access_token"]
    assert second != first
    assert (await kis.price(http, sim.rest_url, creds, second, code)).body["rt_cd"] == "0"


async def test_rest_errors_answer_every_business_call_until_cleared(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    creds = demo_credentials("rest errors")
    token = (await kis.token(http, sim.rest_url, creds)).body["access_token"]
    code = sim.universe_codes()[0]
    fault = {"kind": "rest_errors", "msg_cd": "EGW00201", "http_status": 500, "seconds": 60}
    assert (await inject(http, sim, fault)).status == 200
    for _ in range(3):
        reply = await kis.price(http, sim.rest_url, creds, token, code)
        assert reply.status == 500 and reply.body["msg_cd"] == "EGW00201"
    assert sim.stats()["active_faults"][0]["msg_cd"] == "EGW00201"
    await kis.approval_key(http, sim.rest_url, creds)  # not a business call: unaffected
    await clear(http, sim)
    assert (await kis.price(http, sim.rest_url, creds, token, code)).status == 200


async def test_latency_delays_calls_until_cleared(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    creds = demo_credentials("latency")
    token = (await kis.token(http, sim.rest_url, creds)).body["access_token"]
    code = sim.universe_codes()[0]
    assert (await inject(http, sim, {"kind": "latency", "ms": 1500, "seconds": 60})).status == 200
    started = time.monotonic()
    assert (await kis.price(http, sim.rest_url, creds, token, code)).status == 200
    assert time.monotonic() - started >= 1.5
    await clear(http, sim)
    started = time.monotonic()
    assert (await kis.price(http, sim.rest_url, creds, token, code)).status == 200
    assert time.monotonic() - started < 1.5


async def test_malformed_frames_then_clean_frames(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    stream = await subscribe(http, sim, busiest(sim, 1)[0])
    async with stream.ws:
        await stream.until(lambda: len(stream.records) >= 1)
        assert (await inject(http, sim, {"kind": "malformed", "count": 3})).status == 200
        await stream.until(lambda: len(stream.malformed) >= 3)
        assert sim.stats()["malformed_sent"] == 3
        seen = len(stream.records)
        await stream.until(lambda: len(stream.records) >= seen + 5)
        series = stream.series()
        assert all(b[0] == a[0] + b[1] for a, b in itertools.pairwise(series))

        await inject(http, sim, {"kind": "malformed", "count": 10000})
        await stream.until(lambda: len(stream.malformed) >= 4)
        await clear(http, sim)
        sent = sim.stats()["malformed_sent"]
        seen = len(stream.records)
        await stream.until(lambda: len(stream.records) >= seen + 5)
        assert sim.stats()["malformed_sent"] == sent


async def test_refuse_ws_rejects_handshakes_until_cleared(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    assert (await inject(http, sim, {"kind": "refuse_ws", "seconds": 60})).status == 200
    with pytest.raises(InvalidStatus) as refused:
        await connect(sim.ws_url)
    assert refused.value.response.status_code == 503
    await clear(http, sim)
    async with connect(sim.ws_url):
        assert sim.stats()["ws_sessions_open"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "earthquake"},
        {"kind": "ws_stall"},
        {"kind": "latency", "ms": -1, "seconds": 5},
        {"kind": "frame_drop", "symbol": "005930", "count": "many"},
    ],
)
async def test_bad_fault_bodies_get_400_with_a_reason(
    sim: SimExchange, http: aiohttp.ClientSession, body: dict[str, Any]
) -> None:
    reply = await inject(http, sim, body)
    assert reply.status == 400 and reply.body["error"]
    assert sim.stats()["active_faults"] == []


async def test_non_json_fault_body(sim: SimExchange, http: aiohttp.ClientSession) -> None:
    async with http.post(sim.rest_url + "/sim/faults", data=b"{oops") as response:
        assert response.status == 400
        assert "JSON" in (await response.json())["error"]


async def test_inject_through_the_python_api(sim: SimExchange) -> None:
    await sim.inject({"kind": "rest_errors", "msg_cd": "EGW00123", "seconds": 30})
    assert sim.stats()["active_faults"][0]["kind"] == "rest_errors"
    await sim.clear_faults()
    assert sim.stats()["active_faults"] == []


async def _equals(value: object, expected: object) -> bool:
    return value == expected
