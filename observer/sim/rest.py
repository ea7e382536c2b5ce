"""The simulator's REST side: an aiohttp app with the KIS paths and the ``/sim/`` controls.

Every business call (``/uapi/…``) goes through, in order: the ``latency`` and
``rest_errors`` faults, the per-app-key rate limit (excess → HTTP 500
EGW00201), the token check (EGW00121/122/123 with the configured HTTP status),
the ``tr_id`` check, then the handler. ``/oauth2/*`` calls are not rate-limited
(the broker limits token grants by its own 1-per-minute rule); master files are
public downloads: neither limited nor authenticated. ``/sim/*`` is never delayed
or failed. Header names are case-insensitive, query names are accepted in
either case, ``custtype`` is optional and unknown fields are ignored. Every
``/uapi/`` and ``/oauth2/`` call is also counted for the app key it names (the
``appkey`` header, or the body's ``appkey`` for OAuth) in ``/sim/stats`` ``keys``.
"""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from typing import Any

from aiohttp import web

from observer.credentials import APP_KEY_LENGTH, APP_SECRET_LENGTH
from observer.kis.master import Market, zip_master
from observer.sim.calendar import (
    DAY_SECONDS,
    FIRST_DAY,
    LAST_DAY,
    format_kst,
    kst_date,
    midnight,
    parse_business_date,
    yyyymmdd,
)
from observer.sim.faults import Fault, FaultError, parse_fault
from observer.sim.model import SymbolProcess
from observer.sim.quotes import (
    conclusion_page,
    conclusion_row,
    price_output,
    sign_code,
    volume_rank_row,
    zeroed_price_output,
)
from observer.sim.state import ExchangeState
from observer.sim.tokens import MESSAGES, IssuedToken, Refusal

QUOTATIONS = "/uapi/domestic-stock/v1/quotations"
PRICE_PATH = f"{QUOTATIONS}/inquire-price"
TRADES_PATH = f"{QUOTATIONS}/inquire-time-itemconclusion"
HOLIDAY_PATH = f"{QUOTATIONS}/chk-holiday"
VOLUME_RANK_PATH = f"{QUOTATIONS}/volume-rank"
TR_IDS = {
    PRICE_PATH: "FHKST01010100",
    TRADES_PATH: "FHPST01060000",
    HOLIDAY_PATH: "CTCA0903R",
    VOLUME_RANK_PATH: "FHPST01710000",
}
VOLUME_RANK_ROWS = 30  # the broker answers the top 30, without further pages
OK_MESSAGE = "정상처리 되었습니다."
RATE_MESSAGE = "초당 거래건수를 초과하였습니다."
HOLIDAY_ROWS = 30
BAD_INPUT = "OPSQ2001"  # KIS's msg_cd for an input field it cannot use
MAX_JSON_DEPTH = 32  # fault and OAuth bodies are flat; deeper nesting is hostile

FaultHandler = Callable[[Fault], Awaitable[None]]
Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.Response]]
OAuthHandler = Callable[[dict[str, Any]], Awaitable[web.Response]]


class Answer(web.Response):
    """A JSON response that remembers how the call was answered (for ``/sim/stats``)."""

    outcome = "ok"  # or the msg_cd / error_code of a refusal
    app_key: str | None = None  # the key the call named, counted under its fingerprint


def _named(response: web.Response, app_key: str) -> web.Response:
    """``response``, marked as the answer to a call naming ``app_key``."""
    if isinstance(response, Answer):
        response.app_key = app_key
    return response


def _json(
    body: Any,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    outcome: str = "ok",
) -> Answer:
    answer = Answer(
        text=json.dumps(body, ensure_ascii=False),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )
    answer.outcome = outcome
    return answer


def _failure(msg_cd: str, status: int, message: str | None = None) -> web.Response:
    text = message or MESSAGES.get(msg_cd, RATE_MESSAGE if msg_cd == "EGW00201" else msg_cd)
    return _json({"rt_cd": "1", "msg_cd": msg_cd, "msg1": text}, status=status, outcome=msg_cd)


class BadBody(Exception):
    """A request body the simulator cannot read; ``status`` and the message say why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_json(request: web.Request) -> Any:
    """The JSON body of ``request``, read with bounds; raises BadBody (4xx) on anything else.

    The declared charset must exist (a bogus one is 415, not a LookupError), the
    text must decode and parse, and nesting deeper than ``MAX_JSON_DEPTH`` is
    refused (a 100k-deep array would exhaust the parser's recursion).
    """
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadBody(413, "body too large") from None
    charset = request.charset or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        raise BadBody(415, f"unsupported charset {charset[:40]!r}") from None
    try:
        document = json.loads(raw.decode(charset))
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise BadBody(400, "body is not valid JSON") from None
    except RecursionError:
        raise BadBody(400, f"body nested deeper than {MAX_JSON_DEPTH} levels") from None
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        raise BadBody(400, f"body nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def _depth_exceeds(document: Any, limit: int) -> bool:
    """True when lists/objects nest deeper than ``limit`` (iterative: no recursion)."""
    if not isinstance(document, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


async def _body(request: web.Request) -> dict[str, Any]:
    """An OAuth body as a mapping; unreadable bodies are empty (the grant is then refused)."""
    try:
        body = await read_json(request)
    except BadBody:
        return {}
    return body if isinstance(body, dict) else {}


def _fault_refusal(status: int, message: str) -> web.Response:
    """A refused ``/sim/faults`` body: KIS-style fields, and ``error`` as before."""
    body = {"rt_cd": "1", "msg_cd": BAD_INPUT, "msg1": message, "error": message}
    return _json(body, status=status, outcome=BAD_INPUT)


CREDENTIAL_RULE = (
    f"the simulator accepts any app key of {APP_KEY_LENGTH} characters with an app secret "
    f"of {APP_SECRET_LENGTH} (observer sim prints one such pair at start)"
)


def _oauth_refusal(refusal: Refusal, *, hint: bool = False) -> web.Response:
    """KIS's refusal body; ``hint``: plus ``sim_hint``, the credential rule in English
    (an extra field, which KIS clients ignore), for a malformed pair."""
    body = {"error_code": refusal.error_code, "error_description": refusal.description}
    if hint and refusal.error_code in ("EGW00103", "EGW00105"):
        body["sim_hint"] = CREDENTIAL_RULE
    return _json(body, status=403, outcome=refusal.error_code)


class RestApi:
    """The handlers of one exchange; ``app()`` builds the aiohttp application."""

    def __init__(self, state: ExchangeState, on_fault: FaultHandler) -> None:
        self.state = state
        self.on_fault = on_fault
        self._master_cache: dict[tuple[date, Market], bytes] = {}

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count_and_delay])
        routes = [
            web.post("/oauth2/tokenP", self._oauth(self.token)),
            web.post("/oauth2/revokeP", self._oauth(self.revoke)),
            web.post("/oauth2/Approval", self._oauth(self.approval)),
            web.get(PRICE_PATH, self._business(self.inquire_price)),
            web.get(TRADES_PATH, self._business(self.trades_by_time)),
            web.get(HOLIDAY_PATH, self._business(self.holidays)),
            web.get(VOLUME_RANK_PATH, self._business(self.volume_rank)),
            web.get("/common/master/{market:kospi|kosdaq}_code.mst.zip", self.master),
            web.get("/sim/stats", self.sim_stats),
            web.post("/sim/faults", self.sim_inject),
            web.delete("/sim/faults", self.sim_clear),
        ]
        app.add_routes(routes)
        return app

    @web.middleware
    async def _count_and_delay(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/sim/"):
            return await handler(request)
        delay = self.state.faults.latency_seconds(self.state.real())
        if delay > 0:
            await asyncio.sleep(delay)
        response = await handler(request)
        if request.match_info.http_exception is None:  # known paths only: stats stay bounded
            outcome = response.outcome if isinstance(response, Answer) else "ok"
            self.state.counters.request(request.path, outcome)
            if isinstance(response, Answer):
                business = request.path.startswith("/uapi/")
                self.state.keys.call(response.app_key, business=business, outcome=outcome)
        return response

    def _business(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def guarded(request: web.Request) -> web.Response:
            response = await self._guard(request)
            if response is None:
                query = {key.lower(): value for key, value in request.query.items()}
                response = await handler(request, query)
            return _named(response, request.headers.get("appkey", ""))

        return guarded

    def _oauth(self, handler: OAuthHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def keyed(request: web.Request) -> web.Response:
            body = await _body(request)
            return _named(await handler(body), str(body.get("appkey", "")))

        return keyed

    async def _guard(self, request: web.Request) -> web.Response | None:
        state, now = self.state, self.state.real()
        injected = state.faults.rest_error(now)
        if injected is not None:
            return _failure(injected.msg_cd, injected.http_status)
        app_key = request.headers.get("appkey", "")
        if not state.limits.admit(app_key, now):
            return _failure("EGW00201", 500)
        refused = state.tokens.check(
            request.headers.get("authorization"), app_key, request.headers.get("appsecret", "")
        )
        if refused is not None:
            status = state.settings.token_error_http_status
            return _failure(refused, status)
        expected = TR_IDS[request.path]
        if request.headers.get("tr_id", "").strip() != expected:
            message = f"tr_id must be {expected} for this path"
            return _failure("OPSQ0002", 500, message)
        return None

    # -- /oauth2 -------------------------------------------------------------------------

    async def token(self, body: dict[str, Any]) -> web.Response:
        tokens = self.state.tokens
        app_key = str(body.get("appkey", ""))
        issued_before = tokens.tokens_issued
        result = tokens.grant(app_key, str(body.get("appsecret", "")))
        if isinstance(result, Refusal):
            return _oauth_refusal(result, hint=not tokens.restricted)
        self.state.keys.token_granted(app_key, new=tokens.tokens_issued > issued_before)
        return _json(self._token_body(result))

    def _token_body(self, token: IssuedToken) -> dict[str, Any]:
        return {
            "access_token": token.value,
            "access_token_token_expired": format_kst(token.expires_at),
            "token_type": "Bearer",
            "expires_in": self.state.tokens.remaining_seconds(token),
        }

    async def revoke(self, body: dict[str, Any]) -> web.Response:
        refusal = self.state.tokens.revoke(
            str(body.get("appkey", "")), str(body.get("appsecret", "")), str(body.get("token", ""))
        )
        if refusal is not None:
            return _oauth_refusal(refusal)
        return _json({"code": 200, "message": "접근토큰 폐기에 성공하였습니다"})

    async def approval(self, body: dict[str, Any]) -> web.Response:
        app_key = str(body.get("appkey", ""))
        if "secretkey" not in body:  # KIS names it secretkey here, not appsecret
            refusal = Refusal("EGW00105")
            text = "secretkey is required (the app secret, named secretkey for this call)"
            body = {"error_code": refusal.error_code, "error_description": text}
            return _json(body, 403, outcome=refusal.error_code)
        result = self.state.tokens.approve(app_key, str(body["secretkey"]))
        if isinstance(result, Refusal):
            return _oauth_refusal(result)
        self.state.keys.approval_issued(app_key)
        return _json({"approval_key": result})

    # -- quotations ----------------------------------------------------------------------

    def _listed_process(self, code: str) -> SymbolProcess | None:
        state = self.state
        now = state.clock.now()
        if not state.model.universe.is_listed(code, kst_date(now)):
            return None
        return state.model.process(code, now)

    async def inquire_price(self, request: web.Request, query: dict[str, str]) -> web.Response:
        process = self._listed_process(query.get("fid_input_iscd", "").strip())
        output = zeroed_price_output() if process is None else price_output(process)
        body = {"output": output, "rt_cd": "0", "msg_cd": "MCA00000", "msg1": OK_MESSAGE}
        return _json(body, headers={"tr_id": TR_IDS[PRICE_PATH], "tr_cont": "D"})

    async def trades_by_time(self, request: web.Request, query: dict[str, str]) -> web.Response:
        hour = query.get("fid_input_hour_1", "").strip() or "235959"
        if len(hour) != 6 or not (hour.isascii() and hour.isdigit()):
            message = "FID_INPUT_HOUR_1 must be HHMMSS"
            return _failure(BAD_INPUT, 400, message)
        process = self._listed_process(query.get("fid_input_iscd", "").strip())
        rows: list[dict[str, str]] = []
        summary: dict[str, str] = {}
        more = False
        if process is not None:
            day_start = midnight(process.day)
            ticks = process.tape.between(day_start, day_start + DAY_SECONDS)
            page, more = conclusion_page(ticks, hour, self.state.settings.backfill_page_rows)
            rows = [conclusion_row(tick) for tick in page]
            price, base = process.price, process.base
            summary = {
                "stck_prpr": str(price),
                "prdy_vrss": str(price - base),
                "prdy_vrss_sign": sign_code(price, base),
                "prdy_ctrt": f"{(price - base) / base * 100:.2f}",
                "acml_vol": str(process.cumulative_volume),
                "stck_sdpr": str(base),
            }
        body = {
            "output1": summary,
            "output2": rows,
            "rt_cd": "0",
            "msg_cd": "MCA00000",
            "msg1": OK_MESSAGE,
        }
        headers = {"tr_id": TR_IDS[TRADES_PATH], "tr_cont": "M" if more else "D"}
        return _json(body, headers=headers)

    async def holidays(self, request: web.Request, query: dict[str, str]) -> web.Response:
        text = query.get("bass_dt", "").strip()
        first = kst_date(self.state.clock.now())
        if text:
            parsed = parse_business_date(text)
            if parsed is None:
                message = (
                    f"BASS_DT must be YYYYMMDD from {yyyymmdd(FIRST_DAY)} to {yyyymmdd(LAST_DAY)}"
                )
                return _failure(BAD_INPUT, 400, message)
            first = parsed
        rows = self.state.model.calendar.holiday_rows(first, HOLIDAY_ROWS)
        body = {
            "output": rows,
            "ctx_area_fk": "",
            "ctx_area_nk": "",
            "rt_cd": "0",
            "msg_cd": "MCA00000",
            "msg1": OK_MESSAGE,
        }
        return _json(body, headers={"tr_id": TR_IDS[HOLIDAY_PATH], "tr_cont": "D"})

    async def volume_rank(self, request: web.Request, query: dict[str, str]) -> web.Response:
        """The listed shares ranked by the volume they traded today, top ``VOLUME_RANK_ROWS``.

        The query's filters (market, class, price and volume bounds) are accepted
        and not applied: every simulated instrument is a KRX common share.
        """
        state = self.state
        now = state.clock.now()
        processes = [
            process
            for code in state.model.listed_codes(now)
            if (process := state.model.process(code, now)) is not None and not process.delisted
        ]
        processes.sort(key=lambda process: (-process.cumulative_volume, process.instrument.code))
        rows = [
            volume_rank_row(process, rank)
            for rank, process in enumerate(processes[:VOLUME_RANK_ROWS], start=1)
        ]
        body = {"output": rows, "rt_cd": "0", "msg_cd": "MCA00000", "msg1": OK_MESSAGE}
        return _json(body, headers={"tr_id": TR_IDS[VOLUME_RANK_PATH], "tr_cont": "D"})

    async def master(self, request: web.Request) -> web.Response:
        market: Market = "kospi" if request.match_info["market"] == "kospi" else "kosdaq"
        day = kst_date(self.state.clock.now())
        if (day, market) not in self._master_cache:
            universe = self.state.model.universe
            bases = {code: item.base_price for code, item in universe.instruments.items()}
            mst = universe.master_file(day, market, bases)
            cache = {key: value for key, value in self._master_cache.items() if key[0] == day}
            cache[(day, market)] = zip_master(mst, market)
            self._master_cache = cache
        return web.Response(body=self._master_cache[(day, market)], content_type="application/zip")

    # -- /sim ----------------------------------------------------------------------------

    async def sim_stats(self, request: web.Request) -> web.Response:
        return _json(self.state.stats())

    async def sim_inject(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request)
        except BadBody as exc:
            return _fault_refusal(exc.status, f"fault {exc}")
        try:
            fault = parse_fault(body)
        except FaultError as exc:
            return _fault_refusal(400, str(exc))
        await self.on_fault(fault)
        return _json({"ok": True, "fault": fault.model_dump()})

    async def sim_clear(self, request: web.Request) -> web.Response:
        self.state.faults.clear()
        return _json({"ok": True})
