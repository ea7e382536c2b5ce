"""``observer sim`` as a process: help, bound URLs on port 0, serving, clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
from websockets.asyncio.client import connect

from observer.credentials import Credentials, demo_credentials
from tests.sim import kis


async def _run(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "observer",
        "sim",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


async def test_help_lists_the_options() -> None:
    process = await _run("--help")
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    for option in ("--listen", "--ws-listen", "--symbols", "--seed", "--rate-limit", "--speed"):
        assert option in out.decode()


async def test_sim_serves_on_port_0_and_stops_cleanly(http: aiohttp.ClientSession) -> None:
    mine = demo_credentials("command")
    process = await _run(
        "--listen",
        "127.0.0.1:0",
        "--ws-listen",
        "127.0.0.1:0",
        "--symbols",
        "60",
        "--seed",
        "3",
        env={"KIS_APP_KEY": mine.app_key, "KIS_APP_SECRET": mine.app_secret},
    )
    try:
        assert process.stdout is not None
        urls = {}
        for _ in range(2):
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().split()
            urls[line[0]] = line[1]
        rest_url, ws_url = urls["rest_url"], urls["ws_url"]
        assert rest_url.startswith("http://127.0.0.1:") and not rest_url.endswith(":0")
        stats = await kis.call(http, "GET", rest_url + "/sim/stats")
        assert stats.status == 200 and stats.body["ws_sessions_open"] == 0
        # Restricted to the pair in KIS_APP_KEY/KIS_APP_SECRET:
        refused = await kis.token(http, rest_url, demo_credentials("someone else"))
        assert refused.body["error_code"] == "EGW00103"
        assert (await kis.token(http, rest_url, mine)).status == 200
        async with connect(ws_url):
            pass
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    printed = out.decode() + err.decode()
    assert mine.app_key not in printed and mine.app_secret not in printed
    assert "credentials restricted" in out.decode()


async def test_sim_prints_a_pair_it_accepts_and_a_liquid_symbol(
    http: aiohttp.ClientSession,
) -> None:
    """Issue 15: a first try with ``appkey: k`` got a Korean refusal and no hint why."""
    process = await _run(
        *("--listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0", "--symbols", "600"),
        env={"KIS_APP_KEY": "", "KIS_APP_SECRET": ""},
    )
    try:
        assert process.stdout is not None
        printed = {}
        for _ in range(5):
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode().split()
            printed[line[0]] = line[1]
        assert len(printed["app_key"]) == 36 and len(printed["app_secret"]) == 180
        assert printed["symbol"] == "005930"
        pair = Credentials(printed["app_key"], printed["app_secret"])
        granted = await kis.token(http, printed["rest_url"], pair)
        assert granted.status == 200, granted.body
        token = granted.body["access_token"]
        quote = await kis.price(http, printed["rest_url"], pair, token, printed["symbol"])
        assert quote.body["rt_cd"] == "0" and int(quote.body["output"]["stck_prpr"]) > 0
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert "any app key of 36 characters with an app secret of 180 is accepted" in err.decode()
    assert "try symbol 005930 (삼성전자)" in err.decode()


async def test_bad_options_exit_with_a_clear_message() -> None:
    process = await _run("--symbols", "0", "--listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0")
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert "symbols" in err.decode()
