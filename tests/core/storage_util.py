"""Reaching the SQLite connection under a ``Storage`` (tests that make the disk "full")."""

from __future__ import annotations

import sqlite3

from observer.storage import Storage
from observer.storage_sql import SqliteBackend


def sqlite_connection(storage: Storage) -> sqlite3.Connection:
    backend = storage.backend
    assert isinstance(backend, SqliteBackend), "a SQLite storage"
    return backend.connection
