"""A plain KIS client for the simulator tests, written from kis-protocol.md only.

Deliberately independent of Observer's own client: it calls the wire the way
any third-party KIS library would (aiohttp + websockets, literal paths,
headers and bodies), so the simulator is checked against the spec, not
against our client's assumptions.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection

from observer.credentials import Credentials

QUOTATIONS = "/uapi/domestic-stock/v1/quotations"
PRICE = f"{QUOTATIONS}/inquire-price"
TRADES = f"{QUOTATIONS}/inquire-time-itemconclusion"
HOLIDAY = f"{QUOTATIONS}/chk-holiday"
VOLUME_RANK = f"{QUOTATIONS}/volume-rank"
FIELDS_PER_RECORD = 46


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    json_body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Reply:
    async with http.request(method, url, json=json_body, headers=headers, params=params) as r:
        body = json.loads(await r.text())
        return Reply(r.status, body, dict(r.headers))


async def token(http: aiohttp.ClientSession, base: str, creds: Credentials) -> Reply:
    body = {"grant_type": "client_credentials", "appkey": creds.app_key}
    body["appsecret"] = creds.app_secret
    return await call(http, "POST", base + "/oauth2/tokenP", json_body=body)


async def approval_key(http: aiohttp.ClientSession, base: str, creds: Credentials) -> str:
    body = {"grant_type": "client_credentials", "appkey": creds.app_key}
    body["secretkey"] = creds.app_secret
    reply = await call(http, "POST", base + "/oauth2/Approval", json_body=body)
    assert reply.status == 200, reply.body
    key: str = reply.body["approval_key"]
    return key


def headers(creds: Credentials, access_token: str, tr_id: str) -> dict[str, str]:
    return {
        "content-type": "application/json; charset=utf-8",
        "authorization": f"Bearer {access_token}",
        "appkey": creds.app_key,
        "appsecret": creds.app_secret,
        "tr_id": tr_id,
        "custtype": "P",
    }


async def price(
    http: aiohttp.ClientSession, base: str, creds: Credentials, access_token: str, code: str
) -> Reply:
    params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": code}
    hdrs = headers(creds, access_token, "FHKST01010100")
    return await call(http, "GET", base + PRICE, headers=hdrs, params=params)


async def volume_rank(
    http: aiohttp.ClientSession, base: str, creds: Credentials, access_token: str
) -> Reply:
    """The query the broker's own sample sends (v1_국내주식-047)."""
    params = {
        "FID_COND_MRKT_DIV_CODE": "J",
        "FID_COND_SCR_DIV_CODE": "20171",
        "FID_INPUT_ISCD": "0000",
        "FID_DIV_CLS_CODE": "0",
        "FID_BLNG_CLS_CODE": "0",
        "FID_TRGT_CLS_CODE": "111111111",
        "FID_TRGT_EXLS_CLS_CODE": "000000",
        "FID_INPUT_PRICE_1": "",
        "FID_INPUT_PRICE_2": "",
        "FID_VOL_CNT": "",
        "FID_INPUT_DATE_1": "",
    }
    hdrs = headers(creds, access_token, "FHPST01710000")
    return await call(http, "GET", base + VOLUME_RANK, headers=hdrs, params=params)


async def trades_page(
    http: aiohttp.ClientSession,
    base: str,
    creds: Credentials,
    access_token: str,
    code: str,
    hour: str,
) -> Reply:
    params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": code, "FID_INPUT_HOUR_1": hour}
    hdrs = headers(creds, access_token, "FHPST01060000")
    return await call(http, "GET", base + TRADES, headers=hdrs, params=params)


def second_before(hhmmss: str) -> str | None:
    seconds = int(hhmmss[:2]) * 3600 + int(hhmmss[2:4]) * 60 + int(hhmmss[4:]) - 1
    if seconds < 0:
        return None
    return f"{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}"


async def all_trades_down_to(
    http: aiohttp.ClientSession,
    base: str,
    creds: Credentials,
    access_token: str,
    code: str,
    down_to_acml: int,
) -> list[dict[str, str]]:
    """Page newest→oldest (each page ends on a whole second) until acml_vol ≤ down_to_acml."""
    rows: list[dict[str, str]] = []
    hour: str | None = "235959"
    while hour is not None:
        reply = await trades_page(http, base, creds, access_token, code, hour)
        assert reply.body["rt_cd"] == "0", reply.body
        page = reply.body["output2"]
        rows.extend(page)
        if not page or reply.headers.get("tr_cont") != "M":
            break
        if int(page[-1]["acml_vol"]) <= down_to_acml:
            break
        hour = second_before(page[-1]["stck_cntg_hour"])
    return rows


def subscribe_message(approval: str, code: str, tr_type: str = "1") -> str:
    return json.dumps(
        {
            "header": {
                "approval_key": approval,
                "custtype": "P",
                "tr_type": tr_type,
                "content-type": "utf-8",
            },
            "body": {"input": {"tr_id": "H0STCNT0", "tr_key": code}},
        }
    )


def parse_data_frame(text: str) -> list[list[str]]:
    """Records of a ``0|H0STCNT0|NNN|…`` frame (46 fields each)."""
    enc, tr_id, count, payload = text.split("|", 3)
    assert enc == "0" and tr_id == "H0STCNT0", text[:40]
    fields = payload.split("^")
    records = [fields[i : i + FIELDS_PER_RECORD] for i in range(0, len(fields), FIELDS_PER_RECORD)]
    assert len(records) == int(count), text[:60]
    assert all(len(record) == FIELDS_PER_RECORD for record in records)
    return records


async def receive_until(
    ws: ClientConnection,
    done: Callable[[], bool],
    on_text: Callable[[str], Awaitable[None] | None],
    timeout_s: float = 20.0,
) -> None:
    """Feed every message to ``on_text`` until ``done()`` or the bound expires (AssertionError)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        remaining = deadline - time.monotonic()
        assert remaining > 0, "condition not reached within the bound"
        try:
            message = await asyncio.wait_for(ws.recv(), remaining)
        except TimeoutError:
            continue
        text = message if isinstance(message, str) else message.decode()
        result = on_text(text)
        if result is not None:
            await result


async def poll(condition: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Re-check ``condition`` every 50 ms until true; AssertionError past the bound."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached within the bound"
        await asyncio.sleep(0.05)
