"""TokenManager: single-flight, 60 s issuance guard, disk cache (0600, atomic), refresh margin."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import pytest

from metrics import catalog
from metrics.registry import Metrics
from observer.config import TokenSettings
from observer.credentials import demo_credentials
from observer.kis.errors import KisApiError, TokenUnavailableError, classify
from observer.kis.token import (
    AccessToken,
    TokenCache,
    TokenManager,
    TokenState,
    ensure_private_directory,
    parse_token_answer,
)

DAY = 86400.0


class FakeTime:
    """A clock that only moves when the manager sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Issuer:
    """Issues numbered tokens; ``refusals`` lists error codes to answer first."""

    def __init__(self, clock: FakeTime, refusals: list[str] | None = None) -> None:
        self.clock = clock
        self.refusals = list(refusals or [])
        self.calls = 0
        self.issued = 0

    async def __call__(self) -> AccessToken:
        self.calls += 1
        await asyncio.sleep(0.001)
        if self.refusals:
            code = self.refusals.pop(0)
            failure = classify(error_code=code, http_status=403)
            assert failure is not None
            raise KisApiError("token", failure)
        self.issued += 1
        return AccessToken(f"token-{self.issued}", self.clock() + DAY, self.clock())


def manager(
    clock: FakeTime,
    issuer: Issuer,
    *,
    cache: TokenCache | None = None,
    metrics: Metrics | None = None,
) -> TokenManager:
    return TokenManager(
        issuer, TokenSettings(), cache=cache, metrics=metrics, clock=clock, sleep=clock.sleep
    )


async def test_concurrent_callers_share_one_issuance(metrics: Metrics) -> None:
    clock = FakeTime()
    issuer = Issuer(clock)
    tokens = manager(clock, issuer, metrics=metrics)
    assert tokens.state is TokenState.EXPIRED
    values = await asyncio.gather(*(tokens.get() for _ in range(20)))
    assert set(values) == {"token-1"} and issuer.calls == 1
    assert tokens.state is TokenState.FRESH
    metrics.refresh()
    assert metrics.gauge(catalog.TOKEN_VALIDITY)._value.get() == pytest.approx(DAY)
    refreshes = metrics.counter(catalog.TOKEN_REFRESHES)
    assert refreshes.labels("success")._value.get() == 1


async def test_rejected_token_is_replaced_once_after_the_guard() -> None:
    clock = FakeTime()
    issuer = Issuer(clock)
    tokens = manager(clock, issuer)
    first = await tokens.get()
    clock.now += 5
    replaced = await asyncio.gather(*(tokens.invalidate(first) for _ in range(5)))
    assert set(replaced) == {"token-2"} and issuer.calls == 2
    assert clock.slept == [pytest.approx(55.0)]  # never two issuances within 60 s


async def test_throttled_issuance_waits_it_out(metrics: Metrics) -> None:
    clock = FakeTime()
    issuer = Issuer(clock, refusals=["EGW00133"])
    tokens = manager(clock, issuer, metrics=metrics)
    assert await tokens.get() == "token-1"
    assert issuer.calls == 2 and clock.slept == [pytest.approx(60.0)]
    assert metrics.counter(catalog.TOKEN_REFRESHES).labels("failure")._value.get() == 1


async def test_bad_credentials_are_not_retried() -> None:
    clock = FakeTime()
    tokens = manager(clock, Issuer(clock, refusals=["EGW00103"]))
    with pytest.raises(TokenUnavailableError):
        await tokens.get()


async def test_refresh_ahead_of_expiry_keeps_the_old_token_if_refused() -> None:
    clock = FakeTime()
    issuer = Issuer(clock)
    tokens = manager(clock, issuer)
    assert await tokens.get() == "token-1"
    clock.now += DAY - 5 * 3600 + 1  # inside the 5 h margin
    issuer.refusals = ["EGW00133"]
    assert await tokens.get() == "token-1"  # still valid: used while the refresh waits
    clock.now += 61
    assert await tokens.get() == "token-2"


async def test_cache_is_private_atomic_and_reused(tmp_path: Path) -> None:
    clock = FakeTime()
    cache = TokenCache(tmp_path / "tokens", demo_credentials("cache"), "http://127.0.0.1:1")
    issuer = Issuer(clock)
    assert await manager(clock, issuer, cache=cache).get() == "token-1"
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert [p.name for p in cache.directory.iterdir()] == [cache.path.name]  # no temp left
    assert "token-1" not in cache.path.name
    restarted = manager(clock, issuer, cache=cache)
    assert restarted.state is TokenState.FRESH
    assert await restarted.get() == "token-1" and issuer.calls == 1


async def test_group_readable_cache_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeTime()
    cache = TokenCache(tmp_path, demo_credentials("loose"), "http://127.0.0.1:1")
    issuer = Issuer(clock)
    await manager(clock, issuer, cache=cache).get()
    os.chmod(cache.path, 0o644)
    clock.now += 120
    with caplog.at_level(logging.WARNING):
        again = manager(clock, issuer, cache=cache)
    assert again.state is TokenState.EXPIRED
    assert "group/world accessible" in caplog.text and "token-1" not in caplog.text
    assert await again.get() == "token-2"
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600


async def test_loose_token_directory_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 14: a 0777 token directory is made 0700 (ours), and its cache still used."""
    directory = tmp_path / "tokens"
    directory.mkdir()
    os.chmod(directory, 0o777)
    clock = FakeTime()
    cache = TokenCache(directory, demo_credentials("loose-dir"), "http://127.0.0.1:1")
    issuer = Issuer(clock)
    with caplog.at_level(logging.WARNING):
        await manager(clock, issuer, cache=cache).get()
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert f"token directory tightened to 0700 path={directory} mode=777" in caplog.text
    os.chmod(directory, 0o757)  # loosened again between runs: tightened on reading
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        restarted = manager(clock, issuer, cache=cache)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700 and "mode=757" in caplog.text
    assert await restarted.get() == "token-1" and issuer.calls == 1
    assert "token-1" not in caplog.text


def test_new_token_directory_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "tokens"
    ensure_private_directory(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory of another user needs root")
async def test_token_directory_of_another_user_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o777)
    os.chown(directory, 65534, 65534)
    with pytest.raises(PermissionError, match="owned by uid 65534"):
        ensure_private_directory(directory)
    assert stat.S_IMODE(directory.stat().st_mode) != 0o700  # not ours to change
    clock = FakeTime()
    cache = TokenCache(directory, demo_credentials("foreign-dir"), "http://127.0.0.1:1")
    with caplog.at_level(logging.WARNING):
        issued = manager(clock, Issuer(clock), cache=cache)
        assert await issued.get() == "token-1"  # works, but nothing read from or written there
    assert list(directory.iterdir()) == []
    assert "token cache ignored" in caplog.text and "token cache not written" in caplog.text


def test_a_file_in_place_of_the_token_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tokens").write_text("x")
    with pytest.raises(FileExistsError):
        ensure_private_directory(tmp_path / "tokens")


def test_token_answer_expiry_is_kst() -> None:
    body = {
        "access_token": "eyJsecret",
        "expires_in": 86400,
        "access_token_token_expired": "2026-11-25 09:00:00",
    }
    token = parse_token_answer(body, received_at=0.0)
    assert token.expires_at == 1795564800.0  # 2026-11-25 00:00:00 UTC
    assert "eyJsecret" not in repr(token)
    with pytest.raises(ValueError):
        parse_token_answer({"error_code": "EGW00133"}, received_at=0.0)
