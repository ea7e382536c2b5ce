"""Fault injection: the ``POST /sim/faults`` bodies, validated, and the faults in effect (pure).

Kinds (``kis-protocol.md``, last section): ``ws_drop`` (close every session
now), ``ws_stall {seconds}`` (sessions stay open, nothing is sent; trades of
that stretch are never sent), ``frame_drop {symbol, count}`` (the next
``count`` records of ``symbol`` are skipped on whichever session would send
them: a cumulative-volume jump), ``token_expire`` (every token issued so far
expires now), ``rest_errors {msg_cd, http_status, seconds}`` (every business
call answers that error), ``latency {ms, seconds}`` (every REST call waits
``ms`` first), ``malformed {count}`` (``count`` broken frames, one per session
per push), ``refuse_ws {seconds}`` (new WebSocket handshakes get HTTP 503).
``ws_drop`` and ``token_expire`` act once and are not listed as active.
Times are real monotonic seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from observer.errors import ObserverError


class FaultError(ObserverError):
    """A fault body the simulator does not understand; the message says what is wrong."""


class _Fault(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WsDrop(_Fault):
    kind: Literal["ws_drop"]


class WsStall(_Fault):
    kind: Literal["ws_stall"]
    seconds: float = Field(gt=0, le=86400)


class FrameDrop(_Fault):
    kind: Literal["frame_drop"]
    symbol: str = Field(pattern=r"^[0-9A-Z]{6}$")
    count: int = Field(1, ge=1, le=1_000_000)


class TokenExpire(_Fault):
    kind: Literal["token_expire"]


class RestErrors(_Fault):
    kind: Literal["rest_errors"]
    msg_cd: str = Field(min_length=1, max_length=16, pattern=r"^[A-Z0-9]+$")
    http_status: int = Field(500, ge=200, le=599)
    seconds: float = Field(gt=0, le=86400)


class Latency(_Fault):
    kind: Literal["latency"]
    ms: float = Field(ge=0, le=60_000)
    seconds: float = Field(gt=0, le=86400)


class Malformed(_Fault):
    kind: Literal["malformed"]
    count: int = Field(1, ge=1, le=10_000)


class RefuseWs(_Fault):
    kind: Literal["refuse_ws"]
    seconds: float = Field(gt=0, le=86400)


Fault = Annotated[
    WsDrop | WsStall | FrameDrop | TokenExpire | RestErrors | Latency | Malformed | RefuseWs,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[Fault] = TypeAdapter(Fault)
KINDS = (
    "ws_drop",
    "ws_stall",
    "frame_drop",
    "token_expire",
    "rest_errors",
    "latency",
    "malformed",
    "refuse_ws",
)


def parse_fault(body: Any) -> Fault:
    """A validated fault from a decoded JSON body; FaultError names the problem."""
    if not isinstance(body, dict):
        raise FaultError("fault body must be a JSON object with a 'kind'")
    if body.get("kind") not in KINDS:
        raise FaultError(f"unknown fault kind {body.get('kind')!r}; one of: {', '.join(KINDS)}")
    try:
        return _ADAPTER.validate_python(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'][1:]) or 'body'}: {item['msg']}"
            for item in exc.errors()
        )
        raise FaultError(f"bad {body['kind']} fault: {problems}") from None


@dataclass(slots=True)
class FaultBoard:
    """The faults in effect; the exchange asks it before every call, push and handshake."""

    _timed: list[tuple[WsStall | RestErrors | Latency | RefuseWs, float]] = field(
        default_factory=list
    )
    frame_drops: dict[str, int] = field(default_factory=dict)  # symbol → records left to skip
    malformed_left: int = 0

    def add(self, fault: Fault, now: float) -> None:
        if isinstance(fault, WsStall | RestErrors | Latency | RefuseWs):
            self._timed.append((fault, now + fault.seconds))
        elif isinstance(fault, FrameDrop):
            self.frame_drops[fault.symbol] = self.frame_drops.get(fault.symbol, 0) + fault.count
        elif isinstance(fault, Malformed):
            self.malformed_left += fault.count

    def clear(self) -> None:
        self._timed.clear()
        self.frame_drops.clear()
        self.malformed_left = 0

    def _active(self, now: float) -> list[WsStall | RestErrors | Latency | RefuseWs]:
        self._timed = [(fault, until) for fault, until in self._timed if until > now]
        return [fault for fault, _ in self._timed]

    def stalled(self, now: float) -> bool:
        return any(isinstance(fault, WsStall) for fault in self._active(now))

    def refusing_ws(self, now: float) -> bool:
        return any(isinstance(fault, RefuseWs) for fault in self._active(now))

    def rest_error(self, now: float) -> RestErrors | None:
        errors = [fault for fault in self._active(now) if isinstance(fault, RestErrors)]
        return errors[-1] if errors else None

    def latency_seconds(self, now: float) -> float:
        delays = [fault.ms for fault in self._active(now) if isinstance(fault, Latency)]
        return max(delays, default=0.0) / 1000.0

    def take_frame_drop(self, symbol: str) -> bool:
        """True if this record of ``symbol`` is to be skipped (and count it)."""
        left = self.frame_drops.get(symbol, 0)
        if left <= 0:
            return False
        if left == 1:
            del self.frame_drops[symbol]
        else:
            self.frame_drops[symbol] = left - 1
        return True

    def take_malformed(self) -> bool:
        if self.malformed_left <= 0:
            return False
        self.malformed_left -= 1
        return True

    def describe(self, now: float) -> list[dict[str, Any]]:
        """``active_faults`` of ``/sim/stats``: each with its remaining seconds or count."""
        listed: list[dict[str, Any]] = [
            {**fault.model_dump(), "remaining_seconds": round(until - now, 3)}
            for fault, until in self._timed
            if until > now
        ]
        listed.extend(
            {"kind": "frame_drop", "symbol": symbol, "remaining_count": left}
            for symbol, left in sorted(self.frame_drops.items())
        )
        if self.malformed_left:
            listed.append({"kind": "malformed", "remaining_count": self.malformed_left})
        return listed
