"""Hostile input to the simulator gets a 4xx with a KIS-style body, never a 500 traceback."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect

from observer.credentials import demo_credentials
from observer.sim import SimExchange
from tests.sim import kis

DEEP = 100_000


def assert_kis_refusal(status: int, body: dict[str, Any], expected_status: int) -> None:
    assert status == expected_status, body
    assert body["rt_cd"] == "1"
    assert body["msg_cd"] == "OPSQ2001"
    assert isinstance(body["msg1"], str) and body["msg1"]


async def post_fault(
    http: aiohttp.ClientSession, sim: SimExchange, data: bytes, content_type: str
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": content_type}
    url = sim.rest_url + "/sim/faults"
    async with http.post(url, data=io.BytesIO(data), headers=headers) as response:
        assert response.content_type == "application/json"
        return response.status, json.loads(await response.read())


async def test_a_bogus_charset_on_a_fault_body_is_415(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    body = b'{"kind":"ws_drop"}'
    status, reply = await post_fault(http, sim, body, "application/json; charset=no-such-charset")
    assert_kis_refusal(status, reply, 415)
    assert "charset" in reply["msg1"]


async def test_a_body_that_does_not_decode_is_400(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    status, reply = await post_fault(http, sim, b"\xff\xfe{", "application/json; charset=utf-8")
    assert_kis_refusal(status, reply, 400)


@pytest.mark.parametrize("opener", ["[", '{"a":'])
async def test_a_100k_deep_fault_body_is_400(
    sim: SimExchange, http: aiohttp.ClientSession, opener: str
) -> None:
    closer = "]" if opener == "[" else "}"
    body = (opener * DEEP + "1" + closer * DEEP).encode()
    status, reply = await post_fault(http, sim, body, "application/json")
    assert_kis_refusal(status, reply, 400)
    assert sim.stats()["active_faults"] == []


async def test_a_moderately_deep_fault_body_is_400_too(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    nested: Any = 1
    for _ in range(200):  # under the parser's recursion limit, over the simulator's bound
        nested = [nested]
    body = json.dumps({"kind": "ws_drop", "extra": nested}).encode()
    status, reply = await post_fault(http, sim, body, "application/json")
    assert_kis_refusal(status, reply, 400)
    assert "nested" in reply["msg1"]


async def test_an_oversized_fault_body_is_413(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    body = b'{"kind":"ws_drop","pad":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    status, reply = await post_fault(http, sim, body, "application/json")
    assert_kis_refusal(status, reply, 413)


async def test_a_good_fault_body_still_works(sim: SimExchange, http: aiohttp.ClientSession) -> None:
    body = b'{"kind":"ws_stall","seconds":1}'
    status, reply = await post_fault(http, sim, body, "application/json; charset=utf-8")
    assert status == 200 and reply["ok"] is True


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"appkey":"k"}', "application/json; charset=bogus"),
        (("[" * DEEP + "]" * DEEP).encode(), "application/json"),
    ],
)
async def test_hostile_oauth_bodies_are_refused_not_crashed(
    sim: SimExchange, http: aiohttp.ClientSession, data: bytes, content_type: str
) -> None:
    headers = {"content-type": content_type}
    for path in ("/oauth2/tokenP", "/oauth2/Approval", "/oauth2/revokeP"):
        async with http.post(sim.rest_url + path, data=data, headers=headers) as response:
            assert response.status == 403, path
            assert (await response.json())["error_code"].startswith("EGW")


async def _token(http: aiohttp.ClientSession, sim: SimExchange) -> str:
    reply = await kis.token(http, sim.rest_url, demo_credentials("bad input"))
    assert reply.status == 200, reply.body
    value: str = reply.body["access_token"]
    return value


@pytest.mark.parametrize(
    "bass_dt",
    ["99991231", "00010101", "20260230", "2026122", "abcdefgh", "２０２６１２２４", "30000101"],
)
async def test_chk_holiday_refuses_dates_outside_its_calendar(
    sim: SimExchange, http: aiohttp.ClientSession, bass_dt: str
) -> None:
    creds = demo_credentials("bad input")
    reply = await kis.call(
        http,
        "GET",
        sim.rest_url + kis.HOLIDAY,
        headers=kis.headers(creds, await _token(http, sim), "CTCA0903R"),
        params={"BASS_DT": bass_dt},
    )
    assert_kis_refusal(reply.status, reply.body, 400)
    assert "BASS_DT" in reply.body["msg1"]


@pytest.mark.parametrize(("bass_dt", "last"), [("19700101", "19700130"), ("29991231", "30000129")])
async def test_chk_holiday_answers_to_the_edges_of_its_calendar(
    sim: SimExchange, http: aiohttp.ClientSession, bass_dt: str, last: str
) -> None:
    creds = demo_credentials("bad input")
    reply = await kis.call(
        http,
        "GET",
        sim.rest_url + kis.HOLIDAY,
        headers=kis.headers(creds, await _token(http, sim), "CTCA0903R"),
        params={"BASS_DT": bass_dt},
    )
    assert reply.status == 200 and reply.body["rt_cd"] == "0"
    rows = reply.body["output"]
    assert rows[0]["bass_dt"] == bass_dt and rows[-1]["bass_dt"] == last


@pytest.mark.parametrize("hour", ["１２３４５６", "12345", "ab:cd:", "1234567"])
async def test_trades_by_time_refuses_a_bad_hour(
    sim: SimExchange, http: aiohttp.ClientSession, hour: str
) -> None:
    creds = demo_credentials("bad input")
    token = await _token(http, sim)
    code = sim.universe_codes()[0]
    reply = await kis.trades_page(http, sim.rest_url, creds, token, code, hour)
    assert_kis_refusal(reply.status, reply.body, 400)


async def test_a_deeply_nested_websocket_message_is_opsp9999(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    approval = await kis.approval_key(http, sim.rest_url, demo_credentials("bad input ws"))
    async with connect(sim.ws_url + "/tryitout/H0STCNT0", max_size=None) as ws:
        deep = 30_000  # within the server's 64 KiB message limit, past the parser's recursion
        await ws.send("[" * deep + "]" * deep)
        assert json.loads(await ws.recv())["body"]["msg_cd"] == "OPSP9999"
        nested: Any = "x"
        for _ in range(900):
            nested = [nested]
        message = {"header": {"approval_key": nested, "tr_type": "1"}, "body": {"input": {}}}
        await ws.send(json.dumps(message))
        assert json.loads(await ws.recv())["body"]["rt_cd"] == "1"
        # The session is still usable.
        await ws.send(kis.subscribe_message(approval, sim.universe_codes()[0]))
        assert json.loads(await ws.recv())["body"]["msg_cd"] == "OPSP0000"
