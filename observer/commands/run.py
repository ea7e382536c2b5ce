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
import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from exporter.connections import ConnectionLimits, raise_descriptor_limit
from exporter.server import ExporterServer, WebConfigLike
from metrics.registry import Metrics, new_registry
from observer import __version__, logs
from observer.commands import add_config_argument, settings_from_args
from observer.config import ObserverSettings, parse_listen
from observer.credentials import Credentials, from_environment
from observer.errors import ConfigError, NotAvailableError
from observer.kis.token import ensure_private_directory
from observer.preflight import check_paths
from observer.readiness import Readiness
from observer.runtime import TOKEN_DIRECTORY, ObserverApp, resolve_endpoint, storage_password
from observer.status import StatusBoard
from observer.tracking import Tracking

log = logging.getLogger(__name__)
SWITCH_INTERVAL_SECONDS = 0.001  # scrapes and sweeps share the loop: short GIL slices


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


def _private_token_directory(settings: ObserverSettings) -> None:
    """The token cache's directory made or tightened to 0700; ConfigError when refused."""
    if settings.provider.kind == "sim":  # the embedded simulator's tokens are not cached
        return
    directory = settings.data_dir / TOKEN_DIRECTORY
    try:
        ensure_private_directory(directory)
    except OSError as exc:
        reason = f"token directory {directory}: {exc.strerror}; refused"
        raise ConfigError(f"data_dir = {str(settings.data_dir)!r}: {reason}") from None


def _warn_if_exposed(settings: ObserverSettings, host: str) -> None:
    """A warning when the exporter answers beyond this host with no web-config in front."""
    if settings.exporter.web_config is not None or _is_loopback(host):
        return
    where = "every interface" if host in ("", "0.0.0.0", "::") else host
    log.warning(
        "exporter listens on %s without web-config: /metrics and /api/summary are open to "
        "anyone who can reach it; set exporter.web_config for TLS and basic auth",
        where,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _credentials(settings: ObserverSettings) -> Credentials | None:
    """KIS credentials from the environment; the embedded simulator uses demo ones."""
    if settings.provider.kind == "sim":
        return None
    return from_environment()


def _web_config(settings: ObserverSettings) -> WebConfigLike | None:
    if settings.exporter.web_config is None:
        return None
    from exporter.webconfig import load_web_config

    return load_web_config(settings.exporter.web_config)


@contextlib.asynccontextmanager
async def _stack(mode: str, exporter: ExporterServer, data_dir: Path) -> AsyncIterator[None]:
    """Native Prometheus and Alertmanager around the exporter, as ``--with-stack`` asks;
    their URLs become links on the status page while they run."""
    if mode == "never":
        yield
        return
    # Imported here: the stack builders pull in grafanalib, which a plain run never needs.
    from observer.stack import layout, native

    if not native.binaries_available():
        if mode == "always":
            raise NotAvailableError("--with-stack always: prometheus/alertmanager not available")
        log.info("stack skipped: prometheus and prometheus-alertmanager binaries not found")
        yield
        return
    stack = native.NativeStack(
        observer_target=f"{exporter.host}:{exporter.port}",
        data_dir=data_dir / "stack",
        prometheus_port=_free_or_any(layout.PROMETHEUS_PORT),
        alertmanager_port=_free_or_any(layout.ALERTMANAGER_PORT),
    )
    try:
        await stack.start()
    except native.StackError as exc:
        if mode == "always":
            raise
        log.warning("stack skipped: %s", exc)
        yield
        return
    log.info("stack up prometheus=%s alertmanager=%s", stack.prometheus_url, stack.alertmanager_url)
    exporter.status.link("prometheus", stack.prometheus_url)
    exporter.status.link("alertmanager", stack.alertmanager_url)
    try:
        yield
    finally:
        await stack.stop()


def _free_or_any(port: int) -> int:
    """``port`` when nothing listens on it on loopback, else 0 (any free port)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


async def _serve(
    settings: ObserverSettings,
    credentials: Credentials | None,
    stack: str,
    *,
    tracking: Tracking,
    mask: logs.SecretMask,
    password: str | None = None,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    metrics = Metrics(new_registry(), version=__version__)
    readiness = Readiness()
    status = StatusBoard()
    for name, url in settings.exporter.links.items():
        status.link(name, url)
    server = ExporterServer(
        metrics,
        readiness=readiness,
        status=status,
        web_config=_web_config(settings),
        export_dir=settings.exporter.export_dir,
        export_interval_seconds=settings.exporter.export_interval_seconds,
        limits=ConnectionLimits(
            max_connections=settings.exporter.max_connections,
            header_timeout_seconds=settings.exporter.header_timeout_seconds,
            idle_timeout_seconds=settings.exporter.idle_timeout_seconds,
        ),
        version=__version__,
    )
    host, port = parse_listen(settings.exporter.listen)
    _warn_if_exposed(settings, host)
    try:
        await server.start(host, port)
    except OSError as exc:
        if exc.filename:  # writing the export files, not binding the address
            where = f"exporter.export_dir = {str(settings.exporter.export_dir)!r}"
            raise ConfigError(f"{where}: {exc.strerror or exc}") from None
        raise ConfigError(f"exporter.listen = {settings.exporter.listen!r}: {exc}") from None
    try:
        print(f"exporter_url {server.url}", flush=True)
        async with (
            _stack(stack, server, settings.data_dir),
            resolve_endpoint(settings, credentials) as endpoint,
        ):
            tracking.register_credentials(endpoint.credentials)
            tracking.register_secret(password)
            app = ObserverApp(
                settings,
                endpoint,
                metrics=metrics,
                readiness=readiness,
                tracking=tracking,
                status=status,
                on_secret=mask.add,
                storage_password=password,
                exporter_url=server.url,
            )
            await app.run(stop)
    finally:
        await server.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    log.info("stopped cleanly")
    return 0


def main(args: argparse.Namespace) -> int:
    settings = _settings(args)
    credentials = _credentials(settings)
    password = storage_password(settings)
    tracking = Tracking(settings.sentry, tags={"provider": settings.provider.kind})
    tracking.check()
    secrets = [*(credentials.secrets() if credentials else ()), *([password] if password else [])]
    mask = logs.configure(settings.log_level, secrets=secrets)
    _private_token_directory(settings)
    # The hard limit is what the administrator allows; the soft one is often a shell's 1024.
    log.info("descriptor limit=%s", raise_descriptor_limit())
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    with tracking:
        serving = _serve(
            settings, credentials, args.with_stack, tracking=tracking, mask=mask, password=password
        )
        return asyncio.run(serving)
