"""Alertmanager configuration: routes by severity, webhook receivers, inhibitions.

Receivers: ``critical`` and ``warning`` post to a webhook (``webhook_url``; the
default is a local sink to be replaced by the deployment's paging integration),
``watchdog`` takes the always-firing Watchdog (no integration by default: point
it at a dead man's switch service; the e2e profile sends it to the webhook so a
test sees the pipeline work). Critical alerts inhibit warnings of the same
alertname and instance; TokenExpired inhibits TokenValidityLow.
"""

from __future__ import annotations

from typing import Any

from metrics.promql import duration
from rules.params import RuleParams

GROUP_BY = ("alertname", "job", "instance")


def _webhook(name: str, url: str) -> dict[str, Any]:
    return {"name": name, "webhook_configs": [{"url": url, "send_resolved": True}]}


def alertmanager_config(params: RuleParams) -> dict[str, Any]:
    """The Alertmanager config document for ``params`` (key order is stable)."""
    profile = params.profile
    timing = {
        "group_wait": duration(profile.group_wait_seconds),
        "group_interval": duration(profile.group_interval_seconds),
        "repeat_interval": duration(profile.repeat_interval_seconds),
    }
    watchdog: dict[str, Any] = (
        _webhook("watchdog", params.webhook_url)
        if profile.watchdog_to_webhook
        else {"name": "watchdog"}
    )
    return {
        "route": {
            "receiver": "warning",
            "group_by": list(GROUP_BY),
            **timing,
            "routes": [
                {
                    "receiver": "watchdog",
                    "matchers": ['alertname="Watchdog"'],
                    "repeat_interval": duration(min(60, profile.repeat_interval_seconds)),
                },
                {"receiver": "critical", "matchers": ['severity="critical"']},
                {"receiver": "warning", "matchers": ['severity="warning"']},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname", "instance"],
            },
            {
                "source_matchers": ['alertname="TokenExpired"'],
                "target_matchers": ['alertname="TokenValidityLow"'],
                "equal": ["instance"],
            },
        ],
        "receivers": [
            _webhook("critical", params.webhook_url),
            _webhook("warning", params.webhook_url),
            watchdog,
        ],
    }
