"""Access tokens and WebSocket approval keys, with the broker's issuance rules (pure).

Rules (``kis-protocol.md`` "Access token"): a token lives 24 h; a request
within 6 h of an issuance gets the same token back; at most one grant per
``min_interval_seconds`` (60 s) per app key, else EGW00133; a bad app key or
secret is EGW00103 / EGW00105. Tokens are JWT-shaped (HS512 over a per-process
server secret). Business calls check the bearer token: unknown or revoked →
EGW00121, missing → EGW00122, expired → EGW00123. Times are real wall-clock
seconds (``wall``), since clients plan token refreshes in real time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from observer.credentials import APP_KEY_LENGTH, APP_SECRET_LENGTH

TOKEN_LIFETIME_SECONDS = 86400.0
SAME_TOKEN_SECONDS = 6 * 3600.0
APPROVAL_LIFETIME_SECONDS = 86400.0

MESSAGES = {
    "EGW00103": "유효하지 않은 AppKey입니다.",
    "EGW00105": "유효하지 않은 AppSecret입니다.",
    "EGW00121": "유효하지 않은 token 입니다.",
    "EGW00122": "token을 찾을 수 없습니다.",
    "EGW00123": "기간이 만료된 token 입니다.",
    "EGW00133": "접근토큰 발급 잠시 후 다시 시도하세요(1분당 1회)",
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(slots=True)
class IssuedToken:
    value: str
    app_key: str
    secret_digest: bytes
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a grant was refused: the KIS ``error_code`` and its description."""

    error_code: str

    @property
    def description(self) -> str:
        return MESSAGES[self.error_code]


class TokenAuthority:
    """Grants, checks, revokes and expires tokens; issues approval keys."""

    def __init__(
        self,
        *,
        wall: Callable[[], float],
        min_interval_seconds: float = 60.0,
        allowed: tuple[str, str] | None = None,
    ) -> None:
        self._wall = wall
        self._min_interval = min_interval_seconds
        self._allowed = (allowed[0], _digest(allowed[1])) if allowed else None
        self._server_secret = secrets.token_bytes(64)
        self._tokens: dict[str, IssuedToken] = {}
        self._latest: dict[str, IssuedToken] = {}  # app key → newest token
        self._last_grant: dict[str, float] = {}
        self._approvals: dict[str, tuple[str, float]] = {}  # approval key → (app key, expiry)
        self.tokens_issued = 0
        self.approval_keys_issued = 0

    @property
    def restricted(self) -> bool:
        """Only one configured pair is accepted (else any well-formed pair)."""
        return self._allowed is not None

    def accepts_key(self, app_key: str) -> bool:
        """The key alone would pass ``credentials_error`` (the secret is not checked)."""
        if self._allowed is not None:
            return hmac.compare_digest(app_key.encode(), self._allowed[0].encode())
        return len(app_key) == APP_KEY_LENGTH

    def credentials_error(self, app_key: str, app_secret: str) -> Refusal | None:
        """EGW00103 / EGW00105 for a key or secret the simulator does not accept."""
        if self._allowed is not None:
            if not hmac.compare_digest(app_key.encode(), self._allowed[0].encode()):
                return Refusal("EGW00103")
            if not hmac.compare_digest(_digest(app_secret), self._allowed[1]):
                return Refusal("EGW00105")
            return None
        if len(app_key) != APP_KEY_LENGTH:
            return Refusal("EGW00103")
        if len(app_secret) != APP_SECRET_LENGTH:
            return Refusal("EGW00105")
        return None

    def grant(self, app_key: str, app_secret: str) -> IssuedToken | Refusal:
        """``/oauth2/tokenP``: the same valid token within 6 h, a new one otherwise."""
        refusal = self.credentials_error(app_key, app_secret)
        if refusal is not None:
            return refusal
        now = self._wall()
        last = self._last_grant.get(app_key)
        if last is not None and now - last < self._min_interval:
            return Refusal("EGW00133")
        self._last_grant[app_key] = now
        current = self._latest.get(app_key)
        if (
            current is not None
            and not current.revoked
            and current.expires_at > now
            and now - current.issued_at < SAME_TOKEN_SECONDS
            and hmac.compare_digest(current.secret_digest, _digest(app_secret))
        ):
            return current
        token = IssuedToken(
            value=self._jwt(now),
            app_key=app_key,
            secret_digest=_digest(app_secret),
            issued_at=now,
            expires_at=now + TOKEN_LIFETIME_SECONDS,
        )
        self._tokens[token.value] = token
        self._latest[app_key] = token
        self.tokens_issued += 1
        return token

    def _jwt(self, now: float) -> str:
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS512"}).encode())
        claims = {
            "sub": "token",
            "aud": str(uuid.uuid4()),
            "prdt_cd": "",
            "iss": "unogw",
            "exp": int(now + TOKEN_LIFETIME_SECONDS),
            "iat": int(now),
            "jti": secrets.token_hex(16),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._server_secret, f"{header}.{payload}".encode(), "sha512")
        return f"{header}.{payload}.{_b64(signature.digest())}"

    def remaining_seconds(self, token: IssuedToken) -> int:
        """``expires_in`` of a grant: seconds until the token expires (less for a reused one)."""
        return max(0, int(token.expires_at - self._wall()))

    def revoke(self, app_key: str, app_secret: str, token: str) -> Refusal | None:
        """``/oauth2/revokeP``: the token is invalid from now on (EGW00121 if unknown)."""
        refusal = self.credentials_error(app_key, app_secret)
        if refusal is not None:
            return refusal
        issued = self._tokens.get(token)
        if issued is None or issued.app_key != app_key:
            return Refusal("EGW00121")
        issued.revoked = True
        return None

    def check(self, authorization: str | None, app_key: str, app_secret: str) -> str | None:
        """The msg_cd refusing a business call, or None if its credentials and token are good."""
        if not authorization or not authorization.strip():
            return "EGW00122"
        scheme, _, value = authorization.strip().partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else authorization.strip()
        issued = self._tokens.get(token)
        if issued is None or issued.revoked:
            return "EGW00121"
        if issued.app_key != app_key:
            return "EGW00103"
        if not hmac.compare_digest(issued.secret_digest, _digest(app_secret)):
            return "EGW00105"
        if issued.expires_at <= self._wall():
            return "EGW00123"
        return None

    def expire_all(self) -> int:
        """The ``token_expire`` fault: every token issued so far expires now."""
        now = self._wall()
        for token in self._tokens.values():
            token.expires_at = min(token.expires_at, now)
        return len(self._tokens)

    def approve(self, app_key: str, secret_key: str) -> str | Refusal:
        """``/oauth2/Approval``: a new approval key for a WebSocket session."""
        refusal = self.credentials_error(app_key, secret_key)
        if refusal is not None:
            return refusal
        key = str(uuid.uuid4())
        self._approvals[key] = (app_key, self._wall() + APPROVAL_LIFETIME_SECONDS)
        self.approval_keys_issued += 1
        return key

    def approval_owner(self, approval_key: str) -> str | None:
        """The app key an approval key was issued to, if it is known and not expired."""
        entry = self._approvals.get(approval_key)
        if entry is None or entry[1] <= self._wall():
            return None
        return entry[0]
