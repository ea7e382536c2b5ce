"""Source-design alerts on Track B: slot starvation and collection falling short."""

from __future__ import annotations

from metrics import catalog
from metrics.promql import selector
from rules.build import CLOSED_ALL_DAY, OPEN_ALL_DAY, OPENS_AT_10M, alert, market_open
from rules.inputs import TARGET, series
from rules.model import AlertDefinition, Firing, Healthy, InputSeries, RunbookEntry
from rules.params import RuleParams
from rules.thresholds import threshold_of

# Starvation: most triggers refused a slot over 15 minutes while evictions turn every
# slot over at least once: demand far above the 41 slots, not a full table (the share,
# 0.8 built in, is rules.thresholds').
# Collection short: most allocated slots without a trade for longer than
# `track_b.silent_symbol_seconds` (its default), the point a silent symbol is a gap.
SILENT_SLOT_SECONDS = 300  # the share of such slots, 0.5 built in, is rules.thresholds'


def _triggers(claimed: int, held: int, refused: int, evictions: int) -> tuple[InputSeries, ...]:
    """Trigger outcomes and evictions per minute on a full table of 41 slots."""
    triggers = catalog.TRACK_B_TRIGGERS
    return (
        series(triggers, f"0+{claimed}x{{n}}", kind="price_move", outcome="claimed"),
        series(triggers, f"0+{held}x{{n}}", kind="volume_surge", outcome="already_held"),
        series(triggers, f"0+{refused}x{{n}}", kind="price_move", outcome="refused"),
        series(catalog.TRACK_B_EVICTIONS, f"0+{evictions}x{{n}}"),
        series(catalog.TRACK_B_SLOTS_CAPACITY, "41x{n}"),
        series(catalog.TRACK_B_SLOTS_ALLOCATED, "41x{n}"),
    )


def _slots(idle: tuple[str, ...]) -> tuple[InputSeries, ...]:
    """Allocated slots with the given idle-seconds series."""
    return (
        *(
            series(catalog.TRACK_B_SLOT_IDLE, values, slot=str(index))
            for index, values in enumerate(idle)
        ),
        series(catalog.TRACK_B_SLOTS_ALLOCATED, f"{len(idle)}x{{n}}"),
    )


def _starvation(params: RuleParams) -> AlertDefinition:
    window = params.window(900)
    every = selector(catalog.TRACK_B_TRIGGERS, params.scope)
    refused = selector(catalog.TRACK_B_TRIGGERS, params.scope, outcome="refused")
    evictions = selector(catalog.TRACK_B_EVICTIONS, params.scope)
    capacity = selector(catalog.TRACK_B_SLOTS_CAPACITY, params.scope)
    limit = threshold_of(params, "TrackBSlotStarvation")
    claimed, refused_per_minute = (10, 90) if limit < 0.9 else (1, 99)
    share = (
        f"sum by ({params.by}) (increase({refused}[{window}])) "
        f"/ sum by ({params.by}) (increase({every}[{window}]))"
    )
    churn = (
        f"sum by ({params.by}) (increase({evictions}[{window}])) "
        f"> on ({params.by}) max by ({params.by}) ({capacity})"
    )
    return AlertDefinition(
        rule=alert(
            params,
            "TrackBSlotStarvation",
            f"{share} > {limit:g} and {churn}",
            for_minutes=5,
            severity="critical",
            summary="Track B demand for slots far exceeds its capacity.",
            description="{{ $value | humanizePercentage }} of the Track B triggers of "
            "{{ $labels.instance }} were refused a slot over 15 minutes while evictions turned "
            f"every slot over (threshold {limit:.0%}).",
        ),
        runbook=RunbookEntry(
            meaning="Over 15 minutes, more than 80 % of Track B triggers were refused a slot "
            "and evictions outnumbered the slots: far more symbols call for a subscription "
            "than there are slots, and the ones held keep being displaced, so Track B follows "
            "none of them for long.",
            source_change="The source fired on slot utilisation above 95 %, but full slots "
            "are Track B's normal state, and so are refused triggers once they are full: a "
            "newcomer that is not worth more than the least valuable holder is refused while "
            "the table keeps the best symbols. With the embedded simulator (120 symbols, the "
            "e2e run's 10x market) about a third to a half of all triggers are refused once "
            "the 41 slots fill (the rest mostly `already_held`), with at most 15 evictions per "
            "(scaled) 15-minute window: sustained refusals are normal. Starvation therefore "
            'needs both a refused share above 80 % (`outcome="refused"` over all trigger '
            "outcomes) and churn, more evictions in 15 minutes than there are slots.",
            actions=(
                "See which trigger kind dominates in the triggers panel; raise the trigger "
                "thresholds (`track_b.price_move_pct`, `volume_surge_ratio`).",
                "Split the universe over more app keys (`--shard i/n`) for more slots.",
            ),
        ),
        firing=(
            Firing(
                name=f"{refused_per_minute}% refused, an eviction a second",
                inputs=_triggers(claimed=claimed, held=0, refused=refused_per_minute, evictions=60),
                onset_seconds=60,
                value=refused_per_minute / 100,
                labels=TARGET,
            ),
        ),
        healthy=(
            Healthy(
                name="full table: half the triggers refused, slots turning over",
                inputs=_triggers(claimed=20, held=20, refused=40, evictions=60),
            ),
            Healthy(
                name="90% refused, the held symbols kept",
                inputs=_triggers(claimed=10, held=0, refused=90, evictions=2),
            ),
        ),
    )


def _collection(params: RuleParams) -> AlertDefinition:
    idle = selector(catalog.TRACK_B_SLOT_IDLE, params.scope)
    allocated = selector(catalog.TRACK_B_SLOTS_ALLOCATED, params.scope)
    silent = f"count by ({params.by}) ({idle} > {SILENT_SLOT_SECONDS})"
    limit = threshold_of(params, "TrackBCollectionSlow")
    # Three of four slots silent, or more of more slots when the threshold asks for it.
    silent_slots, total = next((s, t) for s, t in ((3, 4), (9, 10), (19, 20)) if s / t > limit)
    quiet = ("400+60x{n}",) * silent_slots + ("5x{n}",) * (total - silent_slots)
    return AlertDefinition(
        rule=alert(
            params,
            "TrackBCollectionSlow",
            f"{silent} / on ({params.by}) {allocated} > {limit:g} and {market_open(params)}",
            for_minutes=10,
            severity="warning",
            summary="Most Track B slots receive no trades while the market is open.",
            description="{{ $value | humanizePercentage }} of the allocated Track B slots of "
            "{{ $labels.instance }} have had no trade for over 5 minutes while the market "
            f"is open (threshold {limit:.0%}).",
        ),
        runbook=RunbookEntry(
            meaning="More than half of the allocated WebSocket slots have received no trade "
            "for over 5 minutes (`observer_trackb_slot_idle_seconds`) during market hours: "
            "Track B collects much less than its slots should bring, because the session "
            "delivers nothing for those symbols or the slots hold symbols that stopped "
            "trading.",
            source_change="The source fired below 50 items per second, a floor unrelated "
            "to how much the subscribed symbols trade: 41 slots of the embedded simulator "
            "bring 3 to 12 trades a second (e2e run), quiet real symbols fewer. The alert now "
            "compares each allocated slot with its own symbol's silence: a slot idle longer "
            "than 5 minutes (the default `track_b.silent_symbol_seconds`, where a silent "
            "symbol becomes a gap) is not collecting, and the alert fires when those are the "
            "majority. It needs slots allocated (no series otherwise) and is gated on "
            "`observer_market_open == 1`. Received items per second stay on the dashboard.",
            actions=(
                "Check `observer_trackb_session_connected` and the reconnects panel: a session "
                "that is up but silent is replaced by the watchdog.",
                "If the session is fine, the slots hold quiet symbols: check the evictions "
                "and the trigger thresholds.",
            ),
        ),
        firing=(
            Firing(
                name=f"{silent_slots} of {total} slots silent once the market opens",
                inputs=(*_slots(quiet), OPENS_AT_10M),
                onset_seconds=600,
                value=silent_slots / total,
                labels=TARGET,
            ),
        ),
        healthy=(
            Healthy(name="market closed", inputs=(*_slots(quiet), CLOSED_ALL_DAY)),
            Healthy(
                name="one quiet slot of four",
                inputs=(*_slots(("400+60x{n}", "5x{n}", "12x{n}", "0x{n}")), OPEN_ALL_DAY),
            ),
        ),
    )


def track_b_alerts(params: RuleParams) -> tuple[AlertDefinition, ...]:
    """TrackBSlotStarvation (critical) and TrackBCollectionSlow (warning)."""
    return (_starvation(params), _collection(params))
