"""The simulator's WebSocket protocol core, without sockets: control replies and data frames.

A subscribe message (``kis-protocol.md`` "WebSocket")::

    {"header":{"approval_key":"…","custtype":"P","tr_type":"1","content-type":"utf-8"},
     "body":{"input":{"tr_id":"H0STCNT0","tr_key":"005930"}}}

is answered with a reply whose ``msg_cd`` is one of the spec's table
(OPSP0000/0001/0002/0003/0008/0011/8991/8992/9999). ``FramePump`` turns the
trades generated since the last push into ``0|H0STCNT0|NNN|…`` frames for one
session's registrations; it is a pure function of the model and simulated
time, which is what makes frames byte-identical for a seed.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from observer.kis.h0stcnt0 import TR_ID
from observer.sim.faults import FaultBoard
from observer.sim.model import MarketModel
from observer.sim.quotes import data_frame, trade_record
from observer.sim.state import Counters

MAX_REGISTRATIONS = 41
MAX_RECORDS_PER_FRAME = 30
REPLIES = {
    "OPSP0000": ("0", "SUBSCRIBE SUCCESS"),
    "OPSP0001": ("0", "UNSUBSCRIBE SUCCESS"),
    "OPSP0002": ("1", "ALREADY IN SUBSCRIBE"),
    "OPSP0003": ("1", "UNSUBSCRIBE ERROR(not found!)"),
    "OPSP0008": ("1", "MAX SUBSCRIBE OVER"),
    "OPSP0011": ("1", "invalid approval : NOT FOUND"),
    "OPSP8991": ("1", "invalid tr_id"),
    "OPSP8992": ("1", "invalid tr_key"),
    "OPSP8996": ("9", "ALREADY IN USE appkey"),
    "OPSP9999": ("1", "JSON PARSING ERROR : invalid json format"),
}
MALFORMED_FRAMES = (
    "0|H0STCNT0|001|" + "^".join(["BROKEN"] * 7),  # too few fields for the count
    "0|H0STCNT0|x1|000000^090000",  # count is not a number
    '{"header":{"tr_id":"H0STCNT0","tr_key":',  # truncated JSON
    "0|H0STCNT0",  # too few separators
)


def reply(msg_cd: str, tr_id: str = "(null)", tr_key: str = "(null)", **output: str) -> str:
    """A control reply in the broker's shape (``output`` only when given)."""
    rt_cd, msg1 = REPLIES[msg_cd]
    body: dict[str, Any] = {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": msg1}
    if output:
        body["output"] = output
    header = {"tr_id": tr_id, "tr_key": tr_key, "encrypt": "N"}
    return json.dumps({"header": header, "body": body}, separators=(",", ":"))


def pingpong(datetime_text: str) -> str:
    return json.dumps({"header": {"tr_id": "PINGPONG", "datetime": datetime_text}})


@dataclass(frozen=True, slots=True)
class Control:
    """A parsed client text message."""

    approval_key: str
    tr_type: str
    tr_id: str
    tr_key: str
    is_pingpong: bool = False


def parse_control(text: str) -> Control | None:
    """The client's message, or None if it is not the JSON the broker expects (OPSP9999)."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: hostile nesting, not JSON we take
        return None
    if not isinstance(message, dict) or not isinstance(message.get("header"), dict):
        return None
    header = message["header"]
    if header.get("tr_id") == "PINGPONG":
        return Control("", "", "PINGPONG", "", is_pingpong=True)
    body = message.get("body")
    inputs = body.get("input") if isinstance(body, dict) else None
    if not isinstance(inputs, dict):
        inputs = {}
    return Control(
        approval_key=_text(header.get("approval_key")),
        tr_type=_text(header.get("tr_type")),
        tr_id=_text(inputs.get("tr_id")),
        tr_key=_text(inputs.get("tr_key")),
    )


def _text(value: object) -> str:
    """A string field as it is; numbers as text; anything else (a nested value) as empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


@dataclass(slots=True)
class Registrations:
    """One session's registered symbols, each with the seq of its next trade to send."""

    cursors: dict[str, int] = field(default_factory=dict)
    iv: str = field(default_factory=lambda: secrets.token_hex(8))
    key: str = field(default_factory=lambda: secrets.token_hex(16))

    def apply(self, control: Control, next_seq: int) -> tuple[str, str]:
        """(msg_cd, reply) for a (un)subscribe whose approval key is already accepted."""
        msg_cd = self._decide(control, next_seq)
        tr_id, tr_key = control.tr_id or "(null)", control.tr_key or "(null)"
        if msg_cd == "OPSP0000":
            return msg_cd, reply(msg_cd, tr_id, tr_key, iv=self.iv, key=self.key)
        return msg_cd, reply(msg_cd, tr_id, tr_key)

    def _decide(self, control: Control, next_seq: int) -> str:
        tr_key = control.tr_key
        if control.tr_type not in ("1", "2"):
            return "OPSP9999"
        if control.tr_id != TR_ID:
            return "OPSP8991"
        if len(tr_key) != 6 or not tr_key.isalnum():
            return "OPSP8992"
        if control.tr_type == "2":
            return "OPSP0003" if self.cursors.pop(tr_key, None) is None else "OPSP0001"
        if tr_key in self.cursors:
            return "OPSP0002"
        if len(self.cursors) >= MAX_REGISTRATIONS:
            return "OPSP0008"
        self.cursors[tr_key] = next_seq
        return "OPSP0000"


class FramePump:
    """New trades of registered symbols → data frames, honouring frame_drop and malformed."""

    def __init__(self, model: MarketModel, faults: FaultBoard, counters: Counters) -> None:
        self.model = model
        self.faults = faults
        self.counters = counters

    def next_seq(self, code: str, now: float) -> int:
        """Where a registration made at simulated ``now`` starts: the next trade."""
        process = self.model.process(code, now)
        return 0 if process is None else process.tape.next_seq

    def skip(self, registrations: Registrations, now: float) -> None:
        """Forget everything up to ``now`` (a stall: those trades are never sent)."""
        for code in registrations.cursors:
            registrations.cursors[code] = self.next_seq(code, now)

    def frames(self, registrations: Registrations, now: float) -> list[str]:
        """Frames of every trade generated since the last call, up to simulated ``now``."""
        out: list[str] = []
        for code, cursor in list(registrations.cursors.items()):
            process = self.model.process(code, now)
            if process is None:
                continue
            ticks = process.tape.since(cursor)
            if not ticks:
                continue
            registrations.cursors[code] = ticks[-1].seq + 1
            records = []
            for tick in ticks:
                if self.faults.take_frame_drop(code):
                    self.counters.records_dropped[code] += 1
                    self.counters.volume_dropped[code] += tick.volume
                    continue
                records.append(trade_record(process.instrument, tick))
            for start in range(0, len(records), MAX_RECORDS_PER_FRAME):
                chunk = records[start : start + MAX_RECORDS_PER_FRAME]
                out.append(data_frame(TR_ID, chunk))
                self.counters.frames_sent[code] += 1
                self.counters.records_sent[code] += len(chunk)
        if self.faults.take_malformed():
            out.append(MALFORMED_FRAMES[self.counters.malformed_sent % len(MALFORMED_FRAMES)])
            self.counters.malformed_sent += 1
        return out
