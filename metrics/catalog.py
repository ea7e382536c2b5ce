"""The metric catalog: every metric Observer exports, declared once.

The exporter registers from these entries, dashboards and alert rules build
their queries from them, and `docs/metrics.md` is generated from them. Code
refers to an entry (``catalog.UNIVERSE_SIZE``), never to a copy of its name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from metrics import labels
from metrics.labels import (
    ClaimOutcome,
    ErrorClass,
    GapCause,
    Lane,
    ReconnectReason,
    RowKind,
    Severity,
    StorageErrorReason,
    TriggerKind,
    values,
)


class Kind(enum.Enum):
    """Prometheus metric types used by Observer."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rename:
    """A metric name from the source design that Observer does not export as is."""

    source_name: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricSpec:
    """One metric: its name, type, help text, unit, labels and buckets.

    ``name`` is the exported family name; counters carry their ``_total``
    suffix here so that the catalog reads as the exposition does. ``labels``
    must have bounded values: ``label_values`` lists them where they are a
    closed set, and the docs state the bound for the others.
    """

    name: str
    kind: Kind
    help: str
    group: str
    unit: str = ""
    labels: tuple[str, ...] = ()
    label_values: tuple[tuple[str, tuple[str, ...]], ...] = ()
    buckets: tuple[float, ...] = ()
    renames: tuple[Rename, ...] = ()
    extra: bool = False  # not in the source design: added for operators

    @property
    def family(self) -> str:
        """The family name prometheus_client reports (``_total`` stripped)."""
        if self.kind is Kind.COUNTER and self.name.endswith("_total"):
            return self.name.removesuffix("_total")
        return self.name

    def values_of(self, label: str) -> tuple[str, ...]:
        """The closed set of values ``label`` takes, or () when open but bounded."""
        return dict(self.label_values).get(label, ())

    def sample(self, suffix: str = "") -> str:
        """A series name of this family: ``spec.sample("_bucket")`` for histograms."""
        return self.family + suffix if suffix else self.name


# Buckets chosen around what each duration usually is, with head-room for trouble.
API_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
LIMITER_DELAY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
GAP_DETECTION_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
SWEEP_BUCKETS = (10.0, 30.0, 60.0, 90.0, 120.0, 130.0, 150.0, 180.0, 240.0, 300.0, 600.0)

ENDPOINTS = (
    "token",
    "revoke",
    "approval",
    "inquire_price",
    "time_conclusion",
    "holiday",
    "volume_rank",
    "master_file",
)
API_OUTCOMES = ("ok", "error")
API_ERROR_CLASSES = values(ErrorClass)
LANES = values(Lane)
TRACKS = ("a", "b")
SEVERITIES = values(Severity)
GAP_CAUSES = values(GapCause)
TRIGGER_KINDS = values(TriggerKind)
TRIGGER_OUTCOMES = values(ClaimOutcome)
RECONNECT_REASONS = values(ReconnectReason)
REFRESH_RESULTS = ("success", "failure")
BACKFILL_OUTCOMES = values(labels.BACKFILL_OUTCOMES)
ROW_KINDS = values(RowKind)
STORAGE_ERROR_REASONS = values(StorageErrorReason)

# promtool check metrics splits names on "_" and flags the token "b" as an abbreviated
# unit (bytes), so every observer_track_b_* name fails its lint: Track B metrics are
# exported as observer_trackb_*.
TRACKB_REASON = (
    "promtool check metrics reads the token `b` in observer_track_b_* as the abbreviated "
    "unit 'b' (bytes) and rejects the name; Track B metrics are observer_trackb_*"
)

# --- universe ---------------------------------------------------------------
UNIVERSE_SIZE = MetricSpec(
    name="observer_universe_size",
    kind=Kind.GAUGE,
    help="Symbols in the observed universe now.",
    group="universe",
)
UNIVERSE_CREATED = MetricSpec(
    name="observer_universe_created_total",
    kind=Kind.COUNTER,
    help="Symbols added to the universe.",
    group="universe",
)
UNIVERSE_DELETED = MetricSpec(
    name="observer_universe_deleted_total",
    kind=Kind.COUNTER,
    help="Symbols removed from the universe.",
    group="universe",
)

# --- Track A ----------------------------------------------------------------
TRACK_A_SNAPSHOTS = MetricSpec(
    name="observer_track_a_snapshots_total",
    kind=Kind.COUNTER,
    help="Current-price snapshots collected and stored.",
    group="track_a",
)
TRACK_A_SNAPSHOTS_FAILED = MetricSpec(
    name="observer_track_a_snapshots_failed_total",
    kind=Kind.COUNTER,
    help="Snapshots that could not be had within a sweep, after retries.",
    group="track_a",
    extra=True,
)
TRACK_A_COLLECTION_DURATION = MetricSpec(
    name="observer_track_a_collection_duration_seconds",
    kind=Kind.HISTOGRAM,
    help="Time to collect one snapshot, limiter wait included.",
    group="track_a",
    unit="seconds",
    buckets=API_LATENCY_BUCKETS,
)
TRACK_A_SWEEPS = MetricSpec(
    name="observer_track_a_sweeps_total",
    kind=Kind.COUNTER,
    help="Completed sweeps over the universe.",
    group="track_a",
    extra=True,
)
TRACK_A_SWEEP_DURATION = MetricSpec(
    name="observer_track_a_sweep_duration_seconds",
    kind=Kind.HISTOGRAM,
    help="Time to sweep the whole universe once.",
    group="track_a",
    unit="seconds",
    buckets=SWEEP_BUCKETS,
    extra=True,
)
TRACK_A_SWEEP_COMPLETENESS = MetricSpec(
    name="observer_track_a_sweep_completeness_ratio",
    kind=Kind.GAUGE,
    help="Share of the universe the last completed sweep collected (0 to 1).",
    group="track_a",
    unit="ratio",
    extra=True,
)
TRACK_A_FRESHNESS_CHECKS = MetricSpec(
    name="observer_track_a_freshness_checks_total",
    kind=Kind.COUNTER,
    help="Per-symbol freshness checks while the market is open, by result (the SLO's events).",
    group="track_a",
    labels=("result",),
    label_values=(("result", ("fresh", "stale")),),
    extra=True,
)

# --- Track B ----------------------------------------------------------------
TRACK_B_SLOTS_CAPACITY = MetricSpec(
    name="observer_trackb_slots_capacity",
    kind=Kind.GAUGE,
    help="WebSocket registration slots available in all (at most 41 per session).",
    group="track_b",
    renames=(
        Rename(
            source_name="observer_track_b_slots_total",
            reason="a gauge may not end in _total (promtool check metrics); "
            "_total is reserved for counters; and " + TRACKB_REASON,
        ),
    ),
)
TRACK_B_SLOTS_ALLOCATED = MetricSpec(
    name="observer_trackb_slots_allocated",
    kind=Kind.GAUGE,
    help="WebSocket registration slots in use.",
    group="track_b",
    renames=(Rename(source_name="observer_track_b_slots_allocated", reason=TRACKB_REASON),),
)
TRACK_B_TRIGGERS = MetricSpec(
    name="observer_trackb_triggers_total",
    kind=Kind.COUNTER,
    help="Track B triggers (Track A's, and the volume-rank seeds at start), by kind and outcome.",
    group="track_b",
    labels=("kind", "outcome"),
    label_values=(("kind", TRIGGER_KINDS), ("outcome", TRIGGER_OUTCOMES)),
    renames=(Rename(source_name="observer_track_b_triggers_total", reason=TRACKB_REASON),),
)
TRACK_B_EVICTIONS = MetricSpec(
    name="observer_trackb_evictions_total",
    kind=Kind.COUNTER,
    help="Subscriptions evicted to make room for a more valuable symbol.",
    group="track_b",
    extra=True,
)
TRACK_B_ITEMS_RECEIVED = MetricSpec(
    name="observer_trackb_items_received_total",
    kind=Kind.COUNTER,
    help="Trade records received over WebSocket; collection speed is its rate().",
    group="track_b",
    renames=(
        Rename(
            source_name="observer_track_b_collection_speed",
            reason="a speed gauge computed in-process hides its window and cannot be "
            "aggregated; a counter of received items gives speed as rate() in PromQL; and "
            + TRACKB_REASON,
        ),
    ),
)
TRACK_B_FRAMES_RECEIVED = MetricSpec(
    name="observer_trackb_frames_received_total",
    kind=Kind.COUNTER,
    help="WebSocket data frames received (one frame may carry several records).",
    group="track_b",
    extra=True,
)
TRACK_B_FRAMES_MALFORMED = MetricSpec(
    name="observer_trackb_frames_malformed_total",
    kind=Kind.COUNTER,
    help="WebSocket frames that could not be parsed; counted and skipped.",
    group="track_b",
    extra=True,
)
TRACK_B_SLOT_IDLE = MetricSpec(
    name="observer_trackb_slot_idle_seconds",
    kind=Kind.GAUGE,
    help="Seconds since the last data frame for the symbol in each occupied slot.",
    group="track_b",
    unit="seconds",
    labels=("slot",),
    extra=True,
)
TRACK_B_RECONNECTS = MetricSpec(
    name="observer_trackb_reconnects_total",
    kind=Kind.COUNTER,
    help="WebSocket session reconnects, by reason.",
    group="track_b",
    labels=("reason",),
    label_values=(("reason", RECONNECT_REASONS),),
    extra=True,
)
TRACK_B_SESSION_CONNECTED = MetricSpec(
    name="observer_trackb_session_connected",
    kind=Kind.GAUGE,
    help="1 while the WebSocket session is open and registered, else 0.",
    group="track_b",
    extra=True,
)

# --- token ------------------------------------------------------------------
TOKEN_REFRESHES = MetricSpec(
    name="observer_token_refreshes_total",
    kind=Kind.COUNTER,
    help="Access-token issuance attempts, by result.",
    group="token",
    labels=("result",),
    label_values=(("result", REFRESH_RESULTS),),
)
TOKEN_VALIDITY = MetricSpec(
    name="observer_token_validity_seconds",
    kind=Kind.GAUGE,
    help="Seconds until the current access token expires (negative once expired).",
    group="token",
    unit="seconds",
)

# --- gaps -------------------------------------------------------------------
GAPS_DETECTED = MetricSpec(
    name="observer_gaps_detected_total",
    kind=Kind.COUNTER,
    help="Gaps found in the collected data, by track, severity and cause.",
    group="gaps",
    labels=("track", "severity", "cause"),
    label_values=(("track", TRACKS), ("severity", SEVERITIES), ("cause", GAP_CAUSES)),
    renames=tuple(
        Rename(
            source_name=f"observer_gaps_{level}_total",
            reason="one counter per severity splits one dimension across names; "
            f'it is observer_gaps_detected_total{{severity="{level}"}}',
        )
        for level in SEVERITIES
    ),
)
GAP_DETECTION_DURATION = MetricSpec(
    name="observer_gap_detection_duration_seconds",
    kind=Kind.HISTOGRAM,
    help="Time spent running the gap rules.",
    group="gaps",
    unit="seconds",
    buckets=GAP_DETECTION_BUCKETS,
)
GAP_BACKFILLS = MetricSpec(
    name="observer_gap_backfills_total",
    kind=Kind.COUNTER,
    help="Track B gaps backfilled from REST, by outcome (full, partial, none).",
    group="gaps",
    labels=("outcome",),
    label_values=(("outcome", BACKFILL_OUTCOMES),),
    extra=True,
)

# --- rate limiting ------------------------------------------------------------
RATE_LIMIT_TOKENS = MetricSpec(
    name="observer_rate_limit_tokens_total",
    kind=Kind.COUNTER,
    help="Limiter tokens consumed (one per REST call), by priority lane.",
    group="rate_limit",
    labels=("lane",),
    label_values=(("lane", LANES),),
)
RATE_LIMIT_DELAYS = MetricSpec(
    name="observer_rate_limit_delays_total",
    kind=Kind.COUNTER,
    help="Requests that had to wait for a limiter token, by lane.",
    group="rate_limit",
    labels=("lane",),
    label_values=(("lane", LANES),),
)
RATE_LIMIT_DELAY_DURATION = MetricSpec(
    name="observer_rate_limit_delay_duration_seconds",
    kind=Kind.HISTOGRAM,
    help="How long delayed requests waited for a limiter token.",
    group="rate_limit",
    unit="seconds",
    labels=("lane",),
    label_values=(("lane", LANES),),
    buckets=LIMITER_DELAY_BUCKETS,
)
RATE_LIMIT_QUEUE_DEPTH = MetricSpec(
    name="observer_rate_limit_queue_depth",
    kind=Kind.GAUGE,
    help="Requests waiting for a limiter token now, by lane.",
    group="rate_limit",
    labels=("lane",),
    label_values=(("lane", LANES),),
    extra=True,
)
RATE_LIMIT_REJECTIONS = MetricSpec(
    name="observer_rate_limit_rejections_total",
    kind=Kind.COUNTER,
    help="Calls the server still refused for rate (EGW00201); each one backs the limiter off.",
    group="rate_limit",
    extra=True,
)

# --- API ----------------------------------------------------------------------
API_REQUESTS = MetricSpec(
    name="observer_api_requests_total",
    kind=Kind.COUNTER,
    help="Broker API requests, by endpoint and outcome.",
    group="api",
    labels=("endpoint", "outcome"),
    label_values=(("endpoint", ENDPOINTS), ("outcome", API_OUTCOMES)),
)
API_REQUEST_DURATION = MetricSpec(
    name="observer_api_request_duration_seconds",
    kind=Kind.HISTOGRAM,
    help="Broker API request latency, by endpoint.",
    group="api",
    unit="seconds",
    labels=("endpoint",),
    label_values=(("endpoint", ENDPOINTS),),
    buckets=API_LATENCY_BUCKETS,
)
API_ERRORS = MetricSpec(
    name="observer_api_errors_total",
    kind=Kind.COUNTER,
    help="Failed broker API requests, by endpoint and error class (from rt_cd/msg_cd).",
    group="api",
    labels=("endpoint", "error_class"),
    label_values=(("endpoint", ENDPOINTS), ("error_class", API_ERROR_CLASSES)),
)

# --- market, storage, system -------------------------------------------------
MARKET_OPEN = MetricSpec(
    name="observer_market_open",
    kind=Kind.GAUGE,
    help="1 while the KRX regular session is open (or forced open), else 0.",
    group="market",
    extra=True,
)
STORAGE_ROWS_WRITTEN = MetricSpec(
    name="observer_storage_rows_written_total",
    kind=Kind.COUNTER,
    help="Rows committed to storage, by kind (duplicates are not counted).",
    group="storage",
    labels=("kind",),
    label_values=(("kind", ROW_KINDS),),
    extra=True,
)
STORAGE_QUEUE_DEPTH = MetricSpec(
    name="observer_storage_queue_depth",
    kind=Kind.GAUGE,
    help="Records waiting in the storage write queue.",
    group="storage",
    extra=True,
)
STORAGE_QUEUE_CAPACITY = MetricSpec(
    name="observer_storage_queue_capacity",
    kind=Kind.GAUGE,
    help="Records the storage write queue holds before producers wait (storage.queue_size).",
    group="storage",
    extra=True,
)
STORAGE_QUEUE_OVERFLOWS = MetricSpec(
    name="observer_storage_queue_overflows_total",
    kind=Kind.COUNTER,
    help="Times a producer found the storage queue full and had to wait.",
    group="storage",
    extra=True,
)
STORAGE_WRITE_ERRORS = MetricSpec(
    name="observer_storage_write_errors_total",
    kind=Kind.COUNTER,
    help="Storage batches that failed to commit (kept and retried), by reason.",
    group="storage",
    labels=("reason",),
    label_values=(("reason", STORAGE_ERROR_REASONS),),
    extra=True,
)
STORAGE_AVAILABLE = MetricSpec(
    name="observer_storage_available",
    kind=Kind.GAUGE,
    help="1 while the store accepts writes; 0 from a failed write until a batch commits again.",
    group="storage",
    extra=True,
)
STORAGE_ROWS_DELETED = MetricSpec(
    name="observer_storage_rows_deleted_total",
    kind=Kind.COUNTER,
    help="Rows removed by retention (storage.retention_days, gap_retention_days), by kind.",
    group="storage",
    labels=("kind",),
    label_values=(("kind", ROW_KINDS),),
    extra=True,
)
STORAGE_DATABASE_BYTES = MetricSpec(
    name="observer_storage_database_bytes",
    kind=Kind.GAUGE,
    help="Size of the database on disk (SQLite file and WAL, or the PostgreSQL database).",
    group="storage",
    unit="bytes",
    extra=True,
)
STORAGE_OLDEST_ROW_AGE = MetricSpec(
    name="observer_storage_oldest_row_age_seconds",
    kind=Kind.GAUGE,
    help="Age of the oldest stored row, by kind (PostgreSQL: of its oldest day partition).",
    group="storage",
    unit="seconds",
    labels=("kind",),
    label_values=(("kind", ROW_KINDS),),
    extra=True,
)
CLUSTER_MEMBERS = MetricSpec(
    name="observer_cluster_members",
    kind=Kind.GAUGE,
    help="Live members of the cluster as this instance sees them (0 outside a cluster).",
    group="cluster",
    extra=True,
)
CLUSTER_SYMBOLS_OWNED = MetricSpec(
    name="observer_cluster_symbols_owned",
    kind=Kind.GAUGE,
    help="Track A symbols this instance sweeps as its share of the cluster's universe.",
    group="cluster",
    extra=True,
)
CLUSTER_LEADER = MetricSpec(
    name="observer_cluster_leader",
    kind=Kind.GAUGE,
    help="1 on the cluster's leader, else 0.",
    group="cluster",
    extra=True,
)
CLUSTER_REBALANCES = MetricSpec(
    name="observer_cluster_rebalances_total",
    kind=Kind.COUNTER,
    help="Times the live members or this instance's share of the universe changed.",
    group="cluster",
    extra=True,
)
SYSTEM_UPTIME = MetricSpec(
    name="observer_system_uptime_seconds",
    kind=Kind.GAUGE,
    help="Seconds since Observer started.",
    group="system",
    unit="seconds",
)
SYSTEM_READY = MetricSpec(
    name="observer_system_ready",
    kind=Kind.GAUGE,
    help="1 once Observer is ready (token valid, first sweep done), else 0.",
    group="system",
    extra=True,
)
BUILD_INFO = MetricSpec(
    name="observer_build_info",
    kind=Kind.GAUGE,
    help="Always 1; labels say which Observer build and Python run.",
    group="system",
    labels=("version", "python_version"),
    extra=True,
)

CATALOG: tuple[MetricSpec, ...] = (
    UNIVERSE_SIZE,
    UNIVERSE_CREATED,
    UNIVERSE_DELETED,
    TRACK_A_SNAPSHOTS,
    TRACK_A_SNAPSHOTS_FAILED,
    TRACK_A_COLLECTION_DURATION,
    TRACK_A_SWEEPS,
    TRACK_A_SWEEP_DURATION,
    TRACK_A_SWEEP_COMPLETENESS,
    TRACK_A_FRESHNESS_CHECKS,
    TRACK_B_SLOTS_CAPACITY,
    TRACK_B_SLOTS_ALLOCATED,
    TRACK_B_TRIGGERS,
    TRACK_B_EVICTIONS,
    TRACK_B_ITEMS_RECEIVED,
    TRACK_B_FRAMES_RECEIVED,
    TRACK_B_FRAMES_MALFORMED,
    TRACK_B_SLOT_IDLE,
    TRACK_B_RECONNECTS,
    TRACK_B_SESSION_CONNECTED,
    TOKEN_REFRESHES,
    TOKEN_VALIDITY,
    GAPS_DETECTED,
    GAP_DETECTION_DURATION,
    GAP_BACKFILLS,
    RATE_LIMIT_TOKENS,
    RATE_LIMIT_DELAYS,
    RATE_LIMIT_DELAY_DURATION,
    RATE_LIMIT_QUEUE_DEPTH,
    RATE_LIMIT_REJECTIONS,
    API_REQUESTS,
    API_REQUEST_DURATION,
    API_ERRORS,
    MARKET_OPEN,
    STORAGE_ROWS_WRITTEN,
    STORAGE_QUEUE_DEPTH,
    STORAGE_QUEUE_CAPACITY,
    STORAGE_QUEUE_OVERFLOWS,
    STORAGE_WRITE_ERRORS,
    STORAGE_AVAILABLE,
    STORAGE_ROWS_DELETED,
    STORAGE_DATABASE_BYTES,
    STORAGE_OLDEST_ROW_AGE,
    CLUSTER_MEMBERS,
    CLUSTER_SYMBOLS_OWNED,
    CLUSTER_LEADER,
    CLUSTER_REBALANCES,
    SYSTEM_UPTIME,
    SYSTEM_READY,
    BUILD_INFO,
)

GROUPS: tuple[str, ...] = tuple(dict.fromkeys(spec.group for spec in CATALOG))


def by_name(name: str) -> MetricSpec:
    """The catalog entry exported as ``name``; KeyError names the unknown metric."""
    for spec in CATALOG:
        if spec.name == name or spec.family == name:
            return spec
    raise KeyError(f"no metric {name!r} in the catalog")
