"""Helpers the alert builders share: the rule factory, market-open gating, API inputs."""

from __future__ import annotations

from metrics import catalog
from metrics.promql import RULES, selector
from rules.inputs import series
from rules.model import AlertRule, InputSeries, Severity
from rules.params import RuleParams

BY = "job, instance"
# Rate floors only make sense while the KRX session is open.
OPEN = f"on ({BY}) {selector(catalog.MARKET_OPEN, RULES)} == 1"
CLOSED_ALL_DAY = series(catalog.MARKET_OPEN, "0x{n}")
OPENS_AT_10M = series(catalog.MARKET_OPEN, "0x9 1x{n}")  # onset of gated cases: 600 s
OPEN_ALL_DAY = series(catalog.MARKET_OPEN, "1x{n}")


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
    """An alert whose ``for`` follows the profile and whose runbook link is its section."""
    return AlertRule(
        alert=name,
        expr=expr,
        for_seconds=params.for_(round(for_minutes * 60)),
        severity=severity,
        summary=summary,
        description=description,
        runbook_url=params.runbook_url(name),
        labels=labels,
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
