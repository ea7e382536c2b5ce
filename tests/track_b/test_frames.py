"""Pure frame parsing: multi-record frames, extra fields, control messages, hostile input."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from observer.kis.frames import (
    ControlReply,
    DataFrame,
    FrameError,
    Heartbeat,
    parse_message,
    parse_trade_frame,
)
from tests.track_b.frames_util import frame, record_fields, trade


def test_one_record() -> None:
    t = trade(volume=120, cumulative=1834562)
    assert parse_trade_frame(frame([t])) == [t]


def test_every_record_of_a_batched_frame_is_read() -> None:
    trades = [trade(cumulative=1000 + 10 * n, time=f"0930{n:02d}") for n in range(1, 6)]
    assert parse_trade_frame(frame(trades)) == trades


def test_extra_trailing_fields_are_tolerated() -> None:
    trades = [trade(cumulative=1010), trade("000660", cumulative=5, volume=5)]
    assert parse_trade_frame(frame(trades, extra=3)) == trades


def test_a_trailing_separator_is_tolerated() -> None:
    t = trade()
    assert parse_trade_frame(frame([t]) + "^") == [t]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0|H0STCNT0|002|" + "^".join(record_fields(trade())), "count"),
        ("1|H0STCNT0|001|" + "^".join(record_fields(trade())), "encrypted"),
        ("0|H0STASP0|001|" + "^".join(record_fields(trade())), "tr_id"),
        ("0|H0STCNT0|000|", "zero"),
        ("0|H0STCNT0|001|" + "^".join(record_fields(trade())[:45]), "narrow"),
        ("0|H0STCNT0|001", "parts"),
        ("0|H0STCNT0|abc|x", "count"),
    ],
)
def test_unreadable_frames_raise_frame_error(text: str, why: str) -> None:
    with pytest.raises(FrameError):
        parse_trade_frame(text)


def test_bad_numbers_raise_frame_error() -> None:
    fields = record_fields(trade())
    fields[13] = "12x"
    with pytest.raises(FrameError, match="ACML_VOL"):
        parse_trade_frame("0|H0STCNT0|001|" + "^".join(fields))


def test_heartbeat_keeps_its_text_for_the_echo() -> None:
    text = '{"header":{"tr_id":"PINGPONG","datetime":"20261124093015"}}'
    assert parse_message(text) == Heartbeat(text=text)


def test_subscribe_reply() -> None:
    text = json.dumps(
        {
            "header": {"tr_id": "H0STCNT0", "tr_key": "005930", "encrypt": "N"},
            "body": {
                "rt_cd": "1",
                "msg_cd": "OPSP0008",
                "msg1": "MAX SUBSCRIBE OVER",
                "output": {"iv": "x", "key": "y"},
            },
        }
    )
    reply = parse_message(text)
    assert reply == ControlReply("H0STCNT0", "005930", "1", "OPSP0008", "MAX SUBSCRIBE OVER")
    assert isinstance(reply, ControlReply) and not reply.ok


def test_data_frames_come_back_as_data() -> None:
    message = parse_message(frame([trade()]).encode())
    assert isinstance(message, DataFrame) and message.trades == [trade()]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        '{"header": 1}',
        '{"header":{}}',
        "x|y",
        "[" * 5000,
        '{"header":' + "[" * 200_000,
    ],
)
def test_bad_control_messages_raise_frame_error(text: str) -> None:
    with pytest.raises(FrameError):
        parse_message(text)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_crash(raw: bytes) -> None:
    with contextlib.suppress(FrameError):
        parse_message(raw)


_field = st.text(alphabet=st.sampled_from('0123456789^|{}"x-. '), max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["0", "1", "", "{"]),
    st.sampled_from(["H0STCNT0", "PINGPONG", ""]),
    st.text(alphabet="0123456789x", max_size=4),
    st.lists(_field, max_size=150),
)
def test_random_frames_never_crash(enc: str, tr_id: str, count: str, fields: list[str]) -> None:
    text = f"{enc}|{tr_id}|{count}|" + "^".join(fields)
    try:
        trades = parse_trade_frame(text)
    except FrameError:
        return
    assert trades and all(t.volume >= 0 and t.cumulative_volume >= 0 for t in trades)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=20), st.integers(0, 4)
)
def test_any_batch_round_trips(volumes: list[int], extra: int) -> None:
    trades = [trade(volume=v, cumulative=v + n) for n, v in enumerate(volumes)]
    assert parse_trade_frame(frame(trades, extra=extra)) == trades
