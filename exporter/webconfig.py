"""The exporter's optional TLS and basic auth, from an exporter-toolkit web-config file.

The file format is Prometheus exporter-toolkit's (``--web.config.file``), e.g.::

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional
      client_ca_file: clients-ca.crt                 # needed to verify clients
      min_version: TLS12                             # TLS12 (default) or TLS13
    basic_auth_users:
      prometheus: $2y$10$…            # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')

Options of that format Observer does not implement (``cipher_suites``,
``http_server_config``, …) are refused by name rather than silently ignored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import hashlib
import hmac
import logging
import re
import secrets
import ssl
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import bcrypt
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from exporter.server import Handler, Middleware
from observer.config_yaml import load_yaml, read_config_text
from observer.errors import ConfigError

log = logging.getLogger(__name__)
REALM = "Observer exporter"
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_BCRYPT_HASH = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")


def bcrypt_cost(hashed: str | bytes) -> int:
    """The cost (log2 of the rounds) of a ``$2b$12$…`` hash: 12."""
    text = hashed.decode() if isinstance(hashed, bytes) else hashed
    return int(text[4:6])


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TlsServerConfig(_Strict):
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: Literal["TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS12", "TLS13"] | None = None

    @field_validator("client_auth_type")
    @classmethod
    def _known_auth_type(cls, value: str) -> str:
        if value not in CLIENT_AUTH:
            raise ValueError(
                f"must be one of {', '.join(CLIENT_AUTH)} (RequestClientCert and "
                "RequireAnyClientCert are not offered: Python verifies every client "
                "certificate it asks for)"
            )
        return value


class WebConfigFile(_Strict):
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] | None = None

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, str] | None) -> dict[str, str] | None:
        for user, hashed in (users or {}).items():
            if not user or ":" in user:
                raise ValueError(f"user name {user!r} must be non-empty and without ':'")
            if not _BCRYPT_HASH.fullmatch(hashed):
                raise ValueError(f"{user}: not a bcrypt hash ($2a$/$2b$/$2y$, 60 characters)")
        costs = {user: bcrypt_cost(hashed) for user, hashed in (users or {}).items()}
        for user, cost in costs.items():
            if not 4 <= cost <= 31:
                raise ValueError(f"{user}: bcrypt cost {cost} is outside 4–31")
        highest = max(costs.values(), default=0)
        for user, cost in costs.items():
            # A cheaper hash answers a wrong password faster than the others (and than
            # an unknown user, checked at the highest cost): timing would name the user.
            if cost != highest:
                raise ValueError(
                    f"{user}: bcrypt cost {cost} differs from {highest} of another user "
                    "(failed attempts would tell the users apart); hash every password "
                    "with the same cost"
                )
        return users


def build_ssl_context(tls: TlsServerConfig, base_dir: Path) -> ssl.SSLContext:
    """A server-side context from ``tls``; ConfigError names the file that failed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    if tls.max_version is not None:
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    cert, key = base_dir / tls.cert_file, base_dir / tls.key_file
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"tls_server_config.cert_file/key_file: cannot load {cert} with {key}: {exc}"
        ) from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_auth_type != "NoClientCert":
        if tls.client_ca_file is None:
            raise ConfigError(
                f"tls_server_config.client_ca_file: required by {tls.client_auth_type}"
            )
        try:
            context.load_verify_locations(cafile=base_dir / tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"tls_server_config.client_ca_file: cannot load {tls.client_ca_file}: {exc}"
            ) from None
    return context


def _unauthorized() -> web.Response:
    return web.Response(
        status=401,
        text="Unauthorized\n",
        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
    )


def _busy() -> web.Response:
    # Not 401: the credentials were not judged. Retry-After for a scraper that reads it.
    return web.Response(
        status=503, text="Too many authentication checks in flight\n", headers={"Retry-After": "1"}
    )


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """``Basic base64(user:password)`` → (user, password); None when absent or malformed."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class Verdict(enum.Enum):
    """The answer to one basic-auth attempt."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    BUSY = "busy"  # too many bcrypt checks in flight: refused without one, whoever asked


class WebConfig:
    """TLS and basic auth for ``exporter.server.ExporterServer`` (its ``WebConfigLike``).

    The cost of failed authentication is bounded so that scrapes are never queued
    behind an attacker's guesses (issue 14):

    - Verified credentials are remembered under a keyed digest of (user, password,
      hash) in a cache of their own, which failures cannot evict: a scraper's
      credentials cost one bcrypt round, then a hash lookup per scrape.
    - Failed ones are remembered apart (bounded), so a repeated guess costs nothing.
    - bcrypt rounds run in a small executor of their own, never the default one the
      rendering of ``/metrics`` uses.
    - At most ``max_pending_checks`` distinct checks are queued or running; an attempt
      beyond that is answered ``BUSY`` at once, without a bcrypt round, whatever the
      user name (so the shortcut tells nothing about which users exist). Concurrent
      first checks of the same credentials share one round.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        basic_auth_users: Mapping[str, str] | None = None,
        verified_cache_size: int = 64,
        refused_cache_size: int = 1024,
        check_workers: int = 1,
        max_pending_checks: int = 4,
    ) -> None:
        self._ssl_context = ssl_context
        self._users = {
            user.encode(): hashed.encode() for user, hashed in (basic_auth_users or {}).items()
        }
        self._verified = _Lru(verified_cache_size)
        self._refused = _Lru(refused_cache_size)
        self._check_workers = check_workers
        self._max_pending = max_pending_checks
        self._executor: ThreadPoolExecutor | None = None
        self._pending: dict[bytes, asyncio.Future[bool]] = {}
        self._cache_key = secrets.token_bytes(32)
        # Checked for an unknown user, at the configured users' cost (one cost for all:
        # the file's validation refuses a mix), so that every failed attempt costs the
        # same bcrypt round whatever the name. Made once here: one round at start.
        cost = max((bcrypt_cost(hashed) for hashed in self._users.values()), default=4)
        self._dummy_hash = bcrypt.hashpw(
            secrets.token_urlsafe(16).encode(), bcrypt.gensalt(rounds=cost)
        )
        self.bcrypt_checks = 0  # how many bcrypt rounds ran (the caches' misses)
        self.busy_refusals = 0  # attempts answered BUSY without a round

    def ssl_context(self) -> ssl.SSLContext | None:
        return self._ssl_context

    def close(self) -> None:
        """Stop the bcrypt executor (a later check starts a new one); rounds in flight end."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def middleware(self) -> Middleware | None:
        if not self._users:
            return None

        async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
            credentials = parse_basic_auth(request.headers.get("Authorization"))
            verdict = Verdict.REFUSED if credentials is None else await self.verify(*credentials)
            if verdict is Verdict.BUSY:
                return _busy()
            if verdict is Verdict.REFUSED:
                return _unauthorized()
            return await handler(request)

        return basic_auth

    def _hash_for(self, user: bytes) -> bytes | None:
        """The user's hash; every name is compared, in constant time, so timing says nothing."""
        found: bytes | None = None
        for name, hashed in self._users.items():
            if hmac.compare_digest(name, user):
                found = hashed
        return found

    async def check(self, user: str, password: str) -> bool:
        """Whether ``user`` / ``password`` match a configured bcrypt hash (BUSY: no)."""
        return await self.verify(user, password) is Verdict.ACCEPTED

    async def verify(self, user: str, password: str) -> Verdict:
        """ACCEPTED, REFUSED, or BUSY when too many checks are in flight to queue one more.

        A failed attempt waits for a bcrypt round at the users' cost whether or not
        the user exists (unless BUSY or remembered, both answered at once for any name).
        """
        user_bytes, password_bytes = user.encode(), password.encode()
        hashed = self._hash_for(user_bytes)
        known = hashed is not None
        hashed = hashed if hashed is not None else self._dummy_hash
        # Length-prefixed, so no (user, password) pair can be spelt as another.
        parts = b"".join(
            len(p).to_bytes(4, "big") + p for p in (user_bytes, password_bytes, hashed)
        )
        key = hmac.new(self._cache_key, parts, hashlib.sha256).digest()
        if self._verified.hit(key):
            return Verdict.ACCEPTED
        if self._refused.hit(key):
            return Verdict.REFUSED
        check = self._pending.get(key)
        if check is None:
            if len(self._pending) >= self._max_pending:
                self.busy_refusals += 1
                # A flood of guesses: a few lines per 10 s (observer.logs.RepeatFilter).
                log.warning(
                    "exporter basic auth busy: %d checks in flight, an attempt answered 503",
                    len(self._pending),
                )
                return Verdict.BUSY
            check = self._start_check(key, password_bytes, hashed, known)
        # Awaited whoever asked: ``known and await …`` would answer an unknown user
        # at once, before the dummy round ends.
        matched = await asyncio.shield(check)
        return Verdict.ACCEPTED if known and matched else Verdict.REFUSED

    def _start_check(
        self, key: bytes, password: bytes, hashed: bytes, known: bool
    ) -> asyncio.Future[bool]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._check_workers, thread_name_prefix="bcrypt")
        self.bcrypt_checks += 1
        # A future of its own, so a cancelled scrape does not cancel the others' wait.
        loop = asyncio.get_running_loop()
        check = loop.run_in_executor(self._executor, _bcrypt_matches, password, hashed)
        self._pending[key] = check
        check.add_done_callback(lambda done: self._settle(key, known, done))
        return check

    def _settle(self, key: bytes, known: bool, done: asyncio.Future[bool]) -> None:
        del self._pending[key]
        if done.cancelled() or done.exception() is not None:
            return
        if known and done.result():
            self._verified.add(key)
        else:
            self._refused.add(key)


class _Lru:
    """A bounded set of digests, least recently used out first."""

    def __init__(self, size: int) -> None:
        self._keys: OrderedDict[bytes, None] = OrderedDict()
        self._size = size

    def hit(self, key: bytes) -> bool:
        if key not in self._keys:
            return False
        self._keys.move_to_end(key)
        return True

    def add(self, key: bytes) -> None:
        self._keys[key] = None
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)


def _bcrypt_matches(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # e.g. a password longer than bcrypt's 72 bytes
        return False


def _describe(exc: ValidationError) -> str:
    problems = []
    for item in exc.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            problems.append(f"{key}: an option Observer does not support (or misspelt)")
        else:
            problems.append(f"{key}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def web_config_from_mapping(document: Any, *, base_dir: Path, source: str) -> WebConfig:
    """A WebConfig from a parsed document; ConfigError names the key that is wrong."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        parsed = WebConfigFile.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from None
    context = None
    if parsed.tls_server_config is not None:
        try:
            context = build_ssl_context(parsed.tls_server_config, base_dir)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return WebConfig(ssl_context=context, basic_auth_users=parsed.basic_auth_users)


def load_web_config(path: Path) -> WebConfig:
    """Read and check a web-config file; ConfigError names the file, the key and the reason."""
    try:  # bounded like the settings file: no alias bombs, no endless /dev/zero
        document = load_yaml(read_config_text(path, what="web config"))
    except ConfigError as exc:
        message = str(exc)
        raise ConfigError(message if message.startswith(str(path)) else f"{path}: {exc}") from None
    return web_config_from_mapping(document, base_dir=path.parent, source=str(path))
