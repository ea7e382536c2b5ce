"""Dashboard rows on the services Observer depends on and on the process: rate
limiting, API, token, system, storage."""

from __future__ import annotations

from dashboards.panels import (
    ERROR_STEPS,
    INST,
    TOKEN_STEPS,
    UP_DOWN,
    Row,
    second_axis,
    stat,
    timeseries,
    value_text,
)
from dashboards.queries import increase, rate, rec, sel
from metrics import catalog as c
from metrics.promql import UP
from rules import recording as r
from rules.thresholds import THRESHOLDS


def rate_limit_row() -> Row:
    return Row(
        "Rate limiting",
        (
            (
                stat(
                    "Token consumption",
                    "Limiter tokens consumed per second (one per REST call), by lane.",
                    "reqps",
                    [(rate(c.RATE_LIMIT_TOKENS, by="instance, lane"), "{{lane}} " + INST)],
                ),
                6,
            ),
            (
                timeseries(
                    "Delays and p99 delay",
                    "Requests that waited for a token per second, and "
                    "the p99 wait per lane (recorded, right axis; RateLimitHighDelay reads the "
                    "backfill lane).",
                    "ops",
                    [
                        (
                            rate(c.RATE_LIMIT_DELAYS, by="instance, lane"),
                            "delayed {{lane}} " + INST,
                        ),
                        (rec(r.LIMITER_DELAY, quantile="0.99"), "p99 wait {{lane}} " + INST),
                    ],
                    overrides=[second_axis("B", "s")],
                ),
                10,
            ),
            (
                timeseries(
                    "Limiter queue depth",
                    "Requests waiting for a token now, by lane "
                    "(RateLimitTokenStarvation: the backfill queue never empties).",
                    "short",
                    [
                        (
                            f"sum by (instance, lane) ({sel(c.RATE_LIMIT_QUEUE_DEPTH)})",
                            "{{lane}} " + INST,
                        )
                    ],
                ),
                4,
            ),
            (
                timeseries(
                    "Server rate rejections",
                    "Calls the broker still refused for rate "
                    "(EGW00201) per second; each one backs the limiter off.",
                    "ops",
                    [(rate(c.RATE_LIMIT_REJECTIONS), INST)],
                ),
                4,
            ),
        ),
    )


def api_row() -> Row:
    return Row(
        "API",
        (
            (
                stat(
                    "Request rate",
                    "Broker API requests per second over 5 minutes (recorded; "
                    "APIUnresponsive reads it).",
                    "reqps",
                    [(rec(r.API_REQUEST_RATE), INST)],
                ),
                4,
            ),
            (
                stat(
                    "Error rate",
                    "Share of broker API requests that failed over 5 minutes "
                    "(recorded; orange from 5 %, HighAPIErrorRate; red from 50 %, "
                    "APICatastrophicErrors).",
                    "percentunit",
                    [(rec(r.API_ERROR_RATIO), INST)],
                    steps=ERROR_STEPS,
                ),
                4,
            ),
            (
                timeseries(
                    "Latency p50/p95/p99",
                    "Broker API latency quantiles, master-file "
                    "downloads left out (recorded; APILatencyHigh fires above 2 s at p99).",
                    "s",
                    [(rec(r.API_LATENCY), "p{{quantile}} " + INST)],
                ),
                8,
            ),
            (
                timeseries(
                    "Errors by class",
                    "Failed requests per second by error class (from rt_cd/msg_cd) and endpoint.",
                    "reqps",
                    [
                        (
                            rate(c.API_ERRORS, by="instance, endpoint, error_class"),
                            "{{endpoint}} {{error_class}} " + INST,
                        )
                    ],
                ),
                8,
            ),
        ),
    )


def token_row() -> Row:
    return Row(
        "Token",
        (
            (
                stat(
                    "Token validity",
                    "Time until the access token expires: red once expired, "
                    "orange under 1 h (TokenValidityLow), yellow under 4 h (refresh overdue).",
                    "s",
                    [(sel(c.TOKEN_VALIDITY), INST)],
                    steps=TOKEN_STEPS,
                ),
                6,
            ),
            (
                timeseries(
                    "Refresh rate",
                    "Token issuance attempts per rate interval, by result; "
                    "TokenRefreshFailure reads the failures.",
                    "short",
                    [(increase(c.TOKEN_REFRESHES, by="instance, result"), "{{result}} " + INST)],
                ),
                18,
            ),
        ),
    )


def system_row() -> Row:
    up = sel(UP)
    return Row(
        "System",
        (
            (
                stat(
                    "Uptime",
                    "Time since Observer started; a drop is a restart.",
                    "s",
                    [(sel(c.SYSTEM_UPTIME), INST)],
                ),
                4,
            ),
            (
                stat(
                    "Health summary",
                    "Scrape (up), readiness (token valid, first sweep done) and "
                    "the Track B session, per instance.",
                    "none",
                    [
                        (up, "scrape " + INST),
                        (sel(c.SYSTEM_READY), "ready " + INST),
                        (sel(c.TRACK_B_SESSION_CONNECTED), "session " + INST),
                    ],
                    mappings=UP_DOWN,
                    text_mode="value_and_name",
                ),
                8,
            ),
            (
                stat(
                    "Market",
                    "1 while the KRX regular session is open; rate-floor alerts only apply then.",
                    "none",
                    [(sel(c.MARKET_OPEN), INST)],
                    mappings=value_text((("1", "open", "green"), ("0", "closed", "blue"))),
                ),
                4,
            ),
            (
                stat(
                    "Build",
                    "Observer and Python versions running.",
                    "none",
                    [(sel(c.BUILD_INFO), "{{version}} (Python {{python_version}})")],
                    text_mode="name",
                ),
                4,
            ),
            (
                stat(
                    "Resources",
                    "CPU in cores and resident memory against the configured limit "
                    "(recorded; ObserverCPUHigh and ObserverMemoryNearLimit read them).",
                    "percentunit",
                    [
                        (rec(r.CPU_RATE), "CPU " + INST),
                        (rec(r.MEMORY_LIMIT_RATIO), "memory " + INST),
                    ],
                    steps=(("green", None), ("red", 0.9)),
                ),
                4,
            ),
        ),
    )


def storage_row(queue_fill: float = THRESHOLDS["StorageQueueFilling"].default) -> Row:
    """The storage row; ``queue_fill`` is StorageQueueFilling's threshold (a line on a panel)."""
    return Row(
        "Storage",
        (
            (
                timeseries(
                    "Rows written",
                    "Rows committed to the store per second, by kind.",
                    "ops",
                    [(rate(c.STORAGE_ROWS_WRITTEN, by="instance, kind"), "{{kind}} " + INST)],
                ),
                6,
            ),
            (
                timeseries(
                    "Write queue depth",
                    "Records waiting for the writer thread, and how many the queue holds "
                    "before producers wait (storage.queue_size).",
                    "short",
                    [
                        (sel(c.STORAGE_QUEUE_DEPTH), "depth " + INST),
                        (sel(c.STORAGE_QUEUE_CAPACITY), "capacity " + INST),
                    ],
                ),
                6,
            ),
            (
                timeseries(
                    "Write queue fill",
                    "Share of the write queue in use (recorded; StorageQueueFilling fires "
                    "above the line for 5 minutes).",
                    "percentunit",
                    [(rec(r.STORAGE_QUEUE_FILL), INST)],
                    steps=(("green", None), ("red", queue_fill)),
                ),
                6,
            ),
            (
                timeseries(
                    "Queue overflows and write errors",
                    "Producers that found the queue full, "
                    "and batches that failed to commit (kept and retried), per rate interval.",
                    "short",
                    [
                        (increase(c.STORAGE_QUEUE_OVERFLOWS), "overflows " + INST),
                        (
                            increase(c.STORAGE_WRITE_ERRORS, by="instance, reason"),
                            "write errors {{reason}} " + INST,
                        ),
                    ],
                ),
                6,
            ),
            (
                stat(
                    "Store available",
                    "1 while the store accepts writes; 0 from a failed write (disk full, "
                    "database unreachable) until a batch commits again.",
                    "short",
                    [(f"min by (instance) ({sel(c.STORAGE_AVAILABLE)})", INST)],
                    steps=(("red", None), ("green", 1.0)),
                ),
                6,
            ),
            (
                timeseries(
                    "Database size",
                    "The SQLite file and its WAL, or the PostgreSQL database.",
                    "bytes",
                    [(sel(c.STORAGE_DATABASE_BYTES), INST)],
                ),
                6,
            ),
            (
                timeseries(
                    "Oldest row age",
                    "Age of the oldest stored row by kind: retention keeps it under "
                    "storage.retention_days (gap_retention_days for gaps), plus a day.",
                    "s",
                    [(sel(c.STORAGE_OLDEST_ROW_AGE), "{{kind}} " + INST)],
                ),
                6,
            ),
            (
                timeseries(
                    "Rows deleted by retention",
                    "Rows removed by retention per rate interval, by kind.",
                    "short",
                    [(increase(c.STORAGE_ROWS_DELETED, by="instance, kind"), "{{kind}} " + INST)],
                ),
                6,
            ),
        ),
    )


def cluster_row() -> Row:
    """Several Observers (one per app key) as one collector: members, the leader, the
    universe's split, Track B's slots per key and the cluster's sweep period."""
    sweep = c.TRACK_A_SWEEP_DURATION
    return Row(
        "Cluster",
        (
            (
                stat(
                    "Members",
                    "Live members of the cluster (holders of a key lock), as each sees them.",
                    "short",
                    [(f"max({sel(c.CLUSTER_MEMBERS)})", "members")],
                ),
                3,
            ),
            (
                stat(
                    "Leader",
                    "1 on the member holding the leader lock (0 everywhere outside a cluster).",
                    "short",
                    [(f"max by (instance) ({sel(c.CLUSTER_LEADER)})", INST)],
                ),
                3,
            ),
            (
                timeseries(
                    "Symbols per member",
                    "Track A symbols each member sweeps (rendezvous split of the universe) "
                    "and their sum against the universe.",
                    "short",
                    [
                        (sel(c.CLUSTER_SYMBOLS_OWNED), INST),
                        (f"sum({sel(c.CLUSTER_SYMBOLS_OWNED)})", "owned, all members"),
                        (f"max({sel(c.UNIVERSE_SIZE)})", "universe"),
                    ],
                ),
                6,
            ),
            (
                timeseries(
                    "Track B slots per key",
                    "WebSocket registrations each member's key holds (one key per member, "
                    "at most 41) and the cluster's pool: held on all keys against their "
                    "capacity. The leader places every member's triggers on the key with room.",
                    "short",
                    [
                        (sel(c.TRACK_B_SLOTS_ALLOCATED), INST),
                        (f"sum({sel(c.TRACK_B_SLOTS_ALLOCATED)})", "held, all keys"),
                        (f"sum({sel(c.TRACK_B_SLOTS_CAPACITY)})", "pool capacity"),
                    ],
                ),
                6,
            ),
            (
                timeseries(
                    "Cluster sweep period",
                    "The slowest member's last sweep: every symbol is swept at least this "
                    "often; rebalances (a member joined or left) per rate interval.",
                    "s",
                    [
                        (
                            f"max(rate({sel(sweep, '_sum')}[$__rate_interval]) "
                            f"/ rate({sel(sweep, '_count')}[$__rate_interval]))",
                            "sweep period",
                        ),
                        (increase(c.CLUSTER_REBALANCES), "rebalances " + INST),
                    ],
                ),
                6,
            ),
        ),
    )
