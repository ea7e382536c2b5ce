"""App key and secret: where they come from, how they are checked, and that they never print."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from observer.errors import CredentialsError

APP_KEY_LENGTH = 36
APP_SECRET_LENGTH = 180
ENV_APP_KEY = "KIS_APP_KEY"
ENV_APP_SECRET = "KIS_APP_SECRET"
FINGERPRINT_HEX_CHARS = 12


def key_fingerprint(app_key: str) -> str:
    """A short, stable, non-reversible name for an app key: sha256, first 12 hex characters.

    The one place a key is named without being shown: token cache file names,
    Sentry tags, the simulator's per-key ``/sim/stats`` and the cluster's members
    table all use it, so one key has the same name everywhere.
    """
    return hashlib.sha256(app_key.encode()).hexdigest()[:FINGERPRINT_HEX_CHARS]


@dataclass(frozen=True, slots=True)
class Credentials:
    """A KIS app key and app secret.

    ``repr``/``str`` never show either value, so a credential that ends up in a
    log line, an exception or a Sentry frame shows only its fingerprint.
    """

    app_key: str = field(repr=False)
    app_secret: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """``key_fingerprint`` of the app key (cache file names, logs)."""
        return key_fingerprint(self.app_key)

    def __repr__(self) -> str:
        return f"Credentials(fingerprint={self.fingerprint})"

    __str__ = __repr__

    def secrets(self) -> tuple[str, str]:
        """The raw values, for scrubbers that must remove them from outgoing text."""
        return (self.app_key, self.app_secret)


def validate(app_key: str, app_secret: str) -> Credentials:
    """Credentials of the lengths KIS issues (36 and 180); CredentialsError otherwise.

    The error names which value is wrong and its length, never the value.
    """
    if len(app_key) != APP_KEY_LENGTH:
        raise CredentialsError(f"app key must be {APP_KEY_LENGTH} characters, got {len(app_key)}")
    if len(app_secret) != APP_SECRET_LENGTH:
        raise CredentialsError(
            f"app secret must be {APP_SECRET_LENGTH} characters, got {len(app_secret)}"
        )
    return Credentials(app_key, app_secret)


def from_environment(environ: Mapping[str, str] | None = None) -> Credentials:
    """``KIS_APP_KEY`` / ``KIS_APP_SECRET``; CredentialsError names the missing variable."""
    env = os.environ if environ is None else environ
    for name in (ENV_APP_KEY, ENV_APP_SECRET):
        if not env.get(name):
            raise CredentialsError(f"{name} is not set")
    return validate(env[ENV_APP_KEY], env[ENV_APP_SECRET])


def demo_credentials(label: str = "observer") -> Credentials:
    """Deterministic well-formed credentials for the embedded simulator and tests.

    The simulator accepts any key of 36 characters with a secret of 180; ``label``
    gives each caller its own key (and so its own limits and session).
    """
    digest = hashlib.sha512(label.encode()).hexdigest()  # 128 hex chars
    app_key = ("PS" + digest)[:APP_KEY_LENGTH]
    app_secret = (digest + hashlib.sha512(digest.encode()).hexdigest())[:APP_SECRET_LENGTH]
    return Credentials(app_key, app_secret)
