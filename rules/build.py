"""Helpers the alert builders share: the rule factory, market-open gating, API inputs."""

from __future__ import annotations

from metrics import catalog
from metrics.promql import selector
from rules.inputs import series
from rules.model import AlertRule, InputSeries, Severity
from rules.params import RuleParams

CLOSED_ALL_DAY = series(catalog.MARKET_OPEN, "0x{n}")
OPENS_AT_10M = series(catalog.MARKET_OPEN, "0x9 1x{n}")  # onset of gated cases: 600 s
OPEN_ALL_DAY = series(catalog.MARKET_OPEN, "1x{n}")


def market_open(params: RuleParams) -> str:
    """The gate of rate floors: they only make sense while the KRX session is open."""
    return f"on ({params.by}) {selector(catalog.MARKET_OPEN, params.scope)} == 1"


def held_seconds(params: RuleParams, name: str, severity: Severity, for_minutes: float) -> int:
    """The ``for`` of alert ``name`` as configured (before the profile scales it)."""
    configured = params.override(name, severity).for_seconds
    return round(for_minutes * 60) if configured is None else configured


def in_words(seconds: int) -> str:
    """``seconds`` for annotations and runbooks: ``5 minutes``, ``1 hour``, ``90 seconds``."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def seconds_text(seconds: float) -> str:
    """A threshold in seconds as an annotation states it: ``500ms``, ``1s``, ``2.5s``."""
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def alert(
    params: RuleParams,
    name: str,
    expr: str,
    *,
    for_minutes: float,
    severity: Severity,
    summary: str,
    description: str,
    labels: tuple[tuple[str, str], ...] = (),
) -> AlertRule:
    """An alert whose ``for`` follows the configuration and the profile, carrying the
    configured extra labels, whose runbook link is its section."""
    seconds = held_seconds(params, name, severity, for_minutes)
    return AlertRule(
        alert=name,
        expr=expr,
        for_seconds=params.for_(seconds),
        severity=severity,
        summary=summary,
        description=description,
        runbook_url=params.runbook_url(name),
        labels=(*labels, *params.alert_labels),
    )


def api_requests(ok_per_minute: int, errors_per_minute: int) -> tuple[InputSeries, ...]:
    """inquire_price requests counted from 0 at a steady pace, by outcome."""
    return (
        series(
            catalog.API_REQUESTS,
            f"0+{ok_per_minute}x{{n}}",
            endpoint="inquire_price",
            outcome="ok",
        ),
        series(
            catalog.API_REQUESTS,
            f"0+{errors_per_minute}x{{n}}",
            endpoint="inquire_price",
            outcome="error",
        ),
    )


def threshold(value: float) -> str:
    """A PromQL number literal without float noise (14.4 * 0.01 → 0.144)."""
    return f"{round(value, 9):g}"
