"""``observer stack up|down``: Prometheus and Alertmanager natively, for machines without Docker.

``up`` runs in the foreground until Ctrl-C (or SIGTERM) and then stops both;
``up --detach`` leaves them running with pid files in the data directory, and
``down`` stops what those pid files name.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from observer.commands import add_config_argument, settings_from_args
from observer.stack import layout

if TYPE_CHECKING:
    from observer.stack.native import NativeStack


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start Prometheus and Alertmanager on loopback")
    _data_dir_argument(up)
    up.add_argument(
        "--observer",
        metavar="HOST:PORT",
        help="the exporter Prometheus scrapes (default: exporter.listen from the settings)",
    )
    up.add_argument(
        "--generated",
        type=Path,
        metavar="DIR",
        help="use a folder written by `observer generate` (default: render the files now)",
    )
    up.add_argument(
        "--prometheus-port",
        type=int,
        default=layout.PROMETHEUS_PORT,
        metavar="N",
        help=f"default {layout.PROMETHEUS_PORT}; 0 picks a free port",
    )
    up.add_argument(
        "--alertmanager-port",
        type=int,
        default=layout.ALERTMANAGER_PORT,
        metavar="N",
        help=f"default {layout.ALERTMANAGER_PORT}; 0 picks a free port",
    )
    up.add_argument("--host", default="127.0.0.1", help="address both bind (default: loopback)")
    up.add_argument(
        "--detach", action="store_true", help="leave them running; stop with `stack down`"
    )
    down = actions.add_parser("down", help="stop a stack started with `stack up --detach`")
    _data_dir_argument(down)


def _data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="configs, data, logs and pid files (default: <data_dir>/stack from the settings)",
    )


def main(args: argparse.Namespace) -> int:
    from observer.stack.native import NativeStack, stop_detached  # the renderers: grafanalib

    settings = settings_from_args(args)
    data_dir: Path = args.data_dir or settings.data_dir / "stack"
    if args.action == "down":
        stopped = stop_detached(data_dir)
        print(f"stopped: {', '.join(stopped)}" if stopped else f"nothing running in {data_dir}")
        return 0
    stack = NativeStack(
        args.generated,
        observer_target=args.observer or settings.exporter.listen,
        data_dir=data_dir,
        host=args.host,
        prometheus_port=args.prometheus_port,
        alertmanager_port=args.alertmanager_port,
    )
    return asyncio.run(_up(stack, detach=args.detach))


async def _up(stack: NativeStack, *, detach: bool) -> int:
    # Handlers first, so SIGTERM right after the URLs are printed still stops cleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    detached = False
    try:
        await stack.start()
        print(f"prometheus   {stack.prometheus_url}")
        print(f"alertmanager {stack.alertmanager_url}")
        print(f"data         {stack.data_dir}", flush=True)
        if detach:
            pids = stack.detach()
            detached = True
            print(
                f"detached: pids {pids['prometheus']} {pids['alertmanager']}; stop with "
                f"`observer stack down --data-dir {stack.data_dir}`",
                flush=True,
            )
            return 0
        print("running; Ctrl-C stops both", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if not detached:
            await stack.stop()
    print("stopped", flush=True)
    return 0
