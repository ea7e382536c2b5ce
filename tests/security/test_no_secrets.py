"""``observer run`` against the simulator: no secret in logs, /metrics, summary, files, SQLite.

The simulator runs in-process, accepting only one known app key and secret, so
the test knows every secret of the run: the credentials, and the access tokens
and approval keys the exchange issued (read from its token authority).
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
import yaml

from observer.credentials import demo_credentials
from observer.sim import SimExchange
from tests.core.conftest import sim_settings
from tests.tracking.sink import EnvelopeSink

pytestmark = pytest.mark.slow
CREDENTIALS = demo_credentials("security-e2e")
WITHIN_S = 60.0


def issued_secrets(sim: SimExchange) -> set[str]:
    """Every access token and approval key the exchange handed out (no public accessor)."""
    authority = sim.state.tokens
    return set(authority._tokens) | set(authority._approvals)


def leaks(data: bytes, secrets: set[str]) -> list[str]:
    """Which secrets (by position in a sorted list, never by value) appear in ``data``,
    whole, URL-encoded, or in part (any 16 characters of one: a truncated log line)."""
    text = data.decode("utf-8", "replace")
    found = []
    for index, secret in enumerate(sorted(secrets)):
        forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
        forms |= {secret[i : i + 16] for i in range(len(secret) - 15)}
        if any(form in text for form in forms):
            found.append(f"secret #{index} ({len(secret)} chars)")
    return found


@asynccontextmanager
async def observer_run(
    sim: SimExchange, data_dir: Path, export_dir: Path, *, sentry_dsn: str | None = None
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    config = data_dir.parent / "observer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "log_level": "DEBUG",  # the most talkative run is the strictest check
                "rate_limit": {"rate_per_second": 50.0},
                # Sweep and subscribe whatever the hour, so every path that holds a
                # secret runs: token, sweeps, approval key, subscribe messages.
                "track_a": {"sweep_when_closed": True},
                "track_b": {"price_move_pct": 0.01, "volume_surge_ratio": 1.01},
                "token": {"min_issue_interval_seconds": 1.0},
                "storage": {"flush_interval_seconds": 0.05},
                "exporter": {"export_interval_seconds": 0.2},
            }
        )
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("OBSERVER_")}
    env |= {"KIS_APP_KEY": CREDENTIALS.app_key, "KIS_APP_SECRET": CREDENTIALS.app_secret}
    env.pop("SENTRY_DSN", None)
    if sentry_dsn is not None:  # every sweep and REST call traced, every breadcrumb kept
        env |= {"SENTRY_DSN": sentry_dsn, "OBSERVER_SENTRY__TRACES_SAMPLE_RATE": "1.0"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "observer", "run", "--config", str(config),
        "--provider", "kis", "--rest-url", sim.rest_url, "--ws-url", sim.ws_url,
        "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), "--export-dir", str(export_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), WITHIN_S)
        if not line.startswith(b"exporter_url "):
            _, stderr = await asyncio.wait_for(process.communicate(), WITHIN_S)
            raise AssertionError(f"observer run did not start: {stderr.decode()[-2000:]}")
        yield process, line.decode().split()[1]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def wait_until(condition: object, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WITHIN_S
    while not await condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def fetch(http: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, bytes]:
    async with http.get(url, headers=headers) as response:
        return response.status, await response.read()


async def test_no_secret_anywhere_and_the_token_cache_is_private(
    tmp_path: Path, sentry_sink: EnvelopeSink
) -> None:
    data_dir, export_dir = tmp_path / "data", tmp_path / "export"
    # speed 20: prices move enough between sweeps for triggers, hence subscriptions.
    settings = sim_settings(symbols=40, token_min_interval_seconds=1.0, speed=20.0)
    bodies: list[bytes] = []
    async with (
        SimExchange(
            settings, app_key=CREDENTIALS.app_key, app_secret=CREDENTIALS.app_secret
        ) as sim,
        observer_run(sim, data_dir, export_dir, sentry_dsn=sentry_sink.dsn) as (process, url),
        aiohttp.ClientSession() as http,
    ):

        async def ready() -> bool:
            status, _ = await fetch(http, url + "/readyz")
            return status == 200 and sim.stats()["registrations"] >= 3

        await wait_until(ready, "a complete sweep and WebSocket subscriptions")
        await wait_until(
            lambda: asyncio.sleep(0, (export_dir / "summary.json").exists()), "the file export"
        )
        for path, headers in [
            ("/metrics", {}),
            ("/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}),
            ("/metrics", {"Accept-Encoding": "identity"}),
            ("/api/summary", {}),
            ("/readyz", {}),
            ("/", {}),
        ]:
            status, body = await fetch(http, url + path, **headers)
            assert status == 200, path
            bodies.append(body)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), WITHIN_S)
        assert process.returncode == 0, stderr.decode()[-2000:]
        secrets = {*CREDENTIALS.secrets(), *issued_secrets(sim)}
        # Observer flushes Sentry on exit: what it sent is all there now.
        transactions = sentry_sink.items("transaction")
        envelopes = [envelope.raw for envelope in sentry_sink.envelopes]

    # The token cache: private, and its token is one the exchange issued.
    (cache,) = data_dir.glob("**/token-*.json")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) & 0o077 == 0
    cached_token = yaml.safe_load(cache.read_text())["access_token"]
    assert cached_token in secrets and len(secrets) >= 4

    assert b"\n" in stderr and b" info " in stderr  # the logs were really read
    outputs = {"stdout": stdout, "stderr": stderr}
    outputs |= {f"scrape {i}": body for i, body in enumerate(bodies)}
    outputs |= {f"sentry envelope {i}": raw for i, raw in enumerate(envelopes)}
    assert transactions, "Sentry received no transaction: the report path was not exercised"
    files = [p for p in [*data_dir.rglob("*"), *export_dir.rglob("*")] if p.is_file()]
    assert any(p.name.endswith(".sqlite") for p in files)
    outputs |= {str(p): p.read_bytes() for p in files if p != cache}
    found = {name: leaked for name, data in outputs.items() if (leaked := leaks(data, secrets))}
    assert not found, f"secrets found in: {found}"


def token_requests(sim: SimExchange) -> int:
    return sum(sim.stats()["requests"].get("/oauth2/tokenP", {}).values())


async def test_a_group_readable_token_cache_is_not_used(tmp_path: Path) -> None:
    data_dir, export_dir = tmp_path / "data", tmp_path / "export"
    settings = sim_settings(symbols=20, token_min_interval_seconds=0.0)
    async with SimExchange(
        settings, app_key=CREDENTIALS.app_key, app_secret=CREDENTIALS.app_secret
    ) as sim:
        for round_ in range(2):
            async with (
                observer_run(sim, data_dir, export_dir) as (process, url),
                aiohttp.ClientSession() as http,
            ):

                async def ready() -> bool:
                    return (await fetch(http, url + "/readyz"))[0] == 200

                await wait_until(ready, "readiness")
                process.send_signal(signal.SIGTERM)
                _, stderr = await asyncio.wait_for(process.communicate(), WITHIN_S)
                assert process.returncode == 0
            (cache,) = data_dir.glob("**/token-*.json")
            assert stat.S_IMODE(cache.stat().st_mode) == 0o600
            if round_ == 0:
                assert token_requests(sim) == 1
                os.chmod(cache, 0o644)  # as if copied carelessly: others could read it
            else:
                # The exposed cache was not trusted: a token was asked for again and
                # the cache rewritten privately (mode checked above).
                assert token_requests(sim) == 2
                assert b"group/world accessible" in stderr
