"""The aiohttp exporter: what it serves (``build_app``) apart from where (``start``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from exporter.connections import ConnectionLimits, GatedSite
from exporter.exposition import Rendered, accepts_gzip, render
from exporter.files import FileExporter
from exporter.status_page import StatusPage
from exporter.summary import SummarySource
from metrics import catalog
from metrics.registry import Metrics
from observer.readiness import Readiness
from observer.status import StatusBoard

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


class WebConfigLike(Protocol):
    """What the exporter needs of a web-config (``exporter.webconfig.WebConfig``)."""

    def ssl_context(self) -> ssl.SSLContext | None: ...

    def middleware(self) -> Middleware | None: ...

    def close(self) -> None:
        """Release what checking credentials holds (threads); called when serving stops."""


class ExporterServer:
    """Serves one ``Metrics`` registry over HTTP, and optionally to files.

    ``start(host, port)`` binds (port 0 picks a free one; ``url`` reports the
    bound address); connections are capped and timed out as ``limits`` says
    (``exporter.connections``); ``close()`` stops serving and the file export, waiting for
    a file write in progress so none is left half-written.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        readiness: Readiness | None = None,
        status: StatusBoard | None = None,
        web_config: WebConfigLike | None = None,
        export_dir: Path | None = None,
        export_interval_seconds: float = 15.0,
        limits: ConnectionLimits | None = None,
        version: str = "0.0.0",
    ) -> None:
        self.metrics = metrics
        self.readiness = readiness or Readiness()
        self.status = status or StatusBoard()
        self._live = (self.readiness.report(), self.status.view())
        self._web_config = web_config
        self._limits = limits or ConnectionLimits()
        self._summary = SummarySource(metrics.registry)
        self._version = version
        self._page = StatusPage.render(version)
        self._runner: web.AppRunner | None = None
        self._site: GatedSite | None = None
        self._renders: dict[tuple[str, bool], asyncio.Future[Rendered]] = {}
        self._files = (
            FileExporter(
                export_dir,
                self._render_files,
                export_interval_seconds,
                prepare=self._prepare_summary,
            )
            if export_dir is not None
            else None
        )
        self.host = ""
        self.port = 0
        self.scheme = "http"
        metrics.on_collect(self._update_ready)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def open_connections(self) -> int:
        """Connections held now (in the TLS handshake or served)."""
        return self._site.open_connections if self._site is not None else 0

    @property
    def refused_connections(self) -> int:
        """Connections closed at once since the start: the cap was reached."""
        return self._site.refused if self._site is not None else 0

    def build_app(self) -> web.Application:
        middlewares: list[Any] = []
        if self._web_config is not None and (auth := self._web_config.middleware()):
            middlewares.append(web.middleware(auth))
        app = web.Application(middlewares=middlewares)
        app.router.add_get("/", self._status_page)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/api/summary", self._api_summary)
        return app

    async def start(self, host: str, port: int) -> None:
        """Bind and serve; raises OSError when the address cannot be bound."""
        ssl_context = self._web_config.ssl_context() if self._web_config else None
        runner = web.AppRunner(
            self.build_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        site = GatedSite(runner, host, port, limits=self._limits, ssl_context=ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        bound = runner.addresses[0]
        self.host, self.port = str(bound[0]), int(bound[1])
        self.scheme = "https" if ssl_context else "http"
        if self._files is not None:
            await self._files.start()
        log.info("exporter listening url=%s", self.url)

    async def close(self) -> None:
        if self._files is not None:
            await self._files.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = self._site = None
        if self._web_config is not None:
            self._web_config.close()

    async def __aenter__(self) -> ExporterServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _update_ready(self) -> None:
        self.metrics.gauge(catalog.SYSTEM_READY).set(1 if self.readiness.ready else 0)

    async def _metrics(self, request: web.Request) -> web.Response:
        rendered = await self._render_shared(
            request.headers.get("Accept", ""), request.headers.get("Accept-Encoding", "")
        )
        response = web.Response(body=rendered.body)
        response.headers["Content-Type"] = rendered.content_type
        if rendered.content_encoding:
            response.headers["Content-Encoding"] = rendered.content_encoding
        response.headers["Vary"] = "Accept, Accept-Encoding"
        return response

    async def _render_shared(self, accept: str, accept_encoding: str) -> Rendered:
        """One render for every scrape of the same format that arrives while it runs.

        Under many concurrent scrapers, rendering once per scrape would hold the GIL
        and starve collection; scrapes that wait for a render in flight get its bytes,
        which are never older than the moment they arrived. Hooks read loop-owned
        state, so they run here; encoding runs in a thread.
        """
        key = (choose_encoder(accept)[1], accepts_gzip(accept_encoding))
        pending = self._renders.get(key)
        if pending is None:
            self.metrics.refresh()
            pending = asyncio.ensure_future(
                asyncio.to_thread(
                    render, self.metrics.registry, accept=accept, accept_encoding=accept_encoding
                )
            )
            self._renders[key] = pending
            pending.add_done_callback(lambda done: self._render_done(key, done))
        # A scraper that goes away must not cancel the render the others wait for.
        return await asyncio.shield(pending)

    def _render_done(self, key: tuple[str, bool], done: asyncio.Future[Rendered]) -> None:
        if self._renders.get(key) is done:
            del self._renders[key]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have left

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        report = self.readiness.report()
        return web.json_response(report, status=200 if report["ready"] else 503)

    def _prepare_summary(self) -> None:
        """On the loop: scrape-time values, and the readiness and live state read once."""
        self.metrics.refresh()
        self._live = (self.readiness.report(), self.status.view())

    async def _api_summary(self, _request: web.Request) -> web.Response:
        self._prepare_summary()
        readiness, live = self._live
        summary = await asyncio.to_thread(self._summary.summary, readiness, live)
        return web.json_response(summary, dumps=_dumps)

    async def _status_page(self, _request: web.Request) -> web.Response:
        return web.Response(body=self._page.body, headers=self._page.headers)

    def _render_files(self) -> dict[str, bytes]:
        """The file export's contents; called in a worker thread after ``_prepare_summary``."""
        rendered = render(self.metrics.registry, accept="", accept_encoding="")
        summary = _dumps(self._summary.summary(*self._live)) + "\n"
        return {"metrics.prom": rendered.body, "summary.json": summary.encode()}


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


@contextlib.asynccontextmanager
async def serving(server: ExporterServer, host: str, port: int) -> Any:
    """``async with serving(server, host, port):`` starts and always closes it."""
    await server.start(host, port)
    try:
        yield server
    finally:
        await server.close()
