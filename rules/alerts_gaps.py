"""Source-design alerts on gaps: detection rate, high-severity gaps, detection latency."""

from __future__ import annotations

from types import MappingProxyType

from metrics import catalog
from metrics.promql import recorded, selector
from rules import recording as rec
from rules.build import alert
from rules.inputs import TARGET, histogram, series
from rules.model import AlertDefinition, Firing, Healthy, RunbookEntry
from rules.params import RuleParams

P99 = MappingProxyType({"quantile": "0.99"})


def gap_alerts(params: RuleParams) -> tuple[AlertDefinition, ...]:
    gaps = catalog.GAPS_DETECTED
    spec = catalog.GAP_DETECTION_DURATION
    high = selector(gaps, params.scope, severity="high")
    return (
        AlertDefinition(
            rule=alert(
                params,
                "HighGapDetectionRate",
                f"sum by ({params.by}) "
                f"(rate({selector(gaps, params.scope)}[{params.window(300)}])) > 10",
                for_minutes=5,
                severity="warning",
                summary="Gaps are being found at more than ten a second.",
                description="{{ $labels.instance }} is finding "
                '{{ $value | printf "%.2f" }} gaps per second (threshold 10/s).',
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
                    name="60 stale snapshots a second",
                    inputs=(
                        series(
                            gaps, "0+3600x{n}", track="a", severity="low", cause="stale_snapshot"
                        ),
                    ),
                    onset_seconds=60,
                    value=60,
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
                f"sum by ({params.by}) (increase({high}[{params.window(900)}])) > 0",
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
                    name="one session drop of 5 minutes",
                    inputs=(
                        series(gaps, "0 1+0x{n}", track="b", severity="high", cause="session_drop"),
                    ),
                    onset_seconds=60,
                    value=1,
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
                f"{recorded(rec.GAP_DETECTION_LATENCY, params.scope, **P99)} > 0.5",
                for_minutes=10,
                severity="warning",
                summary="Running the gap rules takes more than half a second.",
                description="p99 gap detection time on {{ $labels.instance }} is "
                "{{ $value | humanizeDuration }} (threshold 500ms).",
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
                    name="every run takes 0.5-1 s",
                    inputs=histogram(spec, 0.5, "0+60x{n}"),
                    onset_seconds=60,
                    value=0.995,
                    labels=(*TARGET, ("quantile", "0.99")),
                ),
            ),
            healthy=(Healthy(name="millisecond runs", inputs=histogram(spec, 0.001, "0+60x{n}")),),
        ),
    )
