"""Source-design alerts on the services Observer depends on: API, token, limiter, uptime."""

from __future__ import annotations

from metrics import catalog
from metrics.promql import JOB, UP, recorded, selector
from rules import recording as rec
from rules.alerts_token import token_alerts
from rules.build import (
    CLOSED_ALL_DAY,
    OPEN_ALL_DAY,
    OPENS_AT_10M,
    alert,
    api_requests,
    held_seconds,
    in_words,
    market_open,
    seconds_text,
    threshold,
)
from rules.inputs import TARGET, histogram, series
from rules.model import AlertDefinition, Firing, Healthy, RunbookEntry
from rules.params import RuleParams
from rules.thresholds import p99_bucket, threshold_of

UP_SINCE_START = series(catalog.SYSTEM_UPTIME, "0+60x{n}")
# Each start's first four minutes, long enough for any healthy case (40 minutes).
RESTARTING = series(catalog.SYSTEM_UPTIME, " ".join(["0+60x4"] * 8))
ERROR_RATIO_CHANGE = (
    "The ratio is the shared recorded series (failed over all requests, one counter, so it "
    "never exceeds 100 %) and needs at least 0.1 requests per second: one failed call on a "
    "quiet market is not an error rate."
)


def traffic(params: RuleParams) -> str:
    """Error ratios need some traffic to mean anything: 0.1 calls/s is 30 calls in 5 minutes."""
    return f"on ({params.by}) {recorded(rec.API_REQUEST_RATE, params.scope)} >= 0.1"


def _error_ratio_alert(
    params: RuleParams, name: str, for_minutes: float, ok: int, errors: int
) -> AlertDefinition:
    ratio = recorded(rec.API_ERROR_RATIO, params.scope)
    limit = threshold_of(params, name)
    if errors / (ok + errors) <= limit:  # a configured threshold above the built-in case's
        errors = min(100, int(limit * 100) + 5)
        ok = 100 - errors
    percent = f"{limit * 100:g}%"
    return AlertDefinition(
        rule=alert(
            params,
            name,
            f"{ratio} > {threshold(limit)} and {traffic(params)}",
            for_minutes=for_minutes,
            severity="critical",
            summary=f"More than {percent} of broker API requests fail.",
            description="{{ $value | humanizePercentage }} of broker API requests from "
            "{{ $labels.instance }} failed over the last 5 minutes "
            f"(threshold {percent}).",
        ),
        runbook=RunbookEntry(
            meaning=f"More than {percent} of REST calls to the broker fail; snapshots and "
            "backfills are being lost.",
            source_change=ERROR_RATIO_CHANGE,
            actions=(
                "Break `observer_api_errors_total` down by `error_class`: `token` and `auth` "
                "point at credentials, `rate_limit` at the limiter, `server`/`transport` at "
                "the broker or the network.",
                "Check the broker's status page and the token panels.",
            ),
        ),
        firing=(
            Firing(
                name=f"{errors} of {ok + errors} calls a minute fail",
                inputs=api_requests(ok, errors),
                onset_seconds=60,
                value=errors / (ok + errors),
                labels=TARGET,
            ),
        ),
        healthy=(
            Healthy(name="1% errors", inputs=api_requests(99, 1)),
            Healthy(name="one failing call a minute on a quiet market", inputs=api_requests(0, 1)),
        ),
    )


def _api(params: RuleParams) -> tuple[AlertDefinition, ...]:
    latency = catalog.API_REQUEST_DURATION
    # The request rate is read over 5 minutes: until the process has been up that long,
    # the window holds the start-up (token, master file, first sweep) and little else.
    uptime = selector(catalog.SYSTEM_UPTIME, params.scope)
    warmed_up = f"on ({params.by}) {uptime} > {params.window_seconds(300)}"
    floor = threshold_of(params, "APIUnresponsive")
    calls_per_minute = int(floor * 30)  # half the floor
    slow = threshold_of(params, "APILatencyHigh")
    above, p99 = p99_bucket(latency.buckets, slow)
    return (
        _error_ratio_alert(params, "HighAPIErrorRate", 5, ok=54, errors=6),
        AlertDefinition(
            rule=alert(
                params,
                "APIUnresponsive",
                f"{recorded(rec.API_REQUEST_RATE, params.scope)} < {threshold(floor)} "
                f"and {market_open(params)} and {warmed_up}",
                for_minutes=5,
                severity="critical",
                summary="Broker API requests nearly stopped while the market is open.",
                description="{{ $labels.instance }} made "
                '{{ $value | printf "%.2f" }} broker API requests per second over 5 minutes '
                f"while the market is open (floor {floor:g}/s).",
            ),
            runbook=RunbookEntry(
                meaning="Fewer than one REST call a second completes during market hours: "
                "calls hang, the limiter is paused, or the sweeps stopped.",
                source_change="The source's floor of one request per second fired every "
                "night; it is now gated on `observer_market_open == 1`. It also fired in the "
                "first seconds after a start, when the 5-minute rate window holds only the "
                "start-up (token, master file) and no sweep yet: it now waits until "
                "`observer_system_uptime_seconds` exceeds the window, so a restart does not "
                "page (ObserverDown and ObserverRestartLoop cover restarts).",
                actions=(
                    "Check the limiter queue depth and rejections (server back-off).",
                    "Check API latency: hanging calls show as a p99 at the time-out.",
                ),
            ),
            firing=(
                Firing(
                    name=f"{calls_per_minute / 60:g} calls a second once the market opens",
                    inputs=(*api_requests(calls_per_minute, 0), OPENS_AT_10M, UP_SINCE_START),
                    onset_seconds=600,
                    value=calls_per_minute / 60,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="market closed",
                    inputs=(*api_requests(0, 0), CLOSED_ALL_DAY, UP_SINCE_START),
                ),
                Healthy(
                    name="2 calls a second",
                    inputs=(*api_requests(120, 0), OPEN_ALL_DAY, UP_SINCE_START),
                ),
                Healthy(
                    name="restarted every 4 minutes, no calls yet",
                    inputs=(*api_requests(0, 0), OPEN_ALL_DAY, RESTARTING),
                ),
            ),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "APILatencyHigh",
                f"{recorded(rec.API_LATENCY, params.scope, quantile='0.99')} > {threshold(slow)}",
                for_minutes=10,
                severity="warning",
                summary="Broker API calls take more than "
                f"{'two seconds' if slow == 2 else seconds_text(slow)}.",
                description="p99 broker API latency on {{ $labels.instance }} is "
                f"{{{{ $value | humanizeDuration }}}} (threshold {seconds_text(slow)}).",
            ),
            runbook=RunbookEntry(
                meaning="The slowest 1 % of market-data calls take over two seconds.",
                source_change="Master-file downloads are left out of the latency quantiles: "
                "they are bulk transfers that take seconds by nature.",
                actions=(
                    "Compare with the broker's status and the network path.",
                    "Check whether calls time out (error class `transport`).",
                ),
            ),
            firing=(
                Firing(
                    name=f"inquire_price takes over {seconds_text(above)}",
                    inputs=histogram(latency, above, "0+60x{n}", endpoint="inquire_price"),
                    onset_seconds=60,
                    value=p99,
                    labels=(*TARGET, ("quantile", "0.99")),
                ),
            ),
            healthy=(
                Healthy(
                    name="fast calls, slow master file",
                    inputs=(
                        *histogram(latency, 0.05, "0+60x{n}", endpoint="inquire_price"),
                        *histogram(latency, 5.0, "0+1x{n}", endpoint="master_file"),
                    ),
                ),
            ),
        ),
        _error_ratio_alert(params, "APICatastrophicErrors", 2, ok=20, errors=40),
    )


def _system(params: RuleParams) -> AlertDefinition:
    up = selector(UP, params.scope)
    return AlertDefinition(
        rule=alert(
            params,
            "SystemDowntime",
            f"absent({up} == 1)",
            for_minutes=2,
            severity="critical",
            summary="No Observer instance is up.",
            description="No Observer target has answered a scrape for "
            f"{in_words(held_seconds(params, 'SystemDowntime', 'critical', 2))} "
            "(absent: {{ $value | humanize }}); nothing is being collected.",
            # absent() of a comparison carries no labels: keep the job for routing.
            labels=params.target_labels,
        ),
        runbook=RunbookEntry(
            meaning="Every Observer instance is down or missing from Prometheus's targets: "
            "the whole system is down, not one shard (that is ObserverDown).",
            source_change="The source's `uptime < 60 s for 2 m` can never hold (uptime grows "
            "past 60 s within the 2 minutes, and a dead process exports nothing). Downtime "
            "is read from Prometheus's own `up` and `absent()`.",
            actions=(
                "Check the Observer processes/containers and their last logs.",
                "Check Prometheus's target page: a missing target is a scrape-config problem.",
            ),
        ),
        firing=(
            Firing(
                name="the only instance is down",
                inputs=(series(UP, "0x{n}"),),
                onset_seconds=0,
                value=1,
                labels=(("job", JOB),),
            ),
            Firing(
                name="no Observer target at all",
                inputs=(series(catalog.MARKET_OPEN, "1x{n}"),),
                onset_seconds=0,
                value=1,
                labels=(("job", JOB),),
            ),
        ),
        healthy=(Healthy(name="instance up", inputs=(series(UP, "1x{n}"),)),),
    )


def _limiter(params: RuleParams) -> tuple[AlertDefinition, ...]:
    depth = selector(catalog.RATE_LIMIT_QUEUE_DEPTH, params.scope, lane="backfill")
    delay = catalog.RATE_LIMIT_DELAY_DURATION
    lane_p99 = recorded(rec.LIMITER_DELAY, params.scope, lane="backfill", quantile="0.99")
    wait = threshold_of(params, "RateLimitHighDelay")
    above, p99 = p99_bucket(delay.buckets, wait)
    starved = in_words(held_seconds(params, "RateLimitTokenStarvation", "warning", 5))
    return (
        AlertDefinition(
            rule=alert(
                params,
                "RateLimitTokenStarvation",
                f"sum by ({params.by}) ({depth}) > 0",
                for_minutes=5,
                severity="warning",
                summary=f"Backfill requests have been waiting for the limiter for {starved}.",
                description="{{ $value | humanize }} backfill requests of "
                "{{ $labels.instance }} are waiting for a limiter token, and the queue has "
                f"not emptied for {starved}.",
            ),
            runbook=RunbookEntry(
                meaning="The priority lane never drains: REST demand is above the per-key "
                "rate limit, so backfills fall behind and gaps stay open.",
                source_change="The source fired on more than 10 delayed requests per second, "
                "but sweeps run as fast as the limiter allows, so nearly every sweep call "
                "waits by design (20/s at the real limit). Starvation is read from the "
                "backfill lane, which has priority, never emptying its queue.",
                actions=(
                    "Check the gap rate: a burst of Track B gaps floods the backfill lane.",
                    "Check `observer_rate_limit_rejections_total`: back-off pauses all lanes.",
                ),
            ),
            firing=(
                Firing(
                    name="three backfills always waiting",
                    inputs=(series(catalog.RATE_LIMIT_QUEUE_DEPTH, "3x{n}", lane="backfill"),),
                    onset_seconds=0,
                    value=3,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="the sweep queue is long, backfill empty",
                    inputs=(
                        series(catalog.RATE_LIMIT_QUEUE_DEPTH, "0x{n}", lane="backfill"),
                        series(catalog.RATE_LIMIT_QUEUE_DEPTH, "2000x{n}", lane="sweep"),
                    ),
                ),
            ),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "RateLimitHighDelay",
                f"{lane_p99} > {threshold(wait)}",
                for_minutes=5,
                severity="warning",
                summary="Backfill requests wait more than "
                f"{'a second' if wait == 1 else seconds_text(wait)} for the limiter.",
                description="p99 limiter wait of backfill requests on {{ $labels.instance }} "
                f"is {{{{ $value | humanizeDuration }}}} (threshold {seconds_text(wait)}).",
            ),
            runbook=RunbookEntry(
                meaning="Priority requests wait over a second for a token: server back-off "
                "(EGW00201) is pausing the limiter, or backfill demand is above the limit.",
                source_change="The source's p99 above 100 ms over all requests always fires: "
                "sweep calls are paced by the limiter by design. The alert reads the backfill "
                "lane, whose requests go first, with a 1 s threshold (one token interval at "
                "the 2/s mock limit is 0.5 s).",
                actions=(
                    "Check `observer_rate_limit_rejections_total` for server back-off.",
                    "Lower `rate_limit.rate_per_second` if the broker still rejects calls.",
                ),
            ),
            firing=(
                Firing(
                    name=f"backfill waits over {seconds_text(above)}",
                    inputs=histogram(delay, above, "0+60x{n}", lane="backfill"),
                    onset_seconds=60,
                    value=p99,
                    labels=(*TARGET, ("lane", "backfill"), ("quantile", "0.99")),
                ),
            ),
            healthy=(
                Healthy(
                    name="sweeps wait long, backfill briefly",
                    inputs=(
                        *histogram(delay, 0.01, "0+60x{n}", lane="backfill"),
                        *histogram(delay, 2.5, "0+600x{n}", lane="sweep"),
                    ),
                ),
            ),
        ),
    )


def service_alerts(params: RuleParams) -> tuple[AlertDefinition, ...]:
    """API, uptime, token and limiter alerts: 6 critical, 4 warning."""
    return (*_api(params), _system(params), *token_alerts(params), *_limiter(params))
