"""Alerts on a cluster of Observers: a member lost, the universe not covered, no leader.

Outside a cluster every cluster gauge is 0, and each alert needs live members
(``observer_cluster_members > 0``) or a drop in their number: a single Observer
never fires them.
"""

from __future__ import annotations

from metrics import catalog
from metrics.promql import JOB, selector
from rules.build import alert
from rules.inputs import series
from rules.model import AlertDefinition, Firing, Healthy, RunbookEntry
from rules.params import RuleParams

JOB_LABELS = (("job", JOB),)
LOST_WINDOW_SECONDS = 900  # a member missing from the last 15 minutes' count
LOST_FOR_MINUTES = 1
UNCOVERED_FOR_MINUTES = 2  # several rebalances (cluster.rebalance_seconds, 10 s)
NO_LEADER_FOR_MINUTES = 1
UNIVERSE = 2500


def _member_lost(params: RuleParams) -> AlertDefinition:
    members = selector(catalog.CLUSTER_MEMBERS, params.scope)
    window = params.window(LOST_WINDOW_SECONDS)
    return AlertDefinition(
        rule=alert(
            params,
            "ClusterMemberLost",
            f"max by ({params.by_job}) ({members}) "
            f"< max by ({params.by_job}) (max_over_time({members}[{window}]))",
            for_minutes=LOST_FOR_MINUTES,
            severity="warning",
            summary="An Observer of the cluster is gone.",
            description="The cluster has {{ $value | humanize }} live members, fewer than "
            "in the last 15 minutes: one key is no longer collecting.",
        ),
        runbook=RunbookEntry(
            meaning="A member stopped holding its key's lock: its process died, or lost "
            "its connection to the cluster's PostgreSQL. The survivors took its Track A "
            "symbols at their next rebalance (`cluster.rebalance_seconds`), so the universe "
            "stays covered, but the cluster collects with one key less (a longer sweep and "
            "41 fewer Track B slots). It resolves 15 minutes after the drop.",
            actions=(
                "Find the member on the dashboard's Cluster row (members, symbols per "
                "member) or in `cluster_members` (`SELECT * FROM cluster_members`).",
                "Restart it; a standby started with the same key takes over by itself.",
                "If it was stopped on purpose, nothing to do: the alert resolves.",
            ),
        ),
        firing=(
            Firing(
                name="three members, then two",
                inputs=(series(catalog.CLUSTER_MEMBERS, "3x5 2x{n}"),),
                onset_seconds=360,
                value=2,
                labels=JOB_LABELS,
            ),
        ),
        healthy=(
            Healthy(name="no cluster", inputs=(series(catalog.CLUSTER_MEMBERS, "0x{n}"),)),
            Healthy(name="a member joins", inputs=(series(catalog.CLUSTER_MEMBERS, "2x5 3x{n}"),)),
        ),
    )


def _uncovered(params: RuleParams) -> AlertDefinition:
    owned = selector(catalog.CLUSTER_SYMBOLS_OWNED, params.scope)
    universe = selector(catalog.UNIVERSE_SIZE, params.scope)
    members = selector(catalog.CLUSTER_MEMBERS, params.scope)
    return AlertDefinition(
        rule=alert(
            params,
            "ClusterUniverseUncovered",
            f"sum by ({params.by_job}) ({owned}) < max by ({params.by_job}) ({universe}) "
            f"and on ({params.by_job}) max by ({params.by_job}) ({members}) > 0",
            for_minutes=UNCOVERED_FOR_MINUTES,
            severity="critical",
            summary="Part of the universe is swept by no member of the cluster.",
            description="The members own {{ $value | humanize }} symbols between them, "
            "fewer than the universe: some symbols get no snapshots.",
        ),
        runbook=RunbookEntry(
            meaning="The symbols the members sweep, summed, are fewer than the universe for "
            "longer than a few rebalances. The split is computed from the live members, so "
            "this means members disagree on who is live (one cannot read `cluster_members`, "
            "or runs an older Observer) or a member owns symbols but is not scraped.",
            actions=(
                "Compare `observer_cluster_members` across members: they must agree.",
                "Check each member's log for `cluster coordination lost`: such a member "
                "stops; restart it.",
                "Check every member is a Prometheus target (`up`).",
            ),
        ),
        firing=(
            Firing(
                name="a tenth of the universe unowned",
                inputs=(
                    series(catalog.CLUSTER_SYMBOLS_OWNED, f"{UNIVERSE}x2 {UNIVERSE - 250}x{{n}}"),
                    series(catalog.UNIVERSE_SIZE, f"{UNIVERSE}x{{n}}"),
                    series(catalog.CLUSTER_MEMBERS, "3x{n}"),
                ),
                onset_seconds=180,
                value=UNIVERSE - 250,
                labels=JOB_LABELS,
            ),
        ),
        healthy=(
            Healthy(
                name="no cluster",
                inputs=(
                    series(catalog.CLUSTER_SYMBOLS_OWNED, "0x{n}"),
                    series(catalog.UNIVERSE_SIZE, f"{UNIVERSE}x{{n}}"),
                    series(catalog.CLUSTER_MEMBERS, "0x{n}"),
                ),
            ),
            Healthy(
                name="a minute short while a rebalance settles",
                inputs=(
                    series(
                        catalog.CLUSTER_SYMBOLS_OWNED,
                        f"{UNIVERSE}x3 {UNIVERSE - 800} {UNIVERSE}x{{n}}",
                    ),
                    series(catalog.UNIVERSE_SIZE, f"{UNIVERSE}x{{n}}"),
                    series(catalog.CLUSTER_MEMBERS, "3x{n}"),
                ),
            ),
        ),
    )


def _no_leader(params: RuleParams) -> AlertDefinition:
    members = selector(catalog.CLUSTER_MEMBERS, params.scope)
    leader = selector(catalog.CLUSTER_LEADER, params.scope)
    return AlertDefinition(
        rule=alert(
            params,
            "ClusterNoLeader",
            f"max by ({params.by_job}) ({members}) > 0 "
            f"and on ({params.by_job}) sum by ({params.by_job}) ({leader}) == 0",
            for_minutes=NO_LEADER_FOR_MINUTES,
            severity="warning",
            summary="The cluster has no leader.",
            description="{{ $value | humanize }} members are live and none holds the leader lock.",
        ),
        runbook=RunbookEntry(
            meaning="No member reports `observer_cluster_leader` 1 while members are live. "
            "Each member tries the leader lock at every rebalance, so a leader that died is "
            "replaced within `cluster.rebalance_seconds`; a missing leader for a minute means "
            "the lock is held by something that is not a scraped member (a stale session, "
            "or a member Prometheus does not scrape). Collection goes on; the leader only "
            "tidies `cluster_members`.",
            actions=(
                "In PostgreSQL: `SELECT pid, application_name FROM pg_locks JOIN "
                "pg_stat_activity USING (pid) WHERE locktype = 'advisory'` shows who holds "
                "the locks; end a stale session with `pg_terminate_backend(pid)`.",
                "Check every member is a Prometheus target (`up`).",
            ),
        ),
        firing=(
            Firing(
                name="the leader is gone and nobody took over",
                inputs=(
                    series(catalog.CLUSTER_MEMBERS, "3x{n}"),
                    series(catalog.CLUSTER_LEADER, "1x2 0x{n}"),
                ),
                onset_seconds=180,
                value=3,
                labels=JOB_LABELS,
            ),
        ),
        healthy=(
            Healthy(
                name="no cluster",
                inputs=(
                    series(catalog.CLUSTER_MEMBERS, "0x{n}"),
                    series(catalog.CLUSTER_LEADER, "0x{n}"),
                ),
            ),
            Healthy(
                name="a leader",
                inputs=(
                    series(catalog.CLUSTER_MEMBERS, "2x{n}"),
                    series(catalog.CLUSTER_LEADER, "1x{n}"),
                ),
            ),
        ),
    )


def cluster_alerts(params: RuleParams) -> tuple[AlertDefinition, ...]:
    return (_member_lost(params), _uncovered(params), _no_leader(params))
