"""Grafana dashboards as code (grafanalib), built from the metric catalog."""
