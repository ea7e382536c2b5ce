"""Rule value objects: alerting and recording rules, groups, runbook entries, unit-test cases.

Every object is frozen and validated on construction (names, severities,
PromQL syntax, annotation templates), and serialises to plain dicts whose key
order is fixed, so the YAML written from them is byte-stable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from metrics.promql import duration
from observer.errors import ObserverError

Severity = Literal["critical", "warning", "none"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "none")

ALERT_NAME = re.compile(r"^[A-Z][a-z0-9]*(?:[A-Z]+[a-z0-9]*)*$")
RECORD_NAME = re.compile(r"^[a-z][a-z_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")
GROUP_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
# The only template forms annotations may use; rules.promtest renders exactly these.
TEMPLATE = re.compile(r"\{\{(.*?)\}\}")
PLACEHOLDER = re.compile(
    r"^ (?:\$labels\.(?P<label>[a-z_]+)"
    r'|\$value \| (?P<func>humanize|humanizePercentage|humanizeDuration|printf "%\.2f")) $'
)


class RuleError(ObserverError, ValueError):
    """A rule, group or test case that would not load or would not mean what it says."""


def check_promql(expr: str, what: str) -> None:
    """Raise RuleError naming ``what`` when ``expr`` is not valid PromQL.

    Skipped when the promql-parser package is not installed: promtool still
    checks the generated rule files (``rules.check_files``).
    """
    try:
        import promql_parser
    except ImportError:  # pragma: no cover - installed with the dev extras
        return
    try:
        promql_parser.parse(expr)
    except Exception as exc:  # the parser raises a bare ValueError/RuntimeError
        raise RuleError(f"{what}: invalid PromQL {expr!r}: {exc}") from exc


def check_template(text: str, what: str) -> None:
    for inner in TEMPLATE.findall(text):
        if not PLACEHOLDER.match(inner):
            raise RuleError(f"{what}: unsupported template {{{{{inner}}}}}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRule:
    """One alerting rule; ``for_seconds`` is how long the condition must hold."""

    alert: str
    expr: str
    for_seconds: int
    severity: Severity
    summary: str
    description: str
    runbook_url: str
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        what = f"alert {self.alert}"
        if not ALERT_NAME.match(self.alert):
            raise RuleError(f"{what}: alert names are CamelCase")
        if self.severity not in SEVERITIES:
            raise RuleError(f"{what}: severity {self.severity!r} not in {SEVERITIES}")
        if self.for_seconds < 0:
            raise RuleError(f"{what}: negative for")
        if "{{" in self.summary or not self.summary[:1].isupper() or not self.summary.endswith("."):
            raise RuleError(f"{what}: the summary is a plain sentence without templates")
        if "{{" not in self.description:
            raise RuleError(f"{what}: the description must show a value or a label")
        if "#" not in self.runbook_url:
            raise RuleError(f"{what}: runbook_url must point at a section (#anchor)")
        if any(name == "severity" for name, _ in self.labels):
            raise RuleError(f"{what}: severity is its own field")
        check_template(self.description, what)
        check_promql(self.expr, what)

    @property
    def all_labels(self) -> dict[str, str]:
        return {"severity": self.severity, **dict(self.labels)}

    @property
    def annotations(self) -> dict[str, str]:
        return {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": self.runbook_url,
        }

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"alert": self.alert, "expr": self.expr}
        if self.for_seconds:
            out["for"] = duration(self.for_seconds)
        out["labels"] = self.all_labels
        out["annotations"] = self.annotations
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingRule:
    """One recording rule, named ``level:metric:operations``."""

    record: str
    expr: str
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not RECORD_NAME.match(self.record):
            raise RuleError(f"record {self.record!r}: names are level:metric:operations")
        check_promql(self.expr, f"record {self.record}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"record": self.record, "expr": self.expr}
        if self.labels:
            out["labels"] = dict(self.labels)
        return out


Rule = AlertRule | RecordingRule


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleGroup:
    """A named group of rules evaluated together, in order."""

    name: str
    rules: tuple[Rule, ...]
    interval_seconds: int | None = None

    def __post_init__(self) -> None:
        if not GROUP_NAME.match(self.name):
            raise RuleError(f"group {self.name!r}: lower-case dotted names")
        if not self.rules:
            raise RuleError(f"group {self.name}: no rules")
        keys = [
            (r.alert, r.severity) if isinstance(r, AlertRule) else (r.record, r.labels)
            for r in self.rules
        ]
        if len(keys) != len(set(keys)):
            raise RuleError(f"group {self.name}: a rule is declared twice")

    @property
    def alerts(self) -> tuple[AlertRule, ...]:
        return tuple(r for r in self.rules if isinstance(r, AlertRule))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.interval_seconds is not None:
            out["interval"] = duration(self.interval_seconds)
        out["rules"] = [rule.to_dict() for rule in self.rules]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RunbookEntry:
    """What an alert means, why it differs from the source design, and what to do."""

    meaning: str
    source_change: str = ""  # empty: new in Observer or taken over unchanged
    actions: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.meaning or not self.actions:
            raise RuleError("a runbook entry needs a meaning and at least one action")


@dataclass(frozen=True, slots=True, kw_only=True)
class InputSeries:
    """A promtool input series; ``{n}`` in ``values`` is filled to cover the test."""

    series: str
    values: str

    def __post_init__(self) -> None:
        check_promql(self.series, f"input series {self.series}")
        if self.values.count("{n}") > 1:
            raise RuleError(f"input series {self.series}: at most one {{n}}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Firing:
    """Inputs under which the alert's condition holds from ``onset_seconds`` on.

    The generated test expects silence one evaluation before ``onset + for``
    and the alert firing at ``onset + for`` with ``labels`` (besides the rule's
    own) and its description rendered with ``value``.
    """

    name: str
    inputs: tuple[InputSeries, ...]
    onset_seconds: int
    value: float
    labels: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if self.onset_seconds < 0 or math.isnan(self.value):
            raise RuleError(f"case {self.name}: onset must be >= 0 and value a number")


@dataclass(frozen=True, slots=True, kw_only=True)
class Healthy:
    """Inputs under which the alert must stay silent however long they last."""

    name: str
    inputs: tuple[InputSeries, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertDefinition:
    """An alert with its runbook entry and the unit-test cases that pin its logic."""

    rule: AlertRule
    runbook: RunbookEntry
    firing: tuple[Firing, ...]
    healthy: tuple[Healthy, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.firing:
            raise RuleError(f"alert {self.rule.alert}: no firing test case")
