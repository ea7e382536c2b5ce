"""Generation parameters: the profile (default or e2e timings) and deployment facts.

The default profile keeps every ``for`` and range window as designed. The
``e2e`` profile makes the same alerts from the same builders fire and resolve
in seconds: each minute of ``for`` and of every range window (``[5m]`` holds
5 s of 1 s scrapes, ``[15m]`` 15 s; at least 2 s) becomes a second, rule groups
evaluate every second, and Alertmanager groups and repeats within seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from metrics.promql import JOB, Scope, duration
from observer.errors import ObserverError

# Where alerts go unless told otherwise: the conventional local webhook sink of the
# Alertmanager examples. Replace it with the paging/chat integration of the deployment.
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:5001/alerts"
# The resident-memory limit of one Observer process: the limit its container or service
# manager enforces (ObserverMemoryNearLimit fires at 90 % of it).
DEFAULT_MEMORY_LIMIT_BYTES = 1024**3
# Runbook links must be absolute to be followed from Alertmanager, Grafana or a chat message.
# The default is a placeholder on a reserved domain (RFC 2606): set the stack configuration's
# alerts.runbook_base_url to where docs/runbook.md (or the generated runbook.md) is published.
DEFAULT_RUNBOOK_BASE_URL = "https://git.example.com/observer/blob/main/docs/runbook.md"
# A scaled range window still holds two samples of the e2e profile's 1 s scrapes.
MIN_SCALED_RANGE_SECONDS = 2


class ProfileError(ObserverError, ValueError):
    """An unknown profile or a parameter out of range."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """Timings of one generation profile."""

    name: str
    for_divisor: int  # a rule's ``for`` in seconds is divided by this
    range_divisor: int  # and so is every range window of its expression
    evaluation_interval_seconds: int | None  # None: Prometheus's global interval
    group_wait_seconds: int
    group_interval_seconds: int
    repeat_interval_seconds: int
    watchdog_to_webhook: bool
    unit_tests: bool  # the promtool test file is written for this profile

    def scaled_for(self, seconds: int) -> int:
        if seconds == 0:
            return 0
        return max(1, seconds // self.for_divisor)

    def scaled_range(self, seconds: int) -> int:
        """A range window's length under this profile: at least two 1 s scrapes when scaled."""
        if self.range_divisor == 1:
            return seconds
        return max(MIN_SCALED_RANGE_SECONDS, seconds // self.range_divisor)


DEFAULT = Profile(
    name="default",
    for_divisor=1,
    range_divisor=1,
    evaluation_interval_seconds=None,
    group_wait_seconds=30,
    group_interval_seconds=300,
    repeat_interval_seconds=4 * 3600,
    watchdog_to_webhook=False,
    unit_tests=True,
)
E2E = Profile(
    name="e2e",
    for_divisor=60,
    range_divisor=60,
    evaluation_interval_seconds=1,
    group_wait_seconds=1,
    group_interval_seconds=1,
    repeat_interval_seconds=10,
    watchdog_to_webhook=True,
    unit_tests=False,
)
PROFILES = MappingProxyType({profile.name: profile for profile in (DEFAULT, E2E)})


LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Labels the rules, Prometheus or Alertmanager set themselves.
RESERVED_LABELS = frozenset({"job", "instance", "severity", "alertname", "le", "quantile"})
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleOverride:
    """A deployment's own threshold and ``for`` of one alert (None: the built-in value)."""

    threshold: float | None = None
    for_seconds: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Routing:
    """Alertmanager receivers and routes written as given (secrets only as ``*_file`` paths).

    ``receivers`` and ``routes`` are Alertmanager documents; ``default_receiver`` takes what
    no route matches. None in RuleParams: the built-in webhook receivers.
    """

    receivers: tuple[dict[str, Any], ...]
    routes: tuple[dict[str, Any], ...]
    default_receiver: str
    watchdog_receiver: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleParams:
    """Everything the rule and Alertmanager builders depend on.

    ``job`` and ``selectors`` (equality matchers) scope every query and are kept by every
    aggregation; ``alert_labels`` go on every alert; ``overrides`` map an alert name (or
    ``Name:severity`` where one name has two severities) to its threshold and ``for``.
    """

    profile: Profile = DEFAULT
    webhook_url: str = DEFAULT_WEBHOOK_URL
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    job: str = JOB
    selectors: Labels = ()
    alert_labels: Labels = ()
    overrides: tuple[tuple[str, RuleOverride], ...] = ()
    routing: Routing | None = field(default=None)

    def __post_init__(self) -> None:
        if self.memory_limit_bytes <= 0:
            raise ProfileError("memory_limit_bytes must be positive")
        if not self.webhook_url.startswith(("http://", "https://")):
            raise ProfileError(f"webhook_url must be http(s), got {self.webhook_url!r}")
        if not self.runbook_base_url.startswith(("http://", "https://")):
            raise ProfileError(
                f"runbook_base_url must be an absolute http(s) URL, got {self.runbook_base_url!r}"
            )
        if not self.job or '"' in self.job or "\\" in self.job:
            raise ProfileError(f"job must be a plain non-empty name, got {self.job!r}")
        for what, labels in (("selectors", self.selectors), ("alert_labels", self.alert_labels)):
            for name, value in labels:
                if not LABEL_NAME.match(name) or name in RESERVED_LABELS:
                    raise ProfileError(f"{what}: {name!r} is not a label name of its own")
                if '"' in value or "\\" in value:
                    raise ProfileError(f"{what}: the value of {name} has a quote or backslash")

    @property
    def scope(self) -> Scope:
        """The matchers every rule selector carries: the job and the extra selectors."""
        return Scope((("job", "=", self.job), *((k, "=", v) for k, v in self.selectors)))

    @property
    def by(self) -> str:
        """The labels every per-instance aggregation keeps."""
        return ", ".join(("job", "instance", *(name for name, _ in self.selectors)))

    @property
    def by_job(self) -> str:
        """The labels every per-job (cluster-wide) aggregation keeps."""
        return ", ".join(("job", *(name for name, _ in self.selectors)))

    @property
    def target_labels(self) -> Labels:
        """The job and the selector labels: what a series of the scraped target carries."""
        return (("job", self.job), *self.selectors)

    def override(self, alert: str, severity: str) -> RuleOverride:
        found = dict(self.overrides)
        return found.get(f"{alert}:{severity}") or found.get(alert) or RuleOverride()

    def threshold(self, alert: str, default: float, severity: str = "") -> float:
        """The configured threshold of ``alert`` (``default`` unless overridden)."""
        value = self.override(alert, severity).threshold
        return default if value is None else value

    def for_(self, seconds: int) -> int:
        return self.profile.scaled_for(seconds)

    def window_seconds(self, seconds: int) -> int:
        """The length of a range window designed as ``seconds``, under the profile."""
        return self.profile.scaled_range(seconds)

    def window(self, seconds: int) -> str:
        """A range window designed as ``seconds``, as a PromQL duration (``5m``, or ``5s``)."""
        return duration(self.window_seconds(seconds))

    def runbook_url(self, alert: str) -> str:
        return f"{self.runbook_base_url}#{alert.lower()}"


def profile_named(name: str) -> Profile:
    """The profile called ``name``; ProfileError names the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ProfileError(f"unknown profile {name!r}; known: {sorted(PROFILES)}") from None
