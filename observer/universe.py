"""The observed universe: shares (group ``ST``, 6-digit codes) from the KOSPI and KOSDAQ masters.

``--shard i/n`` keeps the codes whose SHA-256 (not Python's salted ``hash()``)
modulo ``n`` is ``i``, so every instance and every restart agree on the split.

Counting: the first load sets ``observer_universe_size`` and counts nothing;
later loads count the symbols that appeared (``observer_universe_created_total``)
and disappeared (``observer_universe_deleted_total``). Starting Observer is not
a listing event (the summary example: size 2050 with 5 created).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from metrics import catalog
from metrics.registry import Metrics
from observer.kis.master import MARKETS, Market, MasterRow, parse_master, unzip_master

log = logging.getLogger(__name__)
SHARE_GROUP = "ST"


def share_codes(rows: Iterable[MasterRow]) -> set[str]:
    """Codes of share rows (group ST) with a 6-digit numeric short code."""
    return {
        row.code
        for row in rows
        if row.group == SHARE_GROUP and len(row.code) == 6 and row.code.isdigit()
    }


def shard_index(code: str, count: int) -> int:
    """The stable shard (0..count-1) of ``code``."""
    digest = hashlib.sha256(code.encode("ascii", "replace")).digest()
    return int.from_bytes(digest[:8], "big") % count


def keep_shard(codes: Iterable[str], shard: tuple[int, int] | None) -> set[str]:
    if shard is None:
        return set(codes)
    index, count = shard
    return {code for code in codes if shard_index(code, count) == index}


@dataclass(frozen=True, slots=True)
class UniverseChange:
    added: frozenset[str]
    removed: frozenset[str]


class Universe:
    """The current set of codes, sorted; ``replace`` applies a reload and counts the change.

    In a cluster, ``assign`` narrows what this instance sweeps (``codes``) to the
    symbols it owns among the live members; ``listed`` stays the whole universe
    (``observer_universe_size``).
    """

    def __init__(self, metrics: Metrics, *, shard: tuple[int, int] | None = None) -> None:
        self._metrics = metrics
        self.shard = shard
        self._listed: tuple[str, ...] = ()
        self._codes: tuple[str, ...] = ()
        self._owns: Callable[[Iterable[str]], frozenset[str]] | None = None
        self.loaded = False

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes this instance sweeps."""
        return self._codes

    @property
    def listed(self) -> tuple[str, ...]:
        """Every code of the universe (of this shard), owned here or not."""
        return self._listed

    def __len__(self) -> int:
        return len(self._codes)

    def assign(self, owns: Callable[[Iterable[str]], frozenset[str]]) -> UniverseChange:
        """Sweep from now on only ``owns(listed)``; what this instance gained and gave away.

        Not a listing event: nothing is counted as created or deleted.
        """
        self._owns = owns
        before = set(self._codes)
        mine = owns(self._listed)
        self._codes = tuple(sorted(mine))
        return UniverseChange(frozenset(mine - before), frozenset(before - mine))

    def replace(self, codes: Iterable[str]) -> UniverseChange:
        kept = keep_shard(codes, self.shard)
        before = set(self._listed)
        change = UniverseChange(frozenset(kept - before), frozenset(before - kept))
        self._listed = tuple(sorted(kept))
        self._codes = self._listed if self._owns is None else tuple(sorted(self._owns(kept)))
        self._metrics.gauge(catalog.UNIVERSE_SIZE).set(len(self._listed))
        if self.loaded:
            self._metrics.counter(catalog.UNIVERSE_CREATED).inc(len(change.added))
            self._metrics.counter(catalog.UNIVERSE_DELETED).inc(len(change.removed))
        self.loaded = True
        log.info(
            "universe loaded size=%d added=%d removed=%d",
            len(self._codes),
            len(change.added),
            len(change.removed),
        )
        return change


async def fetch_share_codes(download: Callable[[Market], Awaitable[bytes]]) -> set[str]:
    """Share codes of both markets; ``download(market)`` returns a master zip archive.

    Raises the download's error or ``MasterFileError``; the caller keeps the old universe.
    """
    codes: set[str] = set()
    for market in MARKETS:
        codes |= share_codes(parse_master(unzip_master(await download(market)), market))
    return codes
