"""Dashboard lint: the rules of Grafana's public dashboard-linter, over dashboard JSON.

Each problem names its rule (``panel-units-rule: ...``). PromQL is parsed with
``promql_parser`` after Grafana's interval variables are replaced by sentinel
durations, so ``$__rate_interval`` ranges can be told apart from fixed ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from metrics import catalog
from metrics.catalog import Kind
from metrics.promql import EXTERNAL, HISTOGRAM_SUFFIXES

if TYPE_CHECKING:
    import promql_parser as pp

DATASOURCE_UIDS = ("$datasource", "${datasource}")
# Sentinel durations standing in for Grafana's interval variables while parsing.
SENTINELS = MappingProxyType(
    {
        "${__rate_interval}": "9999991s",
        "$__rate_interval": "9999991s",
        "${__interval}": "9999992s",
        "$__interval": "9999992s",
        "${__range}": "9999993s",
        "$__range": "9999993s",
    }
)
RATE_INTERVAL = timedelta(seconds=9999991)
RATE_FUNCTIONS = ("rate", "irate", "increase")
# Grafana unit ids the dashboards may use.
UNITS = frozenset(
    {
        "none",
        "short",
        "percent",
        "percentunit",
        "s",
        "ms",
        "ops",
        "reqps",
        "bytes",
        "decbytes",
        "dtdurations",
        "cps",
        "wps",
        "rps",
    }
)


def _counter_names() -> frozenset[str]:
    names: set[str] = set()
    for spec in (*catalog.CATALOG, *EXTERNAL):
        if spec.kind is Kind.COUNTER:
            names.add(spec.name)
        if spec.kind is Kind.HISTOGRAM:
            names.update(spec.sample(suffix) for suffix in HISTOGRAM_SUFFIXES)
    return frozenset(names)


COUNTERS = _counter_names()


def _uid(datasource: Any) -> Any:
    return datasource.get("uid") if isinstance(datasource, dict) else datasource


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v.get("name", ""): v for v in dashboard.get("templating", {}).get("list", [])}


def _check_datasource_variable(dashboard: dict[str, Any]) -> list[str]:
    rule = "template-datasource-rule"
    found = [v for v in _variables(dashboard).values() if v.get("type") == "datasource"]
    if not found:
        return [f"{rule}: the dashboard has no data source variable"]
    problems = []
    for v in found:
        if v.get("name") != "datasource" or v.get("label") != "Data source":
            problems.append(f"{rule}: data source variable must be 'datasource', 'Data source'")
        if v.get("query") != "prometheus":
            problems.append(f"{rule}: data source variable must select Prometheus")
    return problems


def _check_label_variable(dashboard: dict[str, Any], name: str) -> list[str]:
    rule = f"template-{name}-rule"
    v = _variables(dashboard).get(name)
    if v is None:
        return [f"{rule}: the dashboard has no '{name}' variable"]
    wrong = []
    if _uid(v.get("datasource")) not in DATASOURCE_UIDS:
        wrong.append("must use the $datasource variable")
    if v.get("type") != "query":
        wrong.append("must be a query variable")
    if v.get("label") != name:
        wrong.append(f"label must be '{name}'")
    if v.get("multi") is not True:
        wrong.append("must be multi-select")
    if v.get("allValue") != ".+":
        wrong.append("allValue must be '.+'")
    return [f"{rule}: '{name}' variable {w}" for w in wrong]


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def _check_panel(panel: dict[str, Any]) -> list[str]:
    title = panel.get("title") or "(untitled)"
    problems = []
    if _uid(panel.get("datasource")) not in DATASOURCE_UIDS:
        problems.append(f"panel-datasource-rule: panel '{title}' does not use $datasource")
    if not panel.get("title") or not panel.get("description"):
        problems.append(
            f"panel-title-description-rule: panel '{title}' lacks a title or description"
        )
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    if unit not in UNITS:
        problems.append(f"panel-units-rule: panel '{title}' has no or an unknown unit {unit!r}")
    targets = panel.get("targets") or []
    if not targets:
        problems.append(f"panel-no-targets-rule: panel '{title}' has no targets")
    for target in targets:
        problems += [f"{p} (panel '{title}')" for p in lint_expr(target.get("expr", ""))]
    return problems


def _substitute(expr: str) -> str:
    for variable, sentinel in SENTINELS.items():
        expr = expr.replace(variable, sentinel)
    return expr


def lint_expr(expr: str) -> list[str]:
    """Problems of one panel query (parse, rate interval, job/instance, counters)."""
    try:
        import promql_parser as pp
    except ImportError:  # pragma: no cover - installed with the dev extras
        return ["target-promql-rule: install promql-parser to lint PromQL"]
    try:
        tree = pp.parse(_substitute(expr))
    except Exception as exc:  # the parser raises bare ValueError/RuntimeError
        return [f"target-promql-rule: {expr!r} does not parse: {exc}"]
    problems: list[str] = []
    stack: list[pp.Expr] = []

    def enter(node: pp.Expr) -> None:
        if isinstance(node, pp.Call) and node.func.name in RATE_FUNCTIONS:
            ranges = [a.range for a in node.args if isinstance(a, pp.MatrixSelector)]
            if any(r != RATE_INTERVAL for r in ranges):
                problems.append(
                    f"target-rate-interval-rule: {node.func.name}() in {expr!r} "
                    "must use $__rate_interval"
                )
        if isinstance(node, pp.VectorSelector):
            problems.extend(_check_selector(node, stack, expr))
        stack.append(node)

    def leave(node: pp.Expr) -> None:
        stack.pop()

    pp.walk(tree, pre_visit=enter, post_visit=leave)
    return problems


def _check_selector(node: pp.VectorSelector, parents: list[pp.Expr], expr: str) -> list[str]:
    import promql_parser as pp

    problems = []
    regex = {(m.name, m.value) for m in node.matchers.matchers if m.op == pp.MatchOp.Re}
    for label in ("job", "instance"):
        if (label, f"${label}") not in regex:
            problems.append(
                f'target-{label}-rule: {node.name} in {expr!r} lacks {label}=~"${label}"'
            )
    if node.name in COUNTERS or (node.name or "").endswith("_total"):
        inside_rate = (
            len(parents) >= 2
            and isinstance(parents[-1], pp.MatrixSelector)
            and isinstance(parents[-2], pp.Call)
            and parents[-2].func.name in RATE_FUNCTIONS
        )
        if not inside_rate:
            problems.append(
                f"target-counter-agg-rule: counter {node.name} in {expr!r} is "
                "read outside rate()/increase()"
            )
    return problems


def lint_dashboard(dashboard_json: dict[str, Any]) -> list[str]:
    """Every problem the linter rules find in ``dashboard_json``; empty when clean."""
    problems = []
    if dashboard_json.get("editable") is not False:
        problems.append("dashboard-editable-rule: the dashboard must not be editable")
    problems += _check_datasource_variable(dashboard_json)
    problems += _check_label_variable(dashboard_json, "job")
    problems += _check_label_variable(dashboard_json, "instance")
    for panel in _panels(dashboard_json):
        problems += _check_panel(panel)
    return problems
