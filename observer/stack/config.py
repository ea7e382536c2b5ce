"""The stack configuration: one YAML file adapts every generated file (``--config stack.yaml``).

Like a monitoring mixin's ``_config``: the Prometheus job and selectors, scrape interval and
targets, each alert's threshold and ``for``, extra alert labels, the runbook's URL,
Alertmanager receivers and routes, the dashboard's title and the compose build context.
Frozen, validated, unknown keys refused; every default is today's generated stack
(``observer generate --print-defaults``). Secrets are never values here: receivers name the
files Alertmanager reads them from (``*_file``), and only those paths reach the output.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from observer.config_yaml import dump_generated_yaml
from observer.errors import ConfigError
from observer.stack import layout
from rules.params import (
    DEFAULT_MEMORY_LIMIT_BYTES,
    DEFAULT_RUNBOOK_BASE_URL,
    DEFAULT_WEBHOOK_URL,
    RESERVED_LABELS,
)

MAX_CONFIG_BYTES = 1_000_000
LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
PLAIN_VALUE = r'^[^"\\\n]*$'
HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
# Alertmanager fields that hold a secret inline; the configuration takes their *_file form.
INLINE_SECRETS = {
    "api_url": "api_url_file",
    "routing_key": "routing_key_file",
    "service_key": "service_key_file",
    "auth_password": "auth_password_file",
    "bearer_token": "bearer_token_file",
    "password": "password_file",
}


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, replacement in INLINE_SECRETS.items():
                if key in data:
                    raise ValueError(
                        f"{key}: secrets are read from files, never written here; "
                        f"give {replacement} (a path)"
                    )
        return data


def _labels(value: dict[str, str], what: str) -> dict[str, str]:
    for name, text in value.items():
        if not re.match(LABEL_NAME, name) or name in RESERVED_LABELS:
            raise ValueError(f"{what}: {name!r} is not a label name of its own")
        if not re.match(PLAIN_VALUE, text):
            raise ValueError(f"{what}: the value of {name} has a quote, backslash or newline")
    return value


class PrometheusSection(_Section):
    job: str = Field(
        layout.OBSERVER_JOB,
        pattern=r"^[A-Za-z0-9_.:\-]+$",
        description='The scrape job\'s name; every rule selects job="<job>".',
    )
    selectors: dict[str, str] = Field(
        default_factory=dict,
        description="Extra label matchers (label: value) on every rule query, kept by every "
        "aggregation; the generated scrape config attaches them to its targets (a file_sd "
        "file must carry them itself).",
    )
    scrape_interval_seconds: float = Field(15.0, gt=0, le=300, description="Scrape interval.")
    evaluation_interval_seconds: float = Field(
        15.0, gt=0, le=300, description="Rule evaluation interval."
    )
    targets: list[str] = Field(
        default_factory=lambda: [f"observer:{layout.OBSERVER_PORT}"],
        description="Static HOST:PORT targets (the compose service by default).",
    )
    file_sd: Path | None = Field(
        None,
        description="A file_sd file (JSON or YAML) listing the targets instead of `targets`; "
        "relative to this file; compose mounts it into Prometheus at the same path.",
    )

    @field_validator("selectors")
    @classmethod
    def _selectors(cls, value: dict[str, str]) -> dict[str, str]:
        return _labels(value, "selectors")

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for target in value:
            if not HOST_PORT.match(target):
                raise ValueError(f"target {target!r} is not HOST:PORT")
        return value


class RuleSettings(_Section):
    threshold: float | None = Field(
        None, description="The alert's threshold, in the unit its runbook entry states."
    )
    for_seconds: int | None = Field(
        None, ge=0, le=86400, description="How long the condition must hold before it fires."
    )

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("the threshold must be a finite number")
        return value


class AlertsSection(_Section):
    labels: dict[str, str] = Field(
        default_factory=dict, description="Extra labels on every alert (team, environment)."
    )
    runbook_base_url: str = Field(
        DEFAULT_RUNBOOK_BASE_URL,
        pattern=r"^https?://[^\s#]+$",
        description="Absolute URL of the runbook; each alert links to its #section. The "
        "default is a placeholder on a reserved domain: set it to where docs/runbook.md (or "
        "the generated runbook.md) is published.",
    )
    memory_limit_bytes: int = Field(
        DEFAULT_MEMORY_LIMIT_BYTES,
        gt=0,
        description="The Observer process's memory limit ObserverMemoryNearLimit compares with.",
    )
    rules: dict[str, RuleSettings] = Field(
        default_factory=dict,
        description="Per alert (its name, or Name:severity where one name has two "
        "severities): threshold and for_seconds. Omitted: the built-in values "
        "(`observer generate --print-defaults` lists them).",
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return _labels(value, "labels")


class WebhookConfig(_Section):
    url: str = Field(pattern=r"^https?://\S+$", description="Where alerts are POSTed.")
    bearer_token_file: Path | None = Field(
        None, description="File holding a bearer token sent with every request."
    )
    send_resolved: bool = True


class SlackConfig(_Section):
    api_url_file: Path = Field(description="File holding the Slack incoming-webhook URL.")
    channel: str = Field(min_length=1, description="Channel, e.g. #alerts.")
    send_resolved: bool = True


class PagerDutyConfig(_Section):
    routing_key_file: Path = Field(description="File holding the Events API v2 routing key.")
    send_resolved: bool = True


class EmailConfig(_Section):
    to: str = Field(min_length=3, description="Recipient address(es).")
    sender: str = Field(alias="from", min_length=3, description="Sender address.")
    smarthost: str = Field(pattern=r"^\S+:\d{1,5}$", description="SMTP HOST:PORT.")
    auth_username: str | None = None
    auth_password_file: Path | None = Field(None, description="File holding the SMTP password.")
    require_tls: bool = True
    send_resolved: bool = True


class ReceiverConfig(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    webhook: list[WebhookConfig] = Field(default_factory=list)
    slack: list[SlackConfig] = Field(default_factory=list)
    pagerduty: list[PagerDutyConfig] = Field(default_factory=list)
    email: list[EmailConfig] = Field(default_factory=list)


class RouteConfig(_Section):
    receiver: str
    matchers: list[str] = Field(
        min_length=1,
        description='Alertmanager matchers, e.g. severity="critical" or team=~"markets|ops".',
    )
    continue_: bool = Field(False, alias="continue", description="Keep matching later routes.")


def _default_receivers() -> list[ReceiverConfig]:
    return [
        ReceiverConfig(name="critical", webhook=[WebhookConfig(url=DEFAULT_WEBHOOK_URL)]),
        ReceiverConfig(name="warning", webhook=[WebhookConfig(url=DEFAULT_WEBHOOK_URL)]),
        ReceiverConfig(name="watchdog"),
    ]


def _default_routes() -> list[RouteConfig]:
    return [
        RouteConfig(receiver="critical", matchers=['severity="critical"']),
        RouteConfig(receiver="warning", matchers=['severity="warning"']),
    ]


class AlertmanagerSection(_Section):
    receivers: list[ReceiverConfig] = Field(
        default_factory=_default_receivers,
        description="Receivers; secrets only as *_file paths (relative to this file).",
    )
    routes: list[RouteConfig] = Field(
        default_factory=_default_routes, description="Routes tried in order after Watchdog's."
    )
    default_receiver: str = Field("warning", description="Takes what no route matches.")
    watchdog_receiver: str = Field(
        "watchdog", description="Takes the always-firing Watchdog: a dead man's switch."
    )

    @model_validator(mode="after")
    def _known_receivers(self) -> AlertmanagerSection:
        names = [r.name for r in self.receivers]
        if len(names) != len(set(names)):
            raise ValueError("receivers: a name is used twice")
        used = [self.default_receiver, self.watchdog_receiver, *(r.receiver for r in self.routes)]
        unknown = sorted({name for name in used if name not in names})
        if unknown:
            raise ValueError(f"no receiver named {', '.join(unknown)} (receivers: {names})")
        return self


class DashboardSection(_Section):
    title: str = Field("Observer", min_length=1)
    uid: str = Field("observer-overview", pattern=r"^[A-Za-z0-9_\-]{1,40}$")
    tags: list[str] = Field(default_factory=lambda: ["observer"])
    refresh: str = Field("30s", pattern=r"^\d+[smhd]$")
    time_from: str = Field("now-6h", pattern=r"^now-\d+[smhdwMy]$")


class ComposeSection(_Section):
    build_context: Path | None = Field(
        None,
        description="Folder with Observer's Dockerfile that compose builds the image from "
        "(relative to this file). Default: the source tree `observer` runs from, written "
        "relative to the output folder when it lies inside it, else absolute.",
    )


class ClusterSection(_Section):
    observers: int = Field(
        0,
        ge=0,
        le=32,
        description="0: one Observer with its embedded database (the default). N >= 1: N "
        "cluster members observer-1..N, each with its own app key from KIS_APP_KEY_i / "
        "KIS_APP_SECRET_i, sharing a postgres service whose password comes from "
        "POSTGRES_PASSWORD; Prometheus finds them through the file_sd list "
        "prometheus/targets/observer.json.",
    )


class VictoriaMetricsSection(_Section):
    enabled: bool = Field(
        False,
        description="Add a VictoriaMetrics single-node service that Prometheus remote-writes "
        "every sample to, and a second Grafana data source for it (long retention).",
    )
    retention_period: str = Field(
        "1y",
        pattern=r"^[1-9]\d*[dwy]$",
        description="How long VictoriaMetrics keeps samples (-retentionPeriod): days, weeks "
        "or years, e.g. 90d, 1y.",
    )


class StackConfig(_Section):
    """What ``observer generate --config`` reads; every default is today's generated stack."""

    prometheus: PrometheusSection = Field(default_factory=PrometheusSection)
    alerts: AlertsSection = Field(default_factory=AlertsSection)
    alertmanager: AlertmanagerSection = Field(default_factory=AlertmanagerSection)
    dashboard: DashboardSection = Field(default_factory=DashboardSection)
    compose: ComposeSection = Field(default_factory=ComposeSection)
    cluster: ClusterSection = Field(default_factory=ClusterSection)
    victoriametrics: VictoriaMetricsSection = Field(default_factory=VictoriaMetricsSection)

    @model_validator(mode="after")
    def _one_target_list(self) -> StackConfig:
        if self.cluster.observers and self.prometheus.file_sd is not None:
            raise ValueError(
                "prometheus.file_sd: cluster.observers writes the targets file itself; "
                "leave prometheus.file_sd unset"
            )
        if self.cluster.observers and "targets" in self.prometheus.model_fields_set:
            raise ValueError(
                "prometheus.targets: cluster.observers lists the members itself; "
                "leave prometheus.targets unset"
            )
        return self

    def resolved(self, base_dir: Path) -> StackConfig:
        """Every relative path made absolute against ``base_dir`` (the file's folder)."""
        document = self.model_dump(by_alias=True, exclude_unset=True)
        _absolute_paths(document, base_dir.resolve())
        return StackConfig.model_validate(document)

    def secret_files(self) -> list[Path]:
        """Every ``*_file`` path the receivers name, in order."""
        found: list[Path] = []
        for receiver in self.alertmanager.receivers:
            for item in (*receiver.webhook, *receiver.slack, *receiver.pagerduty, *receiver.email):
                for name, value in item:
                    if name.endswith("_file") and value is not None:
                        found.append(value)
        return found


PATH_KEYS = frozenset({"file_sd", "build_context"})


def _absolute_paths(node: Any, base: Path) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, Path) and (key.endswith("_file") or key in PATH_KEYS):
                node[key] = value if value.is_absolute() else base / value
            else:
                _absolute_paths(value, base)
    elif isinstance(node, list):
        for item in node:
            _absolute_paths(item, base)


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses aliases: no alias bombs, and a config reads as written."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.YAMLError(f"aliases are not accepted (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    return f"{key} = {error.get('input')!r}: {message}" if key else message


def config_from_mapping(document: Any, *, source: str) -> StackConfig:
    """Validate a parsed document; ConfigError names the key, the value and the reason."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        return StackConfig.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {_describe(dict(first))}{more}") from None


def load_stack_config(path: Path) -> StackConfig:
    """The stack configuration in ``path``, its relative paths resolved against its folder."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        document = yaml.load(raw.decode("utf-8"), Loader=_NoAliasLoader)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return config_from_mapping(document, source=str(path)).resolved(path.parent)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a stack configuration, as written to docs/stack.schema.json."""
    schema = StackConfig.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Observer stack configuration"
    return schema


def render_json_schema() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def dump_config(config: StackConfig, rules: dict[str, dict[str, Any]] | None = None) -> str:
    """The configuration as YAML (``rules`` replaces alerts.rules, e.g. with every default)."""
    document = config.model_dump(mode="json", by_alias=True)
    if rules is not None:
        document["alerts"]["rules"] = rules
    return dump_generated_yaml(document, width=100)
