"""Source-design alerts on the access token: validity low, expired, refresh failing."""

from __future__ import annotations

from metrics import catalog
from metrics.promql import selector
from rules.build import alert, held_seconds, in_words, threshold
from rules.inputs import TARGET, series
from rules.model import AlertDefinition, Firing, Healthy, RunbookEntry
from rules.params import RuleParams
from rules.thresholds import threshold_of

# Refreshes start `token.refresh_margin_seconds` (5 h) before expiry; below 4 h they have
# been failing for an hour.
REFRESH_OVERDUE_SECONDS = 4 * 3600


def token_alerts(params: RuleParams) -> tuple[AlertDefinition, ...]:
    validity = selector(catalog.TOKEN_VALIDITY, params.scope)
    failures = selector(catalog.TOKEN_REFRESHES, params.scope, result="failure")
    low = threshold_of(params, "TokenValidityLow")
    left = int(low) - 600  # ten minutes under the threshold, falling a second per second
    fires_after = held_seconds(params, "TokenValidityLow", "warning", 1)
    return (
        AlertDefinition(
            rule=alert(
                params,
                "TokenValidityLow",
                f"{validity} < {threshold(low)}",
                for_minutes=1,
                severity="warning",
                summary=f"The access token expires within {in_words(int(low))}."
                if low != 3600
                else "The access token expires within the hour.",
                description="The access token of {{ $labels.instance }} expires in "
                "{{ $value | humanizeDuration }}.",
            ),
            runbook=RunbookEntry(
                meaning="The token is less than an hour from expiry although refreshes start "
                "five hours ahead: refreshes have been failing or not running.",
                source_change="Kept. TokenExpired inhibits it for the same instance.",
                actions=(
                    "Look for TokenRefreshFailure and `observer_token_refreshes_total"
                    '{result="failure"}`.',
                    "Check the token cache file (mode 0600) in the data directory.",
                ),
            ),
            firing=(
                Firing(
                    name=f"{in_words(left)} left",
                    inputs=(series(catalog.TOKEN_VALIDITY, f"{left}-60x{{n}}"),),
                    onset_seconds=0,
                    value=left - fires_after,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="fresh token",
                    inputs=(series(catalog.TOKEN_VALIDITY, "80000-60x{n}"),),
                ),
            ),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "TokenExpired",
                f"{validity} <= 0",
                for_minutes=1,
                severity="critical",
                summary="The access token has expired.",
                description="The access token of {{ $labels.instance }} has a validity of "
                "{{ $value | humanizeDuration }}; every broker call is refused.",
            ),
            runbook=RunbookEntry(
                meaning="Observer holds no valid token: every REST call and the WebSocket "
                "approval fail until a new token is issued.",
                source_change="`< 0` became `<= 0` so that a token that expires exactly at "
                "a scrape still counts.",
                actions=(
                    "Check the app key and secret (`KIS_APP_KEY`, `KIS_APP_SECRET`) and "
                    "whether the broker suspended them.",
                    "Restarting does not help within a minute: tokens are issued at most once "
                    "a minute (EGW00133).",
                ),
            ),
            firing=(
                Firing(
                    name="expired a minute ago",
                    inputs=(series(catalog.TOKEN_VALIDITY, "-60-60x{n}"),),
                    onset_seconds=0,
                    value=-120,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(name="valid", inputs=(series(catalog.TOKEN_VALIDITY, "80000-60x{n}"),)),
            ),
        ),
        AlertDefinition(
            rule=alert(
                params,
                "TokenRefreshFailure",
                f"sum by ({params.by}) (increase({failures}[{params.window(1800)}])) > 0 "
                f"and on ({params.by}) {validity} < {REFRESH_OVERDUE_SECONDS}",
                for_minutes=10,
                severity="critical",
                summary="Token refreshes keep failing and the token is past its refresh point.",
                description="{{ $value | humanize }} token refresh attempts by "
                "{{ $labels.instance }} failed in the last 30 minutes and the token expires "
                "in less than 4 hours.",
            ),
            runbook=RunbookEntry(
                meaning="Observer tried to refresh its token and failed, and the token it "
                "holds is more than an hour past the point refreshes start.",
                source_change="The source alerted on fewer than one refresh per hour, but a "
                "token lives 24 h and is refreshed about once a day, so that fired all day. "
                'It now needs failed attempts (`result="failure"`) while validity is below '
                "4 h; `for` is 10 minutes instead of 30 so there is still time to act.",
                actions=(
                    "Read the refresh error class in the logs (auth, rate limit, server).",
                    "Check the broker's token endpoint and the credentials.",
                ),
            ),
            firing=(
                Firing(
                    name="one failure a minute with under 4 h left",
                    inputs=(
                        series(catalog.TOKEN_REFRESHES, "0+1x{n}", result="failure"),
                        series(catalog.TOKEN_VALIDITY, "14000-60x{n}"),
                    ),
                    onset_seconds=60,
                    value=11,
                    labels=TARGET,
                ),
            ),
            healthy=(
                Healthy(
                    name="a failed retry with a fresh token",
                    inputs=(
                        series(catalog.TOKEN_REFRESHES, "0+1x{n}", result="failure"),
                        series(catalog.TOKEN_VALIDITY, "80000-60x{n}"),
                    ),
                ),
                Healthy(
                    name="refresh not yet due",
                    inputs=(
                        series(catalog.TOKEN_REFRESHES, "0x{n}", result="failure"),
                        series(catalog.TOKEN_VALIDITY, "20000-60x{n}"),
                    ),
                ),
            ),
        ),
    )
