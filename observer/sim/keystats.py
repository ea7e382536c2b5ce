"""The simulator's per-app-key counters, named by key fingerprint, never by the key (pure).

Every limit of the broker is per app key (20 calls/s, one token grant a
minute, one WebSocket session of 41 registrations), so ``/sim/stats`` counts
each key apart under ``keys``, keyed by ``observer.credentials.key_fingerprint``
(the name the rest of Observer uses for a key)::

    "keys": {"3f1c9a0b7d2e": {"rest_calls": 41, "business_calls": 39,
             "rejections": {"EGW00201": 2, "EGW00133": 1, "OPSP0008": 0, "OPSP8996": 0},
             "tokens_issued": 1, "token_grants": 1, "approval_keys_issued": 1,
             "ws_sessions_opened": 1, "ws_sessions_open": 1,
             "registrations": 41, "registrations_peak": 41}}

Only keys the exchange accepts (the issued length, or the configured key when
restricted) are counted here; a call naming no key or a malformed one counts in
the totals only. The raw key is never stored: counters live under the fingerprint.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from observer.credentials import key_fingerprint

# Refusals listed (0 when none) in the totals and in every key's ``rejections``:
# rate limit, token grant inside a minute, 42nd registration, second session.
TRACKED_REJECTIONS = ("EGW00201", "EGW00133", "OPSP0008", "OPSP8996")


@dataclass(slots=True)
class KeyStats:
    """What one app key did; current sessions and registrations come from the live sessions."""

    rest_calls: int = 0  # /uapi/… and /oauth2/… calls naming the key, any outcome
    business_calls: int = 0  # the /uapi/… ones (those the rate limit governs)
    rejections: Counter[str] = field(default_factory=Counter)  # by msg_cd / error_code
    tokens_issued: int = 0  # new tokens (a grant within 6 h returns the same one)
    token_grants: int = 0  # successful /oauth2/tokenP answers, new or same token
    approval_keys_issued: int = 0
    ws_sessions_opened: int = 0  # sessions bound to the key by their first accepted message
    registrations_peak: int = 0

    def as_dict(self, *, sessions_open: int, registrations: int) -> dict[str, Any]:
        rejections = {code: self.rejections.get(code, 0) for code in TRACKED_REJECTIONS}
        rejections.update(sorted(self.rejections.items()))
        return {
            "rest_calls": self.rest_calls,
            "business_calls": self.business_calls,
            "rejections": rejections,
            "tokens_issued": self.tokens_issued,
            "token_grants": self.token_grants,
            "approval_keys_issued": self.approval_keys_issued,
            "ws_sessions_opened": self.ws_sessions_opened,
            "ws_sessions_open": sessions_open,
            "registrations": registrations,
            "registrations_peak": self.registrations_peak,
        }


class KeyLedger:
    """Per-key counters; ``accepts`` says whether a key is one the exchange would serve."""

    def __init__(self, accepts: Callable[[str], bool]) -> None:
        self._accepts = accepts
        self._by_fingerprint: dict[str, KeyStats] = {}

    def _of(self, app_key: str | None) -> KeyStats | None:
        if not app_key or not self._accepts(app_key):
            return None
        return self._by_fingerprint.setdefault(key_fingerprint(app_key), KeyStats())

    def call(self, app_key: str | None, *, business: bool, outcome: str) -> None:
        """A REST call naming ``app_key``, answered with ``outcome`` ("ok" or a refusal code)."""
        stats = self._of(app_key)
        if stats is None:
            return
        stats.rest_calls += 1
        stats.business_calls += int(business)
        if outcome != "ok":
            stats.rejections[outcome] += 1

    def rejected(self, app_key: str | None, msg_cd: str) -> None:
        """A refusal outside REST (a WebSocket reply with ``rt_cd`` other than "0")."""
        stats = self._of(app_key)
        if stats is not None:
            stats.rejections[msg_cd] += 1

    def token_granted(self, app_key: str, *, new: bool) -> None:
        stats = self._of(app_key)
        if stats is not None:
            stats.token_grants += 1
            stats.tokens_issued += int(new)

    def approval_issued(self, app_key: str) -> None:
        stats = self._of(app_key)
        if stats is not None:
            stats.approval_keys_issued += 1

    def session_bound(self, app_key: str) -> None:
        stats = self._of(app_key)
        if stats is not None:
            stats.ws_sessions_opened += 1

    def registered(self, app_key: str, registrations: int) -> None:
        """The key's session now holds ``registrations`` symbols (after a subscribe)."""
        stats = self._of(app_key)
        if stats is not None:
            stats.registrations_peak = max(stats.registrations_peak, registrations)

    def of_key(self, app_key: str, live: Mapping[str, int]) -> dict[str, Any]:
        """One key's counts (zeros for a key never seen); ``live`` as for ``snapshot``."""
        stats = self._by_fingerprint.get(key_fingerprint(app_key), KeyStats())
        return stats.as_dict(sessions_open=int(app_key in live), registrations=live.get(app_key, 0))

    def snapshot(self, live: Mapping[str, int]) -> dict[str, dict[str, Any]]:
        """``{fingerprint: counts}``; ``live``: app key → registrations of its open session."""
        current = {key_fingerprint(key): count for key, count in live.items()}
        return {
            fingerprint: stats.as_dict(
                sessions_open=int(fingerprint in current),
                registrations=current.get(fingerprint, 0),
            )
            for fingerprint, stats in sorted(self._by_fingerprint.items())
        }
