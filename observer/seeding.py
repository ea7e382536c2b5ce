"""Track B's first slots: the broker's most traded symbols at start, offered as triggers.

A Track A trigger compares two snapshots of a symbol, so without a seed Track B
holds no slot until the second sweep reaches it (about 125 s at 20/s for 2,500
symbols). At start ``VolumeRankSeeder`` asks the broker's volume ranking once
(``volume-rank``, TR FHPST01710000, up to 30 rows) and offers the top
``track_b.seed_slots`` symbols of the universe as ``volume_rank`` triggers.
Their value is below any Track A trigger's (1.0 is a trigger at its threshold)
and decays like every holder's, so Track A's triggers take the seeded slots
under the normal eviction rules once ``min_hold_seconds`` has passed; the
least traded seed goes first. A failed ranking leaves Track B to Track A's
triggers, as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence

from observer.kis.client import RankedSymbol
from observer.kis.errors import KisApiError
from observer.records import Trigger, TriggerKind

log = logging.getLogger(__name__)

SEED_VALUE = 0.5  # the top-ranked seed's value; a Track A trigger is worth 1.0 or more
ATTEMPTS = 3
RETRY_SECONDS = 5.0


def seed_triggers(
    ranked: Sequence[RankedSymbol], *, count: int, universe: Collection[str], at: float
) -> list[Trigger]:
    """``volume_rank`` triggers for the ``count`` best-ranked symbols of ``universe``.

    Values fall with the rank, from ``SEED_VALUE`` for the first down to
    ``SEED_VALUE / n`` for the last of the ``n`` chosen, all below 1.0.
    """
    chosen = [row for row in sorted(ranked, key=lambda row: row.rank) if row.symbol in universe]
    chosen = chosen[: max(0, count)]
    return [
        Trigger(
            symbol=row.symbol,
            kind=TriggerKind.VOLUME_RANK,
            score=SEED_VALUE * (len(chosen) - index) / len(chosen),
            at=at,
        )
        for index, row in enumerate(chosen)
    ]


class VolumeRankSeeder:
    """A one-shot component: ask the ranking, offer the seeds, return.

    ``rank`` is ``KisClient.volume_rank``; ``offer`` receives each trigger
    (the trigger hub Track B subscribes to). A retryable failure is tried again
    ``RETRY_SECONDS`` later, ``ATTEMPTS`` times in all; then the seeder gives up
    with a warning. Cancellation simply ends it.
    """

    def __init__(
        self,
        *,
        rank: Callable[[], Awaitable[list[RankedSymbol]]],
        offer: Callable[[Trigger], object],
        universe: Callable[[], Collection[str]],
        count: int,
        clock: Callable[[], float] = time.time,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self._rank = rank
        self._offer = offer
        self._universe = universe
        self._count = count
        self._clock = clock
        self._retry_seconds = retry_seconds
        self.offered: list[Trigger] = []

    async def run(self) -> None:
        if self._count <= 0:
            return
        ranked = await self._ranking()
        if ranked is None:
            return
        triggers = seed_triggers(
            ranked, count=self._count, universe=self._universe(), at=self._clock()
        )
        for trigger in triggers:
            self._offer(trigger)
        self.offered = triggers
        log.info(
            "track B seeded from the volume ranking symbols=%d ranked=%d top=%s",
            len(triggers),
            len(ranked),
            ",".join(trigger.symbol for trigger in triggers[:5]) or "-",
        )

    async def _ranking(self) -> list[RankedSymbol] | None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._rank()
            except KisApiError as exc:
                if not exc.retryable or attempt == ATTEMPTS:
                    log.warning(
                        "volume ranking unavailable, Track B waits for Track A's triggers "
                        "attempts=%d reason=%s",
                        attempt,
                        exc,
                    )
                    return None
            await asyncio.sleep(self._retry_seconds)
        return None
