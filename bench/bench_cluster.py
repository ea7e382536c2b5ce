"""Cluster sweep period with 1, 2 and 3 keys over the same universe.

For each key count N: a throwaway PostgreSQL, the simulator and N ``observer run``
members (``observer.localcluster``; Track B off, so Track A has each key's whole
REST budget). Once the split settles (every member sees N members and the owned
symbols add up to the universe), each member's sweeps that *started* after the
split are timed from ``observer_track_a_sweep_duration_seconds`` (Δsum ÷ Δcount
between its first completed sweep after the split and ``--sweeps`` more); the
cluster's period is the slowest member's. Prints the period, each member's share,
the scaling ratio (period with 1 key ÷ period with N keys) and the simulator's
EGW00201 count, and checks issue 13's acceptance: period(3) ≤ period(1) ÷ 3 × 1.05.

    .venv/bin/python bench/bench_cluster.py [--symbols 600] [--keys 1,2,3] [--sweeps 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from observer.localcluster import LocalCluster

SETTLE_WITHIN_S = 180.0
POLL_S = 0.2


@dataclass(frozen=True)
class Result:
    keys: int
    shares: list[int]
    periods: list[float]
    rejections: int

    @property
    def period(self) -> float:
        return max(self.periods)


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.name: float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


def wait_until(check: Callable[[], bool], what: str, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_cluster: {what} not reached within {within_s:g} s")
        time.sleep(POLL_S)


def settled(urls: list[str], keys: int, symbols: int) -> bool:
    try:
        values = [scrape(url) for url in urls]
    except OSError:
        return False
    members = all(v.get("observer_cluster_members") == keys for v in values)
    owned = sum(v.get("observer_cluster_symbols_owned", 0) for v in values)
    return members and owned == symbols


def sweep_period(url: str, sweeps: int, sweep_within_s: float) -> float:
    """Mean duration of ``sweeps`` sweeps that all started after this call."""
    name = "observer_track_a_sweep_duration_seconds"
    start = scrape(url)[f"{name}_count"]
    first: dict[str, float] = {}

    def after(count: float, into: dict[str, float]) -> bool:
        into.update(scrape(url))
        return into[f"{name}_count"] >= count

    wait_until(lambda: after(start + 1, first), "a sweep after the split", sweep_within_s * 2)
    last: dict[str, float] = {}
    target = first[f"{name}_count"] + sweeps
    wait_until(lambda: after(target, last), f"{sweeps} more sweeps", sweep_within_s * (sweeps + 1))
    done = last[f"{name}_count"] - first[f"{name}_count"]
    return (last[f"{name}_sum"] - first[f"{name}_sum"]) / done


def measure(keys: int, symbols: int, sweeps: int) -> Result:
    with LocalCluster(
        members=keys, symbols=symbols, track_b=False, rebalance_seconds=1.0, log_level="WARNING"
    ) as cluster:
        assert cluster.sim is not None
        urls = [member.exporter_url for member in cluster.members]
        wait_until(lambda: settled(urls, keys, symbols), f"{keys} members settled", SETTLE_WITHIN_S)
        shares = [int(scrape(url)["observer_cluster_symbols_owned"]) for url in urls]
        sweep_within_s = symbols / 10 + 30  # a generous bound: half the simulator's rate
        with ThreadPoolExecutor(max_workers=len(urls)) as pool:  # members sweep side by side
            periods = list(pool.map(lambda url: sweep_period(url, sweeps, sweep_within_s), urls))
        stats_url = f"{cluster.sim.values['rest_url']}/sim/stats"
        with urllib.request.urlopen(stats_url, timeout=10) as response:
            stats = json.load(response)
        return Result(keys, shares, periods, int(stats["rejections"].get("EGW00201", 0)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=600)
    parser.add_argument("--keys", default="1,2,3", help="key counts, comma-separated")
    parser.add_argument("--sweeps", type=int, default=2, help="sweeps timed per member")
    args = parser.parse_args()
    counts = [int(part) for part in args.keys.split(",")]
    results = []
    for keys in counts:
        results.append(measure(keys, args.symbols, args.sweeps))
        print(f"measured {keys} keys: {results[-1]}", file=sys.stderr, flush=True)
    base = next((r.period for r in results if r.keys == 1), None)
    print(f"{args.symbols} symbols, simulator 20 calls/s per key, Track B off")
    print("| keys | symbols per member | period, slowest member (s) | ratio | EGW00201 |")
    print("|---|---|---|---|---|")
    for r in results:
        ratio = f"{base / r.period:.2f}" if base else "-"
        shares = " / ".join(str(s) for s in r.shares)
        print(f"| {r.keys} | {shares} | {r.period:.2f} | {ratio} | {r.rejections} |")
    three = next((r for r in results if r.keys == 3), None)
    if base and three:
        bound = base / 3 * 1.05
        verdict = "meets" if three.period <= bound else "misses"
        print(
            f"acceptance: period(3) {three.period:.2f} s {verdict} "
            f"≤ {bound:.2f} s (period 1 ÷ 3 × 1.05)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
