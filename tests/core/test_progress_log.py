"""Logs a person can follow: a progress line every log.progress_seconds, slot claims at info."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from metrics.registry import Metrics
from observer.logs import LogBudget
from observer.progress import Progress, progress_line
from observer.sim import SimExchange
from tests.core.conftest import observer_settings, running, sim_settings, wait_for


def test_the_progress_line_says_sweep_rate_slots_gaps_and_queue() -> None:
    line = progress_line(
        Progress(
            sweep_done=812,
            sweep_total=2500,
            rate=19.93,
            rate_limit=20.0,
            eta_seconds=84.6,
            sweeps=0,
            slots_held=30,
            slots_capacity=41,
            gaps=2,
            queue=14,
        )
    )
    assert line == (
        "progress sweep=812/2500 rate=19.9/s limit=20/s eta_s=85 sweeps=0 slots=30/41 "
        "gaps=2 queue=14"
    )
    unknown = Progress(0, 0, 0.0, 20.0, None, 0, 0, 41, 0, 0)
    assert "eta_s=-" in progress_line(unknown)


def test_a_log_budget_holds_back_a_burst_and_counts_it() -> None:
    now = [0.0]
    budget = LogBudget(3, 10.0, clock=lambda: now[0])
    assert [budget.spend() for _ in range(5)] == [0, 0, 0, None, None]
    now[0] = 9.9
    assert budget.spend() is None
    now[0] = 10.0  # a new window: the next line says how many were held back
    assert budget.spend() == 3
    assert budget.spend() == 0


@pytest.mark.slow
async def test_progress_lines_and_rate_limited_claims_in_a_running_observer(
    tmp_path: Path, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="observer")
    async with SimExchange(sim_settings(symbols=200, rate_limit=20.0)) as sim:
        settings = observer_settings(
            tmp_path, rate_limit={"rate_per_second": 20.0}, log={"progress_seconds": 0.5}
        )

        def lines(prefix: str) -> list[str]:
            return [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]

        async with running(sim, settings, metrics):
            await wait_for(
                lambda: any(" slots=30/41 " in line for line in lines("progress ")),
                what="a progress line with the seeded slots",
            )
    progress = [line for line in lines("progress ") if " slots=30/41 " in line][-1]
    done, total = progress.split(" sweep=")[1].split(" ")[0].split("/")
    assert int(total) == 200 and 0 <= int(done) <= 200, progress
    for field in (" rate=", " limit=20/s ", " eta_s=", " sweeps=", " gaps=", " queue="):
        assert field in progress, progress
    claims = lines("slot claimed ")
    # 30 claims at once, at most 10 lines per 15 s window (the rest counted for the next).
    assert 1 <= len(claims) <= 10, claims
    assert all(" trigger=volume_rank " in line for line in claims)
