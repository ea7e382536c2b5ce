"""Alertmanager configuration: routes by severity, webhook receivers, inhibitions.

Built in (``RuleParams.routing`` None): ``critical`` and ``warning`` post to a
webhook (``webhook_url``; the default is a local sink to be replaced by the
deployment's paging integration), ``watchdog`` takes the always-firing Watchdog
(no integration by default: point it at a dead man's switch service; the e2e
profile sends it to the webhook so a test sees the pipeline work). A stack
configuration gives its own receivers and routes instead; Watchdog's route always
comes first. Critical alerts inhibit warnings of the same alertname and instance;
TokenExpired inhibits TokenValidityLow.
"""

from __future__ import annotations

from typing import Any

from metrics.promql import duration
from rules.params import Routing, RuleParams

GROUP_BY = ("alertname", "job", "instance")


def _webhook(name: str, url: str) -> dict[str, Any]:
    return {"name": name, "webhook_configs": [{"url": url, "send_resolved": True}]}


def built_in_routing(params: RuleParams) -> Routing:
    """Critical and warning alerts to ``webhook_url``, by severity; Watchdog to no one."""
    watchdog: dict[str, Any] = (
        _webhook("watchdog", params.webhook_url)
        if params.profile.watchdog_to_webhook
        else {"name": "watchdog"}
    )
    return Routing(
        receivers=(
            _webhook("critical", params.webhook_url),
            _webhook("warning", params.webhook_url),
            watchdog,
        ),
        routes=(
            {"receiver": "critical", "matchers": ['severity="critical"']},
            {"receiver": "warning", "matchers": ['severity="warning"']},
        ),
        default_receiver="warning",
        watchdog_receiver="watchdog",
    )


def alertmanager_config(params: RuleParams) -> dict[str, Any]:
    """The Alertmanager config document for ``params`` (key order is stable)."""
    profile = params.profile
    routing = params.routing or built_in_routing(params)
    timing = {
        "group_wait": duration(profile.group_wait_seconds),
        "group_interval": duration(profile.group_interval_seconds),
        "repeat_interval": duration(profile.repeat_interval_seconds),
    }
    return {
        "route": {
            "receiver": routing.default_receiver,
            "group_by": list(GROUP_BY),
            **timing,
            "routes": [
                {
                    "receiver": routing.watchdog_receiver,
                    "matchers": ['alertname="Watchdog"'],
                    "repeat_interval": duration(min(60, profile.repeat_interval_seconds)),
                },
                *(dict(route) for route in routing.routes),
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
        "receivers": [dict(receiver) for receiver in routing.receivers],
    }
