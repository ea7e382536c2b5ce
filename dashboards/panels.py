"""Small panel constructors over grafanalib: every panel gets the data-source variable,
a description and a unit; queries are given as (PromQL, legend) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import attr
from grafanalib import core as g

DATASOURCE_UID = "${datasource}"


def datasource() -> dict[str, str]:
    """The panel/target data source: the dashboard's ``datasource`` variable."""
    return {"type": "prometheus", "uid": DATASOURCE_UID}


HEIGHT = 8
WIDTH = 24

Query = tuple[str, str]  # (expr, legend)
Steps = Sequence[tuple[str, float | None]]  # (colour, from value); the first has None


def targets(queries: Sequence[Query], *, fmt: str = "time_series") -> list[g.Target]:
    return [
        g.Target(
            expr=expr,
            legendFormat=legend,
            refId=chr(ord("A") + i),
            datasource=datasource(),
            format=fmt,
        )
        for i, (expr, legend) in enumerate(queries)
    ]


def thresholds(steps: Steps) -> list[dict[str, Any]]:
    return [{"color": colour, "value": value} for colour, value in steps]


NEUTRAL: Steps = (("green", None),)


def _common(title: str, description: str, queries: Sequence[Query]) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "dataSource": datasource(),
        "targets": targets(queries),
        "editable": False,
    }


def stat(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    steps: Steps = NEUTRAL,
    mappings: Sequence[dict[str, Any]] = (),
    text_mode: str = "auto",
) -> g.Stat:
    return g.Stat(
        **_common(title, description, queries),
        format=unit,
        reduceCalc="lastNotNull",
        thresholds=thresholds(steps),
        colorMode="background" if steps is not NEUTRAL else "value",
        mappings=list(mappings),
        textMode=text_mode,
    )


def timeseries(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    steps: Steps = NEUTRAL,
    overrides: Sequence[dict[str, Any]] = (),
    stacked: bool = False,
) -> g.TimeSeries:
    return g.TimeSeries(
        **_common(title, description, queries),
        unit=unit,
        thresholds=thresholds(steps),
        thresholdsStyleMode="off" if steps is NEUTRAL else "line",
        overrides=list(overrides),
        stacking={"mode": "normal", "group": "A"} if stacked else {},
        fillOpacity=30 if stacked else 10,
        legendDisplayMode="list",
        tooltipMode="multi",
    )


def gauge(
    title: str, description: str, unit: str, queries: Sequence[Query], *, steps: Steps
) -> g.GaugePanel:
    return g.GaugePanel(
        **_common(title, description, queries),
        format=unit,
        min=0,
        max=1,
        calc="lastNotNull",
        thresholds=thresholds(steps),
    )


def pie(title: str, description: str, unit: str, queries: Sequence[Query]) -> g.PieChartv2:
    return g.PieChartv2(
        **_common(title, description, queries),
        unit=unit,
        reduceOptionsCalcs=["sum"],
        legendDisplayMode="table",
        legendPlacement="right",
        legendValues=["percent"],
    )


def heatmap(title: str, description: str, unit: str, query: Query) -> g.Heatmap:
    common = _common(title, description, [query])
    common["targets"] = targets([query], fmt="heatmap")
    return g.Heatmap(
        **common,
        dataFormat="tsbuckets",
        yAxis=g.YAxis(format=unit),
        hideZeroBuckets=True,
        extraJson={"fieldConfig": {"defaults": {"unit": unit}}},
    )


def second_axis(ref_id: str, unit: str) -> dict[str, Any]:
    """An override putting query ``ref_id`` on a right axis with its own unit."""
    return {
        "matcher": {"id": "byFrameRefID", "options": ref_id},
        "properties": [
            {"id": "unit", "value": unit},
            {"id": "custom.axisPlacement", "value": "right"},
        ],
    }


def value_text(pairs: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """Value mappings: (value, text, colour) → a Grafana ``value`` mapping."""
    return [
        {
            "type": "value",
            "options": {
                value: {"text": text, "color": colour, "index": i}
                for i, (value, text, colour) in enumerate(pairs)
            },
        }
    ]


@dataclass(frozen=True, slots=True)
class Row:
    """A titled row of (panel, width) pairs laid out left to right, wrapping at 24."""

    title: str
    panels: tuple[tuple[g.Panel, int], ...]


def layout(rows: Sequence[Row]) -> list[g.Panel]:
    """Row panels followed by their panels, with grid positions filled in."""
    out: list[g.Panel] = []
    y = 0
    for row in rows:
        out.append(g.RowPanel(title=row.title, gridPos=g.GridPos(h=1, w=WIDTH, x=0, y=y)))
        y += 1
        x = 0
        for panel, width in row.panels:
            if x + width > WIDTH:
                x, y = 0, y + HEIGHT
            out.append(attr.evolve(panel, gridPos=g.GridPos(h=HEIGHT, w=width, x=x, y=y)))
            x += width
        y += HEIGHT
    return out


# Shared by every row.
INST = "{{instance}}"
UP_DOWN = value_text((("1", "up", "green"), ("0", "down", "red")))
# Colours the source design asked for, at the alert thresholds.
ERROR_STEPS = (("green", None), ("orange", 0.05), ("red", 0.5))
TOKEN_STEPS = (("red", None), ("orange", 0), ("yellow", 3600), ("green", 4 * 3600))
BURN_STEPS = (("green", None), ("orange", 0.06), ("red", 0.144))
