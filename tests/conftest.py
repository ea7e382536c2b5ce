"""Fixtures shared by every test folder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from prometheus_client import CollectorRegistry

from metrics.registry import Metrics, new_registry
from tests.postgres import PostgresServer

# Property tests check behaviour, not speed: on a loaded machine one example may take
# longer than hypothesis's default 200 ms deadline without anything being wrong.
settings.register_profile("observer", deadline=None)
settings.load_profile("observer")


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry per test: never prometheus_client's global one."""
    return new_registry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, version="test")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster per test process, started on first use."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A new empty database of the session's cluster (its URL holds the password)."""
    name = f"t{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's records go, once per backend: a SQLite file or a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "observer.sqlite"
    return str(request.getfixturevalue("postgres_url"))
