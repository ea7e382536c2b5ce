"""Dashboard rows on what Observer collects: universe, Track A, Track B, gaps."""

from __future__ import annotations

from dashboards.panels import (
    BURN_STEPS,
    INST,
    UP_DOWN,
    Row,
    gauge,
    heatmap,
    pie,
    second_axis,
    stat,
    timeseries,
)
from dashboards.queries import buckets, increase, quantile, rate, rec, sel
from metrics import catalog as c
from rules import recording as r


def universe_row() -> Row:
    return Row(
        "Universe",
        (
            (
                stat(
                    "Universe size",
                    "Symbols observed now (KOSPI and KOSDAQ shares, after sharding).",
                    "short",
                    [(sel(c.UNIVERSE_SIZE), INST)],
                ),
                6,
            ),
            (
                timeseries(
                    "Universe operations rate",
                    "Symbols added and removed per second at master-file reloads.",
                    "ops",
                    [
                        (rate(c.UNIVERSE_CREATED), "created " + INST),
                        (rate(c.UNIVERSE_DELETED), "deleted " + INST),
                    ],
                ),
                18,
            ),
        ),
    )


def track_a_row() -> Row:
    completeness = (("red", None), ("orange", 0.95), ("green", 0.99))
    return Row(
        "Track A",
        (
            (
                stat(
                    "Snapshot rate",
                    "Snapshots stored per second over 5 minutes (recorded; "
                    "TrackANoSnapshots reads it). Replaces the source's lifetime count, which "
                    "resets on every restart.",
                    "ops",
                    [(rec(r.SNAPSHOT_RATE), INST)],
                ),
                6,
            ),
            (
                heatmap(
                    "Collection duration",
                    "Time to collect one snapshot, limiter wait "
                    "included: observations per latency bucket.",
                    "s",
                    (buckets(c.TRACK_A_COLLECTION_DURATION), "{{le}}"),
                ),
                10,
            ),
            (
                timeseries(
                    "Collection duration p50/p99",
                    "Quantiles of the snapshot collection "
                    "time (recorded; TrackACollectionDelayed fires above 1 s at p99).",
                    "s",
                    [(rec(r.COLLECTION_LATENCY), "p{{quantile}} " + INST)],
                ),
                8,
            ),
            (
                timeseries(
                    "Sweep duration",
                    "Time to sweep the whole universe once, p50 and p99.",
                    "s",
                    [
                        (quantile(c.TRACK_A_SWEEP_DURATION, "0.5"), "p50 " + INST),
                        (quantile(c.TRACK_A_SWEEP_DURATION, "0.99"), "p99 " + INST),
                    ],
                ),
                8,
            ),
            (
                stat(
                    "Sweep completeness",
                    "Share of the universe the last completed sweep collected.",
                    "percentunit",
                    [(sel(c.TRACK_A_SWEEP_COMPLETENESS), INST)],
                    steps=completeness,
                ),
                4,
            ),
            (
                timeseries(
                    "Sweeps and failed snapshots",
                    "Sweeps completed, and snapshots that could "
                    "not be had after retries, per second.",
                    "ops",
                    [
                        (rate(c.TRACK_A_SWEEPS), "sweeps " + INST),
                        (rate(c.TRACK_A_SNAPSHOTS_FAILED), "failed " + INST),
                    ],
                ),
                6,
            ),
            (
                timeseries(
                    "Freshness SLO: stale ratio",
                    "Share of freshness checks finding a stale "
                    "snapshot over 5m, 1h and 6h (recorded). SLO: 99 % fresh; the lines mark "
                    "the 6x and 14.4x burn rates the TrackAFreshnessBudgetBurn alerts use.",
                    "percentunit",
                    [(rec(r.FRESHNESS_STALE_RATIO[w]), f"{w} {INST}") for w in ("5m", "1h", "6h")],
                    steps=BURN_STEPS,
                ),
                6,
            ),
        ),
    )


def track_b_row() -> Row:
    allocated, capacity = sel(c.TRACK_B_SLOTS_ALLOCATED), sel(c.TRACK_B_SLOTS_CAPACITY)
    return Row(
        "Track B",
        (
            (
                gauge(
                    "Slot utilisation",
                    "Registration slots in use out of the session's capacity "
                    "(41 per app key). Full slots are normal: starvation shows as refused triggers "
                    "and evictions.",
                    "percentunit",
                    [(f"sum by (instance) ({allocated}) / sum by (instance) ({capacity})", INST)],
                    steps=(("green", None), ("blue", 1.0)),
                ),
                6,
            ),
            (
                timeseries(
                    "Slots allocated vs available",
                    "Slots in use and slots still free.",
                    "short",
                    [
                        (allocated, "allocated " + INST),
                        (f"{capacity} - {allocated}", "available " + INST),
                    ],
                    stacked=True,
                ),
                9,
            ),
            (
                timeseries(
                    "Triggers and collection speed",
                    "Triggers raised per second by kind, and "
                    "trade records received per second (recorded; TrackBCollectionSlow reads "
                    "it, right axis).",
                    "ops",
                    [
                        (rate(c.TRACK_B_TRIGGERS, by="instance, kind"), "{{kind}} " + INST),
                        (rec(r.ITEM_RATE), "items/s " + INST),
                    ],
                    overrides=[second_axis("B", "ops")],
                ),
                9,
            ),
            (
                timeseries(
                    "Trigger outcomes and evictions",
                    "What became of triggers (claimed, "
                    "evicted another, already held, refused) and evictions, per second; "
                    "TrackBSlotStarvation reads refused triggers and evictions.",
                    "ops",
                    [
                        (rate(c.TRACK_B_TRIGGERS, by="instance, outcome"), "{{outcome}} " + INST),
                        (rate(c.TRACK_B_EVICTIONS), "evictions " + INST),
                    ],
                ),
                8,
            ),
            (
                timeseries(
                    "Reconnects by reason",
                    "WebSocket session reconnects per rate interval, by reason.",
                    "short",
                    [(increase(c.TRACK_B_RECONNECTS, by="instance, reason"), "{{reason}} " + INST)],
                ),
                8,
            ),
            (
                stat(
                    "Session connected",
                    "1 while the WebSocket session is open and registered.",
                    "none",
                    [(sel(c.TRACK_B_SESSION_CONNECTED), INST)],
                    mappings=UP_DOWN,
                ),
                8,
            ),
            (
                timeseries(
                    "Slot idle time",
                    "Seconds since the last data frame, per occupied slot.",
                    "s",
                    [
                        (
                            f"max by (instance, slot) ({sel(c.TRACK_B_SLOT_IDLE)})",
                            "slot {{slot}} " + INST,
                        )
                    ],
                ),
                12,
            ),
            (
                timeseries(
                    "Frames received and malformed",
                    "WebSocket data frames received and "
                    "frames that could not be parsed (right axis), per second.",
                    "ops",
                    [
                        (rate(c.TRACK_B_FRAMES_RECEIVED), "received " + INST),
                        (rate(c.TRACK_B_FRAMES_MALFORMED), "malformed " + INST),
                    ],
                    overrides=[second_axis("B", "ops")],
                ),
                12,
            ),
        ),
    )


def gaps_row() -> Row:
    return Row(
        "Gap detection",
        (
            (
                stat(
                    "Gap rate",
                    "Gaps found per second, all tracks and severities. Replaces the "
                    "source's lifetime total, which resets on every restart.",
                    "ops",
                    [(rate(c.GAPS_DETECTED), INST)],
                ),
                6,
            ),
            (
                pie(
                    "Severity distribution",
                    "Share of gaps by severity over the shown time range.",
                    "short",
                    [(increase(c.GAPS_DETECTED, by="severity"), "{{severity}}")],
                ),
                6,
            ),
            (
                timeseries(
                    "Detection duration p95/p99",
                    "Time spent running the gap rules "
                    "(recorded; GapDetectionLatency fires above 500 ms at p99).",
                    "s",
                    [(rec(r.GAP_DETECTION_LATENCY), "p{{quantile}} " + INST)],
                ),
                12,
            ),
            (
                timeseries(
                    "Gaps by track and cause",
                    "Gaps found per second, by track and cause.",
                    "ops",
                    [
                        (
                            rate(c.GAPS_DETECTED, by="instance, track, cause"),
                            "{{track}} {{cause}} " + INST,
                        )
                    ],
                ),
                12,
            ),
            (
                timeseries(
                    "Backfill outcomes",
                    "Track B gaps backfilled from REST per rate interval: "
                    "full, partial, or none (data lost).",
                    "short",
                    [(increase(c.GAP_BACKFILLS, by="instance, outcome"), "{{outcome}} " + INST)],
                ),
                12,
            ),
        ),
    )
