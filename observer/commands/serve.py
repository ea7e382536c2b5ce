"""The running half of ``observer run``: the exporter, the optional native stack and
``ObserverApp`` on one event loop until SIGINT/SIGTERM.

``observer.commands.run`` imports this once the settings hold, so a refused option
never loads the runtime (aiohttp, the tracks, the stores, sentry).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from exporter.connections import ConnectionLimits, raise_descriptor_limit
from exporter.server import ExporterServer, WebConfigLike
from metrics.registry import Metrics, new_registry
from observer import __version__, logs
from observer.config import ObserverSettings, parse_listen
from observer.credentials import Credentials
from observer.errors import ConfigError, NotAvailableError
from observer.kis.token import ensure_private_directory
from observer.readiness import Readiness
from observer.runtime import TOKEN_DIRECTORY, ObserverApp, resolve_endpoint
from observer.status import StatusBoard
from observer.tracking import Tracking

log = logging.getLogger("observer.commands.run")  # the command's name in its log lines
SWITCH_INTERVAL_SECONDS = 0.001  # scrapes and sweeps share the loop: short GIL slices


def serve(
    settings: ObserverSettings,
    credentials: Credentials | None,
    password: str | None,
    *,
    stack: str,
) -> int:
    """Run until SIGINT/SIGTERM; the exit code. ``stack`` is ``--with-stack``'s value."""
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
            settings, credentials, stack, tracking=tracking, mask=mask, password=password
        )
        return asyncio.run(serving)


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
