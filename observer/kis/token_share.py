"""The access token shared through the cluster's PostgreSQL, sealed under the app secret.

A standby that takes over a key must reuse its owner's token: the broker allows one
issuance a minute per key and tells the account holder of every one (kis-protocol.md),
and the two instances may have different data dirs or machines. So the owner writes
its token to ``cluster_tokens`` whenever it obtains one, and a member that becomes the
owner reads that row before it would issue (``TokenManager.sync_shared``).

The row never holds the token in plain text. Each write draws a random 16-byte salt
and 12-byte nonce; the key is HKDF-SHA256(app secret, salt, ``INFO``) and the token is
sealed with AES-256-GCM, the key fingerprint, endpoint scope, expiry and issue time
as associated data (a row moved to another key or with altered times does not open).
HKDF rather than a slow password hash: the app secret is a 180-character random
value, not a password, so there is nothing to stretch. Anyone with the database but
not the app secret holds ciphertext only; whoever has the app secret can issue tokens
anyway. The issue time stays readable, so the one-issuance-a-minute guard honours it
even when the row cannot be opened (another app secret).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from observer.credentials import Credentials
from observer.errors import ObserverError
from observer.kis.token import AccessToken, SharedToken, endpoint_scope

log = logging.getLogger(__name__)
INFO = b"observer cluster access token v1"
SALT_BYTES = 16
NONCE_BYTES = 12

SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_tokens (
    key_fingerprint text NOT NULL, scope text NOT NULL,
    salt bytea NOT NULL, nonce bytea NOT NULL, sealed bytea NOT NULL,
    expires_at double precision NOT NULL, issued_at double precision NOT NULL,
    written_by text NOT NULL, written_at double precision NOT NULL,
    PRIMARY KEY (key_fingerprint, scope)
)
"""
UPSERT = """
INSERT INTO cluster_tokens AS t (key_fingerprint, scope, salt, nonce, sealed, expires_at,
    issued_at, written_by, written_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (key_fingerprint, scope) DO UPDATE SET salt = EXCLUDED.salt,
    nonce = EXCLUDED.nonce, sealed = EXCLUDED.sealed, expires_at = EXCLUDED.expires_at,
    issued_at = EXCLUDED.issued_at, written_by = EXCLUDED.written_by,
    written_at = EXCLUDED.written_at
"""
SELECT = """
SELECT salt, nonce, sealed, expires_at, issued_at FROM cluster_tokens
WHERE key_fingerprint = %s AND scope = %s
"""


class SharedTokenError(ObserverError):
    """A shared token row that does not open (another app secret, or altered)."""


@dataclass(frozen=True, slots=True)
class SealedToken:
    """A token as stored: ciphertext (tag included), its salt and nonce, readable times."""

    salt: bytes
    nonce: bytes
    sealed: bytes = field(repr=False)
    expires_at: float
    issued_at: float


def _key(app_secret: str, salt: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=INFO)
    return hkdf.derive(app_secret.encode())


def _associated(fingerprint: str, scope: str, expires_at: float, issued_at: float) -> bytes:
    return f"{fingerprint}|{scope}|{expires_at!r}|{issued_at!r}".encode()


def seal(token: AccessToken, credentials: Credentials, scope: str) -> SealedToken:
    """``token`` encrypted under a fresh salt and nonce (pure: no I/O)."""
    salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
    extra = _associated(credentials.fingerprint, scope, token.expires_at, token.issued_at)
    sealed = AESGCM(_key(credentials.app_secret, salt)).encrypt(nonce, token.value.encode(), extra)
    return SealedToken(salt, nonce, sealed, token.expires_at, token.issued_at)


def unseal(row: SealedToken, credentials: Credentials, scope: str) -> AccessToken:
    """The token in ``row``; SharedTokenError (naming the key fingerprint only) if it
    was sealed with another app secret, for another key or scope, or altered."""
    extra = _associated(credentials.fingerprint, scope, row.expires_at, row.issued_at)
    try:
        plain = AESGCM(_key(credentials.app_secret, row.salt)).decrypt(row.nonce, row.sealed, extra)
        value = plain.decode()
    except (InvalidTag, ValueError, UnicodeDecodeError):
        raise SharedTokenError(
            f"the shared token of key {credentials.fingerprint} does not open: "
            "sealed with another app secret, or altered"
        ) from None
    return AccessToken(value, row.expires_at, row.issued_at)


Connection = Callable[[], "psycopg.AsyncConnection[Any] | None"]


class SharedTokenStore:
    """One row per key fingerprint and endpoint in ``cluster_tokens``, on the cluster's connection.

    ``connection`` returns the member's open connection (None once it has left).
    ``load`` and ``store`` never raise: a database error or a row that does not
    open is a warning (fingerprint and error class only) and the caller carries on
    as without a cluster (``load`` still reports a row's issue time).
    """

    def __init__(
        self,
        connection: Connection,
        credentials: Credentials,
        endpoint: str,
        *,
        member_id: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connection = connection
        self._credentials = credentials
        self._scope = endpoint_scope(endpoint)
        self._member_id = member_id
        self._clock = clock
        self._schema_ready = False

    async def load(self) -> SharedToken | None:
        """The row for this key, opened; None without one or when the database fails."""
        try:
            connection = await self._ready()
            if connection is None:
                return None
            cursor = await connection.execute(SELECT, (self._credentials.fingerprint, self._scope))
            row = await cursor.fetchone()
        except psycopg.Error as exc:
            self._warn("not read", exc)
            return None
        if row is None:
            return None
        sealed = SealedToken(bytes(row[0]), bytes(row[1]), bytes(row[2]), row[3], row[4])
        try:
            return SharedToken(sealed.issued_at, unseal(sealed, self._credentials, self._scope))
        except SharedTokenError as exc:
            log.warning("shared token ignored: %s", exc)
            return SharedToken(sealed.issued_at, None)

    async def store(self, token: AccessToken) -> None:
        """Write ``token`` sealed (replacing the key's row); a failure is a warning."""
        row = seal(token, self._credentials, self._scope)
        values = (
            self._credentials.fingerprint,
            self._scope,
            row.salt,
            row.nonce,
            row.sealed,
            row.expires_at,
            row.issued_at,
            self._member_id,
            self._clock(),
        )
        try:
            connection = await self._ready()
            if connection is not None:
                await connection.execute(UPSERT, values)
        except psycopg.Error as exc:
            self._warn("not written", exc)

    async def _ready(self) -> psycopg.AsyncConnection[Any] | None:
        connection = self._connection()
        if connection is not None and not self._schema_ready:
            await connection.execute(SCHEMA)
            self._schema_ready = True
        return connection

    def _warn(self, what: str, error: psycopg.Error) -> None:
        # The class and SQLSTATE only: a driver message may quote the connection string.
        log.warning(
            "shared token %s key=%s reason=%s sqlstate=%s",
            what,
            self._credentials.fingerprint,
            type(error).__name__,
            error.sqlstate or "-",
        )
