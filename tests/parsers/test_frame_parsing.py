"""WebSocket messages: any JSON control message or frame-like text gives a message or FrameError.

(tests/track_b/test_frames.py covers random bytes and random frames; these reach
the control-message branches with JSON trees built from the protocol's own keys.)
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from observer.kis.frames import ControlReply, DataFrame, FrameError, Heartbeat, parse_message
from tests.parsers.strategies import json_trees, mappings_with

CONTROL_KEYS = [
    "header",
    "body",
    "tr_id",
    "tr_key",
    "datetime",
    "encrypt",
    "rt_cd",
    "msg_cd",
    "msg1",
    "output",
    "iv",
    "key",
]
LEAVES = st.sampled_from(
    ["PINGPONG", "H0STCNT0", "(null)", "0", "1", "9", "OPSP0000", "OPSP8996", "005930"]
)


@settings(max_examples=300, deadline=None)
@given(
    json_trees()
    | mappings_with(
        CONTROL_KEYS,
        mappings_with(CONTROL_KEYS, mappings_with(CONTROL_KEYS, LEAVES) | LEAVES | json_trees()),
    )
)
def test_any_json_message_gives_a_message_or_frame_error(document: Any) -> None:
    text = json.dumps(document, ensure_ascii=False)
    for raw in (text, text.encode(), " " + text, text[: len(text) // 2]):
        try:
            message = parse_message(raw)
        except FrameError as error:
            assert str(error)
        else:
            assert isinstance(message, Heartbeat | ControlReply | DataFrame)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "0",
                "1",
                "|",
                "^",
                "H0STCNT0",
                "001",
                "002",
                "005930",
                "20261124",
                "093015",
                "71500",
                "-5",
                "",
                "{",
                "}",
            ]
        ),
        max_size=60,
    )
)
def test_frame_shaped_text_gives_a_message_or_frame_error(parts: list[str]) -> None:
    try:
        parse_message("".join(parts))
    except FrameError as error:
        assert str(error)
