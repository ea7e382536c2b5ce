"""The exporter behind TLS and basic auth (a real web-config file) under hostile clients.

Each test runs a real exporter on loopback and plays one kind of attacker against
it: password guessing that probes which users exist, a flood of wrong credentials,
slow and idle connections, more connections than the cap, headers that carry a
credential into an error line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import logging
import ssl
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from exporter.connections import DESCRIPTORS_KEPT_FOR_COLLECTOR, ConnectionLimits, connection_cap
from exporter.server import ExporterServer
from exporter.webconfig import Verdict, WebConfig, load_web_config
from metrics.registry import Metrics
from observer.errors import ConfigError
from observer.logs import OneLineFormatter
from tests.security.certs import Pki

USER, PASSWORD = "prometheus", "scrape-Pa55word"
# Cost 11 (about 0.1 s here): dear enough that a cheaper dummy hash would show.
COST = 11


def hashed(password: str, cost: int) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def write_web_config(directory: Path, pki: Pki, users: dict[str, str]) -> Path:
    lines = ["tls_server_config:", f"  cert_file: {pki.server_cert}"]
    lines += [f"  key_file: {pki.server_key}", "basic_auth_users:"]
    lines += [f"  {user}: '{hash_}'" for user, hash_ in users.items()]
    path = directory / "web.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def user_hash() -> str:
    return hashed(PASSWORD, COST)


@pytest.fixture
def web_config(tmp_path: Path, pki: Pki, user_hash: str) -> WebConfig:
    return load_web_config(write_web_config(tmp_path, pki, {USER: user_hash}))


@pytest.fixture
def tls(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca_cert))


@asynccontextmanager
async def running(
    metrics: Metrics, web_config: WebConfig, limits: ConnectionLimits | None = None
) -> AsyncIterator[ExporterServer]:
    server = ExporterServer(metrics, web_config=web_config, limits=limits, version="test")
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


async def timed_get(
    http: aiohttp.ClientSession, url: str, tls: ssl.SSLContext, auth: str
) -> tuple[int, float]:
    started = time.perf_counter()
    async with http.get(url, ssl=tls, headers={"Authorization": auth}) as response:
        await response.read()
        return response.status, time.perf_counter() - started


async def test_a_failed_attempt_costs_the_same_for_unknown_and_known_users(
    metrics: Metrics, web_config: WebConfig, tls: ssl.SSLContext
) -> None:
    known: list[float] = []
    unknown: list[float] = []
    async with running(metrics, web_config) as server, aiohttp.ClientSession() as http:
        url = f"{server.url}/metrics"
        for attempt in range(9):  # interleaved, so load on the machine hits both alike
            status, elapsed = await timed_get(http, url, tls, basic(USER, f"guess-{attempt}"))
            assert status == 401
            known.append(elapsed)
            status, elapsed = await timed_get(http, url, tls, basic(f"u{attempt}", "guess"))
            assert status == 401
            unknown.append(elapsed)
    known_s, unknown_s = statistics.median(known), statistics.median(unknown)
    assert max(known_s, unknown_s) / min(known_s, unknown_s) < 1.5, (known_s, unknown_s)
    # Each attempt was a real bcrypt round at the configured cost, not a cache answer.
    assert web_config.bcrypt_checks == 18


async def wait_for(condition: Callable[[], bool], within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_a_flood_of_wrong_credentials_does_not_delay_an_authenticated_scrape(
    metrics: Metrics, web_config: WebConfig, tls: ssl.SSLContext
) -> None:
    async with (
        running(metrics, web_config) as server,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=48)) as attacker,
        aiohttp.ClientSession() as prometheus,
    ):
        url, good = f"{server.url}/metrics", basic(USER, PASSWORD)
        # Prometheus scraped before the attack began, as it does every 15 s.
        assert (await timed_get(prometheus, url, tls, good))[0] == 200

        async def guess(attempt: int) -> int:
            user = USER if attempt % 3 == 0 else f"user-{attempt}"  # known and unknown
            return (await timed_get(attacker, url, tls, basic(user, f"guess-{attempt}")))[0]

        flood = [asyncio.ensure_future(guess(attempt)) for attempt in range(400)]
        try:
            # Under way: the bcrypt executor is busy and guesses are being turned away.
            await wait_for(lambda: web_config.bcrypt_checks > 4 and web_config.busy_refusals > 0)
            status, during_s = await timed_get(prometheus, url, tls, good)
            assert status == 200 and during_s < 1.0, during_s
            statuses = await asyncio.gather(*flood)
        finally:
            for attempt in flood:
                attempt.cancel()
        status, after_s = await timed_get(prometheus, url, tls, good)
        assert status == 200 and after_s < 1.0, after_s
    assert set(statuses) == {401, 503}  # judged (401) or turned away unjudged (503)
    # The flood's bcrypt rounds were bounded: far fewer than its 400 guesses.
    assert web_config.bcrypt_checks + web_config.busy_refusals >= 400
    assert web_config.bcrypt_checks < 200


async def test_busy_is_answered_alike_for_any_user_and_verified_credentials_stay(
    user_hash: str,
) -> None:
    config = WebConfig(basic_auth_users={USER: user_hash}, max_pending_checks=2)
    try:
        assert await config.verify(USER, PASSWORD) is Verdict.ACCEPTED
        # Two distinct guesses in flight fill the queue; a third is turned away, known
        # user or not, while the verified credentials are still accepted at once.
        pending = [asyncio.ensure_future(config.verify(USER, f"guess-{n}")) for n in range(2)]
        await asyncio.sleep(0)
        assert await config.verify(USER, "guess-x") is Verdict.BUSY
        assert await config.verify("nobody", "guess-x") is Verdict.BUSY
        assert await config.verify(USER, PASSWORD) is Verdict.ACCEPTED
        assert [await p for p in pending] == [Verdict.REFUSED, Verdict.REFUSED]
        # Failures fill their own cache: 20 of them (cache of 8) do not evict the verified entry.
        small = WebConfig(basic_auth_users={USER: hashed(PASSWORD, 4)}, refused_cache_size=8)
        assert await small.verify(USER, PASSWORD) is Verdict.ACCEPTED
        for n in range(20):
            assert await small.verify(f"u{n}", "x") is Verdict.REFUSED
        checks = small.bcrypt_checks
        assert await small.verify(USER, PASSWORD) is Verdict.ACCEPTED
        assert small.bcrypt_checks == checks
        small.close()
    finally:
        config.close()


def test_users_hashed_at_different_costs_are_refused(tmp_path: Path, pki: Pki) -> None:
    users = {USER: hashed(PASSWORD, 5), "grafana": hashed(PASSWORD, 4)}
    path = write_web_config(tmp_path, pki, users)
    with pytest.raises(ConfigError) as error:
        load_web_config(path)
    message = str(error.value)
    assert "basic_auth_users: grafana: bcrypt cost 4 differs from 5" in message
    assert "\n" not in message and str(path) in message


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(server: ExporterServer, tls: ssl.SSLContext | None) -> Stream:
    return await asyncio.open_connection(
        server.host, server.port, ssl=tls, server_hostname="localhost" if tls else None
    )


async def seconds_until_closed(reader: asyncio.StreamReader, within_s: float) -> float:
    """How long until the server closes the connection (EOF or reset); fails after ``within_s``."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(within_s):
            while await reader.read(65536):
                pass
    except (ConnectionError, ssl.SSLError):
        pass
    return time.monotonic() - started


async def request(writer: asyncio.StreamWriter, auth: str) -> None:
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode())
    await writer.drain()


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    return int(head.split()[1])


async def test_slow_header_and_idle_connections_are_closed_within_the_time_outs(
    metrics: Metrics, web_config: WebConfig, tls: ssl.SSLContext
) -> None:
    header_s, idle_s = 1.0, 1.5
    limits = ConnectionLimits(header_timeout_seconds=header_s, idle_timeout_seconds=idle_s)
    async with running(metrics, web_config, limits) as server:

        async def trickling() -> float:  # a header byte every 0.1 s, never finished
            reader, writer = await connect(server, tls)
            started = time.monotonic()

            async def trickle() -> None:
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    for byte in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(0.1)

            sender = asyncio.ensure_future(trickle())
            await seconds_until_closed(reader, header_s + 10)
            sender.cancel()
            writer.close()
            return time.monotonic() - started

        async def silent(context: ssl.SSLContext | None) -> float:  # connects, says nothing
            reader, writer = await connect(server, context)
            closed_s = await seconds_until_closed(reader, header_s + 10)
            writer.close()
            return closed_s

        async def idle_after_a_scrape() -> float:  # keep-alive, then nothing
            reader, writer = await connect(server, tls)
            await request(writer, basic(USER, PASSWORD))
            assert await read_response(reader) == 200
            closed_s = await seconds_until_closed(reader, idle_s + 10)
            writer.close()
            return closed_s

        trickled_s, silent_tls_s, silent_tcp_s, idle_closed_s = await asyncio.gather(
            trickling(), silent(tls), silent(None), idle_after_a_scrape()
        )
    # Closed by the time-outs: not before them, and well within the test's bound.
    for closed_s in (trickled_s, silent_tls_s, silent_tcp_s):
        assert header_s * 0.9 <= closed_s < header_s + 5, (trickled_s, silent_tls_s, silent_tcp_s)
    assert idle_s * 0.9 <= idle_closed_s < idle_s + 5, idle_closed_s


def test_the_cap_leaves_descriptors_to_the_collector() -> None:
    kept = DESCRIPTORS_KEPT_FOR_COLLECTOR
    assert connection_cap(128, None) == 128  # no descriptor limit
    assert connection_cap(128, 20_000) == 128
    assert connection_cap(5000, 1000) == 1000 - kept
    assert connection_cap(128, kept + 10) == 10
    assert connection_cap(128, 5) == 1  # the exporter still answers, one at a time


async def test_connections_beyond_the_cap_are_closed_before_any_tls_work(
    metrics: Metrics, web_config: WebConfig, tls: ssl.SSLContext
) -> None:
    cap = 40
    limits = ConnectionLimits(max_connections=cap, header_timeout_seconds=60)
    async with running(metrics, web_config, limits) as server:

        async def attempt() -> Stream | None:
            try:
                return await connect(server, tls)
            except (ConnectionError, ssl.SSLError):
                return None

        # 500 parallel TLS clients: the cap's worth complete a handshake and are held,
        # every other one is closed at once.
        attempts = await asyncio.gather(*(attempt() for _ in range(500)))
        held = [stream for stream in attempts if stream is not None]
        assert len(held) == cap and server.open_connections == cap
        assert server.refused_connections == 500 - cap
        for _reader, writer in held:
            writer.close()
        await wait_for(lambda: server.open_connections == 0)
        # The slots come back: a scrape is served again.
        async with aiohttp.ClientSession() as http:
            status, _ = await timed_get(http, f"{server.url}/metrics", tls, basic(USER, PASSWORD))
        assert status == 200


CREDENTIAL = base64.b64encode(f"{USER}:{PASSWORD}".encode())
TOKEN = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwcm9tZXRoZXVzIn0.c2lnbmF0dXJlLXZhbHVlLTEyMw"


@pytest.mark.parametrize(
    "value",
    [
        b"Basic " + CREDENTIAL[:10] + b"\x01" + CREDENTIAL[10:],  # a stray byte inside
        b"Basic " + CREDENTIAL + b"\x01",
        b"Bearer " + TOKEN[:30] + b"\x7f" + TOKEN[30:],
        b"Basic " + CREDENTIAL + b"A" * 9000,  # longer than aiohttp's header line limit
    ],
    ids=["control-byte-inside", "control-byte-after", "bearer-del-byte", "line-too-long"],
)
async def test_a_malformed_authorization_header_reaches_no_log_and_no_answer(
    metrics: Metrics,
    web_config: WebConfig,
    tls: ssl.SSLContext,
    caplog: pytest.LogCaptureFixture,
    value: bytes,
) -> None:
    caplog.set_level(logging.DEBUG)
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(OneLineFormatter())
    logging.getLogger().addHandler(handler)
    try:
        async with running(metrics, web_config) as server:
            reader, writer = await connect(server, tls)
            writer.write(
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: " + value + b"\r\n\r\n"
            )
            answer = await reader.read()
            writer.close()
    finally:
        logging.getLogger().removeHandler(handler)
    assert answer.startswith((b"HTTP/1.0 4", b"HTTP/1.1 4")), answer[:40]
    # Every record as logged (tracebacks included), the lines Observer writes, the answer.
    output = "\n".join((caplog.text, lines.getvalue(), answer.decode("latin-1")))
    assert "bad request" in lines.getvalue()
    secrets = {CREDENTIAL.decode(), PASSWORD, f"{USER}:{PASSWORD}", TOKEN.decode()}
    pieces = {secret[i : i + 12] for secret in secrets for i in range(len(secret) - 11)}
    assert not [piece for piece in pieces if piece in output]
