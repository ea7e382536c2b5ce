"""``KisClient``: KIS REST calls through the rate limiter, each one measured and classified.

Every call counts ``observer_api_requests_total{endpoint,outcome}``, observes
``observer_api_request_duration_seconds{endpoint}`` and, when it fails,
``observer_api_errors_total{endpoint,error_class}``. What a failure means is
decided by ``observer.kis.errors.classify`` from the body's codes; what to do
about it by the pure ``observer.kis.retry.RetryPolicy``: the client retries on
its own only what it can cure — an expired/invalid token (refreshed once, then
the call is retried once) and EGW00201 (the limiter backs off, then the call is
retried up to twice). Anything else raises ``KisApiError`` for the caller to
decide.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import aiohttp
import yarl

from metrics import catalog
from metrics.registry import Metrics
from observer.config import TokenSettings
from observer.credentials import Credentials
from observer.kis.errors import (
    Classification,
    KisApiError,
    classify,
    describe_transport_error,
    transport_failure,
)
from observer.kis.retry import Retry, RetryPolicy
from observer.kis.token import AccessToken, TokenCache, TokenManager, parse_token_answer
from observer.limiter import Grant, RateLimiter
from observer.market import KST
from observer.records import Snapshot, Trade

log = logging.getLogger(__name__)

PRICE_PATH = "/uapi/domestic-stock/v1/quotations/inquire-price"
TRADES_PATH = "/uapi/domestic-stock/v1/quotations/inquire-time-itemconclusion"
HOLIDAY_PATH = "/uapi/domestic-stock/v1/quotations/chk-holiday"
VOLUME_RANK_PATH = "/uapi/domestic-stock/v1/quotations/volume-rank"
# The portal's volume-rank query (v1_국내주식-047): all KRX shares ("0000"), ranked by
# volume ("0"), every margin class, nothing excluded, no price or volume bounds.
VOLUME_RANK_QUERY = {
    "FID_COND_MRKT_DIV_CODE": "J",
    "FID_COND_SCR_DIV_CODE": "20171",
    "FID_INPUT_ISCD": "0000",
    "FID_DIV_CLS_CODE": "0",
    "FID_BLNG_CLS_CODE": "0",
    "FID_TRGT_CLS_CODE": "111111111",
    "FID_TRGT_EXLS_CLS_CODE": "0000000000",
    "FID_INPUT_PRICE_1": "",
    "FID_INPUT_PRICE_2": "",
    "FID_VOL_CNT": "",
    "FID_INPUT_DATE_1": "",
}
TOKEN_PATH = "/oauth2/tokenP"
APPROVAL_PATH = "/oauth2/Approval"
MASTER_PATH = "/common/master/{market}_code.mst.zip"
MORE_PAGES = frozenset({"F", "M"})  # tr_cont header: F/M more pages follow, D/E last page


@dataclass(frozen=True, slots=True)
class TradesPage:
    """One trades-by-time page, newest first; ``more`` when the server says a next page exists.

    ``more`` follows the ``tr_cont`` response header (F/M more, D/E last); when the
    server sends no such header, ``more`` is True for a non-empty page, so callers
    page on (``before`` = the oldest row's time) until a page comes back empty.
    """

    trades: list[Trade]
    more: bool


@dataclass(frozen=True, slots=True)
class RankedSymbol:
    """One row of the volume ranking: the symbol, its rank (1 = most traded) and volume."""

    symbol: str
    rank: int
    cumulative_volume: int


@dataclass(frozen=True, slots=True)
class _Answer:
    body: dict[str, Any]
    headers: Mapping[str, str]


def _int(value: object) -> int:
    try:
        return int(float(str(value).strip() or "0"))
    except (ValueError, OverflowError):  # "abc", "nan"; "inf", "1e400"
        return 0


def parse_snapshot(symbol: str, body: Mapping[str, Any], *, collected_at: float) -> Snapshot:
    """A Snapshot from an ``inquire-price`` answer; extra fields are kept, missing ones are 0.

    ``{"rt_cd":"0","msg_cd":"MCA00000","output":{"stck_prpr":"71500","acml_vol":"1234567",…}}``
    """
    output = body.get("output")
    fields = {str(k): str(v) for k, v in output.items()} if isinstance(output, Mapping) else {}
    return Snapshot(
        symbol=symbol,
        collected_at=collected_at,
        price=_int(fields.get("stck_prpr")),
        cumulative_volume=_int(fields.get("acml_vol")),
        fields=fields,
    )


def parse_trades(symbol: str, body: Mapping[str, Any], *, business_date: str) -> list[Trade]:
    """Trades from an ``inquire-time-itemconclusion`` answer (rows in ``output2`` or ``output``).

    ``{"output2":[{"stck_cntg_hour":"101502","stck_prpr":"71500","cntg_vol":"12",
    "acml_vol":"1234567"},…]}``; rows without a time or a cumulative volume are skipped.
    """
    rows = body.get("output2")
    if not isinstance(rows, list):
        rows = body.get("output")
    trades: list[Trade] = []
    for row in rows if isinstance(rows, list) else ():
        if not isinstance(row, Mapping):
            continue
        hour = str(row.get("stck_cntg_hour", "")).strip()
        cumulative = _int(row.get("acml_vol"))
        if len(hour) != 6 or not hour.isdigit() or cumulative <= 0:
            continue
        trades.append(
            Trade(
                symbol=symbol,
                business_date=str(row.get("bsop_date") or business_date),
                time=hour,
                price=_int(row.get("stck_prpr")),
                volume=_int(row.get("cntg_vol")),
                cumulative_volume=cumulative,
                source="backfill",
            )
        )
    return trades


def parse_volume_rank(body: Mapping[str, Any]) -> list[RankedSymbol]:
    """The rows of a ``volume-rank`` answer (FHPST01710000), most traded first.

    ``{"rt_cd":"0","msg_cd":"MCA00000","output":[{"hts_kor_isnm":"삼성전자",
    "mksc_shrn_iscd":"005930","data_rank":"1","stck_prpr":"71500","acml_vol":"13921547",
    "prdy_vol":"9847002","acml_tr_pbmn":"995390601500",…},…]}``. Rows without a
    6-digit code are skipped, a repeated code keeps its first row; a missing or
    unreadable ``data_rank`` is the row's position. Sorted by rank.
    """
    rows = body.get("output")
    ranked: dict[str, RankedSymbol] = {}
    for position, row in enumerate(rows if isinstance(rows, list) else (), start=1):
        if not isinstance(row, Mapping):
            continue
        symbol = str(row.get("mksc_shrn_iscd", "")).strip()
        if len(symbol) != 6 or not (symbol.isascii() and symbol.isdigit()) or symbol in ranked:
            continue
        rank = _int(row.get("data_rank")) or position
        ranked[symbol] = RankedSymbol(symbol, rank, _int(row.get("acml_vol")))
    return sorted(ranked.values(), key=lambda row: row.rank)


def parse_holidays(body: Mapping[str, Any]) -> dict[str, bool]:
    """``chk-holiday`` rows as YYYYMMDD → market open that day (``opnd_yn == "Y"``)."""
    rows = body.get("output")
    days: dict[str, bool] = {}
    for row in rows if isinstance(rows, list) else ():
        if isinstance(row, Mapping) and row.get("bass_dt"):
            days[str(row["bass_dt"])] = str(row.get("opnd_yn", "N")).upper() == "Y"
    return days


class KisClient:
    """REST client of one app key against one KIS-compatible endpoint.

    ``http`` is owned by the caller (one ``aiohttp.ClientSession`` for the
    process). ``tokens`` is built here so that issuance goes through this
    client; pass ``token_cache_dir=None`` to keep tokens in memory only.
    ``on_secret`` receives every access token and approval key as soon as it is
    known, so log and error-report scrubbers can remove them.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        rest_url: str,
        credentials: Credentials,
        *,
        limiter: RateLimiter,
        metrics: Metrics,
        token_settings: TokenSettings | None = None,
        token_cache_dir: Path | None = None,
        master_url: str | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
        on_secret: Callable[[str], None] = lambda value: None,
        on_token_failure: Callable[[KisApiError], None] = lambda error: None,
    ) -> None:
        self._http = http
        self._on_secret = on_secret
        self.rest_url = rest_url.rstrip("/")
        self.master_url = (master_url or rest_url).rstrip("/")
        self._credentials = credentials
        self.limiter = limiter
        self._metrics = metrics
        self._retry_policy = retry_policy or RetryPolicy()
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._clock = clock
        self._approval_key: str | None = None
        cache = TokenCache(token_cache_dir, credentials, self.rest_url) if token_cache_dir else None
        self.tokens = TokenManager(
            self._issue_token,
            token_settings or TokenSettings(),
            cache=cache,
            metrics=metrics,
            on_secret=on_secret,
            on_failure=on_token_failure,
        )

    # --- business calls ----------------------------------------------------------
    async def inquire_price(self, symbol: str, *, lane: str = "sweep") -> Snapshot:
        """The current-price snapshot of ``symbol`` (TR FHKST01010100)."""
        params = {"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": symbol}
        answer = await self._business("inquire_price", PRICE_PATH, "FHKST01010100", params, lane)
        return parse_snapshot(symbol, answer.body, collected_at=self._clock())

    async def trades_by_time(
        self,
        symbol: str,
        before: str,
        *,
        lane: str = "backfill",
        business_date: str | None = None,
    ) -> TradesPage:
        """One page of trades at or before ``before`` (HHMMSS, KST), newest first (FHPST01060000).

        ``business_date`` (YYYYMMDD) stamps rows that carry none; default: today in KST.
        """
        params = {
            "FID_COND_MRKT_DIV_CODE": "J",
            "FID_INPUT_ISCD": symbol,
            "FID_INPUT_HOUR_1": before,
        }
        answer = await self._business("time_conclusion", TRADES_PATH, "FHPST01060000", params, lane)
        day = business_date or dt.datetime.fromtimestamp(self._clock(), KST).strftime("%Y%m%d")
        trades = parse_trades(symbol, answer.body, business_date=day)
        tr_cont = answer.headers.get("tr_cont", "").strip().upper()
        return TradesPage(trades, tr_cont in MORE_PAGES if tr_cont else bool(trades))

    async def holidays(self, base_date: str) -> dict[str, bool]:
        """Days from ``base_date`` (YYYYMMDD) on → open or not (TR CTCA0903R); call once a day."""
        params = {"BASS_DT": base_date, "CTX_AREA_NK": "", "CTX_AREA_FK": ""}
        answer = await self._business("holiday", HOLIDAY_PATH, "CTCA0903R", params, "sweep")
        return parse_holidays(answer.body)

    async def volume_rank(self, *, lane: str = "backfill") -> list[RankedSymbol]:
        """The most traded KRX shares now, most traded first (TR FHPST01710000, up to 30 rows).

        Through the limiter like every business call; ``lane`` defaults to the
        priority lane (one call at start that should not wait behind a sweep).
        """
        answer = await self._business(
            "volume_rank", VOLUME_RANK_PATH, "FHPST01710000", dict(VOLUME_RANK_QUERY), lane
        )
        return parse_volume_rank(answer.body)

    async def approval_key(self, *, renew: bool = False) -> str:
        """The WebSocket approval key (kept for the process; ``renew`` after OPSP0011)."""
        if self._approval_key is None or renew:
            body = {
                "grant_type": "client_credentials",
                "appkey": self._credentials.app_key,
                "secretkey": self._credentials.app_secret,
            }
            answer = await self._send(
                "approval", "POST", APPROVAL_PATH, lane="backfill", json_body=body
            )
            key = answer.body.get("approval_key")
            if not isinstance(key, str) or not key:
                raise KisApiError("approval", transport_failure("no_approval_key_in_answer"))
            self._on_secret(key)
            self._approval_key = key
        return self._approval_key

    async def master_file(self, market: Literal["kospi", "kosdaq"]) -> bytes:
        """The zipped master file of ``market`` (public download, no token, not rate-limited)."""
        url = self.master_url + MASTER_PATH.format(market=market)
        started = time.perf_counter()
        try:
            async with self._http.get(url, timeout=self._timeout) as response:
                data = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            lost = transport_failure(type(exc).__name__)
            self._observe("master_file", started, lost)
            detail = describe_transport_error("GET", _plain_url(url), exc)
            raise KisApiError("master_file", lost, detail) from exc
        failure = classify(http_status=status)
        self._observe("master_file", started, failure)
        if failure is not None:
            raise KisApiError("master_file", failure, f"GET {_plain_url(url)} HTTP {status}")
        return data

    # --- plumbing ----------------------------------------------------------------
    async def _issue_token(self) -> AccessToken:
        body = {
            "grant_type": "client_credentials",
            "appkey": self._credentials.app_key,
            "appsecret": self._credentials.app_secret,
        }
        answer = await self._send("token", "POST", TOKEN_PATH, lane="backfill", json_body=body)
        try:
            return parse_token_answer(answer.body, received_at=self._clock())
        except ValueError as exc:
            raise KisApiError("token", transport_failure("no_token_in_answer")) from exc

    async def _business(
        self, endpoint: str, path: str, tr_id: str, params: dict[str, str], lane: str
    ) -> _Answer:
        token = await self.tokens.get()
        generation = self.tokens.generation  # read with no await between: this token's
        retries = self._retry_policy.for_call()
        while True:
            headers = {
                "authorization": f"Bearer {token}",
                "appkey": self._credentials.app_key,
                "appsecret": self._credentials.app_secret,
                "tr_id": tr_id,
                "custtype": "P",
            }
            try:
                return await self._send(
                    endpoint, "GET", path, lane=lane, params=params, headers=headers
                )
            except KisApiError as exc:
                step = retries.after(exc.classification)
                if step is Retry.GIVE_UP:
                    raise
                if step is Retry.REFRESH_TOKEN:
                    token = await self.tokens.invalidate(token, generation=generation)
                    generation = self.tokens.generation
                # Retry.BACK_OFF: _send told the limiter, whose pause the next acquire waits

    async def _send(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        lane: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        json_body: dict[str, str] | None = None,
    ) -> _Answer:
        """One HTTP exchange through the limiter; KisApiError unless the body says success."""
        grant = await self.limiter.acquire(lane)
        started = time.perf_counter()
        try:
            async with self._http.request(
                method,
                self.rest_url + path,
                params=params,
                headers=headers,
                json=json_body,
                timeout=self._timeout,
                trace_request_ctx=_SendMark(self.limiter, grant),
            ) as response:
                self.limiter.mark_answered(grant)
                raw = await response.read()
                status, response_headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            lost = transport_failure(type(exc).__name__)
            self._observe(endpoint, started, lost)
            detail = describe_transport_error(method, _plain_url(self.rest_url + path), exc)
            raise KisApiError(endpoint, lost, detail) from exc
        finally:
            self.limiter.mark_answered(grant)  # no-op once answered; settles failures
        body = _json_object(raw)
        failure = classify(
            rt_cd=_opt_str(body.get("rt_cd")),
            msg_cd=_opt_str(body.get("msg_cd")),
            error_code=_opt_str(body.get("error_code")),
            http_status=status,
        )
        self._observe(endpoint, started, failure)
        if failure is None:
            return _Answer(body, {k.lower(): v for k, v in response_headers.items()})
        if failure.rate_limited and endpoint != "token":
            self.limiter.server_rejected()
        message = _opt_str(body.get("msg1") or body.get("error_description")) or ""
        where = f"{method} {_plain_url(self.rest_url + path)} HTTP {status}"
        raise KisApiError(endpoint, failure, f"{where}: {message}" if message else where)

    def _observe(self, endpoint: str, started: float, failure: Classification | None) -> None:
        elapsed = time.perf_counter() - started
        outcome = "ok" if failure is None else "error"
        self._metrics.counter(catalog.API_REQUESTS).labels(endpoint, outcome).inc()
        self._metrics.histogram(catalog.API_REQUEST_DURATION).labels(endpoint).observe(elapsed)
        if failure is not None:
            error_class = failure.error_class.value
            self._metrics.counter(catalog.API_ERRORS).labels(endpoint, error_class).inc()
            log.debug("api error endpoint=%s class=%s code=%s", endpoint, error_class, failure.code)


@dataclass(frozen=True, slots=True)
class _SendMark:
    limiter: RateLimiter
    grant: Grant


async def _headers_sent(
    _session: aiohttp.ClientSession,
    context: SimpleNamespace,
    _params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    mark = getattr(context, "trace_request_ctx", None)
    if isinstance(mark, _SendMark):
        mark.limiter.mark_sent(mark.grant)


def send_time_tracing() -> aiohttp.TraceConfig:
    """A trace config for the ``ClientSession`` a KisClient uses: it tells the limiter when
    each request was really written, so a send delayed in this process (the event loop or
    the GIL busy elsewhere) counts in the rate window at its real time, not its grant time.
    Without it the limiter counts grant times, and its safety margin must absorb the delay.
    """
    tracing = aiohttp.TraceConfig()
    tracing.on_request_headers_sent.append(_headers_sent)
    return tracing


def _plain_url(url: str) -> str:
    """``url`` without user info or query (neither belongs in a log line)."""
    try:
        return str(yarl.URL(url).with_user(None).with_query(None).with_fragment(None))
    except (ValueError, TypeError):
        return "(unparsable URL)"


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


__all__ = [
    "KisClient",
    "RankedSymbol",
    "TradesPage",
    "parse_holidays",
    "parse_snapshot",
    "parse_trades",
    "parse_volume_rank",
    "send_time_tracing",
]
