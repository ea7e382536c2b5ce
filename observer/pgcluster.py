"""A throwaway PostgreSQL cluster: initdb in a temporary directory, a free loopback port,
password authentication, torn down afterwards (the tests, the bench, ``observer cluster demo``).

``initdb`` refuses to run as root: as root (CI) the cluster belongs to the
``postgres`` user and every server command runs through ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg import sql

from observer.errors import NotAvailableError

USER = "observer"


def server_binaries() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl`` (Debian keeps them off the PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """``server = PostgresServer(); server.start(); server.url("db"); server.stop()``."""

    def __init__(self, root: Path | None = None, *, password: str | None = None) -> None:
        binaries = server_binaries()
        if binaries is None:
            raise NotAvailableError("PostgreSQL server binaries not found: run make system-deps")
        self.bin = binaries
        self.root = root or Path(tempfile.mkdtemp(prefix="observer-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.port = free_port()
        self.password = password or secrets.token_urlsafe(18)
        self._owner: str | None = None
        if os.geteuid() == 0:
            self._owner = "postgres"
            pwd.getpwnam(self._owner)  # KeyError: the Debian package creates this user
        self._initialised = False

    def _run(self, *command: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv: Sequence[str | Path] = command
        if self._owner is not None:
            argv = ["runuser", "-u", self._owner, "--", *command]
        # A session of its own: a Ctrl-C at the terminal reaches whoever started the
        # server, who stops it after its clients, not the server itself first.
        return subprocess.run(
            [str(part) for part in argv],
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
        )

    def _initdb(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        password_file = self.root / "superuser-password"
        password_file.write_text(self.password + "\n")
        if self._owner is not None:
            owner = pwd.getpwnam(self._owner)
            for path in (self.root, self.sockets, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run(
            self.bin / "initdb",
            "-D",
            self.data,
            "-U",
            USER,
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
            "--encoding=UTF8",
            "--locale=C",
        )
        password_file.unlink()
        self._initialised = True

    def start(self) -> None:
        if not self._initialised:
            self._initdb()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sockets} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            self.bin / "pg_ctl",
            "-D",
            self.data,
            "-l",
            self.root / "server.log",
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str, *, password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL (password included)."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.url("postgres"), autocommit=True) as connection,
        ):
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            connection.execute(drop.format(sql.Identifier(name)))
