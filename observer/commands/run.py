"""``observer run``: Observer and its exporter, against the embedded simulator or a KIS endpoint.

With no configuration it starts the simulated exchange in-process on loopback
and observes it through the same KIS client as a real endpoint. ``--provider
kis`` with ``--rest-url``/``--ws-url`` (or ``--env real|virtual``) and
``KIS_APP_KEY``/``KIS_APP_SECRET`` observes anything else.

Once the exporter is bound, stdout gets one line ``exporter_url http://HOST:PORT``
(flushed) so a script can find the port when ``--listen`` says port 0. Logs go
to stderr. SIGINT/SIGTERM stop the sweeps, flush storage, close the sessions and
exit 0.

``--listen :PORT`` binds every interface, IPv4 and IPv6, with a warning when no
web-config (``exporter.web_config``) protects the endpoints (with port 0 each
address family gets its own free port; the URL printed is the first). ``--log-level`` (or
``OBSERVER_LOG_LEVEL``) is case-insensitive. Every setting, and every path it
names, is checked before anything starts: a bad one exits 2 with one line
naming the key and the ``OBSERVER_*`` variable or option it came from.

``--with-stack``: ``never`` (default) skips it; ``auto`` runs native Prometheus
and Alertmanager (``observer.stack.native``) around the exporter when their
binaries are installed, else logs why not; ``always`` makes that an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from observer.commands import add_config_argument, settings_from_args
from observer.credentials import Credentials, from_environment

if TYPE_CHECKING:
    from observer.config import ObserverSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--provider", choices=("sim", "kis"), help="default: sim (embedded)")
    parser.add_argument("--rest-url", help="KIS REST base URL (with --provider kis)")
    parser.add_argument("--ws-url", help="KIS WebSocket URL (with --provider kis)")
    parser.add_argument("--env", choices=("real", "virtual"), help="the broker's own domains")
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="exporter address; port 0 = any free port, :PORT = every interface",
    )
    parser.add_argument("--export-dir", type=Path, metavar="DIR", help="write metrics files here")
    parser.add_argument("--shard", metavar="I/N", help="keep a stable 1/N of the universe")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="token cache and database")
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="least level logged, any case (default INFO, or OBSERVER_LOG_LEVEL)",
    )
    parser.add_argument(
        "--with-stack",
        choices=("auto", "never", "always"),
        default="never",
        help="also run native Prometheus and Alertmanager (auto: when available)",
    )


def _settings(args: argparse.Namespace) -> ObserverSettings:
    from observer.preflight import check_paths  # pydantic: see observer/commands/__init__.py

    provider: dict[str, Any] = {"kind": args.provider, "rest_url": args.rest_url}
    provider |= {"ws_url": args.ws_url, "env": args.env}
    if args.provider is None and (args.rest_url or args.ws_url or args.env):
        provider["kind"] = "kis"
    overrides = {
        "data_dir": args.data_dir,
        "log_level": args.log_level,
        "provider": provider,
        "exporter": {"listen": args.listen, "export_dir": args.export_dir},
        "universe": {"shard": args.shard},
    }
    return settings_from_args(args, overrides, check=check_paths)


def _credentials(settings: ObserverSettings) -> Credentials | None:
    """KIS credentials from the environment; the embedded simulator uses demo ones."""
    if settings.provider.kind == "sim":
        return None
    return from_environment()


def main(args: argparse.Namespace) -> int:
    from observer.preflight import storage_password

    settings = _settings(args)
    credentials = _credentials(settings)
    password = storage_password(settings)
    # The runtime loads once the settings hold (see observer/commands/__init__.py).
    from observer.commands.serve import serve

    return serve(settings, credentials, password, stack=args.with_stack)
