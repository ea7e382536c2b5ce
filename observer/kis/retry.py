"""``RetryPolicy``: what a failed KIS REST answer leads to — refresh the token, back off, give up.

Pure: no I/O, no clock. ``KisClient`` asks it after every failed business call
and only carries the answer out. What a failure *is* (token rejected, rate
limited, …) is decided once, by ``observer.kis.errors.classify``; this module
decides what to *do* about it, per call:

- a rejected access token (EGW00121/2/3; kis-protocol.md "Token errors") is
  refreshed and the call retried, ``token_refreshes`` times (once by default);
- EGW00201 (one call too many in the server's window) is retried after the
  limiter's pause (the client has told it ``server_rejected``), up to
  ``rate_limit_retries`` times;
- anything else, or a cure tried as often as allowed, gives up: the caller
  gets the ``KisApiError``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from observer.kis.errors import Classification

__all__ = ["CallRetries", "Retry", "RetryPolicy"]


class Retry(enum.Enum):
    """The next step after a failed answer."""

    REFRESH_TOKEN = "refresh_token"  # get a new access token, then send again
    BACK_OFF = "back_off"  # send again through the limiter, which pauses first
    GIVE_UP = "give_up"  # raise the error to the caller


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often each cure is tried for one call (a client's setting)."""

    token_refreshes: int = 1
    rate_limit_retries: int = 2

    def for_call(self) -> CallRetries:
        """A fresh count for one call."""
        return CallRetries(self)


class CallRetries:
    """One call's retries so far under ``policy``."""

    __slots__ = ("policy", "rate_limit_retries", "token_refreshes")

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.token_refreshes = 0
        self.rate_limit_retries = 0

    def after(self, failure: Classification) -> Retry:
        """What to do after the call failed with ``failure``; counts the retry it grants."""
        if failure.token_rejected and self.token_refreshes < self.policy.token_refreshes:
            self.token_refreshes += 1
            return Retry.REFRESH_TOKEN
        if failure.rate_limited and self.rate_limit_retries < self.policy.rate_limit_retries:
            self.rate_limit_retries += 1
            return Retry.BACK_OFF
        return Retry.GIVE_UP
