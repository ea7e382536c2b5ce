"""``TokenManager``: the access token's lifecycle (fresh / refreshing / expired) and disk cache.

- One issuance at a time (an ``asyncio.Lock``): callers that find the token
  missing or expired wait for the one refresh in flight.
- Refreshed ``refresh_margin_seconds`` before expiry (default 5 h: the broker
  returns the *same* token within 6 h of an issuance, kis-protocol.md).
- Never two issuance attempts within ``min_issue_interval_seconds`` (60 s, the
  broker's EGW00133 rule), counted from the last attempt, even across restarts.
- Cached on disk per app key and endpoint, as JSON, mode 0600, written to a
  temporary file and ``os.replace``-d into place. A cache file that is group- or
  world-accessible is *not used* (a warning names the path and its mode) and is
  replaced by a private one at the next issuance. A cache file owned by another
  user is not used either.
- The cache directory is 0700. One that already exists with any group or world
  bit (0777, 0755, …) and is ours is tightened to 0700, with a warning naming
  its old mode (``ensure_private_directory``); one that is not a directory or
  belongs to another user is refused: ``observer run`` exits 2 before anything
  starts, and at run time the cache is neither read nor written.
- In a cluster (``share_through``): the key's owner also writes every token it
  obtains to the cluster's database, sealed (``observer.kis.token_share``), and
  reads that row first when it becomes the owner (``sync_shared``) and before any
  issuance, so a standby taking over reuses the token instead of issuing one; the
  row's issue time counts for the 60 s guard.
- The token value never appears in a repr, log line or exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import errno
import hashlib
import json
import logging
import math
import os
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from metrics import catalog
from metrics.registry import Metrics
from observer.config import TokenSettings
from observer.credentials import Credentials
from observer.kis.errors import KisApiError, TokenUnavailableError
from observer.market import KST

log = logging.getLogger(__name__)
MAX_RETRY_WAIT_SECONDS = 60.0


class TokenState(enum.StrEnum):
    FRESH = "fresh"
    REFRESHING = "refreshing"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An issued access token; ``expires_at`` and ``issued_at`` are Unix seconds."""

    value: str = field(repr=False)
    expires_at: float
    issued_at: float


def parse_token_answer(body: dict[str, object], *, received_at: float) -> AccessToken:
    """An AccessToken from a ``/oauth2/tokenP`` answer; ValueError if it holds none.

    ``{"access_token": "eyJ…", "token_type": "Bearer", "expires_in": 86400,
    "access_token_token_expired": "2026-11-25 11:00:00"}``: the KST expiry string
    wins over ``expires_in`` (kis-protocol.md).
    """
    value = body.get("access_token")
    if not isinstance(value, str) or not value:
        raise ValueError("the answer carries no access_token")
    expired_text = body.get("access_token_token_expired")
    expires_at: float | None = None
    if isinstance(expired_text, str):
        with contextlib.suppress(ValueError):
            parsed = dt.datetime.strptime(expired_text.strip(), "%Y-%m-%d %H:%M:%S")
            expires_at = parsed.replace(tzinfo=KST).timestamp()
    if expires_at is None:
        try:
            expires_at = received_at + float(str(body.get("expires_in", "86400")))
        except ValueError:
            expires_at = received_at + 86400.0
        if not math.isfinite(expires_at):  # "nan"/"inf" would never come due for refresh
            expires_at = received_at + 86400.0
    return AccessToken(value, expires_at, received_at)


def endpoint_scope(endpoint: str) -> str:
    """A short name for the REST endpoint (real and virtual domains issue different tokens)."""
    return hashlib.sha256(endpoint.encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class SharedToken:
    """The cluster's row for this key: its issue time, and the token when it opened."""

    issued_at: float
    token: AccessToken | None


class TokenShare(Protocol):
    """Where the key's owner publishes its token for a standby (``SharedTokenStore``)."""

    async def load(self) -> SharedToken | None: ...

    async def store(self, token: AccessToken) -> None: ...


def ensure_private_directory(directory: Path) -> None:
    """Create ``directory`` with mode 0700, or tighten an existing one of ours to 0700.

    A directory others can write to lets them plant, swap or remove cache files
    (issue 14): tightened, with a warning. Raises OSError when the path cannot be
    made (``FileExistsError``: a file is there) or belongs to another user
    (``PermissionError``): such a directory is never used.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(directory))
    if info.st_uid != os.geteuid():
        reason = f"owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
        raise PermissionError(errno.EPERM, reason, str(directory))
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        os.chmod(directory, 0o700)
        log.warning("token directory tightened to 0700 path=%s mode=%o", directory, mode)


class TokenCache:
    """One token per app key and endpoint in ``directory`` (0700), files 0600, atomic writes."""

    def __init__(self, directory: Path, credentials: Credentials, endpoint: str) -> None:
        scope = endpoint_scope(endpoint)
        self.directory = directory
        self.path = directory / f"token-{credentials.fingerprint}-{scope}.json"

    def load(self) -> AccessToken | None:
        """The cached token, or None when absent, unreadable, malformed or not private."""
        if not self.directory.exists():
            return None
        try:
            ensure_private_directory(self.directory)
            info = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("token cache ignored path=%s reason=%s", self.directory, exc.strerror)
            return None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) or info.st_uid != os.geteuid():
            log.warning(
                "token cache ignored: group/world accessible or not ours path=%s mode=%o uid=%d",
                self.path,
                stat.S_IMODE(info.st_mode),
                info.st_uid,
            )
            return None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            value = data["access_token"]
            expires_at, issued_at = float(data["expires_at"]), float(data["issued_at"])
            if not isinstance(value, str) or not value or not math.isfinite(expires_at + issued_at):
                raise ValueError("not a usable token")
            return AccessToken(value, expires_at, issued_at)
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("token cache ignored: unreadable path=%s", self.path)
            return None

    def store(self, token: AccessToken) -> None:
        """Write atomically: a private temporary file, fsync, then ``os.replace``.

        Raises OSError when the directory is refused (see ``ensure_private_directory``).
        """
        ensure_private_directory(self.directory)
        payload = json.dumps(
            {
                "access_token": token.value,
                "expires_at": token.expires_at,
                "issued_at": token.issued_at,
            }
        )
        handle, temp_name = tempfile.mkstemp(prefix=".token-", dir=self.directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp_name, 0o600)
            os.replace(temp_name, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise


Issuer = Callable[[], Awaitable[AccessToken]]


class TokenManager:
    """Hands out a valid access token, issuing one only when needed and allowed.

    ``issue`` performs one ``/oauth2/tokenP`` call and raises ``KisApiError``
    on refusal. ``on_secret`` is told every token value as soon as it is known
    (scrubbers of logs and error reports); ``on_failure`` every failed issuance.
    ``get()`` may wait (for the refresh in flight, or for the 60 s guard); it
    raises ``TokenUnavailableError`` only for refusals that waiting
    cannot cure (bad app key or secret).
    """

    def __init__(
        self,
        issue: Issuer,
        settings: TokenSettings,
        *,
        cache: TokenCache | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_secret: Callable[[str], None] = lambda value: None,
        on_failure: Callable[[KisApiError], None] = lambda error: None,
    ) -> None:
        self._issue = issue
        self._on_secret = on_secret
        self._on_failure = on_failure
        self._settings = settings
        self._cache = cache
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._token: AccessToken | None = cache.load() if cache else None
        self._last_attempt = self._token.issued_at if self._token else -float("inf")
        self._refreshing = False
        self._shared: TokenShare | None = None
        self._generation = 0
        self.issued = 0
        if self._token is not None:
            on_secret(self._token.value)
            log.info("token loaded from cache validity_s=%.0f", self.validity_seconds() or 0.0)
        if metrics is not None:
            metrics.on_collect(self._export_validity)

    @property
    def state(self) -> TokenState:
        if self._refreshing:
            return TokenState.REFRESHING
        if self._token is None or self._clock() >= self._token.expires_at:
            return TokenState.EXPIRED
        return TokenState.FRESH

    def validity_seconds(self) -> float | None:
        """Seconds until the current token expires (negative once past), None without one."""
        return None if self._token is None else self._token.expires_at - self._clock()

    async def get(self) -> str:
        """A usable token value; refreshes it first when missing, expired or due."""
        token = self._token
        if (
            token is not None
            and self._clock() < token.expires_at - self._settings.refresh_margin_seconds
        ):
            return token.value
        async with self._lock:
            return await self._refresh_locked()

    def share_through(self, shared: TokenShare) -> None:
        """Publish tokens to ``shared`` and look there before issuing (this key's owner only)."""
        self._shared = shared

    async def sync_shared(self) -> None:
        """Once the key is ours: adopt the shared token when it is newer than ours and
        still valid, else publish ours when the row lacks it (a token from the disk cache).

        Never raises for the store's sake (``TokenShare`` reports its own failures).
        """
        if self._shared is None:
            return
        async with self._lock:
            shared = await self._adopt_shared()
            token = self._token
            if (
                token is not None
                and self._clock() < token.expires_at
                and (shared is None or shared.issued_at < token.issued_at)
            ):
                await self._shared.store(token)

    @property
    def generation(self) -> int:
        """How many tokens this manager has obtained; a caller notes it beside its token."""
        return self._generation

    async def invalidate(self, rejected: str, *, generation: int | None = None) -> str:
        """The server refused ``rejected`` (EGW00121/2/3): a new token, issued once for all callers.

        A rejection is stale when a token was obtained after the caller got its own:
        ``generation`` (from :attr:`generation` when the caller took its token) says so,
        and without it an issuance completed while this call waited for the lock does.
        The value cannot tell: KIS hands back the same value for 6 h after an issuance.
        A stale rejection returns the current token without issuing.
        """
        seen = self._generation if generation is None else generation
        async with self._lock:
            token = self._token
            if token is not None and token.value == rejected and seen == self._generation:
                self._token = AccessToken(rejected, self._clock(), token.issued_at)
            return await self._refresh_locked()

    async def _refresh_locked(self) -> str:
        consulted = False  # the shared row, read at most once per refresh
        while True:
            token = self._token
            now = self._clock()
            usable = token is not None and now < token.expires_at
            if token is not None and now < token.expires_at - self._settings.refresh_margin_seconds:
                return token.value
            wait = self._last_attempt + self._settings.min_issue_interval_seconds - now
            if wait > 0:
                if usable and token is not None:
                    return token.value  # due for refresh, still valid: try again later
                log.info("token issuance waits for the 60 s guard wait_s=%.1f", wait)
                await self._sleep(wait)
                continue
            if self._shared is not None and not consulted:
                consulted = True
                await self._adopt_shared()
                continue  # the adopted token or the row's issue time may settle it
            if await self._attempt() or not usable:
                if self._token is not None and self._clock() < self._token.expires_at:
                    return self._token.value
                continue
            assert token is not None
            return token.value

    async def _adopt_shared(self) -> SharedToken | None:
        """Read the shared row: its issue time feeds the 60 s guard, and its token replaces
        ours when issued later and still valid (a rejected token is never taken back:
        it keeps its issue time)."""
        assert self._shared is not None
        shared = await self._shared.load()
        if shared is None:
            return None
        now = self._clock()
        # Clamped to now: a row dated in the future must not hold issuance off for longer.
        self._last_attempt = max(self._last_attempt, min(shared.issued_at, now))
        candidate, current = shared.token, self._token
        if (
            candidate is not None
            and now < candidate.expires_at
            and (current is None or candidate.issued_at > current.issued_at)
        ):
            self._on_secret(candidate.value)
            self._token = candidate
            self._generation += 1
            log.info(
                "token taken over from the cluster validity_s=%.0f", candidate.expires_at - now
            )
        return shared

    async def _attempt(self) -> bool:
        """One issuance attempt; True on success. Non-retryable refusals raise."""
        self._last_attempt = self._clock()
        self._refreshing = True
        try:
            token = await self._issue()
        except KisApiError as exc:
            self._count("failure")
            log.warning("token issuance failed code=%s reason=%s", exc.classification.code, exc)
            self._on_failure(exc)
            if not exc.retryable:
                raise TokenUnavailableError(f"token issuance refused: {exc}") from exc
            if exc.classification.issuance_throttled:
                # The server saw an issuance we do not know of: the guard restarts now.
                self._last_attempt = self._clock()
            return False
        finally:
            self._refreshing = False
        self._on_secret(token.value)
        self._token = token
        self._generation += 1
        self._last_attempt = max(self._last_attempt, token.issued_at)
        self.issued += 1
        self._count("success")
        if self._cache is not None:
            try:
                self._cache.store(token)
            except OSError as exc:
                log.warning("token cache not written reason=%s", exc.strerror)
        if self._shared is not None:
            await self._shared.store(token)
        log.info("token issued validity_s=%.0f", token.expires_at - self._clock())
        return True

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.counter(catalog.TOKEN_REFRESHES).labels(result).inc()

    def _export_validity(self) -> None:
        validity = self.validity_seconds()
        if validity is not None and self._metrics is not None:
            self._metrics.gauge(catalog.TOKEN_VALIDITY).set(validity)
