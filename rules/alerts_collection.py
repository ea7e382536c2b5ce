"""Source-design alerts on what Observer collects: universe, Track A, Track B, gaps."""

from __future__ import annotations

from metrics import catalog
from metrics.promql import recorded, selector
from rules import recording as rec
from rules.alerts_gaps import gap_alerts
from rules.alerts_track_b import track_b_alerts
from rules.build import (
    CLOSED_ALL_DAY,
    OPEN_ALL_DAY,
    OPENS_AT_10M,
    alert,
    held_seconds,
    market_open,
    seconds_text,
    threshold,
)
from rules.inputs import TARGET, histogram, series
from rules.model import AlertDefinition, Firing, Healthy, RunbookEntry
from rules.params import RuleParams
from rules.thresholds import p99_bucket, threshold_of


def _universe(params: RuleParams) -> tuple[AlertDefinition, ...]:
    size = selector(catalog.UNIVERSE_SIZE, params.scope)
    average = f"avg_over_time({size}[{params.window(86400)}])"
    created = selector(catalog.UNIVERSE_CREATED, params.scope)
    deviation = threshold_of(params, "UniverseSizeAnomaly")
    # 60 minutes at 2000 symbols, then `low`: the deviation from the 1-day mean when the
    # alert fires, `for` after the drop (minute samples from 0, the drop at minute 60).
    low = 500 if deviation < 0.6 else 100
    fires_at = 60 + held_seconds(params, "UniverseSizeAnomaly", "warning", 10) // 60
    mean_at_fire = (60 * 2000 + (fires_at - 59) * low) / (fires_at + 1)
    added = threshold_of(params, "RapidUniverseExpansion")
    burst = max(150, int(added * 1.5))
    return (
        AlertDefinition(
            rule=alert(
                params,
                "UniverseSizeAnomaly",
                f"abs({size} - {average}) / {average} > {threshold(deviation)}",
                for_minutes=10,
                severity="warning",
                summary="The universe size is far from its one-day average.",
                description="The universe of {{ $labels.instance }} deviates "
                "{{ $value | humanizePercentage }} from its one-day average "
                f"(threshold {deviation:.0%}).",
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
                    name=f"size drops from 2000 to {low}",
                    inputs=(series(catalog.UNIVERSE_SIZE, f"2000x59 {low}x{{n}}"),),
                    onset_seconds=3600,
                    value=(mean_at_fire - low) / mean_at_fire,
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
                f"sum by ({params.by}) (increase({created}[{params.window(3600)}])) "
                f"> {threshold(added)}",
                for_minutes=5,
                severity="warning",
                summary="Many symbols were added to the universe within an hour.",
                description="{{ $value | humanize }} symbols were added to the universe of "
                f"{{{{ $labels.instance }}}} in the last hour (threshold {threshold(added)}).",
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
                    name=f"{burst} symbols added at once",
                    inputs=(series(catalog.UNIVERSE_CREATED, f"0 {burst}+0x{{n}}"),),
                    onset_seconds=60,
                    value=burst,
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
    latency = catalog.API_REQUEST_DURATION
    calls = selector(latency, params.scope, "_bucket", endpoint="inquire_price")
    window = params.window(300)
    call_p99 = f"histogram_quantile(0.99, sum by ({params.by}, le) (rate({calls}[{window}])))"
    slow = threshold_of(params, "TrackACollectionDelayed")
    above, p99 = p99_bucket(latency.buckets, slow)
    floor = threshold_of(params, "TrackANoSnapshots")
    return (
        AlertDefinition(
            rule=alert(
                params,
                "TrackACollectionDelayed",
                f"{call_p99} > {threshold(slow)}",
                for_minutes=10,
                severity="warning",
                summary="Track A snapshot calls take more than "
                f"{'a second' if slow == 1 else seconds_text(slow)}.",
                description="p99 of the current-price call (inquire_price) on "
                "{{ $labels.instance }} is {{ $value | humanizeDuration }} over 5 minutes "
                f"(threshold {slow:g}s).",
            ),
            runbook=RunbookEntry(
                meaning="The 99th percentile of one snapshot call itself, the round trip of "
                "`inquire_price` without the wait for a limiter token, stayed above one second "
                "for 10 minutes: the broker answers slowly, so sweeps take longer than the rate "
                "limit alone makes them and snapshots age.",
                source_change="The source read p99 of "
                "`observer_track_a_collection_duration_seconds`, which includes the limiter "
                "wait by design: Track A keeps rate × (slowest recent round trip + 0.1 s) + 2 "
                "calls in flight so the limiter never idles, and each of them waits for its "
                "token. That is about 0.5 s at 20 calls/s (the p99 seen end to end), but 1 to "
                "1.5 s at the virtual domain's 2 calls/s, where the source alert fires on a "
                "healthy Observer; a server back-off pause (EGW00201, RateLimitHighDelay's "
                "business) would read as slow collection too. The alert now reads the API "
                "latency of `inquire_price` (`observer_api_request_duration_seconds`): a "
                "slow snapshot call, as the source meant. A sweep that falls behind its "
                "cadence for any other reason shows in the Track A freshness burn-rate "
                "alerts; the collection time panel still shows the limiter wait included.",
                actions=(
                    "Compare with the API latency panel and APILatencyHigh: a slow broker "
                    "slows every endpoint; only `inquire_price` points at the quote service.",
                    "Check the network path and `observer_api_errors_total"
                    '{error_class="transport"}` for time-outs.',
                ),
            ),
            firing=(
                Firing(
                    name=f"every snapshot call takes over {above:g} s",
                    inputs=histogram(latency, above, "0+60x{n}", endpoint="inquire_price"),
                    onset_seconds=60,
                    value=p99,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="fast calls, collection time held by the limiter",
                    inputs=(
                        *histogram(latency, 0.01, "0+60x{n}", endpoint="inquire_price"),
                        *histogram(catalog.TRACK_A_COLLECTION_DURATION, 1.0, "0+60x{n}"),
                    ),
                ),
                Healthy(
                    name="fast snapshot calls, slow master file",
                    inputs=(
                        *histogram(latency, 0.05, "0+60x{n}", endpoint="inquire_price"),
                        *histogram(latency, 5.0, "0+1x{n}", endpoint="master_file"),
                    ),
                ),
            ),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "TrackANoSnapshots",
                f"{recorded(rec.SNAPSHOT_RATE, params.scope)} < {threshold(floor)} "
                f"and {market_open(params)}",
                for_minutes=5,
                severity="critical",
                summary="Track A is collecting almost no snapshots while the market is open.",
                description="Track A on {{ $labels.instance }} collected "
                '{{ $value | printf "%.2f" }} snapshots per second over 5 minutes while the '
                f"market is open (floor {floor:g}/s).",
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


def collection_alerts(params: RuleParams) -> tuple[AlertDefinition, ...]:
    """Universe, Track A, Track B and gap alerts: 3 critical, 6 warning."""
    return (*_universe(params), *_track_a(params), *track_b_alerts(params), *gap_alerts(params))
