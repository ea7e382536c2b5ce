"""The WebSocket side over real sockets: registrations, sessions, heartbeat, frames."""

from __future__ import annotations

import json
import time
from collections import defaultdict

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

from observer.credentials import demo_credentials
from observer.kis.h0stcnt0 import INDEX
from observer.sim import SimExchange
from observer.sim.universe import tick_size
from tests.sim import kis
from tests.sim.conftest import busiest, settings


def control(text: str) -> tuple[str, str, str]:
    body = json.loads(text)["body"]
    return body["rt_cd"], body["msg_cd"], body["msg1"]


async def test_41_registrations_then_opsp0008_and_unsubscribe_frees_a_slot(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    approval = await kis.approval_key(http, sim.rest_url, demo_credentials("slots"))
    codes = sim.universe_codes()[:43]
    async with connect(sim.ws_url + "/tryitout/H0STCNT0") as ws:
        replies = []
        for code in codes[:42]:
            await ws.send(kis.subscribe_message(approval, code))
            replies.append(await _next_control(ws))
        assert [r[1] for r in replies] == ["OPSP0000"] * 41 + ["OPSP0008"]
        assert replies[0] == ("0", "OPSP0000", "SUBSCRIBE SUCCESS")
        assert replies[-1][0] == "1" and replies[-1][2].startswith("MAX SUBSCRIBE OVER")
        assert sim.stats()["registrations"] == 41
        assert sim.stats()["rejections"]["OPSP0008"] == 1

        await ws.send(kis.subscribe_message(approval, codes[0]))
        assert (await _next_control(ws))[1] == "OPSP0002"  # already subscribed
        await ws.send(kis.subscribe_message(approval, codes[0], tr_type="2"))
        assert (await _next_control(ws))[:2] == ("0", "OPSP0001")
        await ws.send(kis.subscribe_message(approval, codes[0], tr_type="2"))
        assert (await _next_control(ws))[1] == "OPSP0003"  # not found
        await ws.send(kis.subscribe_message(approval, codes[42]))
        assert (await _next_control(ws))[1] == "OPSP0000"  # the freed slot


async def test_second_session_unknown_approval_and_bad_json(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    creds = demo_credentials("sessions")
    approval = await kis.approval_key(http, sim.rest_url, creds)
    code = sim.universe_codes()[0]
    async with connect(sim.ws_url) as first:
        await first.send(kis.subscribe_message("not-a-key", code))
        assert (await _next_control(first))[:2] == ("1", "OPSP0011")
        await first.send("{this is not json")
        assert (await _next_control(first))[:2] == ("1", "OPSP9999")
        await first.send(kis.subscribe_message(approval, code))
        assert (await _next_control(first))[1] == "OPSP0000"
        another_approval = await kis.approval_key(http, sim.rest_url, creds)
        async with connect(sim.ws_url + "/any/path") as second:
            await second.send(kis.subscribe_message(another_approval, code))
            message = json.loads(await second.recv())
            assert message["header"]["tr_id"] == "(null)"
            assert message["body"]["rt_cd"] == "9"
            assert message["body"]["msg_cd"] == "OPSP8996"
            assert message["body"]["msg1"] == "ALREADY IN USE appkey"
            await second.wait_closed()
        assert sim.stats()["rejections"]["OPSP8996"] == 1
        other = await kis.approval_key(http, sim.rest_url, demo_credentials("other key"))
        async with connect(sim.ws_url) as third:  # another app key: its own session
            await third.send(kis.subscribe_message(other, code))
            assert (await _next_control(third))[1] == "OPSP0000"
            assert sim.stats()["ws_sessions_open"] == 2


async def test_pingpong_and_echo(http: aiohttp.ClientSession) -> None:
    async with SimExchange(settings(ping_interval_seconds=0.2)) as sim:
        approval = await kis.approval_key(http, sim.rest_url, demo_credentials("ping"))
        async with connect(sim.ws_url, ping_interval=None) as ws:
            await ws.send(kis.subscribe_message(approval, sim.universe_codes()[0]))
            pings: list[str] = []

            async def on_text(text: str) -> None:
                if text.startswith("{") and json.loads(text)["header"]["tr_id"] == "PINGPONG":
                    pings.append(text)
                    await ws.send(text)  # answer by echoing the same text
                    await ws.pong()  # or with a pong frame: both are accepted

            await kis.receive_until(ws, lambda: len(pings) >= 2, on_text)
            header = json.loads(pings[0])["header"]
            assert len(header["datetime"]) == 14 and header["datetime"].isdigit()
            assert sim.stats()["ws_sessions_open"] == 1


async def test_frames_carry_46_fields_and_volume_is_continuous(
    http: aiohttp.ClientSession,
) -> None:
    async with SimExchange(settings(speed=30)) as sim:
        approval = await kis.approval_key(http, sim.rest_url, demo_credentials("frames"))
        codes = busiest(sim, 10)
        records: dict[str, list[list[str]]] = defaultdict(list)
        multi_record_frames = 0
        async with connect(sim.ws_url) as ws:
            for code in codes:
                await ws.send(kis.subscribe_message(approval, code))
                assert (await _next_control(ws))[1] == "OPSP0000"

            def on_text(text: str) -> None:
                nonlocal multi_record_frames
                if text.startswith("0|"):
                    parsed = kis.parse_data_frame(text)
                    multi_record_frames += len(parsed) > 1
                    for record in parsed:
                        records[record[INDEX["MKSC_SHRN_ISCD"]]].append(record)

            await kis.receive_until(
                ws, lambda: sum(len(r) >= 20 for r in records.values()) >= 3, on_text
            )
        assert multi_record_frames > 0  # clustered trades share a frame
        assert set(records) <= set(codes)
        for code, items in records.items():
            acml = [int(r[INDEX["ACML_VOL"]]) for r in items]
            volume = [int(r[INDEX["CNTG_VOL"]]) for r in items]
            for n in range(1, len(items)):
                assert acml[n] == acml[n - 1] + volume[n], (code, n)
            for record in items:
                price = int(record[INDEX["STCK_PRPR"]])
                assert price % tick_size(price) == 0
                assert record[INDEX["BSOP_DATE"]] == "20261124"
            # the very trades the model generated, in order
            generated = {t.cumulative_volume: t for t in sim.generated_trades(code)}
            for a, v in zip(acml, volume, strict=True):
                assert generated[a].volume == v
        stats = sim.stats()
        assert sum(stats["records_sent"].values()) >= sum(len(r) for r in records.values())


async def _next_control(ws: ClientConnection) -> tuple[str, str, str]:
    """The next JSON control reply, skipping data frames and heartbeats."""
    while True:
        text = await ws.recv()
        assert isinstance(text, str)
        if text.startswith("{"):
            message = json.loads(text)
            if message["header"].get("tr_id") != "PINGPONG":
                return control(text)


class HeldClock:
    """A real clock that stands still at 0 until released, then runs."""

    def __init__(self) -> None:
        self.released_at: float | None = None

    def __call__(self) -> float:
        return 0.0 if self.released_at is None else time.monotonic() - self.released_at

    def release(self) -> None:
        self.released_at = time.monotonic()


async def test_same_seed_same_records_over_sockets(http: aiohttp.ClientSession) -> None:
    """Two exchanges with one seed, subscribed at the same simulated instant, send the
    same records in the same order (frame batching follows real push timing)."""
    first, second = [await _first_records(http, seed=11) for _ in range(2)]
    assert first == second
    assert first != await _first_records(http, seed=12)


async def _first_records(http: aiohttp.ClientSession, *, seed: int) -> list[str]:
    records: list[str] = []
    clock = HeldClock()
    async with SimExchange(settings(speed=30, seed=seed), real=clock) as sim:
        approval = await kis.approval_key(http, sim.rest_url, demo_credentials("seed"))
        async with connect(sim.ws_url) as ws:
            await ws.send(kis.subscribe_message(approval, busiest(sim, 1)[0]))
            assert (await _next_control(ws))[1] == "OPSP0000"
            clock.release()

            def on_text(text: str) -> None:
                if text.startswith("0|"):
                    records.extend("^".join(record) for record in kis.parse_data_frame(text))

            await kis.receive_until(ws, lambda: len(records) >= 15, on_text)
    return records[:15]


async def test_invalid_tr_id_and_tr_key(sim: SimExchange, http: aiohttp.ClientSession) -> None:
    approval = await kis.approval_key(http, sim.rest_url, demo_credentials("invalid"))
    async with connect(sim.ws_url) as ws:
        message = json.loads(kis.subscribe_message(approval, "005930"))
        message["body"]["input"]["tr_id"] = "H0XXXXX0"
        await ws.send(json.dumps(message))
        assert (await _next_control(ws))[:2] == ("1", "OPSP8991")
        await ws.send(kis.subscribe_message(approval, "59"))
        assert (await _next_control(ws))[:2] == ("1", "OPSP8992")
        assert sim.stats()["registrations"] == 0
