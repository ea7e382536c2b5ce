"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from metrics.registry import Metrics, new_registry


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry per test: never prometheus_client's global one."""
    return new_registry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, version="test")
