"""Generation parameters: the profile (default or e2e timings) and deployment facts.

The default profile keeps every ``for`` and range window as designed. The
``e2e`` profile makes the same alerts from the same builders fire and resolve
in seconds: each minute of ``for`` and of every range window (``[5m]`` holds
5 s of 1 s scrapes, ``[15m]`` 15 s; at least 2 s) becomes a second, rule groups
evaluate every second, and Alertmanager groups and repeats within seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from metrics.promql import duration
from observer.errors import ObserverError

# Where alerts go unless told otherwise: the conventional local webhook sink of the
# Alertmanager examples. Replace it with the paging/chat integration of the deployment.
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:5001/alerts"
# The resident-memory limit of one Observer process: the limit its container or service
# manager enforces (ObserverMemoryNearLimit fires at 90 % of it).
DEFAULT_MEMORY_LIMIT_BYTES = 1024**3
# Runbook links are relative to the repository root; prefix with the repository's web URL
# (e.g. "https://git.example.com/observer/blob/main/docs/runbook.md") when publishing.
DEFAULT_RUNBOOK_BASE_URL = "docs/runbook.md"
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


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleParams:
    """Everything the rule and Alertmanager builders depend on."""

    profile: Profile = DEFAULT
    webhook_url: str = DEFAULT_WEBHOOK_URL
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL

    def __post_init__(self) -> None:
        if self.memory_limit_bytes <= 0:
            raise ProfileError("memory_limit_bytes must be positive")
        if not self.webhook_url.startswith(("http://", "https://")):
            raise ProfileError(f"webhook_url must be http(s), got {self.webhook_url!r}")

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
