"""The secret scrubber: what leaves the process for error tracking carries no secret.

Three nets: the live secret values (registered as they become known), fields whose
name says secret, and secret shapes in any text (JWTs, ``Basic …``/``Bearer …``,
``Authorization:`` header values, ``appkey=…``). The log formatter applies the
credential shapes to every line too (``scrub_credential_shapes``).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, cast

Event = dict[str, Any]

REDACTED = "[Filtered]"
MIN_SECRET_LENGTH = 8  # shorter registered values would scrub ordinary words
# Key names whose values are always secret, compared lower-case without - and _.
_SECRET_KEYS = frozenset(
    {"appkey", "appsecret", "secretkey", "authorization", "proxyauthorization", "accesstoken"}
    | {"approvalkey", "token", "password", "secret", "cookie", "setcookie"}
)
_SECRET_KEY_SUFFIXES = ("token", "secret", "appkey", "approvalkey", "password")
# ``appkey=…`` in query strings, ``"appkey": "…"`` in JSON, ``'appkey': '…'`` in reprs,
# ``authorization: Bearer …`` in header dumps.
_KEY_VALUE = re.compile(
    r"(?i)(\b(?:appkey|appsecret|secretkey|access_token|approval_key|authorization|token"
    r"|password)\b[\"']?\s*[:=]\s*[\"']?)(?!\[Filtered\])((?:bearer\s+|basic\s+)?[^\"'&\s,;}\]\)]+)"
)
# A credential's characters, and what a stray control byte in it looks like in a log line:
# the byte itself or its escape in a bytes repr (``cHJv\x01bWV0…``), so the part after it
# is caught too (issue 14: aiohttp logged such a header whole).
_CREDENTIAL = r"(?:[A-Za-z0-9._~+/=-]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\\x[0-9a-fA-F]{2})"
_AUTH_SCHEME = re.compile(rf"(?i)\b(bearer|basic)\s+{_CREDENTIAL}{{8,}}")
# An ``Authorization:`` header line (also ``Proxy-Authorization``): its whole value, to the
# end of the line or the quote that closes a repr, whatever the scheme or the bytes in it.
_AUTH_HEADER = re.compile(
    r"(?i)(\b(?:proxy[-_])?authorization[\"']?\s*[:=]\s*[\"']?)(?!\[Filtered\])[^\"'\r\n]+"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


def scrub_credential_shapes(text: str) -> str:
    """``text`` without credential shapes: ``Authorization`` header values, ``Basic …`` /
    ``Bearer …`` credentials and JWTs, each replaced by ``[Filtered]``."""
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    return _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {REDACTED}", text)


def is_secret_key(name: str) -> bool:
    """Whether a field called ``name`` (header, query, JSON key, variable) holds a secret."""
    normalized = name.lower().replace("-", "").replace("_", "")
    return normalized in _SECRET_KEYS or normalized.endswith(_SECRET_KEY_SUFFIXES)


class SecretScrubber:
    """Removes secrets from Sentry events and breadcrumbs before they leave the process.

    Three nets: the live values registered with ``register`` (also URL- and
    JSON-escaped), fields whose *name* says secret (``is_secret_key``), and
    secret *shapes* in any text (JWTs, ``Bearer …``, ``appkey=…``).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for value in secrets:
            self.register(value)

    def register(self, value: str | None) -> None:
        """Scrub ``value`` from now on; values shorter than 8 characters are ignored."""
        if not value or len(value) < MIN_SECRET_LENGTH:
            return
        variants = {
            value,
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote_plus(value),
            json.dumps(value)[1:-1],
        }
        if variants <= self._values:
            return
        self._values |= variants
        ordered = sorted(self._values, key=len, reverse=True)  # longest first
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def scrub_text(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        text = scrub_credential_shapes(text)
        return _KEY_VALUE.sub(lambda m: m.group(1) + REDACTED, text)

    def scrub(self, value: Any) -> Any:
        """A copy of ``value`` (JSON-like) with every secret replaced by ``[Filtered]``."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, Mapping):
            return {
                (self.scrub_text(k) if isinstance(k, str) else k): (
                    REDACTED if isinstance(k, str) and is_secret_key(k) and v else self.scrub(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            if len(value) == 2 and isinstance(value[0], str) and is_secret_key(value[0]):
                return [self.scrub_text(value[0]), REDACTED]  # a (header, value) pair
            return [self.scrub(item) for item in value]
        return value

    def before_send(self, event: Event, _hint: Mapping[str, Any]) -> Event:
        return cast(Event, self.scrub(event))

    def before_breadcrumb(self, crumb: Event, _hint: Mapping[str, Any]) -> Event:
        return cast(Event, self.scrub(crumb))
