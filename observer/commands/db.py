"""``observer db stats|migrate|copy``: look at a store, bring its schema up to date, move it.

The store is the one ``observer run`` would use (``--config``, ``OBSERVER_*``:
``storage.url`` or the SQLite file under ``data_dir``) unless ``--store`` names
another: a SQLite path or a ``postgresql://`` URL. A URL's password can also come
from ``storage.password_file`` or libpq's own ``PGPASSWORD`` and ``~/.pgpass``;
it is never printed.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from observer.commands import settings_from_args
from observer.errors import ConfigError
from observer.market import KST

if TYPE_CHECKING:
    from observer.storage_rows import StoreStats

# The stores (sqlite3, psycopg, the row codecs) are imported by the functions that open
# one, so `observer db --help` stays light (see observer/commands/__init__.py).


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    stats = actions.add_parser("stats", help="rows, bytes, oldest and newest row per table")
    migrate = actions.add_parser("migrate", help="bring the schema to this Observer's version")
    for sub in (stats, migrate):
        sub.add_argument("--config", type=Path, help="YAML configuration file")
        sub.add_argument(
            "--store", help="a SQLite file or a postgresql:// URL (default: the configured one)"
        )
    copy = actions.add_parser(
        "copy", help="copy every row of one store into another (idempotent, resumable)"
    )
    copy.add_argument("--from", dest="source", required=True, help="SQLite file or URL")
    copy.add_argument("--to", dest="destination", required=True, help="SQLite file or URL")


def _target(text: str) -> Path | str:
    from observer.storage import is_postgres_url

    return text if is_postgres_url(text) else Path(text)


def _configured(args: argparse.Namespace) -> tuple[Path | str, str | None]:
    """The store to use and its password (``--store``, else the configuration's)."""
    from observer.preflight import storage_password

    if args.store:
        return _target(args.store), None
    settings = settings_from_args(args, {})
    return settings.storage_target, storage_password(settings)


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, KST).strftime("%Y-%m-%d %H:%M:%S KST")


def render_stats(target: Path | str, stats: StoreStats) -> list[str]:
    from observer.storage import describe

    lines = [
        f"store {describe(target)}",
        f"backend {stats.backend} schema_version {stats.schema_version} "
        f"database_bytes {stats.database_bytes}",
        f"{'table':<10} {'rows':>12} {'bytes':>14}  {'oldest':<23}  newest",
    ]
    for table in stats.tables:
        size = "-" if table.bytes is None else str(table.bytes)
        lines.append(
            f"{table.table:<10} {table.rows:>12} {size:>14}  "
            f"{_when(table.oldest):<23}  {_when(table.newest)}"
        )
    return lines


def main(args: argparse.Namespace) -> int:
    from observer.storage import StorageReader, describe, is_postgres_url, open_backend
    from observer.storage_rows import SCHEMA_VERSION

    if args.action == "copy":
        return _copy(args.source, args.destination)
    target, password = _configured(args)
    if args.action == "migrate":
        backend = open_backend(target, password=password)
        backend.close()
        found = backend.migrated_from
        if found == SCHEMA_VERSION:
            print(f"{describe(target)}: schema version {SCHEMA_VERSION}, nothing to do")
        else:
            print(f"{describe(target)}: schema version {found} -> {SCHEMA_VERSION}")
        return 0
    if not is_postgres_url(target) and not Path(target).exists():
        where = f"--store '{target}'" if args.store else f"storage.path = '{target}'"
        raise ConfigError(f"{where}: no such database file")
    with StorageReader(target, password=password) as reader:
        for line in render_stats(target, reader.stats()):
            print(line)
    return 0


def _copy(source_text: str, destination_text: str) -> int:
    from observer.storage import StorageReader, describe, is_postgres_url, open_backend
    from observer.storage_copy import copy_store

    source, destination = _target(source_text), _target(destination_text)
    if str(source) == str(destination):
        raise ConfigError("--from and --to name the same store")
    if not is_postgres_url(source) and not Path(source).exists():
        raise ConfigError(f"--from '{source}': no such database file")
    open_backend(source).close()  # the source's schema brought up to date first
    started = time.monotonic()
    backend = open_backend(destination)
    try:
        with StorageReader(source) as reader:
            copied = copy_store(reader, backend)
    finally:
        backend.close()
    print(f"copied {describe(source)} -> {describe(destination)}")
    for table in copied:
        print(
            f"{table.table:<10} read {table.read:>10}  new {table.new:>10}  "
            f"already there {table.read - table.new:>10}"
        )
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0
