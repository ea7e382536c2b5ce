"""``prometheus.yml``: scrape Observer, load the alert rules, send alerts to Alertmanager.

The same builder serves the compose stack (targets by service name, 15 s
scrapes) and the native and end-to-end runs (loopback targets, short
intervals); ``rewrite`` turns a generated file into a native one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from observer.config_yaml import MAX_GENERATED_DEPTH, MAX_GENERATED_NODES, load_yaml
from observer.errors import ObserverError
from observer.stack import layout


class PrometheusConfigError(ObserverError):
    """A ``prometheus.yml`` that does not have the shape ``build_config`` writes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PrometheusProfile:
    """Intervals and targets of one Prometheus configuration."""

    scrape_interval_seconds: float = 15.0
    evaluation_interval_seconds: float = 15.0
    observer_target: str = f"observer:{layout.OBSERVER_PORT}"
    alertmanager_target: str = f"alertmanager:{layout.ALERTMANAGER_PORT}"
    environment: str = "compose"
    job: str = layout.OBSERVER_JOB
    targets: tuple[str, ...] = ()  # empty: observer_target alone
    target_labels: tuple[tuple[str, str], ...] = ()  # the rules' extra selectors
    file_sd: str | None = None  # a file_sd file instead of static targets
    remote_write_url: str | None = None  # long-term storage (VictoriaMetrics) gets every sample


COMPOSE = PrometheusProfile()
# End-to-end tests: 1 s scrapes and evaluations so alerts fire within seconds.
E2E = PrometheusProfile(
    scrape_interval_seconds=1.0,
    evaluation_interval_seconds=1.0,
    observer_target=f"127.0.0.1:{layout.OBSERVER_PORT}",
    alertmanager_target=f"127.0.0.1:{layout.ALERTMANAGER_PORT}",
    environment="e2e",
)


def duration(seconds: float) -> str:
    """A Prometheus duration: ``15s``, ``1s``, ``500ms``."""
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {seconds}")
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def rule_paths(generated_paths: Iterable[str]) -> list[str]:
    """Rule files among ``generated_paths``, relative to ``prometheus.yml``, sorted."""
    base = PurePosixPath(layout.PROMETHEUS_DIR)
    return sorted(
        str(PurePosixPath(path).relative_to(base))
        for path in generated_paths
        if layout.is_rule_file(path)
    )


def _targets(profile: PrometheusProfile) -> dict[str, Any]:
    if profile.file_sd is not None:
        return {"file_sd_configs": [{"files": [profile.file_sd]}]}
    static: dict[str, Any] = {"targets": list(profile.targets or (profile.observer_target,))}
    if profile.target_labels:
        static["labels"] = dict(profile.target_labels)
    return {"static_configs": [static]}


def remote_write_url(host: str, port: int = layout.VICTORIAMETRICS_PORT) -> str:
    """VictoriaMetrics' Prometheus remote-write endpoint on ``host``."""
    return f"http://{host}:{port}/api/v1/write"


def build_config(profile: PrometheusProfile, rule_files: Iterable[str]) -> dict[str, Any]:
    """The configuration as a dict in the order it is written."""
    config = _base_config(profile, rule_files)
    if profile.remote_write_url is not None:
        config["remote_write"] = [{"url": profile.remote_write_url}]
    return config


def _base_config(profile: PrometheusProfile, rule_files: Iterable[str]) -> dict[str, Any]:
    scrape = duration(profile.scrape_interval_seconds)
    return {
        "global": {
            "scrape_interval": scrape,
            "scrape_timeout": duration(min(10.0, profile.scrape_interval_seconds)),
            "evaluation_interval": duration(profile.evaluation_interval_seconds),
            "external_labels": {"environment": profile.environment},
        },
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [profile.alertmanager_target]}]},
            ],
        },
        "rule_files": list(rule_files),
        "scrape_configs": [
            {
                "job_name": profile.job,
                "scrape_interval": scrape,
                "metrics_path": "/metrics",
                **_targets(profile),
            },
        ],
    }


def render(profile: PrometheusProfile, generated_paths: Iterable[str]) -> str:
    return layout.dump_yaml(build_config(profile, rule_paths(generated_paths)))


def rewrite(
    text: str,
    *,
    observer_target: str,
    alertmanager_target: str,
    base_dir: PurePosixPath | None = None,
) -> str:
    """A generated ``prometheus.yml`` pointed at loopback targets.

    Relative rule files become absolute paths under ``base_dir`` (the folder
    the generated file came from) when it is given, so the rewritten
    configuration can live anywhere. The scrape job (its name is the stack
    configuration's) keeps its target labels; a file_sd list gives way to the
    target. Raises PrometheusConfigError when the text lacks a scrape job or
    the Alertmanager section.
    """
    config = load_yaml(text, max_nodes=MAX_GENERATED_NODES, max_depth=MAX_GENERATED_DEPTH)
    try:
        jobs = list(config["scrape_configs"])
        managers = config["alerting"]["alertmanagers"]
    except (KeyError, TypeError) as exc:
        raise PrometheusConfigError(f"prometheus.yml lacks {exc}") from exc
    if not jobs or not managers:
        raise PrometheusConfigError("prometheus.yml has no scrape job or no Alertmanager")
    for job in jobs:
        labels = [static.get("labels") for static in job.get("static_configs") or []]
        job.pop("file_sd_configs", None)
        static = {"targets": [observer_target]}
        if labels and labels[0]:
            static["labels"] = labels[0]
        job["static_configs"] = [static]
    config["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager_target]}]}]
    if base_dir is not None:
        config["rule_files"] = [str(base_dir / path) for path in config.get("rule_files") or []]
    return layout.dump_yaml(config)
