"""The market model, frames and paging without sockets: determinism, grid, hours, listings."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from observer.kis.h0stcnt0 import INDEX
from observer.sim.calendar import Calendar, kst, parse_kst
from observer.sim.faults import FaultBoard
from observer.sim.model import MarketModel
from observer.sim.quotes import conclusion_page, hhmmss_of
from observer.sim.state import Counters
from observer.sim.tape import Tick
from observer.sim.universe import snap_down, tick_down, tick_size, tick_up
from observer.sim.wsproto import FramePump, Registrations, parse_control

START = parse_kst("2026-11-24 10:00:00")


def model(seed: int = 7, *, always_open: bool = True, start: float = START) -> MarketModel:
    return MarketModel(
        seed=seed, symbols=300, always_open=always_open, start=start, history_seconds=86400
    )


def first_minute_frames(seed: int, step_s: float) -> list[str]:
    """Every frame of 41 registrations over the first simulated minute, pushed every step."""
    market = model(seed)
    pump = FramePump(market, FaultBoard(), Counters())
    registrations = Registrations()
    for code in market.listed_codes(START)[:41]:
        registrations.cursors[code] = pump.next_seq(code, START)
    frames: list[str] = []
    now = START
    while now < START + 60:
        now += step_s
        frames.extend(pump.frames(registrations, now))
    return frames


def test_same_seed_gives_byte_identical_frames_for_the_first_minute() -> None:
    first, again = first_minute_frames(7, 0.5), first_minute_frames(7, 0.5)
    assert len(first) > 10
    assert "\n".join(first).encode() == "\n".join(again).encode()
    assert first != first_minute_frames(8, 0.5)


def test_trades_do_not_depend_on_how_often_a_symbol_is_looked_at() -> None:
    coarse, fine = model(), model()
    code = coarse.listed_codes(START)[5]
    coarse_ticks = coarse.ticks(code, START + 3600)
    now = START
    while now < START + 3600:
        now = min(now + 7.3, START + 3600)
        fine.process(code, now)
    assert fine.ticks(code, START + 3600) == coarse_ticks
    assert len(coarse_ticks) > 0


def _continuous(ticks: list[Tick]) -> bool:
    return all(
        b.cumulative_volume == a.cumulative_volume + b.volume
        for a, b in itertools.pairwise(ticks)
        if a.day == b.day
    )


def test_prices_stay_on_the_tick_grid_within_limits_and_volume_accumulates() -> None:
    market = model()
    moved = 0
    for code in market.listed_codes(START):
        ticks = market.ticks(code, START + 1800)
        assert _continuous(ticks)
        for tick in ticks:
            assert tick.price % tick_size(tick.price) == 0
            assert snap_down(tick.base * 0.7) <= tick.price <= tick.base * 1.3
        if ticks and abs(ticks[-1].price - ticks[0].base) / ticks[0].base > 0.01:
            moved += 1
    assert moved >= 5  # some symbols cross Observer's 1 % trigger within half an hour


def test_trades_cluster_in_bursts() -> None:
    market = model()
    busiest_second = 0
    for code in market.listed_codes(START)[:100]:
        seconds: dict[str, int] = {}
        for tick in market.ticks(code, START + 1800):
            key = hhmmss_of(tick.time)
            seconds[key] = seconds.get(key, 0) + 1
        busiest_second = max([busiest_second, *seconds.values()])
    assert busiest_second >= 3


def test_regular_hours_weekends_and_holidays() -> None:
    calendar = Calendar(always_open=False)
    assert calendar.is_business_day(date(2026, 11, 24))
    assert not calendar.is_business_day(date(2026, 11, 28))  # Saturday
    assert not calendar.is_business_day(date(2026, 12, 25))
    assert calendar.is_open(parse_kst("2026-11-24 09:00:00"))
    assert not calendar.is_open(parse_kst("2026-11-24 15:30:00"))
    rows = calendar.holiday_rows(date(2026, 12, 24), 3)
    assert [row["opnd_yn"] for row in rows] == ["Y", "N", "N"]  # Thu, Christmas, Saturday
    assert rows[0]["wday_dvsn_cd"] == "05"  # Thursday (01 is Sunday)


def test_no_trades_outside_the_session_and_volume_restarts_each_day() -> None:
    market = model(always_open=False, start=parse_kst("2026-11-24 15:00:00"))
    code = market.listed_codes(START)[3]
    ticks = market.ticks(code, parse_kst("2026-11-25 12:00:00"))
    for tick in ticks:
        assert "090000" <= hhmmss_of(tick.time) < "153000"
        assert kst(tick.time).weekday() < 5
    days = sorted({tick.day for tick in ticks})
    assert days == [20261124, 20261125]
    first_of_day2 = next(tick for tick in ticks if tick.day == 20261125)
    assert first_of_day2.cumulative_volume == first_of_day2.volume
    last_day1 = [tick for tick in ticks if tick.day == 20261124][-1]
    assert first_of_day2.base == last_day1.price  # the day's base is the previous close


def test_listings_change_over_simulated_days() -> None:
    market = model()
    day0 = set(market.universe.listed_on(date(2026, 11, 24)))
    later = set(market.universe.listed_on(date(2026, 11, 24) + timedelta(days=30)))
    assert day0 != later
    assert later - day0 and day0 - later  # both listings and delistings happened
    new_code = sorted(later - day0)[0]
    first_day = market.universe.first_listed(new_code)
    assert market.ticks(new_code, START) == []  # not trading before it is listed
    after = market.ticks(new_code, parse_kst(f"{first_day.isoformat()} 12:00:00"))
    assert after and all(tick.day >= int(first_day.strftime("%Y%m%d")) for tick in after)


@given(st.integers(1, 2_000_000))
def test_tick_steps_stay_on_the_grid(price: int) -> None:
    grid = snap_down(price)
    assert grid % tick_size(grid) == 0
    assert tick_up(grid) % tick_size(tick_up(grid)) == 0
    down = tick_down(grid)
    assert (down % tick_size(down) == 0 and tick_up(down) == grid) or grid == 1


def _tick(seq: int, time: float) -> Tick:
    return Tick(seq, time, 20261124, 100, 1, seq + 1, 100, 100, 100, 100, 100, 0, 0, 0, 1, 1, 1, 0)


def test_pages_end_on_a_whole_second_so_paging_terminates() -> None:
    base = parse_kst("2026-11-24 10:00:00")
    # 45 trades in 10:00:05, 10 in 10:00:04, 3 in 10:00:01
    ticks = [_tick(i, base + 1) for i in range(3)]
    ticks += [_tick(3 + i, base + 4) for i in range(10)]
    ticks += [_tick(13 + i, base + 5.5) for i in range(45)]
    seen: list[int] = []
    hour: str | None = "100010"
    pages = 0
    while hour is not None:
        page, more = conclusion_page(ticks, hour, 30)
        pages += 1
        assert pages < 10
        seen.extend(tick.seq for tick in page)
        if not more:
            break
        oldest = hhmmss_of(page[-1].time)
        assert all(hhmmss_of(t.time) != oldest for t in ticks if t.seq < page[-1].seq)
        hour = f"{int(oldest) - 1:06d}"
    assert sorted(seen) == list(range(58)) and len(seen) == len(set(seen))
    first_page, more = conclusion_page(ticks, "100010", 30)
    assert len(first_page) == 45 and more  # extended to the whole boundary second
    assert first_page[0].seq == 57  # newest first


def test_control_messages_parse_tolerantly() -> None:
    assert parse_control("{not json") is None
    control = parse_control(
        '{"header":{"approval_key":"k","tr_type":"1","extra":1},'
        '"body":{"input":{"tr_id":"H0STCNT0","tr_key":"005930"}}}'
    )
    assert control is not None and control.tr_key == "005930"
    pingpong = parse_control('{"header":{"tr_id":"PINGPONG","datetime":"20261124100000"}}')
    assert pingpong is not None and pingpong.is_pingpong
    assert INDEX["ACML_VOL"] == 13
