"""The exporter behind TLS and basic auth (a real web-config file) under hostile clients.

Each test runs a real exporter on loopback and plays one kind of attacker against
it: password guessing that probes which users exist, a flood of wrong credentials,
slow and idle connections, more connections than the cap, headers that carry a
credential into an error line.
"""

from __future__ import annotations

import base64
import ssl
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from exporter.server import ExporterServer
from exporter.webconfig import WebConfig, load_web_config
from metrics.registry import Metrics
from observer.errors import ConfigError
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
async def running(metrics: Metrics, web_config: WebConfig) -> AsyncIterator[ExporterServer]:
    server = ExporterServer(metrics, web_config=web_config, version="test")
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


def test_users_hashed_at_different_costs_are_refused(tmp_path: Path, pki: Pki) -> None:
    users = {USER: hashed(PASSWORD, 5), "grafana": hashed(PASSWORD, 4)}
    path = write_web_config(tmp_path, pki, users)
    with pytest.raises(ConfigError) as error:
        load_web_config(path)
    message = str(error.value)
    assert "basic_auth_users: grafana: bcrypt cost 4 differs from 5" in message
    assert "\n" not in message and str(path) in message
