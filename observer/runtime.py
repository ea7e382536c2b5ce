"""``ObserverApp``: builds the collaborators once and runs every component in one TaskGroup.

A component is any object with ``async def run()``, built from the shared
``Context`` by a factory listed in ``COMPONENTS``; adding one (Track B) is a
factory and a line in that tuple. Track A publishes triggers on
``context.triggers``; a component that wants them subscribes (none: no-op).

Order at start: storage open → HTTP session → (cluster: join, the shared
token) → access token (readiness ``token``) → first universe load →
components. ``stop`` set (SIGINT/SIGTERM) cancels the components, then storage
is flushed and closed and the HTTP session closed, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from metrics.registry import Metrics
from observer.cluster import ClusterMember
from observer.cluster_slots import SlotPool
from observer.config import ObserverSettings, parse_shard
from observer.credentials import Credentials, demo_credentials
from observer.errors import ObserverError
from observer.kis.client import KisClient, TradesPage, send_time_tracing
from observer.kis.errors import KisApiError
from observer.kis.master import MasterFileError
from observer.kis.token_share import SharedTokenStore
from observer.limiter import RateLimiter
from observer.progress import Progress, ProgressLog
from observer.readiness import Readiness
from observer.records import Gap, Severity, Trigger
from observer.seeding import VolumeRankSeeder
from observer.status import StatusBoard
from observer.storage import Storage
from observer.track_a import MarketHours, TrackA
from observer.track_b import TrackB
from observer.tracking import Tracking
from observer.triggers import TriggerDetector
from observer.universe import Universe, fetch_share_codes

log = logging.getLogger(__name__)

REAL_DOMAINS = {
    "real": ("https://openapi.koreainvestment.com:9443", "ws://ops.koreainvestment.com:21000"),
    "virtual": (
        "https://openapivts.koreainvestment.com:29443",
        "ws://ops.koreainvestment.com:31000",
    ),
}
MASTER_DOWNLOAD_URL = "https://new.real.download.dws.co.kr"  # the broker's public master files
UNIVERSE_RETRY_SECONDS = 5.0
TOKEN_DIRECTORY = "tokens"  # under data_dir; see observer.kis.token for its mode
MAX_IN_FLIGHT = 256
VIRTUAL_RATE_PER_SECOND = 2.0  # kis-protocol.md "Rate limits": 2/s on the mock domain


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where Observer connects, with whose credentials; ``simulated`` for the embedded sim."""

    rest_url: str
    ws_url: str
    credentials: Credentials
    master_url: str | None = None
    simulated: bool = False  # the embedded simulator: its tokens die with the process
    always_open: bool = False  # treat the market as open (a simulator with always_open)


class TriggerHub:
    """Track A's triggers fanned out to subscribers (none by default: publishing is a no-op)."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Trigger], object]] = []
        self.published = 0

    def subscribe(self, callback: Callable[[Trigger], object]) -> None:
        self._subscribers.append(callback)

    def publish(self, trigger: Trigger) -> None:
        self.published += 1
        for callback in self._subscribers:
            callback(trigger)


class Component(Protocol):
    async def run(self) -> None: ...


@dataclass
class Context:
    """What component factories get: settings, registry and the shared collaborators."""

    settings: ObserverSettings
    endpoint: Endpoint
    metrics: Metrics
    readiness: Readiness
    http: aiohttp.ClientSession
    limiter: RateLimiter
    client: KisClient
    storage: Storage
    universe: Universe
    market: MarketHours
    triggers: TriggerHub = field(default_factory=TriggerHub)
    status: StatusBoard = field(default_factory=StatusBoard)  # what the status page shows
    tracking: Tracking | None = None  # Sentry; None or not started: reports are no-ops
    cluster: ClusterMember | None = None  # set when cluster.enabled
    gaps_detected: int = 0  # since start, for the progress line

    def report_gap(self, gap: Gap) -> None:
        """Every stored gap passes here; high-severity ones become an error-tracking event."""
        self.gaps_detected += 1
        self.status.gap(gap)
        if self.tracking is not None and gap.severity is Severity.HIGH:
            self.tracking.high_severity_gap(gap)


def rate_per_second(settings: ObserverSettings) -> float:
    """The configured REST rate; the broker's virtual domain allows 2/s, used unless set."""
    configured = settings.rate_limit.rate_per_second
    explicit = "rate_per_second" in settings.rate_limit.model_fields_set
    if settings.provider.kind == "kis" and settings.provider.env == "virtual" and not explicit:
        return VIRTUAL_RATE_PER_SECOND
    return configured


def track_a_concurrency(rate_per_second: float) -> int:
    """Calls in flight so that 1 s of latency still keeps the limiter busy."""
    return min(MAX_IN_FLIGHT, math.ceil(rate_per_second) + 2)


class UniverseRefresher:
    """Reloads the master files every ``universe.refresh_interval_seconds``."""

    def __init__(self, context: Context) -> None:
        self._client = context.client
        self._universe = context.universe
        self._interval = context.settings.universe.refresh_interval_seconds

    async def load(self) -> bool:
        try:
            codes = await fetch_share_codes(self._client.master_file)
        except (KisApiError, MasterFileError) as exc:
            log.warning("universe load failed reason=%s", exc)
            return False
        self._universe.replace(codes)
        return True

    async def load_until_done(self, retry_seconds: float) -> None:
        """Load, retrying every ``retry_seconds`` until one load succeeds."""
        loaded = await self.load()
        while not loaded:
            await asyncio.sleep(retry_seconds)
            loaded = await self.load()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.load_until_done(min(self._interval, 300.0))


class _Idle:
    """A component with nothing to do (a feature that is off)."""

    async def run(self) -> None:
        return None


def build_cluster(context: Context) -> ClusterMember | _Idle:
    """The cluster's periodic look at its members, when cluster.enabled."""
    return context.cluster if context.cluster is not None else _Idle()


def build_track_a(context: Context) -> TrackA:
    settings = context.settings
    return TrackA(
        client=context.client,
        universe=context.universe,
        storage=context.storage,
        market=context.market,
        settings=settings.track_a,
        gaps=settings.gaps,
        detector=TriggerDetector(settings.track_b),
        metrics=context.metrics,
        concurrency=track_a_concurrency(context.limiter.rate),
        in_flight=context.limiter.calls_in_flight_needed,
        on_trigger=context.triggers.publish,
        on_gap=context.report_gap,
        readiness=context.readiness,
        progress=context.status.sweep,
    )


def build_track_b(context: Context) -> TrackB:
    """Track B on the endpoint's WebSocket; when enabled, Track A's triggers claim its slots."""
    settings, client, market = context.settings, context.client, context.market
    cluster, storage = context.cluster, context.storage

    async def approval_key(renew: bool) -> str:
        return await client.approval_key(renew=renew)

    async def fetch_page(symbol: str, before: str, business_date: str) -> TradesPage:
        return await client.trades_by_time(
            symbol, before, lane="backfill", business_date=business_date
        )

    def market_open() -> bool:  # the session's watchdog needs a cheap synchronous answer
        return market.forced_open or market.calendar.is_open(time.time())

    track = TrackB(
        settings.track_b,
        settings.gaps,
        ws_url=context.endpoint.ws_url,
        approval_key=approval_key,
        fetch_page=fetch_page,
        sink=context.storage,
        metrics=context.metrics,
        market_open=market_open,
        on_gap=context.report_gap,
        on_recovered=context.status.gap,
        reporter=context.tracking,
        # Resume each symbol after a restart, finish the gaps a killed process left
        # and rate them by its last sign of life; in a cluster the pooled slots resume
        # what they take over and the shared backfill queue finishes the gaps.
        last_trades=None if cluster is not None else storage.last_trades,
        pending_gaps=None if cluster is not None else storage.pending_gaps,
        previous_alive_at=None if cluster is not None else storage.previous_alive_at,
    )
    if not settings.track_b.enabled:
        return track
    context.status.show_slots(track.slot_views)
    if cluster is not None and cluster.slots is not None:
        cluster.share_backfill(track.backfill_idle, track.adopt)
        cluster.slots.attach(track)  # the leader places triggers on the cluster's keys
        context.triggers.subscribe(cluster.slots.offer)
    else:
        context.triggers.subscribe(track.offer)
    return track


def build_seeder(context: Context) -> VolumeRankSeeder:
    """Track B's first slots from the broker's volume ranking (none when Track B is off)."""
    track_b = context.settings.track_b
    universe = context.universe
    return VolumeRankSeeder(
        rank=context.client.volume_rank,
        offer=context.triggers.publish,
        universe=lambda: frozenset(universe.codes),
        count=min(track_b.seed_slots, track_b.capacity) if track_b.enabled else 0,
    )


def build_progress_log(context: Context) -> ProgressLog:
    """The progress line every ``log.progress_seconds``, read from the status board."""
    settings, status, storage = context.settings, context.status, context.storage
    capacity = settings.track_b.capacity if settings.track_b.enabled else 0

    def read() -> Progress:
        sweep = status.sweep
        return Progress(
            sweep_done=sweep.done,
            sweep_total=sweep.total,
            rate=sweep.rate(),
            rate_limit=sweep.limit_per_second,
            eta_seconds=sweep.eta_seconds(),
            sweeps=sweep.sweeps,
            slots_held=len(status.slots()),
            slots_capacity=capacity,
            gaps=context.gaps_detected,
            queue=storage.queue_depth,
        )

    return ProgressLog(read, interval_seconds=settings.log.progress_seconds)


ComponentFactory = Callable[[Context], Component]
COMPONENTS: tuple[ComponentFactory, ...] = (
    UniverseRefresher,
    build_cluster,
    build_track_a,
    build_track_b,
    build_seeder,
    build_progress_log,
)


@contextlib.asynccontextmanager
async def resolve_endpoint(
    settings: ObserverSettings, credentials: Credentials | None = None
) -> AsyncIterator[Endpoint]:
    """The endpoint ``settings.provider`` names; for ``sim``, an embedded exchange on loopback."""
    provider = settings.provider
    if provider.kind == "sim":
        from observer.sim import SimExchange  # the simulator is only loaded when used

        async with SimExchange(settings.sim, listen="127.0.0.1:0", ws_listen="127.0.0.1:0") as sim:
            log.info("embedded simulator rest=%s ws=%s", sim.rest_url, sim.ws_url)
            yield Endpoint(
                sim.rest_url,
                sim.ws_url,
                credentials or demo_credentials(),
                simulated=True,
                always_open=settings.sim.always_open,
            )
        return
    if credentials is None:
        raise ObserverError("provider kis needs credentials (KIS_APP_KEY / KIS_APP_SECRET)")
    if provider.rest_url and provider.ws_url:
        yield Endpoint(provider.rest_url, provider.ws_url, credentials)
        return
    assert provider.env is not None  # the settings validator guarantees env or both URLs
    rest_url, ws_url = REAL_DOMAINS[provider.env]
    yield Endpoint(rest_url, ws_url, credentials, master_url=MASTER_DOWNLOAD_URL)


class ObserverApp:
    """Everything Observer runs, for one endpoint; ``await app.run(stop)`` until ``stop`` is set."""

    def __init__(
        self,
        settings: ObserverSettings,
        endpoint: Endpoint,
        *,
        metrics: Metrics,
        readiness: Readiness,
        components: tuple[ComponentFactory, ...] = COMPONENTS,
        tracking: Tracking | None = None,
        status: StatusBoard | None = None,
        on_secret: Callable[[str], None] = lambda value: None,
        storage_password: str | None = None,
        exporter_url: str = "",
    ) -> None:
        self.tracking = tracking
        self._exporter_url = exporter_url
        self.status = status or StatusBoard()
        self._storage_password = storage_password
        self._on_secret = on_secret
        self.settings = settings
        self.endpoint = endpoint
        self.metrics = metrics
        self.readiness = readiness
        self._factories = components
        self.context: Context | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (returns after a clean shutdown) or a component fails."""
        settings = self.settings
        concurrency = track_a_concurrency(rate_per_second(settings))
        connector = aiohttp.TCPConnector(limit=concurrency + 16)
        async with (
            Storage(
                settings.storage_target,
                settings.storage,
                metrics=self.metrics,
                password=self._storage_password,
            ) as storage,
            aiohttp.ClientSession(connector=connector, trace_configs=[send_time_tracing()]) as http,
        ):
            context = self._context(http, storage)
            self.context = context
            if settings.cluster.enabled and settings.storage.url is not None:
                context.cluster = ClusterMember(
                    settings.cluster,
                    settings.storage.url,
                    password=self._storage_password,
                    key_fingerprint=self.endpoint.credentials.fingerprint,
                    universe=context.universe,
                    metrics=self.metrics,
                    readiness=self.readiness,
                    exporter_url=self._exporter_url,
                )
                member = context.cluster
                track_b = settings.track_b
                member.pool_slots(
                    SlotPool(
                        key_fingerprint=member.key_fingerprint,
                        member_id=member.member_id,
                        min_hold_seconds=track_b.min_hold_seconds,
                        metrics=self.metrics,
                        last_trades=storage.last_trades,
                    ),
                    track_b.capacity if track_b.enabled else 0,
                )
                context.client.tokens.share_through(
                    SharedTokenStore(
                        lambda: member.connection,
                        self.endpoint.credentials,
                        self.endpoint.rest_url,
                        member_id=member.member_id,
                    )
                )
            try:
                started = await _until_stopped(stop, self._prepare(context))
                if not started:
                    return
                components = [factory(context) for factory in self._factories]
                await _until_stopped(stop, _run_all(components))
                log.info("stopping: components cancelled, flushing storage")
            finally:
                if context.cluster is not None:
                    await context.cluster.leave()

    def _context(self, http: aiohttp.ClientSession, storage: Storage) -> Context:
        settings, endpoint = self.settings, self.endpoint
        limiter = RateLimiter(
            rate_per_second(settings),
            metrics=self.metrics,
            backoff_seconds=settings.rate_limit.backoff_seconds,
            safety_seconds=settings.rate_limit.safety_seconds,
        )
        client = KisClient(
            http,
            endpoint.rest_url,
            endpoint.credentials,
            limiter=limiter,
            metrics=self.metrics,
            token_settings=settings.token,
            # The embedded simulator's tokens die with the process: nothing to cache.
            token_cache_dir=None if endpoint.simulated else settings.data_dir / TOKEN_DIRECTORY,
            master_url=endpoint.master_url,
            on_secret=self._secret,
            on_token_failure=self._token_failure,
        )
        market = MarketHours(
            self.metrics, forced_open=endpoint.always_open, fetch_holidays=client.holidays
        )
        shard = _shard(settings.universe.shard)
        self.status.sweep.limit_per_second = limiter.rate
        self.metrics.on_collect(lambda: self._token_readiness(client))
        return Context(
            settings=settings,
            endpoint=endpoint,
            metrics=self.metrics,
            readiness=self.readiness,
            http=http,
            limiter=limiter,
            client=client,
            storage=storage,
            universe=Universe(self.metrics, shard=shard),
            market=market,
            status=self.status,
            tracking=self.tracking,
        )

    def _secret(self, value: str) -> None:
        self._on_secret(value)
        if self.tracking is not None:
            self.tracking.register_secret(value)

    def _token_failure(self, error: KisApiError) -> None:
        if self.tracking is not None:
            failure = error.classification
            self.tracking.token_refresh_failed(
                reason=failure.error_class.value,
                error_code=failure.code,
                credentials=self.endpoint.credentials,
            )

    async def _prepare(self, context: Context) -> None:
        if context.cluster is not None:
            # The key's owner, or a standby here until the owner is gone: no token before.
            await context.cluster.join()
            await context.client.tokens.sync_shared()  # the last owner's token, if valid
        await context.client.tokens.get()
        self._token_readiness(context.client)
        await UniverseRefresher(context).load_until_done(UNIVERSE_RETRY_SECONDS)
        if context.cluster is not None:
            await context.cluster.start_sweeping()  # Track A starts with this member's share

    def _token_readiness(self, client: KisClient) -> None:
        validity = client.tokens.validity_seconds()
        if validity is None:
            self.readiness.set("token", False, "no token yet")
        elif validity <= 0:
            self.readiness.set("token", False, "token expired")
        else:
            self.readiness.set("token", True, f"valid for {validity:.0f} s")


def _shard(text: str | None) -> tuple[int, int] | None:
    return parse_shard(text) if text else None


async def _run_all(components: list[Component]) -> None:
    try:
        async with asyncio.TaskGroup() as group:
            for component in components:
                group.create_task(component.run(), name=type(component).__name__)
    except BaseExceptionGroup as group_error:
        raise _first_error(group_error) from group_error


def _first_error(group_error: BaseExceptionGroup[BaseException]) -> BaseException:
    for error in group_error.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first_error(error)
        return error
    return group_error


async def _until_stopped(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> bool:
    """Run ``work`` until it ends (True) or ``stop`` is set (False, ``work`` cancelled)."""
    task = asyncio.create_task(work)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if task.cancelled():
        return False
    task.result()
    return not stop.is_set()
