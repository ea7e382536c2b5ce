"""``observer cluster demo``: several keys as one collector, on this machine, in one command.

Starts a throwaway PostgreSQL, the simulator and ``--members`` (default 3)
``observer run`` processes, each with its own app key, ``cluster.enabled`` and an
exporter on a free loopback port (``observer.localcluster``). Prints on stdout,
one ``name value`` a line (flushed): ``data_dir DIR`` (the temporary directory
holding everything, logs in ``DIR/logs``), ``postgres_url`` (no password),
``rest_url`` and ``ws_url`` of the simulator, then per member
``exporter_url member-N http://…`` and ``status_page member-N http://…/``.
Then waits. SIGINT (Ctrl-C) or SIGTERM stops the members, the simulator and
PostgreSQL, removes the directory and exits 0; a part that stops on its own
ends the demo with exit 1 and its last log line.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

from observer.errors import ConfigError, ObserverError

if TYPE_CHECKING:
    from observer.localcluster import LocalCluster

MAX_MEMBERS = 20  # the simulator's keys are free; the machine's cores are not
MIN_SYMBOLS = 30  # Track B's seed asks the broker's top 30 traded names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    demo = commands.add_parser(
        "demo",
        help="PostgreSQL, the simulator and N members on loopback until Ctrl-C",
        description="PostgreSQL, the simulator and N members on loopback until Ctrl-C",
    )
    demo.add_argument(
        "--members", default="3", metavar="N", help=f"members, one key each (1–{MAX_MEMBERS})"
    )
    demo.add_argument("--symbols", metavar="N", help="the simulator's universe (default 2500)")


def _whole(option: str, text: str | None, low: int, high: int) -> int | None:
    """``text`` as an integer within [low, high]; ConfigError naming the option otherwise."""
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: not a whole number") from None
    if not low <= number <= high:
        raise ConfigError(f"{option} {number}: must be between {low} and {high}")
    return number


def _demo(args: argparse.Namespace) -> int:
    members = _whole("--members", args.members, 1, MAX_MEMBERS)
    symbols = _whole("--symbols", args.symbols, MIN_SYMBOLS, 100_000)
    assert members is not None
    from observer.localcluster import LocalCluster  # once the options hold

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        cluster = LocalCluster(members=members, symbols=symbols)
        try:
            cluster.start()
            _announce(cluster)
            return _wait(cluster, stop)
        finally:
            cluster.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _announce(cluster: LocalCluster) -> None:
    assert cluster.sim is not None
    lines = [
        f"data_dir {cluster.root}",
        f"postgres_url {cluster.database_url}",
        f"rest_url {cluster.sim.values['rest_url']}",
        f"ws_url {cluster.sim.values['ws_url']}",
    ]
    for member in cluster.members:
        lines.append(f"exporter_url {member.name} {member.exporter_url}")
        lines.append(f"status_page {member.name} {member.exporter_url}/")
    print("\n".join(lines), flush=True)
    universe = cluster.symbols or "the simulator's default"
    print(
        f"observer cluster demo: {len(cluster.members)} members with "
        f"{len(cluster.members)} keys share {universe} symbols through PostgreSQL; "
        f"logs in {cluster.root / 'logs'}; Ctrl-C to stop and remove everything",
        file=sys.stderr,
        flush=True,
    )


def _wait(cluster: LocalCluster, stop: threading.Event) -> int:
    from observer.localcluster import last_line

    while not stop.wait(0.5):
        exited = cluster.exited()
        if exited is not None:
            code = exited.process.returncode
            raise ObserverError(
                f"{exited.name} stopped on its own (exit {code}): {last_line(exited.log)}"
            )
    return 0


def main(args: argparse.Namespace) -> int:
    if args.cluster_command == "demo":
        return _demo(args)
    raise ConfigError(f"cluster {args.cluster_command!r}: unknown action")  # argparse prevents it
