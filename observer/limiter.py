"""``RateLimiter``: one per app key; never above its rate in any 1 s window, never idle with work.

The pure ``WindowSchedule`` decides when the next call may go; the asyncio
``RateLimiter`` queues callers in priority lanes (``backfill`` before
``sweep``) and releases them at those times.

Why two rules: the broker counts arrivals in a 1 s window whose kind it does
not publish (sliding is the strictest, kis-protocol.md "Rate limits"). Calls
are spaced evenly at ``1/rate`` (no bursts), and a log of the last ``capacity``
latest possible arrival times makes the ``capacity + 1``-th call wait until
``1 s + safety`` after the first (see ``WindowSchedule``: a call may reach the
server as late as its answer comes back, so server-side jitter and stalls are
covered too). The cost is one round trip plus ``safety`` per window: on loopback
(2 to 5 ms) that keeps about 99.5 % of the rate, over 30 ms about 97 %. Each
EGW00201 the server still sends doubles the margin (the jitter is larger than
assumed), up to 100 ms, and five minutes without one halve it back; the
schedule adapts it itself (``WindowSchedule.server_rejected``), on the times it
is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from metrics import catalog
from metrics.registry import Metrics

LANES = catalog.LANES  # highest priority first (metrics.labels.Lane)
WINDOW_SECONDS = 1.0
DEFAULT_SAFETY_SECONDS = 0.002
MAX_SAFETY_SECONDS = 0.1
MARGIN_DECAY_SECONDS = 300.0
RTT_HISTORY = 100  # round trips kept (5 s of calls at 20/s)
RECENT_ROUND_TRIPS = 20  # the slowest of these sizes how many calls are kept in flight
IN_FLIGHT_HEADROOM_SECONDS = 0.1


class Grant:
    """One granted call and the latest time the server can have stamped its arrival.

    ``at`` starts as the grant time; ``mark_sent`` moves it to the real send time
    and makes the grant *pending* (in flight: it may arrive any time until it is
    answered); ``mark_answered`` settles it at its answer time.
    """

    __slots__ = ("at", "pending", "round_trip", "sent", "waited")

    def __init__(self, at: float) -> None:
        self.at = at
        self.sent: float | None = None
        self.round_trip: float | None = None
        self.pending = False
        self.waited = 0.0

    def settle(self) -> None:
        if self.sent is not None and self.round_trip is not None:
            self.at = max(self.at, self.sent + self.round_trip)


class WindowSchedule:
    """When the next call may start, given past grants (pure; times in seconds).

    ``capacity`` is ``floor(rate)`` calls per window. ``next_allowed(now)`` is the
    earliest time satisfying: not before ``now``; not during a back-off pause;
    not before the previous *scheduled* time plus ``1/rate`` (so a late wake-up
    does not push every later call back); not before the ``capacity``-th latest
    possible arrival among recent calls plus ``window + safety``.

    A call's latest possible arrival: its grant time; once ``mark_sent``, its
    real send time (a send delayed in our own process cannot shrink a window);
    while in flight, ``now``; once ``mark_answered``, the answer's time. Why not
    less: nothing tells a stall the server shares with every call so far from a
    slow path, so a bound that trusts the fastest round trip is broken by the
    first prompt calls after such a stall (the property tests found it). A call
    cannot have arrived after its answer came, so no window the server counts
    holds ``capacity + 1`` calls, whatever its jitter; ``safety`` covers clock
    granularity.

    ``safety`` adapts: ``server_rejected`` doubles it (once per back-off pause,
    up to ``MAX_SAFETY_SECONDS``) and each grant ``MARGIN_DECAY_SECONDS`` after
    the last change halves it back towards ``base_safety``.
    """

    def __init__(
        self,
        rate_per_second: float,
        *,
        window_seconds: float = WINDOW_SECONDS,
        safety_seconds: float = DEFAULT_SAFETY_SECONDS,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError(f"rate must be positive, got {rate_per_second}")
        self.rate = rate_per_second
        self.capacity = max(1, math.floor(rate_per_second * window_seconds + 1e-9))
        self.spacing = 1.0 / rate_per_second
        self.window = window_seconds
        self.safety = safety_seconds
        self.base_safety = safety_seconds
        self._margin_changed_at = -math.inf
        # The last 2 × capacity grants: a marked send may move one past its neighbours.
        self._grants: deque[Grant] = deque(maxlen=2 * self.capacity)
        self._last_scheduled = -math.inf
        self._paused_until = -math.inf
        self._round_trips: deque[float] = deque(maxlen=RTT_HISTORY)

    def next_allowed(self, now: float) -> float:
        return max(now, self._earliest(now))

    def grant(self, now: float) -> Grant | None:
        """Grant a call at ``now`` if allowed and record it; None if it must wait.

        The grid of scheduled times is kept when a wake-up comes late by less than
        one spacing, and restarts at ``now`` after an idle spell (no burst of credit).
        """
        earliest = self._earliest(now)
        if earliest > now:
            return None
        self._last_scheduled = earliest if now - earliest < self.spacing else now
        granted = Grant(now)
        self._grants.append(granted)
        if self.safety > self.base_safety and now - self._margin_changed_at >= MARGIN_DECAY_SECONDS:
            self.safety = max(self.base_safety, self.safety / 2)
            self._margin_changed_at = now
        return granted

    def slowest_recent_round_trip(self, count: int = RECENT_ROUND_TRIPS) -> float | None:
        """The slowest of the last ``count`` round trips, None before any is known."""
        if not self._round_trips:
            return None
        return max(itertools.islice(reversed(self._round_trips), count))

    @staticmethod
    def mark_sent(grant: Grant, at: float) -> None:
        """The granted request left at ``at``; it is in flight until ``mark_answered``."""
        grant.sent = at
        grant.at = max(grant.at, at)
        grant.pending = True

    def mark_answered(self, grant: Grant, at: float) -> None:
        """The answer (or the failure) of a sent request came at ``at``."""
        if not grant.pending or grant.sent is None:
            return
        grant.pending = False
        grant.round_trip = max(0.0, at - grant.sent)
        self._round_trips.append(grant.round_trip)
        grant.settle()

    def _earliest(self, now: float) -> float:
        at = max(self._paused_until, self._last_scheduled + self.spacing)
        if len(self._grants) >= self.capacity:
            # The capacity-th latest arrival. Sorting the 2 × capacity kept grants in C is
            # five times faster than heapq.nlargest over a generator (called twice a grant).
            arrivals = [max(g.at, now) if g.pending else g.at for g in self._grants]
            arrivals.sort(reverse=True)
            at = max(at, arrivals[self.capacity - 1] + self.window + self.safety)
        return at

    def server_rejected(self, now: float, pause_seconds: float) -> None:
        """The server answered EGW00201 at ``now``: pause, and widen the margin.

        The server counted one call too many, so the jitter between our sends and
        its arrival stamps exceeds the margin: it doubles (at least to 1 ms, at
        most ``MAX_SAFETY_SECONDS``), once per pause — the calls in flight in one
        burst are rejected together and count once.
        """
        if now >= self._paused_until:
            self.safety = min(MAX_SAFETY_SECONDS, max(self.safety * 2, 0.001))
        self.pause_until(now + pause_seconds)
        self._margin_changed_at = now

    def pause_until(self, until: float) -> None:
        """No grant before ``until`` (server back-off); later pauses extend, earlier do not."""
        self._paused_until = max(self._paused_until, until)

    @property
    def paused_until(self) -> float:
        return self._paused_until


@dataclass(eq=False)
class _Waiter:
    lane: str
    enqueued: float
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class RateLimiter:
    """Releases REST calls at the configured rate, backfill lane first.

    ``async with limiter.slot("sweep"):`` waits for a grant (cancellation while
    waiting gives the place up cleanly). ``server_rejected()`` is called when the
    server still answered EGW00201: every lane pauses for ``backoff_seconds``
    and ``observer_rate_limit_rejections_total`` counts it.
    """

    def __init__(
        self,
        rate_per_second: float,
        *,
        metrics: Metrics | None = None,
        backoff_seconds: float = 1.0,
        safety_seconds: float = DEFAULT_SAFETY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.schedule = WindowSchedule(rate_per_second, safety_seconds=safety_seconds)
        self.backoff_seconds = backoff_seconds
        self._metrics = metrics
        self._clock = clock
        self._queues: dict[str, deque[_Waiter]] = {lane: deque() for lane in LANES}
        self.granted = 0
        self.rejections = 0
        self.last_grant_at = 0.0  # clock() of the latest grant (benchmarks: achieved rate)

    @property
    def rate(self) -> float:
        return self.schedule.rate

    def calls_in_flight_needed(self, headroom_seconds: float = IN_FLIGHT_HEADROOM_SECONDS) -> int:
        """Calls to keep in flight so that one is always waiting when the next grant is due.

        ``rate × (slowest recent round trip + headroom) + 2``; more would only wait in
        the queue (and count as collection time). Without round trips known yet
        (no send-time tracing), ``rate × 1 s + 2``.
        """
        slowest = self.schedule.slowest_recent_round_trip()
        seconds = 1.0 if slowest is None else slowest + headroom_seconds
        return math.ceil(self.rate * seconds - 1e-9) + 2

    def queue_depth(self, lane: str | None = None) -> int:
        if lane is not None:
            return len(self._queues[lane])
        return sum(len(queue) for queue in self._queues.values())

    @contextlib.asynccontextmanager
    async def slot(self, lane: str = "sweep") -> AsyncIterator[Grant]:
        yield await self.acquire(lane)

    async def acquire(self, lane: str = "sweep") -> Grant:
        """Wait for a grant in ``lane``; ``mark_sent(grant)`` when the request really left."""
        if lane not in self._queues:
            raise ValueError(f"unknown lane {lane!r}; lanes are {LANES}")
        waiter = _Waiter(lane, self._clock())
        self._queues[lane].append(waiter)
        self._set_depth(lane)
        try:
            granted = await self._wait_turn(waiter)
        except BaseException:
            with contextlib.suppress(ValueError):
                self._queues[lane].remove(waiter)
            self._set_depth(lane)
            self._wake_head()
            raise
        granted.waited = granted.at - waiter.enqueued
        self._count_grant(lane, granted.waited)
        return granted

    def mark_sent(self, grant: Grant) -> None:
        """The request of ``grant`` was written to the network now."""
        self.schedule.mark_sent(grant, self._clock())

    def mark_answered(self, grant: Grant) -> None:
        """The request of ``grant`` got its answer (or failed) now."""
        self.schedule.mark_answered(grant, self._clock())
        self._wake_head()  # an in-flight call no longer holds the window open

    def server_rejected(self) -> None:
        """The server answered EGW00201: pause every lane for ``backoff_seconds``.

        The schedule widens its safety margin (``WindowSchedule.server_rejected``).
        """
        self.rejections += 1
        self.schedule.server_rejected(self._clock(), self.backoff_seconds)
        if self._metrics is not None:
            self._metrics.counter(catalog.RATE_LIMIT_REJECTIONS).inc()

    async def _wait_turn(self, waiter: _Waiter) -> Grant:
        loop = asyncio.get_running_loop()
        while True:
            if self._head() is waiter:
                now = self._clock()
                granted = self.schedule.grant(now)
                if granted is not None:
                    self._queues[waiter.lane].popleft()
                    self._set_depth(waiter.lane)
                    self._wake_head()
                    return granted
                delay = self.schedule.next_allowed(now) - now
                timer = loop.call_later(delay, waiter.wake.set)
                try:
                    await waiter.wake.wait()
                finally:
                    timer.cancel()
            else:
                await waiter.wake.wait()
            waiter.wake.clear()

    def _head(self) -> _Waiter | None:
        for lane in LANES:
            if self._queues[lane]:
                return self._queues[lane][0]
        return None

    def _wake_head(self) -> None:
        head = self._head()
        if head is not None:
            head.wake.set()

    def _set_depth(self, lane: str) -> None:
        if self._metrics is not None:
            depth = len(self._queues[lane])
            self._metrics.gauge(catalog.RATE_LIMIT_QUEUE_DEPTH).labels(lane).set(depth)
        # A new waiter at the head of a higher lane must take over the timer.
        if lane == LANES[0]:
            self._wake_head()

    def _count_grant(self, lane: str, waited: float) -> None:
        self.granted += 1
        self.last_grant_at = self._clock()
        if self._metrics is None:
            return
        self._metrics.counter(catalog.RATE_LIMIT_TOKENS).labels(lane).inc()
        if waited > 0.0005:
            self._metrics.counter(catalog.RATE_LIMIT_DELAYS).labels(lane).inc()
            self._metrics.histogram(catalog.RATE_LIMIT_DELAY_DURATION).labels(lane).observe(waited)
