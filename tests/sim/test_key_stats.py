"""Per-app-key counts in ``/sim/stats`` ``keys``: several keys over real sockets, exact figures."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

from observer.credentials import Credentials, demo_credentials, key_fingerprint
from observer.sim import SimExchange
from tests.sim import kis
from tests.sim.conftest import settings


class Clock:
    """A clock the test moves by hand (the limiter and token rules read it)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def raw_stats(http: aiohttp.ClientSession, sim: SimExchange) -> tuple[str, dict[str, Any]]:
    async with http.get(sim.rest_url + "/sim/stats") as response:
        assert response.status == 200
        text = await response.text()
    return text, json.loads(text)


def assert_no_secret(text: str, *creds: Credentials) -> None:
    for item in creds:
        assert item.app_key not in text and item.app_secret not in text
        assert item.app_key[:12] not in text  # not even a prefix of the key


async def test_rest_and_token_counts_per_key(http: aiohttp.ClientSession) -> None:
    real, wall = Clock(1_000.0), Clock(1_700_000_000.0)
    tuned = settings(rate_limit=5, token_min_interval_seconds=60)
    a, b, c = (demo_credentials(f"key stats {n}") for n in "abc")
    async with SimExchange(tuned, real=real, wall=wall) as sim:
        first = await kis.token(http, sim.rest_url, a)
        assert first.status == 200
        assert (await kis.token(http, sim.rest_url, a)).body["error_code"] == "EGW00133"
        wall.now += 61  # a grant a minute later: the same token, not a new issuance
        again = await kis.token(http, sim.rest_url, a)
        assert again.body["access_token"] == first.body["access_token"]
        token_a = first.body["access_token"]
        # the real clock stands still: 5 calls fit the second, the other 3 are EGW00201
        answers = [await kis.price(http, sim.rest_url, a, token_a, "005930") for _ in range(8)]
        assert [r.body.get("msg_cd") for r in answers].count("EGW00201") == 3

        token_b = (await kis.token(http, sim.rest_url, b)).body["access_token"]
        for _ in range(3):
            assert (await kis.price(http, sim.rest_url, b, token_b, "005930")).status == 200
        wrong_tr_id = kis.headers(b, token_b, "FHPST01060000")
        reply = await kis.call(http, "GET", sim.rest_url + kis.PRICE, headers=wrong_tr_id)
        assert reply.body["msg_cd"] == "OPSQ0002"

        bad_secret = Credentials(c.app_key, "short")
        assert (await kis.token(http, sim.rest_url, bad_secret)).body["error_code"] == "EGW00105"
        malformed = Credentials("not-a-36-character-key", a.app_secret)
        assert (await kis.token(http, sim.rest_url, malformed)).status == 403

        text, stats = await raw_stats(http, sim)

    assert_no_secret(text, a, b, c)
    assert token_a not in text and token_b not in text
    assert set(stats["keys"]) == {key_fingerprint(k.app_key) for k in (a, b, c)}
    assert a.fingerprint == key_fingerprint(a.app_key)
    assert stats["keys"][a.fingerprint] == {
        "rest_calls": 11,
        "business_calls": 8,
        "rejections": {"EGW00201": 3, "EGW00133": 1, "OPSP0008": 0, "OPSP8996": 0},
        "tokens_issued": 1,
        "token_grants": 2,
        "approval_keys_issued": 0,
        "ws_sessions_opened": 0,
        "ws_sessions_open": 0,
        "registrations": 0,
        "registrations_peak": 0,
    }
    key_b = stats["keys"][b.fingerprint]
    assert (key_b["rest_calls"], key_b["business_calls"]) == (5, 4)
    assert (key_b["tokens_issued"], key_b["token_grants"]) == (1, 1)
    tracked = {"EGW00201": 0, "EGW00133": 0, "OPSP0008": 0, "OPSP8996": 0}
    assert key_b["rejections"] == dict(tracked, OPSQ0002=1)  # other refusals by msg_cd
    key_c = stats["keys"][c.fingerprint]
    assert key_c["rest_calls"] == 1 and key_c["rejections"]["EGW00105"] == 1
    assert key_c["tokens_issued"] == 0
    # the totals are unchanged by the per-key view: every call, named key or not
    assert stats["tokens_issued"] == 2
    assert stats["rejections"]["EGW00201"] == 3 and stats["rejections"]["EGW00133"] == 1


async def test_sessions_and_registrations_per_key(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    a, b = demo_credentials("ws stats a"), demo_credentials("ws stats b")
    approval_a = await kis.approval_key(http, sim.rest_url, a)
    approval_b = await kis.approval_key(http, sim.rest_url, b)
    codes = sim.universe_codes()[:43]
    async with connect(sim.ws_url) as ws_a, connect(sim.ws_url) as ws_b:
        answers = [await subscribe(ws_a, approval_a, code) for code in codes]
        assert answers == ["OPSP0000"] * 41 + ["OPSP0008"] * 2
        assert [await subscribe(ws_b, approval_b, code) for code in codes[:3]] == ["OPSP0000"] * 3
        assert await subscribe(ws_a, approval_a, codes[0], tr_type="2") == "OPSP0001"
        async with connect(sim.ws_url) as second_a:  # a second session for key a: refused
            assert await subscribe(second_a, approval_a, codes[0]) == "OPSP8996"
            await second_a.wait_closed()

        text, stats = await raw_stats(http, sim)
        assert_no_secret(text, a, b)
        assert approval_a not in text and approval_b not in text
        key_a, key_b = stats["keys"][a.fingerprint], stats["keys"][b.fingerprint]
        assert key_a["rejections"] == {"EGW00201": 0, "EGW00133": 0, "OPSP0008": 2, "OPSP8996": 1}
        assert (key_a["ws_sessions_opened"], key_a["ws_sessions_open"]) == (1, 1)
        assert (key_a["registrations"], key_a["registrations_peak"]) == (40, 41)
        assert key_a["approval_keys_issued"] == 1 and key_a["rest_calls"] == 1
        assert key_b["rejections"]["OPSP0008"] == 0 and key_b["rejections"]["OPSP8996"] == 0
        assert (key_b["registrations"], key_b["registrations_peak"]) == (3, 3)
        assert stats["registrations"] == 43  # the total over every session, as before
        assert stats["rejections"]["OPSP0008"] == 2 and stats["rejections"]["OPSP8996"] == 1
        assert sim.key_stats(a.app_key) == key_a

    async def both_closed() -> bool:
        return all(sim.key_stats(k.app_key)["ws_sessions_open"] == 0 for k in (a, b))

    await kis.poll(both_closed)
    after = sim.key_stats(a.app_key)
    assert (after["registrations"], after["registrations_peak"]) == (0, 41)
    async with connect(sim.ws_url) as ws_a:  # the key's session may open again, counted
        assert await subscribe(ws_a, approval_a, codes[0]) == "OPSP0000"
        again = sim.key_stats(a.app_key)
        assert (again["ws_sessions_opened"], again["ws_sessions_open"]) == (2, 1)
        assert (again["registrations"], again["registrations_peak"]) == (1, 41)
    unseen = sim.key_stats(demo_credentials("never used").app_key)
    assert unseen["rest_calls"] == 0 and unseen["rejections"]["OPSP0008"] == 0


async def test_restricted_exchange_counts_only_its_key(http: aiohttp.ClientSession) -> None:
    mine, other = demo_credentials("restricted"), demo_credentials("another")
    async with SimExchange(settings(), app_key=mine.app_key, app_secret=mine.app_secret) as sim:
        assert (await kis.token(http, sim.rest_url, mine)).status == 200
        assert (await kis.token(http, sim.rest_url, other)).body["error_code"] == "EGW00103"
        text, stats = await raw_stats(http, sim)
    assert list(stats["keys"]) == [mine.fingerprint]
    assert stats["rejections"]["EGW00133"] == 0
    assert_no_secret(text, mine, other)


async def subscribe(ws: ClientConnection, approval: str, code: str, tr_type: str = "1") -> str:
    """Send a (un)subscribe and return the msg_cd of its reply (data frames skipped)."""
    await ws.send(kis.subscribe_message(approval, code, tr_type))
    while True:
        text = await ws.recv()
        assert isinstance(text, str)
        if text.startswith("{"):
            message = json.loads(text)
            if message["header"].get("tr_id") != "PINGPONG":
                msg_cd: str = message["body"]["msg_cd"]
                return msg_cd
