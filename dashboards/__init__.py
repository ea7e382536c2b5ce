"""Grafana dashboards as code (grafanalib), built from the metric catalog.

``render_files()`` returns the dashboard JSON (relative path under the stack
directory → text); ``dashboards.lint.lint_dashboard(json)`` lists problems.
"""

from __future__ import annotations

import json
from typing import Any

from grafanalib._gen import DashboardEncoder

from dashboards import lint
from dashboards.observer import DashboardParams, dashboard

__all__ = ["DashboardParams", "dashboard_json", "lint", "render_files"]

DASHBOARD_PATH = "grafana/dashboards/observer.json"


DEFAULT_PARAMS = DashboardParams()


def dashboard_json(params: DashboardParams = DEFAULT_PARAMS) -> dict[str, Any]:
    """The dashboard as plain JSON data."""
    data: dict[str, Any] = json.loads(
        json.dumps(dashboard(params).to_json_data(), cls=DashboardEncoder)
    )
    return data


def render_files(params: DashboardParams = DEFAULT_PARAMS) -> dict[str, str]:
    """Relative path under the stack directory → file text (sorted keys, stable)."""
    text = json.dumps(dashboard_json(params), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return {DASHBOARD_PATH: text}
