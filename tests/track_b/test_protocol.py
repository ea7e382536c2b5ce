"""The session's decisions on virtual time, without a socket: ``SessionProtocol``.

Idle watchdog, reconnect back-off, PINGPONG, OPSP replies, the restore after a
reconnect and the 41-registration cap, each driven by events with explicit times.
"""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.labels import ReconnectReason
from observer.kis.frames import ControlReply, FrameError, parse_control
from observer.kis.ws_protocol import (
    MAX_REGISTRATIONS,
    Action,
    Backoff,
    Close,
    Connected,
    Malformed,
    Records,
    Replied,
    Send,
    SessionEnded,
    SessionProtocol,
)
from tests.track_b.frames_util import frame, trade

IDLE = 30.0
KEY = "approval-key"
PING = '{"header":{"tr_id":"PINGPONG","datetime":"20261124093015"}}'
DATA = frame([trade("005930", volume=1, cumulative=1)])


def reply(msg_cd: str, symbol: str = "005930", rt_cd: str = "1") -> str:
    return json.dumps(
        {
            "header": {"tr_id": "H0STCNT0", "tr_key": symbol, "encrypt": "N"},
            "body": {"rt_cd": rt_cd, "msg_cd": msg_cd, "msg1": "...", "output": {}},
        }
    )


def control(msg_cd: str, rt_cd: str = "1", symbol: str = "005930") -> ControlReply:
    return parse_control(reply(msg_cd, symbol, rt_cd))


def protocol(initial: float = 0.5, cap: float = 30.0, seed: int = 7) -> SessionProtocol:
    return SessionProtocol(
        idle_timeout_seconds=IDLE, backoff=Backoff(initial, cap, random.Random(seed))
    )


def opened(p: SessionProtocol, now: float = 0.0, key: str = KEY) -> list[Action]:
    if p.key_wanted() is not None:
        p.key_received(key)
    return p.opened(now)


def sent(actions: list[Action]) -> list[tuple[str, str, str]]:
    """(approval key, tr_type, symbol) of each subscribe/unsubscribe among ``actions``."""
    out = []
    for action in actions:
        if isinstance(action, Send) and action.text.startswith('{"header": {"approval_key"'):
            message = json.loads(action.text)
            header, body = message["header"], message["body"]["input"]
            out.append((header["approval_key"], header["tr_type"], body["tr_key"]))
    return out


# --- PINGPONG and the idle watchdog -----------------------------------------------------


def test_pingpong_is_echoed_verbatim_and_does_not_feed_the_watchdog() -> None:
    p = protocol()
    p.register("005930")
    opened(p, now=0.0)
    for now in (10.0, 20.0, 29.9):
        assert p.receive(PING, now) == [Send(PING)]
        assert p.advance(now, market_open=True) == []
    assert p.advance(IDLE, market_open=True) == [Close(ReconnectReason.IDLE)]
    assert not p.is_open
    ended = p.closed()
    assert ended.reason is ReconnectReason.IDLE
    assert 0.25 <= ended.reconnect_after_seconds <= 0.5


def test_data_moves_the_watchdog_deadline_and_replies_do_not() -> None:
    p = protocol()
    p.register("005930")
    opened(p, now=0.0)
    assert p.idle_deadline == IDLE
    [records] = p.receive(DATA, 25.0)
    assert isinstance(records, Records) and [t.symbol for t in records.trades] == ["005930"]
    assert p.idle_deadline == 25.0 + IDLE
    assert p.receive(reply("OPSP0000", rt_cd="0"), 40.0) == [Replied(control("OPSP0000", "0"))]
    assert p.advance(54.9, market_open=True) == []
    assert p.advance(55.0, market_open=True) == [Close(ReconnectReason.IDLE)]


def test_the_data_fast_path_agrees_with_receive() -> None:
    """``data`` (the loop's fast path) gives a data frame's trades and moves the watchdog
    as ``receive`` does; anything else is left to ``receive``."""
    fast, full = protocol(), protocol()
    for p in (fast, full):
        p.register("005930")
        opened(p, now=0.0)
    trades = fast.data(DATA, 25.0)
    [records] = full.receive(DATA, 25.0)
    assert isinstance(records, Records) and trades == records.trades
    assert fast.idle_deadline == full.idle_deadline == 25.0 + IDLE
    for other in (PING, reply("OPSP0000", rt_cd="0"), "0|H0STCNT0|001|garbled", b"0|bytes"):
        assert fast.data(other, 30.0) is None
    assert fast.idle_deadline == 25.0 + IDLE  # nothing else fed the watchdog


def test_no_watchdog_while_the_market_is_closed() -> None:
    """Was a 1.5 s real-socket test; the echo half stays in test_heartbeats."""
    p = protocol()
    p.register("005930")
    opened(p, now=0.0)
    for n in range(1, 31):  # thirty heartbeats over ten idle timeouts
        now = n * IDLE / 3
        assert p.receive(PING, now) == [Send(PING)]
        assert p.advance(now, market_open=False) == []
    assert p.is_open
    assert p.idle_deadline > 10 * IDLE  # started over at each check, never fired
    assert p.advance(p.idle_deadline, market_open=True) == [Close(ReconnectReason.IDLE)]


def test_no_watchdog_with_nothing_registered() -> None:
    p = protocol()
    opened(p, now=0.0)
    assert p.advance(100.0, market_open=True) == []
    assert p.idle_deadline == 100.0 + IDLE
    p.register("005930")  # now something is due
    assert p.advance(100.0 + IDLE, market_open=True) == [Close(ReconnectReason.IDLE)]


def test_no_deadline_while_not_open() -> None:
    p = protocol()
    p.register("005930")
    assert p.idle_deadline == math.inf
    assert p.advance(1e9, market_open=True) == []
    opened(p, now=5.0)
    assert p.idle_deadline == 5.0 + IDLE
    p.closed()
    assert p.idle_deadline == math.inf


def test_malformed_frames_are_reported_and_do_not_feed_the_watchdog() -> None:
    p = protocol()
    p.register("005930")
    opened(p)
    for bad in ("0|H0STCNT0|002|1^2^3", "garbage", b"\xff\xfe", "{not json"):
        [action] = p.receive(bad, 10.0)
        assert isinstance(action, Malformed) and isinstance(action.error, FrameError)
    assert p.idle_deadline == IDLE


def test_a_data_frame_as_bytes_is_data() -> None:
    p = protocol()
    opened(p)
    [records] = p.receive(DATA.encode(), 3.0)
    assert isinstance(records, Records) and len(records.trades) == 1
    assert p.idle_deadline == 3.0 + IDLE


# --- back-off --------------------------------------------------------------------------


def failures(p: SessionProtocol, count: int) -> list[SessionEnded]:
    """``count`` connection attempts that fail before opening."""
    return [p.closed() for _ in range(count)]


def test_failed_connects_back_off_exponentially_with_jitter_up_to_the_cap() -> None:
    p = protocol(initial=0.5, cap=8.0)
    ended = failures(p, 8)
    assert {e.reason for e in ended} == {ReconnectReason.ERROR}
    for attempt, e in enumerate(ended):
        ceiling = min(8.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= e.reconnect_after_seconds <= ceiling
    assert ended[-1].reconnect_after_seconds >= 4.0


def test_back_off_resets_only_once_data_arrives_again() -> None:
    p = protocol(initial=1.0, cap=64.0)
    failures(p, 4)
    # Open, then drop without data: an accept-then-fail server keeps growing the delay.
    opened(p)
    assert p.receive(PING, 1.0) == [Send(PING)]
    drop = p.closed()
    assert drop.reason is ReconnectReason.DROP
    assert 8.0 <= drop.reconnect_after_seconds <= 16.0
    opened(p, now=20.0)
    p.receive(DATA, 21.0)
    after_data = p.closed()
    assert after_data.reason is ReconnectReason.DROP
    assert 0.5 <= after_data.reconnect_after_seconds <= 1.0


def test_already_in_use_closes_and_waits_the_cap_every_time() -> None:
    p = protocol(initial=0.01, cap=0.4)
    delays = []
    for n in range(3):
        opened(p, now=float(n))
        actions = p.receive(reply("OPSP8996", symbol=""), float(n))
        assert [type(a) for a in actions] == [Replied, Close]
        assert actions[1] == Close(ReconnectReason.REFUSED)
        ended = p.closed()
        assert ended.reason is ReconnectReason.REFUSED
        delays.append(ended.reconnect_after_seconds)
    assert delays == [0.4, 0.4, 0.4]  # not 0.01, 0.02, ...


# --- OPSP replies ----------------------------------------------------------------------


def test_already_subscribed_and_not_found_are_harmless() -> None:
    p = protocol()
    p.register("005930")
    opened(p)
    for code in ("OPSP0002", "OPSP0003", "OPSP8991", "OPSP9999"):
        [action] = p.receive(reply(code), 1.0)
        assert isinstance(action, Replied) and action.reply.msg_cd == code
    assert p.is_open and p.held() == {"005930"}


def test_invalid_approval_renews_the_key_and_restores_with_it() -> None:
    p = protocol()
    for symbol in ("000660", "005930"):
        p.register(symbol)
    assert p.key_wanted() is False  # the first key: no renewal
    p.key_received("stale")
    assert sent(p.opened(0.0)) == [("stale", "1", "000660"), ("stale", "1", "005930")]
    actions = p.receive(reply("OPSP0011"), 0.1)
    assert actions[1] == Close(ReconnectReason.APPROVAL)
    assert p.closed().reason is ReconnectReason.APPROVAL
    assert p.key_wanted() is True
    p.key_received("fresh")
    assert p.key_wanted() is None
    assert sent(p.opened(1.0)) == [("fresh", "1", "000660"), ("fresh", "1", "005930")]


def test_max_registrations_refused_leaves_the_symbol_without_an_unsubscribe() -> None:
    p = protocol()
    p.register("005930")
    p.register("000660")
    opened(p)
    [action] = p.receive(reply("OPSP0008", symbol="000660"), 1.0)
    assert isinstance(action, Replied) and action.reply.tr_key == "000660"
    assert p.held() == {"005930"}
    assert p.unregister("000660") == []  # the listener releases the slot: nothing to send
    p.closed()
    assert sent(opened(p, now=2.0)) == [(KEY, "1", "005930")]


# --- registrations -----------------------------------------------------------------


def test_registrations_are_sent_while_open_and_restored_after_a_reconnect() -> None:
    p = protocol()
    assert p.register("005930") == []  # not open: sent on open
    actions = opened(p)
    assert sent(actions) == [(KEY, "1", "005930")] and actions[-1] == Connected()
    assert sent(p.register("000660")) == [(KEY, "1", "000660")]
    assert p.register("000660") == []  # once
    assert p.closed().reason is ReconnectReason.DROP
    assert p.register("035720") == [] and p.unregister("005930") == []  # closed: nothing sent
    assert sent(opened(p, now=5.0)) == [(KEY, "1", "000660"), (KEY, "1", "035720")]
    assert sent(p.unregister("000660")) == [(KEY, "2", "000660")]
    assert p.unregister("000660") == []
    assert p.registered() == {"035720"}


def test_never_more_than_41_held_the_next_waits_for_a_place() -> None:
    p = protocol()
    opened(p)
    codes = [f"{n:06d}" for n in range(45)]
    subscribes = [s for code in codes for s in sent(p.register(code))]
    assert len(subscribes) == MAX_REGISTRATIONS == len(p.held())
    assert p.registered() == set(codes)
    # A place freed: its unsubscribe first, then the oldest waiting symbol's subscribe.
    assert sent(p.unregister(codes[3])) == [(KEY, "2", codes[3]), (KEY, "1", codes[41])]
    assert p.unregister(codes[44]) == []  # waiting, never sent
    p.closed()
    restored = sent(opened(p, now=1.0))
    assert len(restored) == MAX_REGISTRATIONS
    assert {s for _, _, s in restored} == p.held()


def test_opened_without_an_approval_key_is_a_programming_error() -> None:
    p = protocol()
    with pytest.raises(RuntimeError, match="approval key"):
        p.opened(0.0)


events = st.lists(
    st.one_of(
        st.tuples(st.just("register"), st.integers(0, 60)),
        st.tuples(st.just("unregister"), st.integers(0, 60)),
        st.tuples(st.just("open"), st.just(0)),
        st.tuples(st.just("close"), st.just(0)),
        st.tuples(st.just("refused"), st.integers(0, 60)),
    ),
    max_size=300,
)


@settings(max_examples=100, deadline=None)
@given(events)
def test_the_server_never_holds_more_than_41_and_holds_what_is_held(
    sequence: list[tuple[str, int]],
) -> None:
    """A model server applies every frame sent, in order: it never holds a 42nd symbol, and
    once open it holds exactly the protocol's held set."""
    p = protocol()
    p.key_received(KEY)
    server: set[str] = set()

    def apply(actions: list[Action]) -> None:
        for _, tr_type, symbol in sent(actions):
            if tr_type == "1":
                server.add(symbol)
            else:
                server.discard(symbol)
            assert len(server) <= MAX_REGISTRATIONS

    for kind, n in sequence:
        symbol = f"{n:06d}"
        if kind == "register":
            apply(p.register(symbol))
        elif kind == "unregister":
            apply(p.unregister(symbol))
        elif kind == "open" and not p.is_open:
            server.clear()
            apply(p.opened(0.0))
        elif kind == "close":
            p.closed()
        elif kind == "refused" and p.is_open and symbol in server:
            server.discard(symbol)  # the server refused it: OPSP0008
            p.receive(reply("OPSP0008", symbol=symbol), 0.0)
            apply(p.unregister(symbol))  # what the listener does
        if p.is_open:
            assert server == p.held()
        assert len(p.held()) <= MAX_REGISTRATIONS
        assert p.held() <= p.registered()
