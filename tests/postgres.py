"""The tests' throwaway PostgreSQL cluster: ``observer.pgcluster`` with a known password
(the tests assert it never leaks)."""

from __future__ import annotations

from pathlib import Path

from observer import pgcluster
from observer.pgcluster import USER, free_port, server_binaries

PASSWORD = "pg-test-secret-7d1c"  # the superuser's; tests assert it never leaks

__all__ = ["PASSWORD", "USER", "PostgresServer", "free_port", "server_binaries"]


class PostgresServer(pgcluster.PostgresServer):
    """``observer.pgcluster.PostgresServer`` whose superuser password is ``PASSWORD``."""

    def __init__(self, root: Path | None = None) -> None:
        super().__init__(root, password=PASSWORD)
