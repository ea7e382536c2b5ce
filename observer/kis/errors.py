"""The one place that decides what a KIS answer means: ok, which error class, retryable or not.

KIS answers business calls with ``rt_cd`` / ``msg_cd`` / ``msg1`` and the OAuth
endpoints with ``error_code`` / ``error_description``; the HTTP status varies
by source (EGW00201 comes as HTTP 500, EGW00133 as 403, expired tokens as 200
or 500), so decisions are taken on the codes and the status is only a fallback
when the body carries none. Error classes are ``metrics.catalog.API_ERROR_CLASSES``.
"""

from __future__ import annotations

import errno as errno_names
import os
from dataclasses import dataclass

from metrics.labels import ErrorClass
from observer.errors import ObserverError

__all__ = [
    "Classification",
    "ErrorClass",
    "KisApiError",
    "TokenUnavailableError",
    "classify",
    "describe_transport_error",
    "transport_failure",
]

RATE_LIMITED = "EGW00201"  # 초당 거래건수를 초과하였습니다.
ISSUANCE_THROTTLED = "EGW00133"  # token issuance at most once a minute
TOKEN_REJECTED = frozenset({"EGW00121", "EGW00122", "EGW00123"})  # invalid / not found / expired
AUTH_REJECTED = frozenset({"EGW00103", "EGW00105"})  # bad app key / app secret


@dataclass(frozen=True, slots=True)
class Classification:
    """What a failed answer means: its class, code (msg_cd/error_code or HTTP status), retry."""

    error_class: ErrorClass
    code: str
    retryable: bool

    @property
    def token_rejected(self) -> bool:
        """The call failed because the access token is expired or invalid: refresh, retry once."""
        return self.code in TOKEN_REJECTED

    @property
    def rate_limited(self) -> bool:
        """The server counted one call too many (EGW00201): the limiter must back off."""
        return self.code == RATE_LIMITED

    @property
    def issuance_throttled(self) -> bool:
        return self.code == ISSUANCE_THROTTLED


def _code_class(code: str) -> Classification | None:
    if code in (RATE_LIMITED, ISSUANCE_THROTTLED):
        return Classification(ErrorClass.RATE_LIMIT, code, retryable=True)
    if code in TOKEN_REJECTED:
        return Classification(ErrorClass.TOKEN, code, retryable=True)
    if code in AUTH_REJECTED or code.startswith("EGW001"):
        return Classification(ErrorClass.AUTH, code, retryable=False)
    return None


def classify(
    *,
    rt_cd: str | None = None,
    msg_cd: str | None = None,
    error_code: str | None = None,
    http_status: int = 200,
) -> Classification | None:
    """``None`` when the answer is a success, else its Classification.

    - ``rt_cd == "0"`` is a success whatever the HTTP status.
    - A known gateway code in ``msg_cd`` or ``error_code`` decides the class:
      EGW00201/EGW00133 rate_limit (retryable), EGW00121-3 token (retryable after
      a refresh), EGW001xx auth (not retryable).
    - Any other non-zero ``rt_cd`` is a business refusal (not retryable), unless
      the HTTP status is 5xx, which makes it a retryable server error.
    - With no codes at all, the HTTP status decides: 2xx success, 5xx server
      (retryable), 429 rate_limit, other 4xx client (not retryable).
    """
    for code in (msg_cd, error_code):
        if code and (known := _code_class(code)) is not None:
            return known
    if rt_cd is not None and rt_cd.strip() != "":
        if rt_cd.strip() == "0":
            return None
        code = msg_cd or error_code or f"rt_cd_{rt_cd}"
        if http_status >= 500:
            return Classification(ErrorClass.SERVER, code, retryable=True)
        return Classification(ErrorClass.BUSINESS, code, retryable=False)
    if error_code:
        status_class = ErrorClass.SERVER if http_status >= 500 else ErrorClass.CLIENT
        return Classification(status_class, error_code, retryable=http_status >= 500)
    if 200 <= http_status < 300:
        return None
    if http_status == 429:
        return Classification(ErrorClass.RATE_LIMIT, "http_429", retryable=True)
    if http_status >= 500:
        return Classification(ErrorClass.SERVER, f"http_{http_status}", retryable=True)
    return Classification(ErrorClass.CLIENT, f"http_{http_status}", retryable=False)


def transport_failure(reason: str) -> Classification:
    """A call that got no answer (connection refused, reset, time-out): retryable."""
    return Classification(ErrorClass.TRANSPORT, reason, retryable=True)


def _os_error(exc: BaseException) -> OSError | None:
    """The first OSError with an errno in ``exc``, its ``os_error`` or its causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "os_error", None)  # aiohttp's ClientConnectorError
        for candidate in (current, inner):
            if isinstance(candidate, OSError) and candidate.errno:
                return candidate
        current = current.__cause__ or current.__context__
    return None


def describe_transport_error(method: str, url: str, exc: BaseException) -> str:
    """One line for a call that got no answer: the URL and the OS error, never a secret.

    ``GET http://127.0.0.1:1/oauth2/tokenP: ClientConnectorError errno=111 ECONNREFUSED
    (Connection refused)``. ``url`` must come without query or credentials (the
    caller's base URL and path); a time-out says so.
    """
    text = f"{method} {url}: {type(exc).__name__}"
    os_error = _os_error(exc)
    if os_error is not None and os_error.errno is not None:
        name = errno_names.errorcode.get(os_error.errno, "?")
        text += f" errno={os_error.errno} {name} ({os.strerror(os_error.errno)})"
    elif isinstance(exc, TimeoutError):
        text += " (no answer in time)"
    return text


class KisApiError(ObserverError):
    """A KIS call failed; ``classification`` says how. The message never holds a secret."""

    def __init__(self, endpoint: str, classification: Classification, message: str = "") -> None:
        self.endpoint = endpoint
        self.classification = classification
        detail = f": {message}" if message else ""
        super().__init__(
            f"{endpoint} failed ({classification.error_class.value} {classification.code}){detail}"
        )

    @property
    def retryable(self) -> bool:
        return self.classification.retryable


class TokenUnavailableError(ObserverError):
    """No access token could be had (issuance refused, or failed past its retries)."""
