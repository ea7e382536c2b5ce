"""Generated reference docs: ``docs/metrics.md`` from the catalog, ``docs/config.schema.json``
and ``docs/stack.schema.json`` (the stack configuration of ``observer generate --config``).

``python -m observer.commands.docs [DIR]`` rewrites both (default ``docs/``); a test fails when
the committed files differ from what this module renders.
"""

from __future__ import annotations

import sys
from pathlib import Path

from metrics import catalog
from metrics.catalog import MetricSpec
from observer.config import render_json_schema
from observer.stack.config import render_json_schema as render_stack_schema

HEADER = """# Metrics

Generated from `metrics/catalog.py` by `python -m observer.commands.docs`; do not edit by hand.

Every metric is declared once in the catalog; the exporter registers from it and the
dashboards and alert rules build their queries from its entries. Counters end in `_total`,
durations are in seconds, and every label has a bounded set of values: the closed sets are
listed below, and `slot` is bounded by the Track B capacity (at most 41 values).
`_created` series are off. The process (`process_*`), platform (`python_info`) and
garbage-collector (`python_gc_*`) collectors of prometheus_client are on as well.
"""


def _labels(spec: MetricSpec) -> str:
    if not spec.labels:
        return "—"
    parts = []
    for label in spec.labels:
        values = spec.values_of(label)
        parts.append(f"`{label}` ({', '.join(values)})" if values else f"`{label}`")
    return "; ".join(parts)


def render_metrics_doc() -> str:
    """The Markdown reference of every catalog metric and of every rename."""
    lines = [HEADER]
    for group in catalog.GROUPS:
        lines += [
            f"## {group}",
            "",
            "| metric | type | unit | labels | meaning |",
            "|---|---|---|---|---|",
        ]
        for spec in catalog.CATALOG:
            if spec.group != group:
                continue
            name = f"`{spec.name}`" + (" ¹" if spec.extra else "")
            unit = spec.unit or "—"
            lines.append(f"| {name} | {spec.kind.value} | {unit} | {_labels(spec)} | {spec.help} |")
        lines.append("")
    lines += [
        "¹ Not in the source design; added for operators.",
        "",
        "## Renamed from the source design",
        "",
        "| source name | exported as | reason |",
        "|---|---|---|",
    ]
    for spec in catalog.CATALOG:
        for rename in spec.renames:
            lines.append(f"| `{rename.source_name}` | `{spec.name}` | {rename.reason} |")
    return "\n".join(lines) + "\n"


def rendered_docs() -> dict[str, str]:
    return {
        "metrics.md": render_metrics_doc(),
        "config.schema.json": render_json_schema(),
        "stack.schema.json": render_stack_schema(),
    }


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path("docs")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered_docs().items():
        (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
