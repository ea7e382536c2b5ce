"""Operational alerts beyond the source design: target down, dead man's switch,
the resource alerts a rollback plan relies on, and the Track A freshness SLO burn rates.
"""

from __future__ import annotations

from metrics import catalog
from metrics.promql import (
    PROCESS_CPU,
    PROCESS_RESIDENT_MEMORY,
    PROCESS_START_TIME,
    UP,
    recorded,
    selector,
)
from rules import recording as rec
from rules.build import alert, held_seconds, in_words, threshold
from rules.inputs import TARGET, series
from rules.model import AlertDefinition, Firing, Healthy, InputSeries, RunbookEntry, Severity
from rules.params import RuleParams
from rules.thresholds import threshold_of

# Track A freshness SLO: 99 % of per-symbol freshness checks in market hours find a
# snapshot within its expected cadence, over 30 days. Error budget: 1 %.
FRESHNESS_SLO = 0.99
# Multi-window, multi-burn-rate (Google SRE workbook): (long, short, severity, for).
# The burn rates (14.4 critical, 6 warning) are rules.thresholds' built-in values.
BURN_WINDOWS: tuple[tuple[str, str, Severity, float], ...] = (
    ("1h", "5m", "critical", 2),
    ("6h", "30m", "warning", 15),
)


def _freshness(fresh_per_minute: float, stale_per_minute: float) -> tuple[InputSeries, ...]:
    checks = catalog.TRACK_A_FRESHNESS_CHECKS
    return (
        series(checks, f"0+{fresh_per_minute:g}x{{n}}", result="fresh"),
        series(checks, f"0+{stale_per_minute:g}x{{n}}", result="stale"),
    )


def _burn(
    params: RuleParams, long: str, short: str, severity: Severity, for_minutes: float
) -> AlertDefinition:
    burn = threshold_of(params, "TrackAFreshnessBudgetBurn", severity)
    limit = threshold(burn * (1 - FRESHNESS_SLO))
    long_ratio = recorded(rec.FRESHNESS_STALE_RATIO[long], params.scope)
    short_ratio = recorded(rec.FRESHNESS_STALE_RATIO[short], params.scope)
    budget_percent = 100 * (1 - FRESHNESS_SLO)
    critical_percent = threshold_of(params, "TrackAFreshnessBudgetBurn", "critical") * (
        budget_percent
    )
    # Per 100 checks: above 14.4 % (critical), or between 6 % and 14.4 % (warning only,
    # since the test sees both severities); configured burn rates move the cases along.
    stale: float = 20 if severity == "critical" else 10
    if severity == "critical" and stale <= critical_percent:
        stale = int(critical_percent) + 5
    elif severity == "warning" and not burn * budget_percent < stale < critical_percent:
        stale = round((burn * budget_percent + critical_percent) / 2, 1)
    return AlertDefinition(
        rule=alert(
            params,
            "TrackAFreshnessBudgetBurn",
            f"{long_ratio} > {limit} and {short_ratio} > {limit}",
            for_minutes=for_minutes,
            severity=severity,
            summary=f"Track A burns its freshness error budget {burn:g} times too fast.",
            description="{{ $value | humanizePercentage }} of freshness checks on "
            f"{{{{ $labels.instance }}}} found stale snapshots over {long} and over {short} "
            f"(budget burn {burn:g}x, SLO {FRESHNESS_SLO:.0%} fresh).",
        ),
        runbook=RunbookEntry(
            meaning=f"{severity.capitalize()}: at this pace the 30-day budget of stale "
            f"snapshots ({1 - FRESHNESS_SLO:.0%} of checks) is gone in "
            f"{30 / burn:.1f} days. Confirmed on a long ({long}) and a short ({short}) window "
            "so it fires fast and stops soon after recovery.",
            actions=(
                "Compare sweep duration with `track_a.expected_cadence_seconds`: sweeps that "
                "take longer than the cadence make snapshots stale.",
                "Check the API error and limiter panels; shard the universe if the rate "
                "limit cannot cover it.",
            ),
        ),
        firing=(
            Firing(
                name=f"{stale}% stale checks",
                inputs=_freshness(round(100 - stale, 1), stale),
                onset_seconds=60,
                value=stale / 100,
                labels=TARGET,
            ),
        ),
        healthy=(Healthy(name="0.5% stale checks", inputs=_freshness(199, 1)),),
    )


def _down(params: RuleParams) -> tuple[AlertDefinition, ...]:
    down = held_seconds(params, "ObserverDown", "critical", 1)
    return (
        AlertDefinition(
            rule=alert(
                params,
                "ObserverDown",
                f"{selector(UP, params.scope)} == 0",
                for_minutes=1,
                severity="critical",
                summary="Prometheus cannot scrape an Observer instance.",
                description="The scrape of Observer at {{ $labels.instance }} has failed for "
                f"{'a minute' if down == 60 else in_words(down)}.",
            ),
            runbook=RunbookEntry(
                meaning="One Observer instance does not answer scrapes: the process is down, "
                "hung, or its exporter is unreachable. SystemDowntime fires when none is up.",
                actions=(
                    "Check the process or container and its last logs; `observer run` exits "
                    "with a message on configuration errors.",
                    "Fetch `/healthz` and `/metrics` from the Prometheus host.",
                ),
            ),
            firing=(
                Firing(
                    name="scrape fails",
                    inputs=(series(UP, "0x{n}"),),
                    onset_seconds=0,
                    value=0,
                    labels=TARGET,
                ),
            ),
            healthy=(Healthy(name="scrape works", inputs=(series(UP, "1x{n}"),)),),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "Watchdog",
                "vector(1)",
                for_minutes=0,
                severity="none",
                summary="The alerting pipeline is working.",
                description="Always firing (value {{ $value | humanize }}) so that its "
                "absence at the receiving end shows the pipeline is broken.",
            ),
            runbook=RunbookEntry(
                meaning="A dead man's switch: it always fires. Route it to a service that "
                "alerts when it stops arriving.",
                actions=(
                    "If the dead man's switch service reports it missing, check Prometheus, "
                    "its rule evaluation, Alertmanager and the route between them.",
                ),
            ),
            firing=(Firing(name="always", inputs=(), onset_seconds=0, value=1, labels=()),),
        ),
    )


def _resources(params: RuleParams) -> tuple[AlertDefinition, ...]:
    limit = params.memory_limit_bytes
    start = selector(PROCESS_START_TIME, params.scope)
    cores = threshold_of(params, "ObserverCPUHigh")
    busy = round(cores + 0.05, 6)  # cores the firing case uses
    # rate()[5m] of a counter from 0 climbs for five minutes: the case holds from the
    # first minute whose partial rate exceeds the threshold.
    cpu_onset = 60 * min(5, int(5 * cores / busy) + 1)
    near = threshold_of(params, "ObserverMemoryNearLimit")
    used = round((1 + near) / 2, 6)
    restarts = threshold_of(params, "ObserverRestartLoop")
    starts = int(restarts) + 1
    start_times = " ".join(str(1000 + 60 * i) for i in range(starts + 1))
    return (
        AlertDefinition(
            rule=alert(
                params,
                "ObserverCPUHigh",
                f"{recorded(rec.CPU_RATE, params.scope)} > {threshold(cores)}",
                for_minutes=5,
                severity="warning",
                summary=f"Observer uses more than {cores:.0%} of a CPU core.",
                description="Observer on {{ $labels.instance }} used "
                "{{ $value | humanizePercentage }} of one CPU core over 5 minutes.",
            ),
            runbook=RunbookEntry(
                meaning="The Observer process is close to saturating the one core its event "
                "loop can use: parsing and scrapes will lag.",
                actions=(
                    "If it started with a deployment, roll back.",
                    "Check frame and trigger rates: a flood of WebSocket frames costs CPU.",
                ),
            ),
            firing=(
                Firing(
                    name=f"{busy:g} cores",
                    inputs=(series(PROCESS_CPU, f"0+{busy * 60:g}x{{n}}"),),
                    onset_seconds=cpu_onset,
                    value=busy,
                    labels=TARGET,
                ),
            ),
            healthy=(Healthy(name="0.2 cores", inputs=(series(PROCESS_CPU, "0+12x{n}"),)),),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "ObserverMemoryNearLimit",
                f"{recorded(rec.MEMORY_LIMIT_RATIO, params.scope)} > {threshold(near)}",
                for_minutes=3,
                severity="critical",
                summary="Observer's resident memory is close to its limit.",
                description="Observer on {{ $labels.instance }} uses "
                "{{ $value | humanizePercentage }} of its memory limit "
                f"({limit} bytes).",
            ),
            runbook=RunbookEntry(
                meaning=f"Resident memory is above {near:.0%} of the configured limit; the process "
                "will be OOM-killed soon.",
                source_change="The limit is a generation parameter (`memory_limit_bytes`, "
                "default 1 GiB; the memory limit of the process or container): the recording rule "
                "`instance:process_resident_memory_bytes:ratio_of_limit` divides by it.",
                actions=(
                    "If it started with a deployment, roll back.",
                    "Check the storage queue depth: a stuck writer keeps records in memory.",
                ),
            ),
            firing=(
                Firing(
                    name=f"{used:.0%} of the limit",
                    inputs=(series(PROCESS_RESIDENT_MEMORY, f"{limit * used!r}x{{n}}"),),
                    onset_seconds=0,
                    value=used,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="half the limit",
                    inputs=(series(PROCESS_RESIDENT_MEMORY, f"{limit // 2}x{{n}}"),),
                ),
            ),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "ObserverRestartLoop",
                f"changes({start}[{params.window(900)}]) > {threshold(restarts)}",
                for_minutes=1,
                severity="critical",
                summary="Observer restarted more than twice in 15 minutes."
                if restarts == 2
                else f"Observer restarted more than {restarts:g} times in 15 minutes.",
                description="Observer on {{ $labels.instance }} started "
                "{{ $value | humanize }} times in the last 15 minutes.",
            ),
            runbook=RunbookEntry(
                meaning="The process keeps crashing and being restarted.",
                actions=(
                    "If it started with a deployment, roll back.",
                    "Read the exit reason in the logs before the restarts.",
                ),
            ),
            firing=(
                Firing(
                    name=f"{starts} restarts a minute apart",
                    inputs=(series(PROCESS_START_TIME, f"{start_times}+0x{{n}}"),),
                    onset_seconds=60 * starts,
                    value=starts,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="one restart",
                    inputs=(series(PROCESS_START_TIME, "1000 1060+0x{n}"),),
                ),
            ),
        ),
    )


def ops_alerts(params: RuleParams) -> tuple[AlertDefinition, ...]:
    return (*_down(params), *_resources(params))


def slo_alerts(params: RuleParams) -> tuple[AlertDefinition, ...]:
    return tuple(_burn(params, *window) for window in BURN_WINDOWS)
