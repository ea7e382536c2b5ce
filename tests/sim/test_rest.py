"""The REST side over real sockets, called as a third-party KIS client would."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import pytest

from observer.credentials import demo_credentials
from observer.sim import SimExchange
from observer.sim.universe import well_known_shares
from tests.sim import kis
from tests.sim.conftest import busiest, settings

KST = timezone(timedelta(hours=9))


async def fresh_token(http: aiohttp.ClientSession, sim: SimExchange, label: str) -> str:
    reply = await kis.token(http, sim.rest_url, demo_credentials(label))
    assert reply.status == 200, reply.body
    value: str = reply.body["access_token"]
    return value


async def test_token_rules(sim: SimExchange, http: aiohttp.ClientSession) -> None:
    creds = demo_credentials("token rules")
    first = await kis.token(http, sim.rest_url, creds)
    assert first.status == 200
    parts = first.body["access_token"].split(".")
    header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    assert len(parts) == 3 and header["alg"] == "HS512"
    assert first.body["token_type"] == "Bearer" and 86399 <= first.body["expires_in"] <= 86400
    expiry = datetime.strptime(first.body["access_token_token_expired"], "%Y-%m-%d %H:%M:%S")
    expected = datetime.now(KST).replace(tzinfo=None) + timedelta(hours=24)
    assert abs((expiry - expected).total_seconds()) < 60  # Korean time, 24 h ahead

    second = await kis.token(http, sim.rest_url, creds)  # inside the minute (0.3 s here)
    assert second.status == 403 and second.body["error_code"] == "EGW00133"

    async def granted_again() -> bool:
        nonlocal second
        second = await kis.token(http, sim.rest_url, creds)
        return second.status == 200

    await kis.poll(granted_again)
    assert second.body["access_token"] == first.body["access_token"]  # within 6 h: same
    assert second.body["access_token_token_expired"] == first.body["access_token_token_expired"]
    stats = sim.stats()
    assert stats["tokens_issued"] == 1 and stats["rejections"]["EGW00133"] >= 1
    assert creds.app_key not in json.dumps(stats)
    assert first.body["access_token"] not in json.dumps(stats)

    token = first.body["access_token"]
    revoke = {"appkey": creds.app_key, "appsecret": creds.app_secret, "token": token}
    revoked = await kis.call(http, "POST", sim.rest_url + "/oauth2/revokeP", json_body=revoke)
    assert revoked.status == 200 and revoked.body["code"] == 200
    code = sim.universe_codes()[0]
    after = await kis.price(http, sim.rest_url, creds, token, code)
    assert after.body["rt_cd"] == "1" and after.body["msg_cd"] == "EGW00121"
    assert after.status == 500  # the configured status for token errors

    async def new_token() -> bool:
        nonlocal second
        second = await kis.token(http, sim.rest_url, creds)
        return second.status == 200

    await kis.poll(new_token)
    assert second.body["access_token"] != token  # revoked: a new one is issued
    ok = await kis.price(http, sim.rest_url, creds, second.body["access_token"], code)
    assert ok.status == 200 and ok.body["rt_cd"] == "0"


async def test_bad_credentials(sim: SimExchange, http: aiohttp.ClientSession) -> None:
    creds = demo_credentials("bad")
    url = sim.rest_url + "/oauth2/tokenP"
    bad_key = {"grant_type": "client_credentials", "appkey": "x" * 35}
    bad_key["appsecret"] = creds.app_secret
    reply = await kis.call(http, "POST", url, json_body=bad_key)
    assert reply.status == 403 and reply.body["error_code"] == "EGW00103"
    assert "any app key of 36 characters with an app secret of 180" in reply.body["sim_hint"]
    bad_secret = {"grant_type": "client_credentials", "appkey": creds.app_key, "appsecret": "y"}
    reply = await kis.call(http, "POST", url, json_body=bad_secret)
    assert reply.status == 403 and reply.body["error_code"] == "EGW00105"
    wrong_field = {"grant_type": "client_credentials", "appkey": creds.app_key}
    wrong_field["appsecret"] = creds.app_secret  # Approval wants "secretkey"
    reply = await kis.call(http, "POST", sim.rest_url + "/oauth2/Approval", json_body=wrong_field)
    assert reply.status == 403 and "secretkey" in reply.body["error_description"]


async def test_restricted_pair(http: aiohttp.ClientSession) -> None:
    mine, other = demo_credentials("mine"), demo_credentials("other")
    async with SimExchange(
        settings(), app_key=mine.app_key, app_secret=mine.app_secret
    ) as restricted:
        refused = await kis.token(http, restricted.rest_url, other)
        assert refused.status == 403 and refused.body["error_code"] == "EGW00103"
        assert "sim_hint" not in refused.body  # the rule is not "any pair" here
        assert (await kis.token(http, restricted.rest_url, mine)).status == 200


@pytest.mark.parametrize("window", ["sliding", "fixed", "bucket"])
async def test_25_requests_in_a_second_at_20_per_second(
    window: str, http: aiohttp.ClientSession
) -> None:
    async with SimExchange(settings(symbols=50, rate_window=window)) as sim:
        creds = demo_credentials(f"rate {window}")
        token = await fresh_token(http, sim, f"rate {window}")
        code = sim.universe_codes()[0]
        started = time.monotonic()
        replies = await asyncio.gather(
            *(kis.price(http, sim.rest_url, creds, token, code) for _ in range(25))
        )
        elapsed = time.monotonic() - started
        refused = [r for r in replies if r.status == 500 and r.body["msg_cd"] == "EGW00201"]
        accepted = [r for r in replies if r.status == 200 and r.body["rt_cd"] == "0"]
        assert len(refused) + len(accepted) == 25
        assert all(r.body["rt_cd"] == "1" for r in refused)
        if window == "bucket":  # the bucket refills while the burst is in flight
            assert 20 <= len(accepted) <= 20 + int(elapsed * 20) + 1
        else:
            assert elapsed < 1.0 and len(accepted) == 20 and len(refused) == 5
        stats = sim.stats()
        assert stats["rejections"]["EGW00201"] == len(refused)
        assert stats["requests"][kis.PRICE].get("EGW00201", 0) == len(refused)
        assert stats["requests"][kis.PRICE]["ok"] == len(accepted)
        # Other app keys have their own allowance.
        other = demo_credentials(f"rate {window} other")
        other_token = await fresh_token(http, sim, f"rate {window} other")
        assert (await kis.price(http, sim.rest_url, other, other_token, code)).status == 200


async def test_inquire_price_fields_and_unknown_symbol(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    creds = demo_credentials("price")
    token = await fresh_token(http, sim, "price")
    code = busiest(sim, 1)[0]
    reply = await kis.price(http, sim.rest_url, creds, token, code)
    assert reply.status == 200 and reply.body["msg_cd"] == "MCA00000"
    output = reply.body["output"]
    for name in [
        "stck_prpr",
        "prdy_vrss",
        "prdy_vrss_sign",
        "prdy_ctrt",
        "acml_vol",
        "acml_tr_pbmn",
        "stck_oprc",
        "stck_hgpr",
        "stck_lwpr",
        "stck_mxpr",
        "stck_llam",
        "stck_sdpr",
        "wghn_avrg_stck_prc",
        "hts_avls",
        "per",
        "pbr",
        "eps",
        "bps",
        "w52_hgpr",
        "w52_lwpr",
        "stck_shrn_iscd",
        "temp_stop_yn",
    ]:
        assert isinstance(output[name], str), name
    assert len(output) >= 75 and all(isinstance(v, str) for v in output.values())
    assert output["stck_shrn_iscd"] == code and int(output["stck_prpr"]) > 0
    assert output["prdy_vrss_sign"] in "12345"
    assert int(output["stck_llam"]) <= int(output["stck_prpr"]) <= int(output["stck_mxpr"])

    unknown = await kis.price(http, sim.rest_url, creds, token, "999999")
    assert unknown.status == 200 and unknown.body["rt_cd"] == "0"
    assert unknown.body["output"]["stck_prpr"] == "0"


async def test_header_and_query_case_and_optional_custtype(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    creds = demo_credentials("case")
    token = await fresh_token(http, sim, "case")
    code = sim.universe_codes()[1]
    headers = {
        "Authorization": f"Bearer {token}",
        "AppKey": creds.app_key,
        "AppSecret": creds.app_secret,
        "TR_ID": "FHKST01010100",
        "x-unknown": "ignored",
    }
    params = {"fid_cond_mrkt_div_code": "J", "fid_input_iscd": code, "extra": "1"}
    reply = await kis.call(http, "GET", sim.rest_url + kis.PRICE, headers=headers, params=params)
    assert reply.status == 200 and reply.body["output"]["stck_shrn_iscd"] == code
    headers["TR_ID"] = "FHKST01010400"
    wrong = await kis.call(http, "GET", sim.rest_url + kis.PRICE, headers=headers, params=params)
    assert wrong.body["rt_cd"] == "1"


async def test_holidays_from_the_calendar(sim: SimExchange, http: aiohttp.ClientSession) -> None:
    creds = demo_credentials("holiday")
    token = await fresh_token(http, sim, "holiday")
    reply = await kis.call(
        http,
        "GET",
        sim.rest_url + kis.HOLIDAY,
        headers=kis.headers(creds, token, "CTCA0903R"),
        params={"BASS_DT": "20261224", "CTX_AREA_NK": "", "CTX_AREA_FK": ""},
    )
    assert reply.status == 200 and reply.body["rt_cd"] == "0"
    rows = reply.body["output"]
    assert rows[0]["bass_dt"] == "20261224"
    assert all(row["opnd_yn"] == "Y" for row in rows)  # always_open: every day trades
    async with SimExchange(settings(always_open=False)) as regular:
        token = await fresh_token(http, regular, "holiday")
        reply = await kis.call(
            http,
            "GET",
            regular.rest_url + kis.HOLIDAY,
            headers=kis.headers(creds, token, "CTCA0903R"),
            params={"BASS_DT": "20261224"},
        )
        flags = [row["opnd_yn"] for row in reply.body["output"][:4]]
        assert flags == ["Y", "N", "N", "N"]  # Thu, Christmas, Sat, Sun


async def test_trades_by_time_pages_return_exactly_the_generated_trades(
    http: aiohttp.ClientSession,
) -> None:
    async with SimExchange(settings(speed=60, backfill_page_rows=5)) as sim:
        creds = demo_credentials("pages")
        token = await fresh_token(http, sim, "pages")
        code = busiest(sim, 1)[0]
        await kis.poll(lambda: _has_trades(sim, code, 40))
        generated = sim.generated_trades(code)
        floor = generated[0].cumulative_volume - generated[0].volume
        rows = await kis.all_trades_down_to(http, sim.rest_url, creds, token, code, floor)
        served = sorted({int(row["acml_vol"]): row for row in rows}.values(), key=_acml)
        by_acml = {trade.cumulative_volume: trade for trade in sim.generated_trades(code)}
        assert len(served) == len(rows)  # no row was served twice
        assert [int(row["acml_vol"]) for row in served] == [
            t.cumulative_volume for t in by_acml.values() if t.cumulative_volume <= _acml(rows[0])
        ]
        for row in served:
            trade = by_acml[int(row["acml_vol"])]
            assert row["stck_cntg_hour"] == trade.time
            assert int(row["stck_prpr"]) == trade.price
            assert int(row["cntg_vol"]) == trade.volume == int(row["cnqn"])
            assert {"prdy_vrss", "prdy_vrss_sign", "prdy_ctrt"} <= row.keys()


def _acml(row: dict[str, str]) -> int:
    return int(row["acml_vol"])


async def _has_trades(sim: SimExchange, code: str, count: int) -> bool:
    return len(sim.generated_trades(code)) >= count


async def test_token_error_status_is_configurable(http: aiohttp.ClientSession) -> None:
    async with SimExchange(settings(token_error_http_status=200)) as sim:
        creds = demo_credentials("status 200")
        code = sim.universe_codes()[0]
        reply = await kis.price(http, sim.rest_url, creds, "not-a-token", code)
        assert reply.status == 200 and reply.body["rt_cd"] == "1"
        assert reply.body["msg_cd"] == "EGW00121"
        missing = await kis.call(
            http,
            "GET",
            sim.rest_url + kis.PRICE,
            headers={
                "appkey": creds.app_key,
                "appsecret": creds.app_secret,
                "tr_id": "FHKST01010100",
            },
            params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": code},
        )
        assert missing.body["msg_cd"] == "EGW00122"


async def test_volume_rank_is_the_top_30_by_traded_volume(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    creds = demo_credentials("volume rank")
    token = await fresh_token(http, sim, "volume rank")
    reply = await kis.volume_rank(http, sim.rest_url, creds, token)
    assert reply.status == 200 and reply.body["rt_cd"] == "0", reply.body
    assert reply.headers["tr_id"] == "FHPST01710000"
    rows = reply.body["output"]
    assert len(rows) == 30
    assert [row["data_rank"] for row in rows] == [str(n) for n in range(1, 31)]
    volumes = [int(row["acml_vol"]) for row in rows]
    assert volumes == sorted(volumes, reverse=True) and volumes[-1] > 0
    # Ranked by the simulator's own traded volume: nobody outside the answer traded more.
    listed = sim.universe_codes()
    ranked = {row["mksc_shrn_iscd"] for row in rows}
    assert ranked <= set(listed)
    model, now = sim.state.model, sim.state.clock.now()
    others = [model.process(code, now) for code in listed if code not in ranked]
    assert max(p.cumulative_volume for p in others if p is not None) <= volumes[-1] * 1.05
    for row in rows:
        assert int(row["stck_prpr"]) > 0 and row["hts_kor_isnm"]
        assert all(isinstance(value, str) for value in row.values())
    # A wrong tr_id is refused like on every quotation path.
    hdrs = kis.headers(creds, token, "FHKST01010100")
    wrong = await kis.call(http, "GET", sim.rest_url + kis.VOLUME_RANK, headers=hdrs)
    assert wrong.status == 500 and wrong.body["msg_cd"] == "OPSQ0002"


async def test_volume_rank_honours_the_rate_limit(http: aiohttp.ClientSession) -> None:
    async with SimExchange(settings(symbols=50, rate_limit=2.0)) as sim:  # 2/s: robust
        creds = demo_credentials("volume rank limit")
        token = await fresh_token(http, sim, "volume rank limit")
        replies = await asyncio.gather(
            *(kis.volume_rank(http, sim.rest_url, creds, token) for _ in range(25))
        )
        refused = [r for r in replies if r.status == 500 and r.body["msg_cd"] == "EGW00201"]
        assert len(refused) >= 10  # 25 at once at 2/s
        assert sim.stats()["requests"][kis.VOLUME_RANK]["EGW00201"] == len(refused)


async def test_well_known_codes_quote_real_prices(http: aiohttp.ClientSession) -> None:
    """Issue 15: 005930 answered rt_cd 0 with every price 0 (not in the seeded universe)."""
    async with SimExchange(settings(symbols=600)) as sim:
        universe = sim.state.model.universe
        known = {item.code: item for item in well_known_shares()}
        assert set(known) <= set(sim.universe_codes()) and len(sim.universe_codes()) == 600
        creds = demo_credentials("well known")
        token = await fresh_token(http, sim, "well known")
        for code in ("005930", "000660", "035720", "247540"):
            reply = await kis.price(http, sim.rest_url, creds, token, code)
            output = reply.body["output"]
            assert reply.body["rt_cd"] == "0" and output["stck_shrn_iscd"] == code
            price = int(output["stck_prpr"])
            assert 0.7 * known[code].base_price <= price <= 1.3 * known[code].base_price
            assert int(output["stck_sdpr"]) > 0 and int(output["lstn_stcn"]) > 0
        assert universe.instruments["005930"].name == "삼성전자"
        # Every listed symbol quotes a price, and the well-known ones are never delisted.
        now = sim.state.clock.now()
        for code in sim.universe_codes():
            process = sim.state.model.process(code, now)
            assert process is not None and process.price > 0, code
        later = set(universe.listed_on(date(2027, 6, 1)))
        assert set(known) <= later
    async with SimExchange(settings(symbols=200)) as small:  # small universes: seeded only
        assert not set(known) & set(small.universe_codes())


async def test_unknown_paths_are_404_and_not_counted(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    async with http.get(sim.rest_url + "/uapi/no/such/path") as response:
        assert response.status == 404
    assert "/uapi/no/such/path" not in sim.stats()["requests"]


@pytest.mark.slow  # real tools or real time: make test, not test-fast
async def test_every_symbol_is_kept_current_without_being_asked() -> None:
    """A symbol first asked for after hours must not have hours of trades to catch up on."""
    async with SimExchange(settings(speed=60), keeper_round_seconds=1.0) as sim:

        async def all_advanced() -> bool:
            return bool(sim.stats()["symbols_advanced"] == len(sim.universe_codes()))

        await kis.poll(all_advanced, timeout_s=20)  # within one keeper round (1 s here)


def test_docs_list_the_well_known_shares_as_they_are() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "sim.md").read_text(encoding="utf-8")
    rows = {
        cells[0]: cells
        for line in doc.splitlines()
        if line.startswith("| ")
        and (cells := [c.strip() for c in line.strip("|").split("|")])
        and len(cells) == 5
        and cells[0].isdigit()
    }
    known = well_known_shares()
    assert set(rows) == {item.code for item in known}
    for item in known:
        _, name, market, price, rate = rows[item.code]
        assert (name, market.lower()) == (item.name, item.market)
        assert int(price.replace(",", "")) == item.base_price
        assert float(rate) == item.trades_per_second
