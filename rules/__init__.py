"""Prometheus alerting and recording rules, their unit tests, and Alertmanager config."""
