"""Grafana provisioning: the Prometheus (and VictoriaMetrics) data source and the dashboards."""

from __future__ import annotations

from typing import Any

from observer.stack import layout
from observer.stack.prometheus import PrometheusProfile, duration

DATASOURCE_NAME = "Prometheus"
DATASOURCE_UID = "prometheus"
VICTORIAMETRICS_NAME = "VictoriaMetrics"
VICTORIAMETRICS_UID = "victoriametrics"


def _source(profile: PrometheusProfile, name: str, uid: str, url: str) -> dict[str, Any]:
    return {
        "name": name,
        "uid": uid,
        "type": "prometheus",
        "access": "proxy",
        "url": url,
        "isDefault": uid == DATASOURCE_UID,
        "editable": False,
        "jsonData": {
            "timeInterval": duration(profile.scrape_interval_seconds),
            "httpMethod": "POST",
        },
    }


def datasource(
    profile: PrometheusProfile, url: str, victoriametrics_url: str | None = None
) -> dict[str, Any]:
    """The data sources; ``timeInterval`` is the scrape interval so ``$__rate_interval`` fits.

    VictoriaMetrics, when given, is a second source of the Prometheus type (it answers the
    Prometheus query API), so the dashboard's ``$datasource`` variable offers both.
    """
    sources = [_source(profile, DATASOURCE_NAME, DATASOURCE_UID, url)]
    if victoriametrics_url is not None:
        sources.append(
            _source(profile, VICTORIAMETRICS_NAME, VICTORIAMETRICS_UID, victoriametrics_url)
        )
    return {"apiVersion": 1, "datasources": sources}


def dashboard_provider() -> dict[str, Any]:
    """Dashboards from files, read-only in the UI (they are regenerated from code)."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "observer",
                "orgId": 1,
                "folder": "Observer",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": layout.GRAFANA_DASHBOARDS_MOUNT},
            },
        ],
    }


def render_files(profile: PrometheusProfile) -> dict[str, str]:
    """Provisioning for ``profile``: with a remote-write target, VictoriaMetrics as well."""
    prometheus_url = f"http://prometheus:{layout.PROMETHEUS_PORT}"
    victoriametrics_url = (
        None
        if profile.remote_write_url is None
        else f"http://victoriametrics:{layout.VICTORIAMETRICS_PORT}"
    )
    sources = datasource(profile, prometheus_url, victoriametrics_url)
    return {
        layout.GRAFANA_DATASOURCE: layout.dump_yaml(sources),
        layout.GRAFANA_DASHBOARD_PROVIDER: layout.dump_yaml(dashboard_provider()),
    }
