"""``StatusBoard`` and ``SweepProgress``: the status page's live state, on injected clocks."""

from __future__ import annotations

from observer.records import Gap, GapCause, Recovery, Severity, Track
from observer.status import SlotView, StatusBoard, SweepProgress


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def gap(symbol: str, start: float, recovery: Recovery = Recovery.PENDING) -> Gap:
    return Gap(
        symbol=symbol,
        track=Track.B,
        cause=GapCause.VOLUME_JUMP,
        start=start,
        end=start + 2.5,
        severity=Severity.LOW,
        missing_volume=30,
        recovery=recovery,
    )


def test_sweep_progress_counts_rates_and_estimates() -> None:
    clock = Clock()
    progress = SweepProgress(clock)
    assert progress.view()["eta_seconds"] is None  # nothing known before the first sweep
    progress.started(100)
    progress.advanced(10)
    clock.now += 0.5
    assert progress.rate() == 0.0  # under a second: no rate of its own yet
    clock.now += 1.5
    progress.advanced(30)
    view = progress.view()
    assert (view["done"], view["total"], view["running"]) == (40, 100, True)
    assert view["rate"] == 20.0 and view["eta_seconds"] == 3.0
    clock.now += 3.0
    progress.advanced(60)
    progress.finished(5.0)
    view = progress.view()
    assert (view["done"], view["sweeps"], view["last_sweep_seconds"]) == (100, 1, 5.0)
    assert view["running"] is False and view["eta_seconds"] == 0.0
    progress.started(100)  # the next sweep starts at the last one's rate
    assert progress.rate() == 20.0 and progress.eta_seconds() == 5.0


def test_recent_gaps_newest_first_bounded_and_updated_in_place() -> None:
    board = StatusBoard(recent_gaps=3)
    for start in (1.0, 2.0, 3.0, 4.0):
        board.gap(gap(f"00000{int(start)}", start))
    board.gap(gap("000003", 3.0, Recovery.FULL))  # the same gap, backfilled
    rows = board.view()["recent_gaps"]
    assert [row["symbol"] for row in rows] == ["000004", "000003", "000002"]
    assert [row["recovery"] for row in rows] == ["pending", "full", "pending"]
    assert rows[1] | {"start": 0} == {
        "symbol": "000003",
        "track": "b",
        "cause": "volume_jump",
        "severity": "low",
        "recovery": "full",
        "start": 0,
        "end": 5.5,
        "seconds": 2.5,
        "missing_volume": 30,
    }


def test_slots_links_and_ages_from_the_board_clock() -> None:
    clock = Clock(2000.0)
    board = StatusBoard(clock=clock)
    assert board.view()["slots"] == [] and board.view()["links"] == {}
    board.show_slots(
        lambda: [
            SlotView(0, "005930", 1990.0, 1999.5, "price_move", 2.0),
            SlotView(1, "000660", 1995.0, None, "volume_surge", 1.25),
        ]
    )
    board.link("prometheus", "http://127.0.0.1:9090")
    view = board.view()
    assert view["links"] == {"prometheus": "http://127.0.0.1:9090"}
    assert [
        (s["symbol"], s["held_seconds"], s["last_frame_age_seconds"]) for s in view["slots"]
    ] == [
        ("005930", 10.0, 0.5),
        ("000660", 5.0, None),
    ]
    assert view["slots"][1]["trigger"] == "volume_surge"
