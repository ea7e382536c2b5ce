"""Pure parsing of KIS WebSocket messages: ``H0STCNT0`` data frames and JSON control messages.

A data frame is ``<enc>|<tr_id>|<count>|<payload>``; the payload is every
record's fields joined by ``^``. A real frame carrying two records (trimmed to
the first 15 fields of each record here; a real record has 46 or more)::

    0|H0STCNT0|002|005930^093015^71500^2^500^0.70^71420.55^71000^71700^70900^71600^71500^
    120^1834562^131028772000^…^005930^093015^71500^2^500^0.70^71420.55^71000^71700^70900^
    71600^71500^30^1834592^131030917000^…

Control messages are JSON: the heartbeat
``{"header":{"tr_id":"PINGPONG","datetime":"20261124093015"}}`` and replies to
subscribe/unsubscribe such as
``{"header":{"tr_id":"H0STCNT0","tr_key":"005930","encrypt":"N"},
"body":{"rt_cd":"0","msg_cd":"OPSP0000","msg1":"SUBSCRIBE SUCCESS","output":{…}}}``.

Nothing here does I/O; every function raises ``FrameError`` (never anything
else) on input it cannot read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from observer.errors import ObserverError
from observer.kis import h0stcnt0
from observer.records import Trade

PINGPONG = "PINGPONG"
_CODE = h0stcnt0.INDEX["MKSC_SHRN_ISCD"]
_TIME = h0stcnt0.INDEX["STCK_CNTG_HOUR"]
_PRICE = h0stcnt0.INDEX["STCK_PRPR"]
_VOLUME = h0stcnt0.INDEX["CNTG_VOL"]
_CUMULATIVE = h0stcnt0.INDEX["ACML_VOL"]
_DATE = h0stcnt0.INDEX["BSOP_DATE"]
_MAX_DIGITS = 18  # prices and volumes: at most 18 digits (an int64 holds them)
_COUNTS = {f"{n:03d}": n for n in range(1, 1000)}  # the usual spelling of a frame's count
_new_trade = tuple.__new__  # Trade's fields by position, without NamedTuple.__new__'s call


class FrameError(ObserverError):
    """A WebSocket message that cannot be read; the frame is counted and skipped."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A ``PINGPONG`` heartbeat; ``text`` is what to echo back verbatim."""

    text: str


@dataclass(frozen=True, slots=True)
class ControlReply:
    """A JSON reply to a subscribe/unsubscribe (or a session-level refusal)."""

    tr_id: str
    tr_key: str
    rt_cd: str
    msg_cd: str
    msg1: str

    @property
    def ok(self) -> bool:
        return self.rt_cd == "0"


@dataclass(frozen=True, slots=True)
class DataFrame:
    """A data frame: its ``tr_id`` and the trade records it carried, in wire order."""

    tr_id: str
    trades: list[Trade]


Message = DataFrame | Heartbeat | ControlReply


def parse_message(raw: str | bytes) -> Message:
    """Classify and parse one WebSocket message; FrameError if it cannot be read."""
    text = _as_text(raw)
    if text[:1] in ("0", "1"):
        return DataFrame(tr_id=h0stcnt0.TR_ID, trades=parse_trade_frame(text))
    if text[:1] == "{":
        return parse_control(text)
    raise FrameError(f"neither a data frame nor JSON (first character {text[:1]!r})")


def parse_trade_frame(text: str) -> list[Trade]:
    """The ``H0STCNT0`` trade records of a data frame, in wire order.

    Split on ``|`` at most 3 times (the payload itself never contains ``|``
    but it is not ours to assume); the record width is the payload's field
    count divided by the frame's ``count``, so records with extra trailing
    fields (KIS has appended fields before) still split correctly. Raises
    FrameError for encrypted frames, other TRs, a count that does not divide
    the payload, records narrower than 46 fields, or unreadable values.
    """
    parts = text.split("|", 3)
    if len(parts) != 4:
        raise FrameError(f"a data frame has 4 '|'-separated parts, got {len(parts)}")
    enc, tr_id, count_text, payload = parts
    if enc != "0":
        raise FrameError(f"encrypted or unknown encoding flag {enc[:8]!r}")
    if tr_id != h0stcnt0.TR_ID:
        raise FrameError(f"unexpected tr_id {tr_id[:16]!r}")
    count = _COUNTS.get(count_text) or _count(count_text)
    fields = payload.split("^")
    total = len(fields)
    width, remainder = divmod(total, count)
    if remainder and fields[-1] == "":  # a trailing '^' leaves one empty field
        total -= 1
        width, remainder = divmod(total, count)
    if remainder or width < h0stcnt0.FIELD_COUNT:
        raise FrameError(
            f"{total} fields do not make {count} records of at least {h0stcnt0.FIELD_COUNT} fields"
        )
    # The hot path of Track B: only the six stored fields of each record are
    # read, checked all at once (one concatenation, one isdigit/isascii), and
    # the trade is made without the named tuple's keyword handling. A record
    # failing the combined check is read again by _trade, which names the field.
    trades: list[Trade] = []
    append = trades.append
    for start in range(0, total, width):
        symbol = fields[start + _CODE]
        time = fields[start + _TIME]
        price = fields[start + _PRICE]
        volume = fields[start + _VOLUME]
        cumulative = fields[start + _CUMULATIVE]
        date = fields[start + _DATE]
        digits = date + time + price + volume + cumulative
        if (
            digits.isdigit()
            and digits.isascii()
            and len(date) == 8
            and len(time) == 6
            and 0 < len(price) <= _MAX_DIGITS
            and 0 < len(volume) <= _MAX_DIGITS
            and 0 < len(cumulative) <= _MAX_DIGITS
            and symbol.isalnum()
            and symbol.isascii()
        ):
            append(
                _new_trade(
                    Trade, (symbol, date, time, int(price), int(volume), int(cumulative), "ws")
                )
            )
        else:
            append(_trade(fields[start : start + width]))
    return trades


def parse_control(text: str) -> Heartbeat | ControlReply:
    """A JSON control message: a heartbeat or a reply; FrameError otherwise."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FrameError("control message is not valid JSON") from exc
    header = _mapping(document, "header") if isinstance(document, dict) else None
    if header is None:
        raise FrameError("control message without a header object")
    tr_id = _text(header.get("tr_id"))
    if tr_id == PINGPONG:
        return Heartbeat(text=text)
    body = _mapping(document, "body")
    if body is None:
        raise FrameError(f"reply to {tr_id[:16]!r} without a body object")
    return ControlReply(
        tr_id=tr_id,
        tr_key=_text(header.get("tr_key")),
        rt_cd=_text(body.get("rt_cd")),
        msg_cd=_text(body.get("msg_cd")),
        msg1=_text(body.get("msg1")),
    )


def _as_text(raw: str | bytes) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrameError("binary message is not UTF-8") from exc


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 3:
        raise FrameError(f"record count must be 1 to 3 digits, got {text[:8]!r}")
    count = int(text)
    if count < 1:
        raise FrameError("record count is zero")
    return count


def _trade(fields: list[str]) -> Trade:
    symbol, date, time = fields[_CODE], fields[_DATE], fields[_TIME]
    if not symbol or not symbol.isascii() or not symbol.isalnum():
        raise FrameError(f"bad symbol {symbol[:12]!r}")
    if len(date) != 8 or not (date.isascii() and date.isdigit()):
        raise FrameError(f"bad BSOP_DATE {date[:12]!r}")
    if len(time) != 6 or not (time.isascii() and time.isdigit()):
        raise FrameError(f"bad STCK_CNTG_HOUR {time[:12]!r}")
    return Trade(
        symbol=symbol,
        business_date=date,
        time=time,
        price=_natural(fields[_PRICE], "STCK_PRPR"),
        volume=_natural(fields[_VOLUME], "CNTG_VOL"),
        cumulative_volume=_natural(fields[_CUMULATIVE], "ACML_VOL"),
        source="ws",
    )


def _natural(text: str, name: str) -> int:
    """A non-negative decimal integer of at most 18 digits (prices and volumes)."""
    if not text or len(text) > _MAX_DIGITS or not (text.isascii() and text.isdigit()):
        raise FrameError(f"bad {name} {text[:20]!r}")
    return int(text)


def _mapping(document: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = document.get(name)
    return value if isinstance(value, dict) else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
