"""Rate-limit windows, token rules and fault bodies as pure logic, on a manual clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from observer.credentials import demo_credentials
from observer.sim.clock import ManualClock
from observer.sim.faults import FaultBoard, FaultError, RestErrors, parse_fault
from observer.sim.ratelimit import FixedWindow, SlidingWindow, TokenBucket
from observer.sim.tokens import IssuedToken, Refusal, TokenAuthority

CREDS = demo_credentials("rules")


@given(st.lists(st.floats(0, 0.2, allow_nan=False), min_size=1, max_size=200))
def test_sliding_window_never_admits_more_than_rate_in_any_second(gaps: list[float]) -> None:
    limiter, now, admitted = SlidingWindow(20), 0.0, []
    for gap in gaps:
        now += gap
        if limiter.admit(now):
            admitted.append(now)
    for index, start in enumerate(admitted):
        inside = [t for t in admitted[index:] if t < start + 1.0]
        assert len(inside) <= 20


@pytest.mark.parametrize("limiter_type", [SlidingWindow, FixedWindow, TokenBucket])
def test_25_at_once_then_a_second_later(limiter_type: type) -> None:
    limiter = limiter_type(20)
    first = [limiter.admit(10.0 + i * 0.001) for i in range(25)]
    assert first == [True] * 20 + [False] * 5  # exactly the ones beyond 20
    later = [limiter.admit(11.1 + i * 0.001) for i in range(25)]
    assert later.count(True) == 20  # refusals did not use up the next second


def test_sliding_window_is_strict_across_second_boundaries() -> None:
    sliding, fixed = SlidingWindow(20), FixedWindow(20)
    times = [10.5 + i * 0.01 for i in range(20)] + [11.5 + i * 0.0001 for i in range(20)]
    assert sum(sliding.admit(t) for t in times) <= 21  # only 10.5 has left the last second
    assert sum(fixed.admit(t) for t in times) == 40  # a new fixed window opened at 11.5


def grant(authority: TokenAuthority) -> IssuedToken:
    result = authority.grant(CREDS.app_key, CREDS.app_secret)
    assert isinstance(result, IssuedToken), result
    return result


def test_token_rules_on_a_manual_clock() -> None:
    wall = ManualClock(1_800_000_000.0)
    authority = TokenAuthority(wall=wall, min_interval_seconds=60)
    first = grant(authority)
    assert authority.grant(CREDS.app_key, CREDS.app_secret) == Refusal("EGW00133")
    wall.advance(61)
    assert grant(authority).value == first.value  # within 6 h: the same token
    wall.advance(6 * 3600)
    renewed = grant(authority)
    assert renewed.value != first.value and authority.tokens_issued == 2
    wall.advance(86400)
    assert authority.check(f"Bearer {renewed.value}", CREDS.app_key, CREDS.app_secret) == (
        "EGW00123"
    )
    assert authority.check(None, CREDS.app_key, CREDS.app_secret) == "EGW00122"
    assert authority.check("Bearer nope", CREDS.app_key, CREDS.app_secret) == "EGW00121"


def test_bad_credentials_and_a_restricted_pair() -> None:
    authority = TokenAuthority(wall=ManualClock(), allowed=CREDS.secrets())
    other = demo_credentials("someone else")
    assert authority.grant(other.app_key, other.app_secret) == Refusal("EGW00103")
    assert authority.grant(CREDS.app_key, other.app_secret) == Refusal("EGW00105")
    open_authority = TokenAuthority(wall=ManualClock())
    assert open_authority.grant("short", CREDS.app_secret) == Refusal("EGW00103")
    assert open_authority.grant(CREDS.app_key, "short") == Refusal("EGW00105")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "meteor"}, "unknown fault kind"),
        ({"kind": "ws_stall"}, "seconds"),
        ({"kind": "frame_drop", "symbol": "005930", "count": 0}, "count"),
        ({"kind": "frame_drop", "symbol": "5930", "count": 1}, "symbol"),
        ({"kind": "latency", "ms": 10, "seconds": 5, "extra": 1}, "extra"),
        (["ws_drop"], "JSON object"),
    ],
)
def test_bad_fault_bodies_are_refused_clearly(body: object, message: str) -> None:
    with pytest.raises(FaultError, match=message):
        parse_fault(body)


def test_timed_faults_end_by_themselves_and_on_clear() -> None:
    board = FaultBoard()
    board.add(parse_fault({"kind": "rest_errors", "msg_cd": "EGW00201", "seconds": 5}), 0.0)
    board.add(parse_fault({"kind": "frame_drop", "symbol": "005930", "count": 2}), 0.0)
    assert isinstance(board.rest_error(4.9), RestErrors)
    assert board.rest_error(5.1) is None
    assert [board.take_frame_drop("005930") for _ in range(3)] == [True, True, False]
    board.add(parse_fault({"kind": "latency", "ms": 300, "seconds": 60}), 0.0)
    assert board.latency_seconds(1.0) == 0.3
    board.clear()
    assert board.latency_seconds(1.0) == 0.0 and board.describe(1.0) == []
