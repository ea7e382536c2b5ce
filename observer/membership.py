"""Who sweeps what in a cluster (pure): members, key fingerprints, rendezvous hashing.

Each symbol belongs to the live member with the highest weight
``blake2b(member_id, symbol)`` (rendezvous or highest-random-weight hashing):
every member computes the same split from the same member list, a member that
leaves gives away only its own symbols (each to the member that was second for
it), and one that joins takes about 1/N of every other member's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Member:
    """A live member of the cluster, as the members table and its key lock tell."""

    member_id: str
    key_fingerprint: str  # Credentials.fingerprint: never the key
    exporter_url: str = ""
    started_at: float = 0.0
    sweeping: bool = True  # Track A runs there (False: still starting, no share yet)


def weight(member_id: str, symbol: str) -> int:
    digest = hashlib.blake2b(f"{member_id}\0{symbol}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(symbol: str, member_ids: Iterable[str]) -> str | None:
    """The member that sweeps ``symbol`` (None when there is no member)."""
    return max(member_ids, key=lambda member: (weight(member, symbol), member), default=None)


def owned(symbols: Iterable[str], member_ids: Iterable[str], me: str) -> frozenset[str]:
    """The symbols ``me`` sweeps among ``member_ids`` (``me`` counted even if absent)."""
    members = sorted(set(member_ids) | {me})
    return frozenset(symbol for symbol in symbols if owner(symbol, members) == me)
