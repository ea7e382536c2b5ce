"""KisClient calls against the simulator, and the one-line log format with secrets masked."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import logging
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from metrics.registry import Metrics
from observer.config import TokenSettings
from observer.credentials import demo_credentials
from observer.kis.client import KisClient
from observer.kis.errors import KisApiError
from observer.limiter import RateLimiter
from observer.logs import OneLineFormatter, RepeatFilter, SecretMask
from observer.market import kst_day
from observer.sim import SimExchange
from observer.universe import fetch_share_codes
from tests.core.conftest import sim_settings, value, wait_for

SECRETS: list[str] = []  # what the client reported through on_secret, per test


@pytest.fixture
async def client(metrics: Metrics) -> AsyncIterator[tuple[KisClient, SimExchange]]:
    async with (
        SimExchange(sim_settings(symbols=30, speed=60)) as sim,
        aiohttp.ClientSession() as http,
    ):
        kis = KisClient(
            http,
            sim.rest_url,
            demo_credentials("client-test"),
            limiter=RateLimiter(100.0, metrics=metrics),
            metrics=metrics,
            on_secret=SECRETS.append,
        )
        yield kis, sim
        SECRETS.clear()


async def test_calls_return_parsed_records(
    client: tuple[KisClient, SimExchange], metrics: Metrics
) -> None:
    kis, sim = client
    codes = await fetch_share_codes(kis.master_file)
    assert codes == set(sim.universe_codes())
    symbol = sorted(codes)[0]
    snapshot = await kis.inquire_price(symbol)
    assert snapshot.symbol == symbol and snapshot.price > 0 and "stck_prpr" in snapshot.fields
    today = kst_day(snapshot.collected_at)
    assert (await kis.holidays(today))[today] is True  # always open
    key = await kis.approval_key()
    assert key == await kis.approval_key() and sim.stats()["approval_keys_issued"] == 1
    assert await kis.approval_key(renew=True) != key
    assert len(SECRETS) == 3 and key in SECRETS  # the token and both approval keys


async def test_trades_by_time_pages_back_newest_first(
    client: tuple[KisClient, SimExchange],
) -> None:
    kis, sim = client

    def busiest() -> str:
        return max(sim.universe_codes(), key=lambda code: len(sim.generated_trades(code)))

    await wait_for(lambda: len(sim.generated_trades(busiest())) > 3, what="simulated trades")
    symbol = busiest()
    generated = sim.generated_trades(symbol)
    page = await kis.trades_by_time(symbol, "235959", business_date=generated[-1].business_date)
    volumes = [trade.cumulative_volume for trade in page.trades]
    assert (
        volumes == sorted(volumes, reverse=True) and volumes[0] == generated[-1].cumulative_volume
    )
    assert all(trade.source == "backfill" for trade in page.trades)
    if len(generated) > len(page.trades):
        assert page.more


async def test_unknown_symbol_answers_a_zeroed_snapshot(
    client: tuple[KisClient, SimExchange], metrics: Metrics
) -> None:
    kis, _ = client
    snapshot = await kis.inquire_price("999999")
    assert snapshot.price == 0
    assert (
        value(metrics, "observer_api_requests_total", endpoint="inquire_price", outcome="ok") == 1
    )


def test_log_lines_are_one_line_and_masked() -> None:
    credentials = demo_credentials("log-test")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    mask = SecretMask(credentials.secrets())
    mask.add("eyJhbGciOiJIUzUxMiJ9.token")
    handler.setFormatter(OneLineFormatter(mask))
    logger = logging.getLogger("observer.test.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "first\nsecond key=%s token=%s", credentials.app_key, "eyJhbGciOiJIUzUxMiJ9.token"
        )
        try:
            raise ValueError(f"bad {credentials.app_secret}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("warning observer.test.logs first\\nsecond key=*** token=***")
    assert "ValueError" in lines[1]
    for secret in credentials.secrets():
        assert secret not in stream.getvalue()


async def test_an_unreachable_broker_is_named_with_its_os_error(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15: ``token issuance failed code=ClientConnectorError`` said neither where nor why."""
    with socket.socket() as probe:  # a port nobody listens on: connecting is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    credentials = demo_credentials("unreachable")
    caplog.set_level(logging.WARNING, logger="observer.kis.token")
    async with aiohttp.ClientSession() as http:
        kis = KisClient(
            http,
            f"http://127.0.0.1:{port}",
            credentials,
            limiter=RateLimiter(100.0, metrics=metrics),
            metrics=metrics,
            token_settings=TokenSettings(min_issue_interval_seconds=0.05),
        )
        task = asyncio.create_task(kis.tokens.get())
        try:
            await wait_for(
                lambda: any("token issuance failed" in r.getMessage() for r in caplog.records),
                what="the failure logged",
            )
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    line = next(r.getMessage() for r in caplog.records if "token issuance failed" in r.getMessage())
    assert f"POST http://127.0.0.1:{port}/oauth2/tokenP" in line, line
    assert f"errno={errno.ECONNREFUSED} ECONNREFUSED" in line, line
    assert "code=ClientConnectorError" in line
    for secret in credentials.secrets():
        assert secret not in line


def test_a_flood_of_one_warning_is_cut_to_a_few_lines_and_counted() -> None:
    now = [1000.0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter())
    handler.addFilter(RepeatFilter(lines=2, window_seconds=10.0, clock=lambda: now[0]))
    flooding, other = logging.getLogger("observer.test.flood"), logging.getLogger("observer.test.x")
    for logger in (flooding, other):
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
    try:
        for fd in range(500):  # one kind: the same format string, whatever its arguments
            flooding.error("socket.accept() out of system resource fd=%d", fd)
            flooding.info("progress step=%d", fd)  # INFO is never cut
            now[0] += 0.01
        other.warning("another kind passes")
        flooding.warning("socket.accept() out of system resource fd=%d", 0)  # another level
        now[0] += 10.0
        flooding.error("socket.accept() out of system resource fd=%d", 7)
        flooding.error("socket.accept() out of system resource fd=%d", 8)
    finally:
        for logger in (flooding, other):
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
    lines = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]
    assert sum("progress" in line for line in lines) == 500
    assert [line for line in lines if "progress" not in line] == [
        "error observer.test.flood socket.accept() out of system resource fd=0",
        "error observer.test.flood socket.accept() out of system resource fd=1",
        "warning observer.test.x another kind passes",
        "warning observer.test.flood socket.accept() out of system resource fd=0",
        "error observer.test.flood socket.accept() out of system resource fd=7 suppressed=498",
        "error observer.test.flood socket.accept() out of system resource fd=8",
    ]


async def test_a_refused_call_names_the_url_and_status(
    client: tuple[KisClient, SimExchange], metrics: Metrics
) -> None:
    kis, sim = client
    await kis.inquire_price(sim.universe_codes()[0])  # a token first
    await sim.inject(
        {"kind": "rest_errors", "msg_cd": "OPSQ2000", "http_status": 500, "seconds": 5}
    )
    with pytest.raises(KisApiError) as refused:
        await kis.inquire_price(sim.universe_codes()[0])
    text = str(refused.value)
    path = "/uapi/domestic-stock/v1/quotations/inquire-price"
    assert f"GET {sim.rest_url}{path} HTTP 500: " in text, text
    assert "FID_INPUT_ISCD" not in text  # no query in the message
