"""The access token shared through a real PostgreSQL: sealed, reused by the next owner, guarded."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from observer.config import TokenSettings
from observer.credentials import Credentials, demo_credentials
from observer.kis.token import AccessToken, TokenCache, TokenManager
from observer.kis.token_share import SharedTokenError, SharedTokenStore, seal, unseal
from tests.core.test_token import DAY, FakeTime, Issuer

ENDPOINT = "http://127.0.0.1:9/kis"
CREDENTIALS = demo_credentials("shared-key")
SCOPE = "0123abcd"


def other_secret(credentials: Credentials) -> Credentials:
    """The same app key with another (well-formed) app secret."""
    return Credentials(credentials.app_key, demo_credentials("another").app_secret)


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
    try:
        yield connection
    finally:
        await connection.close()


def member(
    clock: FakeTime,
    issuer: Issuer,
    connection: psycopg.AsyncConnection[Any],
    data_dir: Path,
    credentials: Credentials = CREDENTIALS,
) -> TokenManager:
    """A TokenManager as a cluster member builds it: its own disk cache, the shared row."""
    cache = TokenCache(data_dir / "tokens", credentials, ENDPOINT)
    tokens = TokenManager(issuer, TokenSettings(), cache=cache, clock=clock, sleep=clock.sleep)
    tokens.share_through(SharedTokenStore(lambda: connection, credentials, ENDPOINT, clock=clock))
    return tokens


def test_a_sealed_token_opens_only_with_its_app_secret_key_and_times() -> None:
    token = AccessToken("eyJhbGciOiJIUzUxMiJ9.sealed-token-value", 1_800_086_400.0, 1_800_000_000.0)
    row = seal(token, CREDENTIALS, SCOPE)
    assert token.value.encode() not in row.sealed and token.value not in repr(row)
    assert unseal(row, CREDENTIALS, SCOPE) == token
    assert seal(token, CREDENTIALS, SCOPE).salt != row.salt  # a fresh salt and nonce each time
    wrong = other_secret(CREDENTIALS)
    with pytest.raises(SharedTokenError) as refused:
        unseal(row, wrong, SCOPE)
    message = str(refused.value)
    assert CREDENTIALS.fingerprint in message
    for secret in (*CREDENTIALS.secrets(), wrong.app_secret, token.value):
        assert secret not in message
    with pytest.raises(SharedTokenError):
        unseal(row, demo_credentials("other-key"), SCOPE)  # another key
    with pytest.raises(SharedTokenError):
        unseal(row, CREDENTIALS, "ffffffff")  # another endpoint
    moved = type(row)(row.salt, row.nonce, row.sealed, row.expires_at + DAY, row.issued_at)
    with pytest.raises(SharedTokenError):
        unseal(moved, CREDENTIALS, SCOPE)  # an expiry pushed out by someone with the database


async def test_the_next_owner_reuses_the_token_from_another_data_dir(
    tmp_path: Path, postgres_url: str
) -> None:
    clock = FakeTime()
    first, second = Issuer(clock), Issuer(clock)
    async with connected(postgres_url) as connection:
        owner = member(clock, first, connection, tmp_path / "a")
        await owner.sync_shared()
        value = await owner.get()
        assert first.issued == 1
    clock.now += 30.0  # inside the broker's minute: an issuance now would be EGW00133
    async with connected(postgres_url) as connection:
        standby = member(clock, second, connection, tmp_path / "b")
        await standby.sync_shared()
        assert await standby.get() == value
        assert second.calls == 0 and standby.issued == 0
        assert not (tmp_path / "b" / "tokens").exists()  # nothing came from b's own disk
        cursor = await connection.execute(
            "SELECT convert_to(t::text, 'UTF8'), salt, nonce, sealed FROM cluster_tokens t"
        )
        rows = await cursor.fetchall()
    assert len(rows) == 1
    stored = b"".join(bytes(column) for column in rows[0])
    assert value.encode() not in stored and value.encode().hex().encode() not in stored


async def test_a_wrong_app_secret_cannot_open_it_and_issues_once_the_minute_is_over(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeTime()
    first, second = Issuer(clock), Issuer(clock)
    wrong = other_secret(CREDENTIALS)
    async with connected(postgres_url) as connection:
        owner = member(clock, first, connection, tmp_path / "a")
        value = await owner.get()
        clock.now += 20.0
        with caplog.at_level(logging.INFO):
            rotated = member(clock, second, connection, tmp_path / "b", credentials=wrong)
            await rotated.sync_shared()
            assert await rotated.get() == "token-1"  # its own issuance, not the sealed one
    assert second.calls == 1
    assert clock.slept == [40.0]  # the guard counted from the shared row's issue time
    assert "does not open" in caplog.text and CREDENTIALS.fingerprint in caplog.text
    for secret in (value, *CREDENTIALS.secrets(), wrong.app_secret):
        assert secret not in caplog.text


async def test_a_token_from_the_disk_cache_is_published_for_the_next_owner(
    tmp_path: Path, postgres_url: str
) -> None:
    clock = FakeTime()
    cached = AccessToken("cached-token-value-0123456789", clock() + DAY, clock() - 3600.0)
    TokenCache(tmp_path / "a" / "tokens", CREDENTIALS, ENDPOINT).store(cached)
    first, second = Issuer(clock), Issuer(clock)
    async with connected(postgres_url) as connection:
        owner = member(clock, first, connection, tmp_path / "a")
        await owner.sync_shared()
        standby = member(clock, second, connection, tmp_path / "b")
        await standby.sync_shared()
        assert await standby.get() == cached.value
    assert first.calls == second.calls == 0


async def test_a_rejected_token_is_not_taken_back_from_the_row(
    tmp_path: Path, postgres_url: str
) -> None:
    clock = FakeTime()
    issuer = Issuer(clock)
    async with connected(postgres_url) as connection:
        owner = member(clock, issuer, connection, tmp_path / "a")
        rejected = await owner.get()
        clock.now += 120.0
        assert await owner.invalidate(rejected) == "token-2"
        successor = member(clock, Issuer(clock), connection, tmp_path / "b")
        await successor.sync_shared()
        assert await successor.get() == "token-2"  # the row was replaced by the new token
    assert issuer.issued == 2


async def test_a_lost_database_means_issuing_as_without_a_cluster(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeTime()
    issuer = Issuer(clock)
    async with connected(postgres_url) as connection:
        pass  # closed before use
    tokens = member(clock, issuer, connection, tmp_path / "a")
    await tokens.sync_shared()
    assert await tokens.get() == "token-1"
    assert issuer.issued == 1
    assert "shared token not read" in caplog.text and "shared token not written" in caplog.text
    assert "pg-test-secret" not in caplog.text
