"""Source-design alerts on gaps: detection rate, high-severity gaps, detection latency."""

from __future__ import annotations

from types import MappingProxyType

from metrics import catalog
from metrics.promql import recorded, selector
from rules import recording as rec
from rules.build import alert, seconds_text, threshold
from rules.inputs import TARGET, histogram, series
from rules.model import AlertDefinition, Firing, Healthy, RunbookEntry
from rules.params import RuleParams
from rules.thresholds import p99_bucket, threshold_of

P99 = MappingProxyType({"quantile": "0.99"})


def gap_alerts(params: RuleParams) -> tuple[AlertDefinition, ...]:
    gaps = catalog.GAPS_DETECTED
    spec = catalog.GAP_DETECTION_DURATION
    high = selector(gaps, params.scope, severity="high")
    per_second = threshold_of(params, "HighGapDetectionRate")
    # rate()[5m] of a counter from 0 reads a fifth of the pace after the first minute.
    stale_per_second = max(60, int(per_second * 5) + 1)
    highs = threshold_of(params, "HighSeverityGapsDetected")
    drops = int(highs) + 1
    slow = threshold_of(params, "GapDetectionLatency")
    above, p99 = p99_bucket(spec.buckets, slow)
    return (
        AlertDefinition(
            rule=alert(
                params,
                "HighGapDetectionRate",
                f"sum by ({params.by}) "
                f"(rate({selector(gaps, params.scope)}[{params.window(300)}])) "
                f"> {threshold(per_second)}",
                for_minutes=5,
                severity="warning",
                summary="Gaps are being found at more than "
                f"{'ten' if per_second == 10 else f'{per_second:g}'} a second.",
                description="{{ $labels.instance }} is finding "
                '{{ $value | printf "%.2f" }} gaps per second '
                f"(threshold {per_second:g}/s).",
            ),
            runbook=RunbookEntry(
                meaning="A stream of holes in the collected data: stale snapshots across the "
                "universe or Track B sessions dropping.",
                source_change="Kept: all gaps per second, over every track, severity and cause.",
                actions=(
                    "Break the gap panels down by cause and track to find the source.",
                    "Check sweep duration against `track_a.expected_cadence_seconds`.",
                ),
            ),
            firing=(
                Firing(
                    name=f"{stale_per_second} stale snapshots a second",
                    inputs=(
                        series(
                            gaps,
                            f"0+{stale_per_second * 60}x{{n}}",
                            track="a",
                            severity="low",
                            cause="stale_snapshot",
                        ),
                    ),
                    onset_seconds=60,
                    value=stale_per_second,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="one gap a second",
                    inputs=(
                        series(gaps, "0+60x{n}", track="a", severity="low", cause="stale_snapshot"),
                    ),
                ),
            ),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "HighSeverityGapsDetected",
                f"sum by ({params.by}) (increase({high}[{params.window(900)}])) "
                f"> {threshold(highs)}",
                for_minutes=5,
                severity="critical",
                summary="High-severity gaps were recorded in the last 15 minutes.",
                description="{{ $value | humanize }} high-severity gaps were recorded by "
                "{{ $labels.instance }} in the last 15 minutes.",
            ),
            runbook=RunbookEntry(
                meaning="Holes at least `gaps.high_after_seconds` long (5 minutes by default) "
                "were recorded; what backfill could not recover is lost for good.",
                source_change="The source required more than one high-severity gap per second "
                "for 5 minutes (1,500 long holes), which hides every real incident; any "
                "high-severity gap in the last 15 minutes now pages.",
                actions=(
                    "List the gap records (storage) for the symbols, track and cause.",
                    "Check the backfill outcomes panel: `none` means the data is lost.",
                ),
            ),
            firing=(
                Firing(
                    name=f"{drops} session drop{'s' if drops != 1 else ''} of 5 minutes",
                    inputs=(
                        series(
                            gaps,
                            f"0 {drops}+0x{{n}}",
                            track="b",
                            severity="high",
                            cause="session_drop",
                        ),
                    ),
                    onset_seconds=60,
                    value=drops,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="only low-severity gaps",
                    inputs=(
                        series(gaps, "0+5x{n}", track="a", severity="low", cause="stale_snapshot"),
                        series(gaps, "0x{n}", track="b", severity="high", cause="session_drop"),
                    ),
                ),
            ),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "GapDetectionLatency",
                f"{recorded(rec.GAP_DETECTION_LATENCY, params.scope, **P99)} > {threshold(slow)}",
                for_minutes=10,
                severity="warning",
                summary="Running the gap rules takes more than "
                f"{'half a second' if slow == 0.5 else seconds_text(slow)}.",
                description="p99 gap detection time on {{ $labels.instance }} is "
                f"{{{{ $value | humanizeDuration }}}} (threshold {seconds_text(slow)}).",
            ),
            runbook=RunbookEntry(
                meaning="The gap rules run slowly; they share the event loop with collection, "
                "so slow detection delays everything else.",
                source_change="Kept; the quantile is the shared recorded series.",
                actions=(
                    "Check process CPU and the storage queue depth.",
                    "Profile the gap rules with Sentry tracing if it is enabled.",
                ),
            ),
            firing=(
                Firing(
                    name=f"every run takes over {seconds_text(above)}",
                    inputs=histogram(spec, above, "0+60x{n}"),
                    onset_seconds=60,
                    value=p99,
                    labels=(*TARGET, ("quantile", "0.99")),
                ),
            ),
            healthy=(Healthy(name="millisecond runs", inputs=histogram(spec, 0.001, "0+60x{n}")),),
        ),
    )
