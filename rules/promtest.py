"""promtool unit tests generated from the alert definitions.

For every firing case: silence one evaluation before ``onset + for``, then the
alert firing at ``onset + for`` with its labels and its annotations rendered
the way Prometheus renders them. For every healthy case: silence long after
``for``. Annotation templates are limited (see ``rules.model.PLACEHOLDER``) to
forms this module renders exactly like Prometheus's Go templates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from metrics.promql import JOB, duration
from rules.model import PLACEHOLDER, TEMPLATE, AlertDefinition, Firing, InputSeries, RuleError

Labels = tuple[tuple[str, str], ...]
DEFAULT_TARGET: Labels = (("job", JOB),)

STEP_SECONDS = 60  # interval of the input series
HEALTHY_AFTER_SECONDS = (6 * 60, 20 * 60)  # healthy cases are checked this long after `for`
SI_UP = ("k", "M", "G", "T", "P", "E", "Z", "Y")
SI_DOWN = ("m", "u", "n", "p", "f", "a", "z", "y")


def _g4(value: float) -> str:
    return f"{value:.4g}"


def humanize(value: float) -> str:
    """Prometheus's ``humanize``: 4 significant digits with an SI prefix."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _g4(value)
    prefix = ""
    if abs(value) >= 1:
        for p in SI_UP:
            if abs(value) < 1000:
                break
            prefix, value = p, value / 1000
    else:
        for p in SI_DOWN:
            if abs(value) >= 1:
                break
            prefix, value = p, value * 1000
    return _g4(value) + prefix


def humanize_duration(value: float) -> str:
    """Prometheus's ``humanizeDuration``."""
    if math.isnan(value) or math.isinf(value):
        return _g4(value)
    if value == 0:
        return _g4(value) + "s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value)
        seconds, minutes = whole % 60, whole // 60 % 60
        hours, days = whole // 3600 % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(value - whole + seconds)}s"
    prefix = ""
    for p in SI_DOWN:
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{_g4(value)}{prefix}s"


def humanize_percentage(value: float) -> str:
    """Prometheus's ``humanizePercentage``."""
    return _g4(value * 100) + "%"


def two_decimals(value: float) -> str:
    """``printf "%.2f"``."""
    return f"{value:.2f}"


FORMATTERS: Mapping[str, Callable[[float], str]] = MappingProxyType(
    {
        "humanize": humanize,
        "humanizePercentage": humanize_percentage,
        "humanizeDuration": humanize_duration,
        'printf "%.2f"': two_decimals,
    }
)


def render_template(text: str, labels: dict[str, str], value: float) -> str:
    """``text`` with its placeholders filled as Prometheus would fill them."""

    def fill(inner: str) -> str:
        match = PLACEHOLDER.match(inner)
        if match is None:
            raise RuleError(f"unsupported template {{{{{inner}}}}}")
        if match["label"]:
            return labels.get(match["label"], "")
        return FORMATTERS[match["func"]](value)

    out, last = [], 0
    for found in TEMPLATE.finditer(text):
        out.append(text[last : found.start()])
        out.append(fill(found.group(1)))
        last = found.end()
    out.append(text[last:])
    return "".join(out)


def retarget(series: str, target: Labels) -> str:
    """An input series of the default job moved to ``target`` (the job and selector labels).

    The builders write every input series as scraped from ``job="observer"``; a stack
    configuration may name another job and add selectors, which the series must carry.
    """
    default = f'job="{JOB}"'
    if default not in series:
        return series
    return series.replace(default, ",".join(f'{k}="{v}"' for k, v in target), 1)


def _case_labels(labels: Labels, target: Labels) -> dict[str, str]:
    """A case's expected labels; those of the default job become the target's."""
    found = dict(labels)
    if found.get("job") == JOB:
        found.update(target)
    return found


def _inputs(
    inputs: tuple[InputSeries, ...], until_seconds: int, target: Labels
) -> list[dict[str, str]]:
    steps = until_seconds // STEP_SECONDS + 2
    return [
        {"series": retarget(s.series, target), "values": s.values.replace("{n}", str(steps))}
        for s in inputs
    ]


def _firing_test(
    definition: AlertDefinition, case: Firing, interval: int, target: Labels
) -> dict[str, Any]:
    rule = definition.rule
    at = case.onset_seconds + rule.for_seconds
    case_labels = _case_labels(case.labels, target)
    labels = {**rule.all_labels, **case_labels}
    annotations = {
        **rule.annotations,
        # Templates see the expression's labels, not the ones the rule adds.
        "description": render_template(rule.description, case_labels, case.value),
    }
    checks: list[dict[str, Any]] = []
    if rule.for_seconds:
        checks.append(
            {"eval_time": duration(at - interval), "alertname": rule.alert, "exp_alerts": []}
        )
    checks.append(
        {
            "eval_time": duration(at),
            "alertname": rule.alert,
            "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}],
        }
    )
    return {
        "name": f"{rule.alert} ({rule.severity}) fires: {case.name}",
        "interval": duration(STEP_SECONDS),
        "input_series": _inputs(case.inputs, at, target),
        "alert_rule_test": checks,
    }


def _healthy_tests(definition: AlertDefinition, target: Labels) -> list[dict[str, Any]]:
    rule = definition.rule
    if not definition.healthy and rule.severity != "none":
        raise RuleError(f"alert {rule.alert}: no healthy case (only Watchdog may lack one)")
    times = [rule.for_seconds + after for after in HEALTHY_AFTER_SECONDS]
    return [
        {
            "name": f"{rule.alert} ({rule.severity}) stays silent: {case.name}",
            "interval": duration(STEP_SECONDS),
            "input_series": _inputs(case.inputs, max(times), target),
            "alert_rule_test": [
                {"eval_time": duration(t), "alertname": rule.alert, "exp_alerts": []} for t in times
            ],
        }
        for case in definition.healthy
    ]


def unit_tests(
    definitions: tuple[AlertDefinition, ...],
    *,
    rule_file: str,
    group_order: tuple[str, ...],
    evaluation_interval_seconds: int = STEP_SECONDS,
    target: Labels = DEFAULT_TARGET,
) -> dict[str, Any]:
    """The promtool test document for ``definitions`` against ``rule_file``; ``target``
    labels (job and selectors) replace the default job on inputs and expected alerts."""
    tests: list[dict[str, Any]] = []
    for definition in definitions:
        for case in definition.firing:
            tests.append(_firing_test(definition, case, evaluation_interval_seconds, target))
        tests.extend(_healthy_tests(definition, target))
    return {
        "rule_files": [rule_file],
        "evaluation_interval": duration(evaluation_interval_seconds),
        "group_eval_order": list(group_order),
        "tests": tests,
    }
