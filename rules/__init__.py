"""Prometheus alerting and recording rules, their unit tests, and Alertmanager config.

``render_files(profile)`` returns the generated files (relative path under the
stack directory → text); ``check_files(directory)`` validates them with
promtool and amtool when those binaries are installed.
"""

from __future__ import annotations

from rules.check import check_files
from rules.params import (
    DEFAULT_MEMORY_LIMIT_BYTES,
    DEFAULT_RUNBOOK_BASE_URL,
    DEFAULT_WEBHOOK_URL,
    RuleParams,
    profile_named,
)
from rules.render import render_rule_files

__all__ = ["DEFAULT_MEMORY_LIMIT_BYTES", "DEFAULT_WEBHOOK_URL", "check_files", "render_files"]


def render_files(
    profile: str = "default",
    *,
    webhook_url: str = DEFAULT_WEBHOOK_URL,
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL,
) -> dict[str, str]:
    """Rule file, promtool test file (default profile) and Alertmanager config.

    ``profile``: "default" or "e2e" (every minute of ``for`` becomes a second,
    1 s evaluation, Alertmanager timings of seconds). ``webhook_url`` receives
    critical and warning alerts; ``memory_limit_bytes`` is the process memory
    limit ObserverMemoryNearLimit compares with. Raises ProfileError for an
    unknown profile or bad parameter.
    """
    params = RuleParams(
        profile=profile_named(profile),
        webhook_url=webhook_url,
        memory_limit_bytes=memory_limit_bytes,
        runbook_base_url=runbook_base_url,
    )
    return render_rule_files(params)
