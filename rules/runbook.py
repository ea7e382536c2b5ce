"""``docs/runbook.md`` generated from the alert definitions.

``python -m rules.runbook [PATH]`` rewrites it (default ``docs/runbook.md``); a
test fails when the committed file differs from what this module renders.
"""

from __future__ import annotations

import sys
from itertools import groupby
from pathlib import Path

from metrics.promql import duration
from rules.alertmanager import built_in_routing
from rules.alerts_ops import FRESHNESS_SLO
from rules.model import AlertDefinition
from rules.params import DEFAULT, DEFAULT_MEMORY_LIMIT_BYTES, DEFAULT_WEBHOOK_URL, RuleParams
from rules.render import all_definitions, source_definitions
from rules.thresholds import THRESHOLDS, default_of, threshold_of

HEADER = """# Runbook

Generated from the alert definitions in `rules/`: `python -m rules.runbook` writes
`docs/runbook.md` with the defaults, `observer generate --config stack.yaml` writes
`runbook.md` next to the stack with the configuration's values (job, thresholds, `for`,
labels, receivers); do not edit by hand. Every alert's `runbook_url` is
`<runbook_base_url>#<alert name in lower case>`, a section below.

## How alerts reach people

"""


def _scope(params: RuleParams) -> str:
    text = (
        f'Prometheus scrapes Observer as `job="{params.job}"`; every alert keeps the `job` and '
        "`instance` labels of the series it fires on and carries a `severity` label."
    )
    if params.selectors:
        matchers = ", ".join(f'`{k}="{v}"`' for k, v in params.selectors)
        text += f" Every query also matches {matchers}, and every aggregation keeps those labels."
    if params.alert_labels:
        labels = ", ".join(f'`{k}="{v}"`' for k, v in params.alert_labels)
        text += f" Every alert also carries {labels}."
    return text + "\n"


BUILT_IN_ROUTES = f"""Alertmanager (`alertmanager/alertmanager.yml`, generated) routes by severity:

- `severity="critical"` → receiver `critical`; `severity="warning"` → receiver `warning`.
  Both post to a webhook, by default `{DEFAULT_WEBHOOK_URL}`, a local sink: replace it
  with your paging or chat integration (the stack configuration's `alertmanager.receivers`).
- `Watchdog` → receiver `watchdog`, which has no integration by default: point it at a
  dead man's switch service that alerts when the Watchdog stops arriving.
"""


def _routes(params: RuleParams) -> str:
    routing = params.routing
    if routing is None or routing == built_in_routing(params):
        return BUILT_IN_ROUTES
    lines = ["Alertmanager (`alertmanager/alertmanager.yml`, generated) routes:", ""]
    lines.append(f"- `Watchdog` → receiver `{routing.watchdog_receiver}` (a dead man's switch).")
    for route in routing.routes:
        matchers = ", ".join(f"`{m}`" for m in route["matchers"])
        lines.append(f"- {matchers} → receiver `{route['receiver']}`.")
    lines.append(f"- anything else → receiver `{routing.default_receiver}`.")
    lines += ["", "Receivers (secrets are read from files, never written here):", ""]
    for receiver in routing.receivers:
        kinds = [key.removesuffix("_configs") for key in receiver if key.endswith("_configs")]
        lines.append(f"- `{receiver['name']}`: {', '.join(kinds) or 'no integration'}.")
    return "\n".join(lines) + "\n"


def intro(params: RuleParams) -> str:
    """The runbook's opening: how alerts reach people, with the configured values."""
    limit = params.memory_limit_bytes
    return (
        HEADER
        + _scope(params)
        + _routes(params)
        + f"""- A critical alert inhibits warnings with the same `alertname` and `instance` (the
  Track A freshness burn-rate alerts), and TokenExpired inhibits TokenValidityLow.

Alerts whose logic differs from the source design say why under *Against the source
design*. Rate floors only apply while `observer_market_open == 1`. The resident memory
limit that ObserverMemoryNearLimit compares with is `alerts.memory_limit_bytes` of the
stack configuration (here {limit} bytes; default {DEFAULT_MEMORY_LIMIT_BYTES} = 1 GiB): give
the Observer process or container that memory limit, or configure the limit it has. The
`e2e` profile generates the same alerts with every minute of `for` and of every range
window turned into a second (`[5m]` holds 5 s, `[15m]` 15 s, at least 2 s; the uptime
APIUnresponsive waits for follows its window), for end-to-end tests with 1 s scrapes.

"""
        + TAIL
    )


TAIL = f"""## Dashboard

`grafana/dashboards/observer.json` (uid `observer-overview`, generated from `dashboards/`)
has three variables: `datasource` (any Prometheus data source), `job` (jobs exporting
`observer_build_info`, default all) and `instance` (instances of those jobs, default all).
Every query is filtered by `job=~"$job", instance=~"$instance"`; panels that show what an
alert reads use the same recorded series, so the number on the panel is the alert's input.

## Track A freshness SLO

Objective: {FRESHNESS_SLO:.0%} of per-symbol freshness checks made while the market is
open find a snapshot younger than `track_a.expected_cadence_seconds`
(`observer_track_a_freshness_checks_total{{result="fresh"}}` over all checks), over 30
days. The error budget is {1 - FRESHNESS_SLO:.0%} of checks. Two multi-window burn-rate
alerts watch it: a stale ratio above 14.4 × budget over both 1 h and 5 m (critical) and
above 6 × budget over both 6 h and 30 m (warning).
"""


def _threshold_line(params: RuleParams, name: str, severity: str) -> list[str]:
    found = THRESHOLDS.get(name)
    if found is None:
        return []
    value = threshold_of(params, name, severity)
    return [
        f"Threshold {value:g} ({found.unit}; built in {default_of(name, severity):g}), set by "
        f"`alerts.rules.{name}.threshold` of the stack configuration.",
        "",
    ]


def _section(params: RuleParams, definitions: list[AlertDefinition], source_names: set[str]) -> str:
    name = definitions[0].rule.alert
    origin = "source design" if name in source_names else "added by Observer"
    lines = [f"## {name}", ""]
    for d in definitions:
        rule = d.rule
        lines += [
            f"**{rule.severity}**, for {duration(rule.for_seconds)} ({origin}): {rule.summary}",
            "",
            "```promql",
            rule.expr,
            "```",
            "",
            *_threshold_line(params, name, rule.severity),
            f"*Meaning.* {d.runbook.meaning}",
            "",
        ]
        if d.runbook.source_change:
            lines += [f"*Against the source design.* {d.runbook.source_change}", ""]
        lines += ["*What to do.*", ""]
        lines += [f"- {action}" for action in d.runbook.actions]
        lines.append("")
    return "\n".join(lines)


def render_runbook(params: RuleParams | None = None) -> str:
    """The Markdown runbook: one section per alert name, in rule-file order."""
    params = params or RuleParams(profile=DEFAULT)
    definitions = all_definitions(params)
    source_names = {d.rule.alert for d in source_definitions(params)}
    order = {d.rule.alert: i for i, d in reversed(list(enumerate(definitions)))}
    ordered = sorted(definitions, key=lambda d: order[d.rule.alert])
    sections = [
        _section(params, list(group), source_names)
        for _, group in groupby(ordered, key=lambda d: d.rule.alert)
    ]
    return intro(params) + "\n" + "\n".join(sections)


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path("docs/runbook.md")
    path.write_text(render_runbook(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
