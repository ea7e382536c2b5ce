"""The dashboard passes the dashboard-linter rules, covers the catalog, and the lint bites."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import promql_parser
import pytest

import dashboards
from dashboards.lint import lint_dashboard, lint_expr
from dashboards.observer import SPEC_ROWS, UID
from metrics import catalog
from metrics.catalog import Kind
from metrics.promql import known_metric_names
from rules import recording
from rules.params import RuleParams
from rules.render import rule_groups

Dashboard = dict[str, Any]
RULE_PARAMS = RuleParams()
# The source design's 19 panels, under the titles they have here (two counts became rates).
SPEC_PANELS = (
    "Universe size", "Universe operations rate", "Snapshot rate", "Collection duration",
    "Slot utilisation", "Slots allocated vs available", "Triggers and collection speed",
    "Gap rate", "Severity distribution", "Detection duration p95/p99", "Token consumption",
    "Delays and p99 delay", "Request rate", "Error rate", "Latency p50/p95/p99",
    "Token validity", "Refresh rate", "Uptime", "Health summary",
)  # fmt: skip


@pytest.fixture(scope="module")
def board() -> Dashboard:
    return dashboards.dashboard_json()


def panels(board: Dashboard) -> Iterator[Dashboard]:
    return (p for p in board["panels"] if p["type"] != "row")


def exprs(board: Dashboard) -> Iterator[str]:
    return (t["expr"] for p in panels(board) for t in p["targets"])


def names_in(expr: str) -> set[str]:
    names: set[str] = set()
    parsed = promql_parser.parse(expr.replace("$__rate_interval", "5m"))

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(parsed, pre_visit=visit)
    return names


def recorded_inputs() -> dict[str, set[str]]:
    """Recorded series name → the metric names its expression reads."""
    out: dict[str, set[str]] = {}
    for rule in recording.recording_rules(RULE_PARAMS):
        out.setdefault(rule.record, set()).update(names_in(rule.expr))
    return out


def test_our_dashboard_is_lint_clean(board: Dashboard) -> None:
    assert lint_dashboard(board) == []


def test_dashboard_settings(board: Dashboard) -> None:
    assert board["uid"] == UID and board["editable"] is False
    assert board["refresh"] == "30s"
    assert board["time"] == {"from": "now-6h", "to": "now"}
    variables = [v["name"] for v in board["templating"]["list"]]
    assert variables == ["datasource", "job", "instance"]


def test_json_is_deterministic_with_sorted_keys() -> None:
    text = dashboards.render_files()[dashboards.DASHBOARD_PATH]
    assert text == dashboards.render_files()[dashboards.DASHBOARD_PATH]
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_spec_rows_and_panels_are_present(board: Dashboard) -> None:
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert tuple(rows[: len(SPEC_ROWS)]) == SPEC_ROWS
    titles = [p["title"] for p in panels(board)]
    assert len(titles) == len(set(titles))
    assert set(SPEC_PANELS) <= set(titles)


def test_every_panel_has_unit_description_and_targets(board: Dashboard) -> None:
    for panel in panels(board):
        assert panel["description"] and panel["targets"], panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]


def test_coloured_panels_have_thresholds(board: Dashboard) -> None:
    by_title = {p["title"]: p for p in panels(board)}
    for title in ("Error rate", "Token validity"):
        steps = by_title[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert len(steps) >= 3 and {s["color"] for s in steps} >= {"red", "green"}, title


def test_every_catalog_metric_is_on_a_panel(board: Dashboard) -> None:
    expand = recorded_inputs()
    shown: set[str] = set()
    for expr in exprs(board):
        for name in names_in(expr):
            shown |= expand.get(name, {name})
    for spec in catalog.CATALOG:
        series = {spec.name, *(spec.sample(s) for s in ("_bucket", "_count", "_sum"))}
        if spec.kind is not Kind.HISTOGRAM:
            series = {spec.name}
        assert series & shown, f"{spec.name} is on no panel"


def test_every_metric_a_panel_reads_exists(board: Dashboard) -> None:
    known = known_metric_names() | set(recorded_inputs())
    for expr in exprs(board):
        assert names_in(expr) <= known, expr


def test_panels_use_the_series_alerts_share(board: Dashboard) -> None:
    read_by_alerts = {
        name
        for group in rule_groups(RULE_PARAMS)
        for alert in group.alerts
        for name in names_in(alert.expr)
        if name in recorded_inputs()
    }
    on_panels = {name for expr in exprs(board) for name in names_in(expr)}
    # The 30m stale ratio only confirms the slow burn; the panel shows 5m, 1h and 6h.
    assert read_by_alerts - on_panels == {recording.FRESHNESS_STALE_RATIO["30m"]}


def first_panel(board: Dashboard, title: str = "Error rate") -> Dashboard:
    panel: Dashboard = next(p for p in panels(board) if p["title"] == title)
    return panel


def variable(board: Dashboard, name: str) -> Dashboard:
    found: Dashboard = next(v for v in board["templating"]["list"] if v["name"] == name)
    return found


def set_expr(expr: str) -> Callable[[Dashboard], None]:
    def change(board: Dashboard) -> None:
        first_panel(board)["targets"][0]["expr"] = expr

    return change


SCOPE = '{job=~"$job",instance=~"$instance"}'
BREAKAGES: dict[str, Callable[[Dashboard], None]] = {
    "dashboard-editable-rule": lambda b: b.update(editable=True),
    "template-datasource-rule": lambda b: b["templating"]["list"].pop(0),
    "template-job-rule": lambda b: variable(b, "job").update(multi=False),
    "template-instance-rule": lambda b: variable(b, "instance").update(allValue=".*"),
    "panel-datasource-rule": lambda b: first_panel(b).update(datasource={"uid": "prom"}),
    "panel-title-description-rule": lambda b: first_panel(b).update(description=""),
    "panel-units-rule": lambda b: first_panel(b)["fieldConfig"]["defaults"].update(unit=""),
    "panel-no-targets-rule": lambda b: first_panel(b).update(targets=[]),
    "target-promql-rule": set_expr(f"sum(rate(observer_api_requests_total{SCOPE}[5m])"),
    "target-rate-interval-rule": set_expr(f"rate(observer_api_requests_total{SCOPE}[5m])"),
    "target-job-rule": set_expr('observer_universe_size{instance=~"$instance"}'),
    "target-instance-rule": set_expr('observer_universe_size{job=~"$job"}'),
    "target-counter-agg-rule": set_expr(f"sum(observer_api_requests_total{SCOPE})"),
}


@pytest.mark.parametrize("rule", sorted(BREAKAGES))
def test_lint_fails_on_a_broken_dashboard(board: Dashboard, rule: str) -> None:
    broken = copy.deepcopy(board)
    BREAKAGES[rule](broken)
    problems = lint_dashboard(broken)
    assert problems and all(p.startswith(rule) for p in problems), problems


def test_lint_accepts_rate_interval_in_braces_and_recorded_series() -> None:
    ok = f"sum(rate(observer_api_requests_total{SCOPE}[${{__rate_interval}}]))"
    assert lint_expr(ok) == []
    assert lint_expr(f"instance:observer_api_requests:rate5m{SCOPE}") == []
