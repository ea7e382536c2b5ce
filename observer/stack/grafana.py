"""Grafana provisioning: the Prometheus data source and the file dashboard provider."""

from __future__ import annotations

from typing import Any

from observer.stack import layout
from observer.stack.prometheus import PrometheusProfile, duration

DATASOURCE_NAME = "Prometheus"
DATASOURCE_UID = "prometheus"


def datasource(profile: PrometheusProfile, url: str) -> dict[str, Any]:
    """The data source; ``timeInterval`` is the scrape interval so ``$__rate_interval`` fits."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": DATASOURCE_NAME,
                "uid": DATASOURCE_UID,
                "type": "prometheus",
                "access": "proxy",
                "url": url,
                "isDefault": True,
                "editable": False,
                "jsonData": {
                    "timeInterval": duration(profile.scrape_interval_seconds),
                    "httpMethod": "POST",
                },
            },
        ],
    }


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
    prometheus_url = f"http://prometheus:{layout.PROMETHEUS_PORT}"
    return {
        layout.GRAFANA_DATASOURCE: layout.dump_yaml(datasource(profile, prometheus_url)),
        layout.GRAFANA_DASHBOARD_PROVIDER: layout.dump_yaml(dashboard_provider()),
    }
