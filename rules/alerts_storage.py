"""Alerts on the store: unavailable now, batches that keep failing to commit, a queue filling up."""

from __future__ import annotations

from metrics import catalog
from metrics.promql import recorded, selector
from rules import recording as rec
from rules.build import alert, held_seconds, in_words, threshold
from rules.inputs import TARGET, series
from rules.model import AlertDefinition, Firing, Healthy, InputSeries, RunbookEntry
from rules.params import RuleParams
from rules.thresholds import threshold_of

# The writer retries a failed batch after 0.2 s, doubling to 5 s (observer.storage), so a
# store that refuses writes adds about 12 errors a minute. Errors in every 2-minute window
# for 5 minutes mean the store has been failing for that long, not one locked moment.
WRITE_ERRORS_WINDOW_SECONDS = 120
WRITE_ERRORS_FOR_MINUTES = 5
# A healthy writer keeps the queue under one batch (storage.batch_size 4096 of the default
# queue_size 50,000, about 8 %); producers wait once it is full.
QUEUE_FILL_FOR_MINUTES = 5
QUEUE_CAPACITY = 50_000  # of the unit tests' inputs


def _queue(depths: str) -> tuple[InputSeries, ...]:
    return (
        series(catalog.STORAGE_QUEUE_DEPTH, depths),
        series(catalog.STORAGE_QUEUE_CAPACITY, f"{QUEUE_CAPACITY}x{{n}}"),
    )


def _write_errors(params: RuleParams) -> AlertDefinition:
    errors = selector(catalog.STORAGE_WRITE_ERRORS, params.scope)
    window = params.window(WRITE_ERRORS_WINDOW_SECONDS)
    limit = threshold_of(params, "StorageWriteErrors")
    # A failing store's pace, or faster when the threshold asks for more errors per window:
    # the first minute's increase (one minute of errors, the counter starting at 0) is
    # already above the threshold, so the condition holds from the onset.
    per_minute = max(12, int(limit) + 1)
    held = in_words(
        held_seconds(params, "StorageWriteErrors", "critical", WRITE_ERRORS_FOR_MINUTES)
    )
    failed = "Batches failed" if limit == 0 else f"More than {threshold(limit)} batches failed"
    return AlertDefinition(
        rule=alert(
            params,
            "StorageWriteErrors",
            f"increase({errors}[{window}]) > {threshold(limit)}",
            for_minutes=WRITE_ERRORS_FOR_MINUTES,
            severity="critical",
            summary="Observer's store keeps refusing writes.",
            description="{{ $value | humanize }} storage batches failed to commit on "
            "{{ $labels.instance }} in the last 2 minutes, and batches have kept failing "
            f"for {held}.",
        ),
        runbook=RunbookEntry(
            meaning=f"{failed} to commit in every 2-minute window for {held}. Failed batches "
            "are kept and retried (every 5 s at most), so nothing is lost yet, but records "
            "pile up in memory: the write queue fills (StorageQueueFilling), then Track A and "
            "Track B wait for room. A single locked moment or a short burst of retries does "
            "not fire it.",
            actions=(
                "Read `storage write failed rows=... reason=... cause=...` in the log and "
                "`observer_storage_write_errors_total` by `reason`: disk_full, locked, "
                "unavailable (PostgreSQL unreachable, restarting or refusing us) or other.",
                "SQLite: check free space and permissions of `storage.path`; stop whatever "
                "holds a write lock on the database (a backup or an open `sqlite3` shell).",
                "PostgreSQL: check the server is up and reachable from Observer "
                "(`pg_isready -h HOST -p PORT`), its disk, and `max_connections`.",
                "Once writes succeed the queue drains by itself; a restart is not needed.",
            ),
        ),
        firing=(
            Firing(
                name=f"every batch fails ({per_minute} retries a minute)",
                inputs=(series(catalog.STORAGE_WRITE_ERRORS, f"0+{per_minute}x{{n}}"),),
                onset_seconds=60,
                value=2 * per_minute,
                labels=TARGET,
            ),
        ),
        healthy=(
            Healthy(
                name="no write errors",
                inputs=(series(catalog.STORAGE_WRITE_ERRORS, "0x{n}"),),
            ),
            Healthy(
                name="a burst of 5 retries every 6 minutes",
                inputs=(
                    series(catalog.STORAGE_WRITE_ERRORS, "0 0 5x5 10x5 15x5 20x5 25x5 30x{n}"),
                ),
            ),
        ),
    )


def _unavailable(params: RuleParams) -> AlertDefinition:
    available = selector(catalog.STORAGE_AVAILABLE, params.scope)
    return AlertDefinition(
        rule=alert(
            params,
            "StorageUnavailable",
            f"{available} == 0",
            for_minutes=0,
            severity="warning",
            summary="Observer's store is not accepting writes.",
            description="The store of {{ $labels.instance }} refused its last write: "
            "records are held in the write queue until it accepts them again.",
        ),
        runbook=RunbookEntry(
            meaning="The last batch failed to commit (`observer_storage_available` is 0 "
            "from a failed write until a batch commits again): PostgreSQL stopped, "
            "restarting or unreachable, or the disk under SQLite full. Collection goes on "
            "and `/healthz` stays 200; records wait in the bounded write queue and are "
            "written exactly once when the store is back, so a short outage loses nothing. "
            "It fires at the first evaluation that sees it and resolves with the first "
            "commit; StorageWriteErrors (critical) follows if it lasts 5 minutes.",
            actions=(
                "Read `storage write failed ... reason=...` in the log: `unavailable` is "
                "the database server, `disk_full` the disk, `locked` another writer.",
                "PostgreSQL: `pg_isready -h HOST -p PORT`; start the server or fix the "
                "network; Observer reconnects by itself at its next retry (5 s at most).",
                "Watch `observer_storage_queue_depth`: once the queue is full "
                "(StorageQueueFilling), Track A and Track B wait for room.",
            ),
        ),
        firing=(
            Firing(
                name="a write failed and none committed since",
                inputs=(series(catalog.STORAGE_AVAILABLE, "1 0x{n}"),),
                onset_seconds=60,
                value=0,
                labels=TARGET,
            ),
        ),
        healthy=(
            Healthy(
                name="every batch commits",
                inputs=(series(catalog.STORAGE_AVAILABLE, "1x{n}"),),
            ),
        ),
    )


def _queue_filling(params: RuleParams) -> AlertDefinition:
    ratio = threshold_of(params, "StorageQueueFilling")
    limit = threshold(ratio)
    stuck = round(QUEUE_CAPACITY * (1 + ratio) / 2)  # halfway between the threshold and full
    held = in_words(held_seconds(params, "StorageQueueFilling", "warning", QUEUE_FILL_FOR_MINUTES))
    return AlertDefinition(
        rule=alert(
            params,
            "StorageQueueFilling",
            f"{recorded(rec.STORAGE_QUEUE_FILL, params.scope)} > {limit}",
            for_minutes=QUEUE_FILL_FOR_MINUTES,
            severity="warning",
            summary="Observer's storage write queue is nearly full.",
            description="The storage write queue of {{ $labels.instance }} has been "
            f"more than {ratio:.0%} full for {held} "
            "(now {{ $value | humanizePercentage }}).",
        ),
        runbook=RunbookEntry(
            meaning="Records arrive faster than the writer commits them, or the writer is "
            f"stuck retrying (StorageWriteErrors). Above {ratio:.0%} of "
            f"`storage.queue_size` for {held}; once the queue is full, producers wait "
            "(`observer_storage_queue_overflows_total` counts it) and Track B stops reading "
            "its WebSocket. A healthy writer keeps the queue under one batch.",
            actions=(
                "If StorageWriteErrors fires too, fix the store first.",
                "Compare rows written per second with Track B items per second on the "
                "dashboard's Storage row: a slow disk or a busy database cannot keep up.",
                "Raise `storage.batch_size` (fewer commits) or move the database to faster "
                "storage; raising `storage.queue_size` only buys time.",
            ),
        ),
        firing=(
            Firing(
                name=f"queue stays {stuck / QUEUE_CAPACITY:.1%} full",
                inputs=_queue(f"{stuck}x{{n}}"),
                onset_seconds=0,
                value=stuck / QUEUE_CAPACITY,
                labels=TARGET,
            ),
        ),
        healthy=(
            Healthy(name="under one batch", inputs=_queue("0 4096 1000 3000 200x{n}")),
            Healthy(
                name="full for 3 minutes at a time",
                inputs=_queue(f"0x7 {QUEUE_CAPACITY}x3 0x9 {QUEUE_CAPACITY}x3 0x{{n}}"),
            ),
        ),
    )


def storage_alerts(params: RuleParams) -> tuple[AlertDefinition, ...]:
    return (_unavailable(params), _write_errors(params), _queue_filling(params))
