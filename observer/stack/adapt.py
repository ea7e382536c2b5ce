"""A stack configuration turned into the builders' parameters (rules, Prometheus, Grafana,
compose), and the alert settings it may name."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from dashboards import DashboardParams
from observer.errors import ConfigError
from observer.stack import compose, layout, prometheus
from observer.stack.compose import DEFAULT_BUILD_CONTEXT, ComposeParams
from observer.stack.config import EmailConfig, ReceiverConfig, StackConfig
from observer.stack.prometheus import COMPOSE, PrometheusProfile
from rules.params import DEFAULT, Profile, Routing, RuleOverride, RuleParams
from rules.render import all_definitions
from rules.thresholds import THRESHOLDS, default_of, threshold_of

# The source tree this code runs from: the default build context when it holds the Dockerfile.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = PROJECT_ROOT / "compose"


def alert_keys() -> dict[str, tuple[int, float | None]]:
    """Every key alerts.rules accepts → (built-in for_seconds, built-in threshold or None).

    A name with one severity is its own key; a name with two (the burn-rate alerts) is
    keyed ``Name:severity``.
    """
    definitions = [d.rule for d in all_definitions(RuleParams())]
    counts: dict[str, int] = {}
    for rule in definitions:
        counts[rule.alert] = counts.get(rule.alert, 0) + 1
    keys: dict[str, tuple[int, float | None]] = {}
    for rule in definitions:
        key = rule.alert if counts[rule.alert] == 1 else f"{rule.alert}:{rule.severity}"
        limit = default_of(rule.alert, rule.severity) if rule.alert in THRESHOLDS else None
        keys[key] = (rule.for_seconds, limit)
    return keys


def default_rules() -> dict[str, dict[str, Any]]:
    """alerts.rules with every alert's built-in threshold and for (``--print-defaults``)."""
    out: dict[str, dict[str, Any]] = {}
    for key, (for_seconds, limit) in alert_keys().items():
        entry: dict[str, Any] = {} if limit is None else {"threshold": limit}
        entry["for_seconds"] = for_seconds
        out[key] = entry
    return out


def _overrides(config: StackConfig) -> tuple[tuple[str, RuleOverride], ...]:
    keys = alert_keys()
    overrides = []
    for key, settings in config.alerts.rules.items():
        if key not in keys:
            raise ConfigError(f"alerts.rules.{key}: no such alert (known: {', '.join(keys)})")
        name = key.split(":")[0]
        if settings.threshold is not None:
            bounds = THRESHOLDS.get(name)
            if bounds is None:
                raise ConfigError(f"alerts.rules.{key}.threshold: {name} has no threshold to set")
            if not bounds.minimum <= settings.threshold <= bounds.maximum:
                raise ConfigError(
                    f"alerts.rules.{key}.threshold = {settings.threshold!r}: must be "
                    f"{bounds.minimum:g} to {bounds.maximum:g} ({bounds.unit})"
                )
        overrides.append(
            (key, RuleOverride(threshold=settings.threshold, for_seconds=settings.for_seconds))
        )
    params = RuleParams(overrides=tuple(overrides))
    burn = "TrackAFreshnessBudgetBurn"
    critical, warning = (threshold_of(params, burn, s) for s in ("critical", "warning"))
    if warning >= critical:
        raise ConfigError(
            f"alerts.rules.{burn}:warning.threshold = {warning:g}: the warning burn rate must "
            f"be below the critical one ({critical:g})"
        )
    return tuple(overrides)


def _receiver(receiver: ReceiverConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"name": receiver.name}
    if receiver.webhook:
        webhooks = []
        for hook in receiver.webhook:
            item: dict[str, Any] = {"url": hook.url, "send_resolved": hook.send_resolved}
            if hook.bearer_token_file is not None:
                item["http_config"] = {
                    "authorization": {
                        "type": "Bearer",
                        "credentials_file": str(hook.bearer_token_file),
                    }
                }
            webhooks.append(item)
        out["webhook_configs"] = webhooks
    if receiver.slack:
        out["slack_configs"] = [
            {
                "api_url_file": str(s.api_url_file),
                "channel": s.channel,
                "send_resolved": s.send_resolved,
            }
            for s in receiver.slack
        ]
    if receiver.pagerduty:
        out["pagerduty_configs"] = [
            {"routing_key_file": str(p.routing_key_file), "send_resolved": p.send_resolved}
            for p in receiver.pagerduty
        ]
    if receiver.email:
        out["email_configs"] = [_email(e) for e in receiver.email]
    return out


def _email(email: EmailConfig) -> dict[str, Any]:
    item: dict[str, Any] = {"to": email.to, "from": email.sender, "smarthost": email.smarthost}
    if email.auth_username is not None:
        item["auth_username"] = email.auth_username
    if email.auth_password_file is not None:
        item["auth_password_file"] = str(email.auth_password_file)
    item["require_tls"] = email.require_tls
    item["send_resolved"] = email.send_resolved
    return item


def routing(config: StackConfig) -> Routing:
    section = config.alertmanager
    return Routing(
        receivers=tuple(_receiver(r) for r in section.receivers),
        routes=tuple(
            {"receiver": r.receiver, "matchers": list(r.matchers)}
            | ({"continue": True} if r.continue_ else {})
            for r in section.routes
        ),
        default_receiver=section.default_receiver,
        watchdog_receiver=section.watchdog_receiver,
    )


def rule_params(config: StackConfig, profile: Profile = DEFAULT) -> RuleParams:
    return RuleParams(
        profile=profile,
        memory_limit_bytes=config.alerts.memory_limit_bytes,
        runbook_base_url=config.alerts.runbook_base_url,
        job=config.prometheus.job,
        selectors=tuple(config.prometheus.selectors.items()),
        alert_labels=tuple(config.alerts.labels.items()),
        overrides=_overrides(config),
        routing=routing(config),
    )


def prometheus_profile(config: StackConfig) -> PrometheusProfile:
    section = config.prometheus
    return PrometheusProfile(
        scrape_interval_seconds=section.scrape_interval_seconds,
        evaluation_interval_seconds=section.evaluation_interval_seconds,
        observer_target=COMPOSE.observer_target,
        alertmanager_target=COMPOSE.alertmanager_target,
        environment=COMPOSE.environment,
        job=section.job,
        targets=tuple(section.targets),
        target_labels=tuple(section.selectors.items()),
        file_sd=_file_sd(config),
        remote_write_url=prometheus.remote_write_url("victoriametrics")
        if config.victoriametrics.enabled
        else None,
    )


def _file_sd(config: StackConfig) -> str | None:
    if config.cluster.observers:
        return str(PurePosixPath(layout.PROMETHEUS_TARGETS).relative_to(layout.PROMETHEUS_DIR))
    return None if config.prometheus.file_sd is None else str(config.prometheus.file_sd)


def cluster_targets(config: StackConfig) -> dict[str, str]:
    """The members as a file_sd list (with the selectors as labels); empty without a cluster."""
    count = config.cluster.observers
    if not count:
        return {}
    group: dict[str, object] = {
        "targets": [
            f"{compose.member_name(index)}:{layout.OBSERVER_PORT}" for index in range(1, count + 1)
        ]
    }
    if config.prometheus.selectors:
        group["labels"] = dict(config.prometheus.selectors)
    return {layout.PROMETHEUS_TARGETS: json.dumps([group], indent=2) + "\n"}


def dashboard_params(config: StackConfig) -> DashboardParams:
    section = config.dashboard
    return DashboardParams(
        storage_queue_fill=threshold_of(rule_params(config), "StorageQueueFilling"),
        title=section.title,
        uid=section.uid,
        tags=tuple(section.tags),
        refresh=section.refresh,
        time_from=section.time_from,
    )


def build_context(config: StackConfig, out_dir: Path) -> str:
    """The compose build context as written in ``out_dir/compose.yaml``.

    Relative when ``out_dir`` lies inside the context folder (``..`` for the committed
    ``compose/``), else absolute. ConfigError when no Dockerfile is found there.
    """
    context = config.compose.build_context or PROJECT_ROOT
    if not (context / "Dockerfile").is_file():
        raise ConfigError(
            f"compose.build_context: no Dockerfile in {context}; set it to the folder of "
            "Observer's source tree"
        )
    out = out_dir.resolve()
    context = context.resolve()
    if out == context or context in out.parents:
        return Path(os.path.relpath(context, out)).as_posix()
    return str(context)


def compose_params(config: StackConfig, out_dir: Path | None) -> ComposeParams:
    out = DEFAULT_OUT if out_dir is None else out_dir
    context = build_context(config, out)
    return ComposeParams(
        build_context=DEFAULT_BUILD_CONTEXT if context == DEFAULT_BUILD_CONTEXT else context,
        prometheus_files=()
        if config.prometheus.file_sd is None
        else (str(config.prometheus.file_sd),),
        alertmanager_files=tuple(str(path) for path in config.secret_files()),
        observers=config.cluster.observers,
        victoriametrics_retention=config.victoriametrics.retention_period
        if config.victoriametrics.enabled
        else None,
    )
