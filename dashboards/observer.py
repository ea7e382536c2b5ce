"""The Observer dashboard: the source design's 19 panels in its 8 rows, plus panels
for every metric Observer added (each catalog metric is on at least one panel).

Template variables: ``datasource`` (a Prometheus data source), ``job`` (jobs that
export ``observer_build_info``, default all) and ``instance`` (instances of the
chosen jobs); every query is filtered by ``job=~"$job", instance=~"$instance"``.
Series that alerts also read are taken from the recording rules (``rules.recording``).
"""

from __future__ import annotations

from dataclasses import dataclass

from grafanalib import core as g

from dashboards.panels import datasource, layout
from dashboards.rows_collection import gaps_row, track_a_row, track_b_row, universe_row
from dashboards.rows_service import (
    api_row,
    cluster_row,
    rate_limit_row,
    storage_row,
    system_row,
    token_row,
)
from metrics import catalog as c
from rules.thresholds import THRESHOLDS

UID = "observer-overview"
TITLE = "Observer"


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardParams:
    """What a deployment may change about the dashboard (a stack configuration's dashboard)."""

    title: str = TITLE
    uid: str = UID
    tags: tuple[str, ...] = ("observer",)
    refresh: str = "30s"
    time_from: str = "now-6h"
    # StorageQueueFilling's threshold, drawn on the queue-fill panel.
    storage_queue_fill: float = THRESHOLDS["StorageQueueFilling"].default


SPEC_ROWS = (
    "Universe",
    "Track A",
    "Track B",
    "Gap detection",
    "Rate limiting",
    "API",
    "Token",
    "System",
)


def _templating() -> g.Templating:
    build_info = c.BUILD_INFO.name
    variable = {
        "dataSource": datasource(),
        "type": "query",
        "multi": True,
        "includeAll": True,
        "allValue": ".+",
        "default": "$__all",
        "refresh": g.REFRESH_ON_TIME_RANGE_CHANGE,
    }
    return g.Templating(
        list=[
            g.Template(
                name="datasource", label="Data source", type="datasource", query="prometheus"
            ),
            g.Template(
                name="job", label="job", query=f"label_values({build_info}, job)", **variable
            ),
            g.Template(
                name="instance",
                label="instance",
                query=f'label_values({build_info}{{job=~"$job"}}, instance)',
                **variable,
            ),
        ]
    )


def dashboard(params: DashboardParams | None = None) -> g.Dashboard:
    """The dashboard object (panel ids assigned)."""
    params = params or DashboardParams()
    rows = (
        universe_row(),
        track_a_row(),
        track_b_row(),
        gaps_row(),
        rate_limit_row(),
        api_row(),
        token_row(),
        system_row(),
        storage_row(params.storage_queue_fill),
        cluster_row(),
    )
    return g.Dashboard(
        title=params.title,
        uid=params.uid,
        description="Observer's health: collection, limits, token, gaps and the process.",
        tags=list(params.tags),
        editable=False,
        refresh=params.refresh,
        time=g.Time(params.time_from, "now"),
        timezone="browser",
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        schemaVersion=39,
        templating=_templating(),
        panels=layout(rows),
    ).auto_panel_ids()
