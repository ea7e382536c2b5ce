"""A throwaway cluster on loopback: PostgreSQL, the simulator and N ``observer run`` members.

Everything lives in one temporary directory (the database, each member's data
directory, the logs) that ``stop`` removes. Each member is an ``observer run``
process with its own app key (the simulator accepts any 36-character key with a
180-character secret, each with its own limits), ``cluster.enabled``, the shared
database (its password in a file, never on a command line) and an exporter on a
free loopback port. Children run in sessions of their own, so a Ctrl-C at the
terminal reaches only the caller, who stops the members before the database.

``with LocalCluster(members=3) as cluster: cluster.members[0].exporter_url``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from observer.credentials import Credentials, demo_credentials
from observer.errors import ObserverError
from observer.pgcluster import PostgresServer

DATABASE = "observer"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.1


class LocalClusterError(ObserverError):
    """A part of the local cluster did not start or stopped on its own."""


@dataclass
class Child:
    """One process of the cluster: its name, its stdout file and its log."""

    name: str
    process: subprocess.Popen[bytes]
    stdout: Path
    log: Path
    values: dict[str, str] = field(default_factory=dict)

    @property
    def exporter_url(self) -> str:
        return self.values["exporter_url"]


def member_credentials(index: int) -> Credentials:
    """Member ``index``'s app key and secret (deterministic, accepted by the simulator)."""
    return demo_credentials(f"observer cluster demo member {index}")


class LocalCluster:
    """``start`` brings everything up (cleaning up after itself on failure); ``stop`` ends
    the members, then the simulator, then PostgreSQL, and removes the directory."""

    def __init__(
        self,
        *,
        members: int = 3,
        symbols: int | None = None,
        rebalance_seconds: float = 2.0,
        track_b: bool = True,
        log_level: str = "INFO",
    ) -> None:
        self.member_count = members
        self.symbols = symbols
        self.rebalance_seconds = rebalance_seconds
        self.track_b = track_b
        self.log_level = log_level
        self.root = Path(tempfile.mkdtemp(prefix="observer-cluster-"))
        # The postgres user (when run as root) must pass through to its own subdirectory.
        self.root.chmod(0o711)
        (self.root / "logs").mkdir()
        try:
            self.postgres = PostgresServer(self.root / "postgres")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        self.sim: Child | None = None
        self.members: list[Child] = []
        self.database_url = ""

    # --- starting ----------------------------------------------------------------
    def start(self) -> None:
        try:
            self.postgres.start()
            self.postgres.create_database(DATABASE)
            self.database_url = self.postgres.url(DATABASE, password=False)
            password_file = self.root / "postgres-password"
            password_file.write_text(self.postgres.password + "\n")
            password_file.chmod(0o600)
            self.sim = self._spawn("sim", self._sim_command(), dict(os.environ))
            self._wait_for(self.sim, "ws_url")
            for index in range(1, self.member_count + 1):
                self.members.append(self._start_member(index, password_file))
            for member in self.members:
                self._wait_for(member, "exporter_url")
        except BaseException:
            self.stop()
            raise

    def _sim_command(self) -> list[str]:
        command = [sys.executable, "-m", "observer", "sim"]
        command += ["--listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0"]
        if self.symbols is not None:
            command += ["--symbols", str(self.symbols)]
        return command

    def _start_member(self, index: int, password_file: Path) -> Child:
        assert self.sim is not None
        name = f"member-{index}"
        credentials = member_credentials(index)
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OBSERVER_", "KIS_"))
        }
        environment |= {
            "KIS_APP_KEY": credentials.app_key,
            "KIS_APP_SECRET": credentials.app_secret,
            "OBSERVER_CLUSTER__ENABLED": "true",
            "OBSERVER_CLUSTER__MEMBER_ID": name,
            "OBSERVER_CLUSTER__REBALANCE_SECONDS": str(self.rebalance_seconds),
            "OBSERVER_STORAGE__URL": self.database_url,
            "OBSERVER_STORAGE__PASSWORD_FILE": str(password_file),
            "OBSERVER_TRACK_B__ENABLED": "true" if self.track_b else "false",
            # Members see the simulator as a KIS endpoint, so KRX hours apply: sweep anyway.
            "OBSERVER_TRACK_A__SWEEP_WHEN_CLOSED": "true",
            "OBSERVER_LOG_LEVEL": self.log_level,
        }
        command = [sys.executable, "-m", "observer", "run", "--provider", "kis"]
        command += ["--rest-url", self.sim.values["rest_url"]]
        command += ["--ws-url", self.sim.values["ws_url"], "--listen", "127.0.0.1:0"]
        command += ["--data-dir", str(self.root / name)]
        return self._spawn(name, command, environment)

    def _spawn(self, name: str, command: list[str], environment: dict[str, str]) -> Child:
        stdout, log = self.root / "logs" / f"{name}.out", self.root / "logs" / f"{name}.log"
        with stdout.open("wb") as out, log.open("wb") as err:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=environment,
                start_new_session=True,
                preexec_fn=_end_with_parent,
            )
        return Child(name, process, stdout, log)

    def _wait_for(self, child: Child, key: str) -> None:
        """Read ``name value`` lines from the child's stdout until ``key`` is among them."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while key not in child.values:
            for line in child.stdout.read_text(errors="replace").splitlines():
                name, _, value = line.partition(" ")
                child.values.setdefault(name, value)
            if key in child.values:
                return
            if child.process.poll() is not None:
                raise LocalClusterError(f"{child.name} exited at start: {last_line(child.log)}")
            if time.monotonic() > deadline:
                within = f"{START_TIMEOUT_SECONDS:g} s"
                raise LocalClusterError(f"{child.name} did not start within {within}")
            time.sleep(POLL_SECONDS)

    # --- while running -----------------------------------------------------------
    def exited(self) -> Child | None:
        """A child that has stopped on its own, if any."""
        children = [self.sim, *self.members] if self.sim else self.members
        return next((c for c in children if c.process.poll() is not None), None)

    # --- stopping ----------------------------------------------------------------
    def stop(self) -> None:
        """Members first (they leave the cluster cleanly), then the simulator, PostgreSQL
        and the directory. Idempotent; a child that ignores SIGTERM is killed."""
        terminate([member.process for member in self.members])
        if self.sim is not None:
            terminate([self.sim.process])
        self.postgres.stop("fast")
        self.postgres.destroy()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _end_with_parent() -> None:
    """In the child before exec: SIGTERM when the demo process dies, even by SIGKILL (which
    leaves it no chance to stop anyone), so no member or simulator outlives it. Linux only;
    elsewhere the demo's own stop is the only way out."""
    if sys.platform != "linux":
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def terminate(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each running process, then wait; SIGKILL what is left after the time-out."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def last_line(path: Path) -> str:
    """The last non-empty line of a log (the error a child exited with), or a placeholder."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(nothing logged)"
