"""``SimExchange``: the simulated exchange in-process — REST and WebSocket on their own ports.

    async with SimExchange(SimSettings(symbols=200, seed=1), listen="127.0.0.1:0",
                           ws_listen="127.0.0.1:0") as sim:
        sim.rest_url, sim.ws_url      # the bound URLs (port 0 picks free ports)
        await sim.inject({"kind": "ws_stall", "seconds": 5})

``start()`` / ``close()`` do the same without a context manager. ``app_key`` and
``app_secret`` restrict the exchange to that one pair; by default any key of 36
characters with a secret of 180 is accepted, each with its own limits and session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from observer.config import SimSettings, parse_listen
from observer.errors import ConfigError, ObserverError
from observer.records import Trade
from observer.sim.calendar import kst_date
from observer.sim.faults import Fault, TokenExpire, WsDrop, parse_fault
from observer.sim.rest import RestApi
from observer.sim.state import ExchangeState
from observer.sim.ws import WsServer

KEEPER_ROUND_SECONDS = 10.0
KEEPER_SLICES = 20


class SimExchange:
    """A KIS-compatible exchange with a seeded market and fault injection."""

    def __init__(
        self,
        settings: SimSettings | None = None,
        *,
        listen: str = "127.0.0.1:0",
        ws_listen: str = "127.0.0.1:0",
        app_key: str | None = None,
        app_secret: str | None = None,
        real: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        keeper_round_seconds: float = KEEPER_ROUND_SECONDS,
    ) -> None:
        self.settings = settings or SimSettings()
        self._keeper_round_seconds = keeper_round_seconds
        try:
            self._listen = parse_listen(listen)
            self._ws_listen = parse_listen(ws_listen)
        except ValueError as exc:
            raise ConfigError(f"simulator listen address: {exc}") from None
        self.state = ExchangeState(
            self.settings, app_key=app_key, app_secret=app_secret, real=real, wall=wall
        )
        self._ws = WsServer(self.state)
        self._rest = RestApi(self.state, self._apply)
        self._runner: web.AppRunner | None = None
        self._keeper: asyncio.Task[None] | None = None
        self.rest_url = ""
        self.ws_url = ""

    async def start(self) -> None:
        """Bind both ports; raises ObserverError if a port cannot be bound."""
        runner = web.AppRunner(self._rest.app(), access_log=None)
        await runner.setup()
        self._runner = runner
        host, port = self._listen
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
            rest_port = runner.addresses[0][1]
            ws_host, ws_port = self._ws_listen
            bound_ws = await self._ws.start(ws_host, ws_port)
        except OSError as exc:
            await self.close()
            raise ObserverError(f"simulator cannot listen: {exc.strerror or exc}") from exc
        self.rest_url = f"http://{_url_host(host)}:{rest_port}"
        self.ws_url = f"ws://{_url_host(ws_host)}:{bound_ws}"
        self._keeper = asyncio.create_task(self._keep_current(), name="sim-model-keeper")

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            # asyncio.wait, not ``await``: a CancelledError here is close()'s own to raise
            await asyncio.wait({self._keeper})
            self._keeper = None
        await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimExchange:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def stats(self) -> dict[str, Any]:
        """The same dict ``GET /sim/stats`` returns."""
        return self.state.stats()

    def key_stats(self, app_key: str) -> dict[str, Any]:
        """What ``/sim/stats`` counts for ``app_key`` (under its fingerprint); zeros if unseen."""
        return self.state.key_stats(app_key)

    def generated_trades(self, symbol: str) -> list[Trade]:
        """Trades the model generated for ``symbol`` up to now (held history), oldest first."""
        return self.state.generated_trades(symbol)

    def universe_codes(self) -> list[str]:
        """The share codes (group ST) listed on the current simulated day."""
        return self.state.universe_codes()

    def liquid_symbol(self) -> str:
        """A busy share listed today (005930 in a universe of 500 or more) to try first."""
        return self.state.model.universe.liquid_symbol(kst_date(self.state.clock.now()))

    def instrument_name(self, code: str) -> str:
        item = self.state.model.universe.instruments.get(code)
        return "" if item is None else item.name

    async def inject(self, fault: dict[str, Any]) -> None:
        """Same as ``POST /sim/faults``; raises FaultError (an ObserverError) on a bad body."""
        await self._apply(parse_fault(fault))

    async def clear_faults(self) -> None:
        """Same as ``DELETE /sim/faults``."""
        self.state.faults.clear()

    async def _keep_current(self) -> None:
        """Advance every listed symbol once a keeper round (``keeper_round_seconds``, default
        ``KEEPER_ROUND_SECONDS``), a slice at a time.

        Generation is lazy, so without this a symbol first asked for after hours
        of simulated time would block one call while it catches up; this way the
        cost is spread evenly (about 100 trades/s for 2,500 symbols at speed 1).
        """
        position = 0
        model = self.state.model
        while True:
            await asyncio.sleep(self._keeper_round_seconds / KEEPER_SLICES)
            now = self.state.clock.now()
            codes = model.listed_codes(now)
            size = -(-len(codes) // KEEPER_SLICES)
            for code in codes[position : position + size]:
                model.process(code, now)
            position = position + size if position + size < len(codes) else 0

    async def _apply(self, fault: Fault) -> None:
        if isinstance(fault, WsDrop):
            self._ws.drop_all()
        elif isinstance(fault, TokenExpire):
            self.state.tokens.expire_all()
        else:
            self.state.faults.add(fault, self.state.real())


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
