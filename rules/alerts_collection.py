"""Source-design alerts on what Observer collects: universe, Track A, Track B, gaps."""

from __future__ import annotations

from types import MappingProxyType

from exporter import catalog
from rules import recording as rec
from rules.alerts_gaps import gap_alerts
from rules.build import BY, CLOSED_ALL_DAY, OPEN, OPEN_ALL_DAY, OPENS_AT_10M, alert
from rules.inputs import TARGET, histogram, series
from rules.model import AlertDefinition, Firing, Healthy, RunbookEntry
from rules.params import RuleParams
from rules.promql import RULES, recorded, selector

P99 = MappingProxyType({"quantile": "0.99"})


def _universe(params: RuleParams) -> tuple[AlertDefinition, ...]:
    size = selector(catalog.UNIVERSE_SIZE, RULES)
    average = f"avg_over_time({size}[1d])"
    created = selector(catalog.UNIVERSE_CREATED, RULES)
    # 60 minutes at 2000 symbols, then 500: deviation from the 1-day mean at 70 minutes.
    mean_at_70m = (60 * 2000 + 11 * 500) / 71
    return (
        AlertDefinition(
            rule=alert(
                params,
                "UniverseSizeAnomaly",
                f"abs({size} - {average}) / {average} > 0.5",
                for_minutes=10,
                severity="warning",
                summary="The universe size is far from its one-day average.",
                description="The universe of {{ $labels.instance }} deviates "
                "{{ $value | humanizePercentage }} from its one-day average (threshold 50%).",
            ),
            runbook=RunbookEntry(
                meaning="The number of observed symbols moved more than half away from its "
                "average over the last day: a truncated or wrong master file, a shard change, "
                "or a parsing fault.",
                source_change="Kept: the source compared the size with its average; the "
                "average is taken over one day because the universe is reloaded daily.",
                actions=(
                    "Compare `observer_universe_size` with the KOSPI/KOSDAQ share counts.",
                    "Check the last master-file reload in the logs and the shard setting.",
                ),
            ),
            firing=(
                Firing(
                    name="size drops from 2000 to 500",
                    inputs=(series(catalog.UNIVERSE_SIZE, "2000x59 500x{n}"),),
                    onset_seconds=3600,
                    value=(mean_at_70m - 500) / mean_at_70m,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="daily additions",
                    inputs=(series(catalog.UNIVERSE_SIZE, "2000x30 2010x{n}"),),
                ),
            ),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "RapidUniverseExpansion",
                f"sum by ({BY}) (increase({created}[1h])) > 100",
                for_minutes=5,
                severity="warning",
                summary="Many symbols were added to the universe within an hour.",
                description="{{ $value | humanize }} symbols were added to the universe of "
                "{{ $labels.instance }} in the last hour (threshold 100).",
            ),
            runbook=RunbookEntry(
                meaning="More than 100 symbols joined the universe within an hour; new "
                "listings come a handful a day, so this is usually a master-file fault.",
                source_change="The source asked for growth above 100 symbols per second, "
                "which a daily reload can never sustain for 5 minutes; the same 100 is now "
                "counted per hour with `increase`.",
                actions=(
                    "Inspect the added codes (logs of the last reload) for non-share groups.",
                    "Check Track B trigger volume: new symbols raise triggers.",
                ),
            ),
            firing=(
                Firing(
                    name="150 symbols added at once",
                    inputs=(series(catalog.UNIVERSE_CREATED, "0 150+0x{n}"),),
                    onset_seconds=60,
                    value=150,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="five new listings",
                    inputs=(series(catalog.UNIVERSE_CREATED, "0 5+0x{n}"),),
                ),
            ),
        ),
    )


def _track_a(params: RuleParams) -> tuple[AlertDefinition, ...]:
    spec = catalog.TRACK_A_COLLECTION_DURATION
    return (
        AlertDefinition(
            rule=alert(
                params,
                "TrackACollectionDelayed",
                f"{recorded(rec.COLLECTION_LATENCY, RULES, **P99)} > 1",
                for_minutes=10,
                severity="warning",
                summary="Track A snapshots take more than a second to collect.",
                description="p99 snapshot collection time on {{ $labels.instance }} is "
                "{{ $value | humanizeDuration }} (threshold 1s).",
            ),
            runbook=RunbookEntry(
                meaning="The 99th percentile of the time to collect one snapshot, limiter "
                "wait included, stayed above one second: sweeps slow down and snapshots age.",
                source_change="Kept; the quantile is the shared recorded series, so the alert "
                "and the dashboard panel show the same number.",
                actions=(
                    "Look at API latency and the limiter delay panels to see which part grew.",
                    "Check `observer_rate_limit_rejections_total`: server back-off stalls calls.",
                ),
            ),
            firing=(
                Firing(
                    name="every snapshot takes 1-2 s",
                    inputs=histogram(spec, 1.0, "0+60x{n}"),
                    onset_seconds=60,
                    value=1.99,
                    labels=(*TARGET, ("quantile", "0.99")),
                ),
            ),
            healthy=(Healthy(name="fast snapshots", inputs=histogram(spec, 0.1, "0+60x{n}")),),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "TrackANoSnapshots",
                f"{recorded(rec.SNAPSHOT_RATE, RULES)} < 0.1 and {OPEN}",
                for_minutes=5,
                severity="critical",
                summary="Track A is collecting almost no snapshots while the market is open.",
                description="Track A on {{ $labels.instance }} collected "
                '{{ $value | printf "%.2f" }} snapshots per second over 5 minutes while the '
                "market is open (floor 0.1/s).",
            ),
            runbook=RunbookEntry(
                meaning="Sweeps have (nearly) stopped during market hours: no new prices are "
                "stored and Track B loses its triggers.",
                source_change="The source's floor of 0.1 snapshots per second fired every "
                "night and weekend; it is now gated on `observer_market_open == 1`.",
                actions=(
                    "Check the API error and token panels: sweeps stop when every call fails.",
                    "Check `observer_system_ready` and the logs for a crashed sweep task.",
                ),
            ),
            firing=(
                Firing(
                    name="no snapshots once the market opens",
                    inputs=(series(catalog.TRACK_A_SNAPSHOTS, "0+0x{n}"), OPENS_AT_10M),
                    onset_seconds=600,
                    value=0,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="market closed",
                    inputs=(series(catalog.TRACK_A_SNAPSHOTS, "0+0x{n}"), CLOSED_ALL_DAY),
                ),
                Healthy(
                    name="sweeping at 20/s",
                    inputs=(series(catalog.TRACK_A_SNAPSHOTS, "0+1200x{n}"), OPEN_ALL_DAY),
                ),
            ),
        ),
    )


def _track_b(params: RuleParams) -> tuple[AlertDefinition, ...]:
    triggers = catalog.TRACK_B_TRIGGERS
    refused = f"rate({selector(triggers, RULES, outcome='refused')}[5m])"
    evictions = f"rate({selector(catalog.TRACK_B_EVICTIONS, RULES)}[5m])"
    capacity = selector(catalog.TRACK_B_SLOTS_CAPACITY, RULES)
    return (
        AlertDefinition(
            rule=alert(
                params,
                "TrackBSlotStarvation",
                f"sum by ({BY}) ({refused}) > 0.1 or sum by ({BY}) ({evictions}) * 60 "
                f"> on ({BY}) max by ({BY}) ({capacity})",
                for_minutes=5,
                severity="critical",
                summary="Track B cannot give triggered symbols a slot.",
                description="Track B on {{ $labels.instance }} is starved of slots: "
                "{{ $value | humanize }} (refused triggers per second, or evictions per "
                "minute when they outnumber the slots).",
            ),
            runbook=RunbookEntry(
                meaning="Triggers keep being refused a slot, or subscriptions are evicted "
                "faster than the slots turn over once a minute: Track B is not following "
                "the symbols that matter.",
                source_change="The source fired on slot utilisation above 95 %, but full "
                "slots are Track B's normal state; starvation is read from refused triggers "
                '(`outcome="refused"`) and from eviction churn instead.',
                actions=(
                    "See which trigger kind dominates in the triggers panel; raise the "
                    "trigger thresholds (`track_b.price_move_pct`, `volume_surge_ratio`).",
                    "Split the universe over more app keys (`--shard i/n`) for more slots.",
                ),
            ),
            firing=(
                Firing(
                    name="one refused trigger per second",
                    inputs=(series(triggers, "0+60x{n}", kind="price_move", outcome="refused"),),
                    onset_seconds=60,
                    value=1,
                    labels=TARGET,
                ),
                Firing(
                    name="300 evictions a minute for 41 slots",
                    inputs=(
                        series(catalog.TRACK_B_EVICTIONS, "0+300x{n}"),
                        series(catalog.TRACK_B_SLOTS_CAPACITY, "41x{n}"),
                    ),
                    onset_seconds=60,
                    value=300,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="all slots full, a few evictions",
                    inputs=(
                        series(catalog.TRACK_B_SLOTS_CAPACITY, "41x{n}"),
                        series(catalog.TRACK_B_SLOTS_ALLOCATED, "41x{n}"),
                        series(triggers, "0+30x{n}", kind="volume_surge", outcome="claimed"),
                        series(triggers, "0+0x{n}", kind="volume_surge", outcome="refused"),
                        series(catalog.TRACK_B_EVICTIONS, "0+6x{n}"),
                    ),
                ),
            ),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "TrackBCollectionSlow",
                f"{recorded(rec.ITEM_RATE, RULES)} < 50 and {OPEN}",
                for_minutes=10,
                severity="warning",
                summary="Track B receives few trades while the market is open.",
                description="Track B on {{ $labels.instance }} received "
                '{{ $value | printf "%.2f" }} trades per second over 5 minutes while the '
                "market is open (floor 50/s).",
            ),
            runbook=RunbookEntry(
                meaning="The WebSocket session delivers fewer than 50 trade records a second "
                "during market hours: the session is down, stalled, or holds quiet symbols.",
                source_change="The source's `collection_speed` gauge is now the rate of "
                "`observer_trackb_items_received_total`, and the floor is gated on "
                "`observer_market_open == 1` so it stays silent outside the session.",
                actions=(
                    "Check `observer_trackb_session_connected` and the reconnects panel.",
                    "Check slot idle times: many idle slots mean quiet symbols were chosen.",
                ),
            ),
            firing=(
                Firing(
                    name="10 trades a second once the market opens",
                    inputs=(series(catalog.TRACK_B_ITEMS_RECEIVED, "0+600x{n}"), OPENS_AT_10M),
                    onset_seconds=600,
                    value=10,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="market closed",
                    inputs=(series(catalog.TRACK_B_ITEMS_RECEIVED, "0+0x{n}"), CLOSED_ALL_DAY),
                ),
                Healthy(
                    name="100 trades a second",
                    inputs=(series(catalog.TRACK_B_ITEMS_RECEIVED, "0+6000x{n}"), OPEN_ALL_DAY),
                ),
            ),
        ),
    )


def collection_alerts(params: RuleParams) -> tuple[AlertDefinition, ...]:
    """Universe, Track A, Track B and gap alerts: 3 critical, 6 warning."""
    return (*_universe(params), *_track_a(params), *_track_b(params), *gap_alerts(params))
