"""KIS REST answers: any JSON body gives a record, an empty result, or the documented error."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from observer.kis.client import (
    RankedSymbol,
    parse_holidays,
    parse_snapshot,
    parse_trades,
    parse_volume_rank,
)
from observer.kis.errors import Classification, classify
from observer.kis.token import AccessToken, parse_token_answer
from observer.records import Snapshot, Trade
from tests.parsers.strategies import SCALARS, json_trees, mappings_with

SNAPSHOT_KEYS = ["output", "rt_cd", "msg_cd", "msg1", "stck_prpr", "acml_vol", "prdy_vrss"]
TRADE_KEYS = [
    "output",
    "output2",
    "stck_cntg_hour",
    "stck_prpr",
    "cntg_vol",
    "acml_vol",
    "bsop_date",
]
HOLIDAY_KEYS = ["output", "bass_dt", "opnd_yn"]
RANK_KEYS = ["output", "mksc_shrn_iscd", "data_rank", "acml_vol", "hts_kor_isnm"]
TOKEN_KEYS = ["access_token", "token_type", "expires_in", "access_token_token_expired"]
NUMBERS = SCALARS | st.sampled_from(["101502", "71500", " 12 ", "1.5e3", "-7", "0x10"])


def bodies(keys: list[str]) -> st.SearchStrategy[Any]:
    """Bodies that use the real field names at two levels, with hostile values: the
    real layout (``output`` / ``output2`` holding rows of known fields) half the time."""
    fields = st.dictionaries(st.sampled_from(keys), NUMBERS, max_size=len(keys))
    real = st.fixed_dictionaries(
        {},
        optional={
            "output": fields | st.lists(fields, max_size=4),
            "output2": st.lists(fields, max_size=4),
        },
    )
    rows = mappings_with(keys, NUMBERS)
    return real | json_trees() | mappings_with(keys, rows | st.lists(rows, max_size=4) | NUMBERS)


@settings(max_examples=200, deadline=None)
@given(bodies(SNAPSHOT_KEYS))
def test_snapshot_from_any_body(body: Any) -> None:
    if isinstance(body, dict):
        snapshot = parse_snapshot("005930", body, collected_at=1.0)
        assert isinstance(snapshot, Snapshot) and isinstance(snapshot.price, int)


@settings(max_examples=200, deadline=None)
@given(bodies(TRADE_KEYS))
def test_trades_from_any_body(body: Any) -> None:
    if isinstance(body, dict):
        trades = parse_trades("005930", body, business_date="20261124")
        assert all(isinstance(t, Trade) and t.cumulative_volume > 0 for t in trades)


@settings(max_examples=150, deadline=None)
@given(bodies(HOLIDAY_KEYS))
def test_holidays_from_any_body(body: Any) -> None:
    if isinstance(body, dict):
        days = parse_holidays(body)
        assert all(isinstance(open_, bool) for open_ in days.values())


@settings(max_examples=200, deadline=None)
@given(bodies(RANK_KEYS))
def test_volume_rank_from_any_body(body: Any) -> None:
    if isinstance(body, dict):
        ranked = parse_volume_rank(body)
        symbols = [row.symbol for row in ranked]
        assert len(symbols) == len(set(symbols))
        assert all(len(s) == 6 and s.isdigit() for s in symbols)
        assert [row.rank for row in ranked] == sorted(row.rank for row in ranked)


# Trimmed from a real answer's layout (v1_국내주식-047; values illustrative).
VOLUME_RANK_SAMPLE = {
    "output": [
        {
            "hts_kor_isnm": "삼성전자",
            "mksc_shrn_iscd": "005930",
            "data_rank": "1",
            "stck_prpr": "71500",
            "prdy_vrss_sign": "2",
            "prdy_vrss": "700",
            "prdy_ctrt": "0.99",
            "acml_vol": "13921547",
            "prdy_vol": "9847002",
            "lstn_stcn": "5969782550",
            "avrg_vol": "13921547",
            "acml_tr_pbmn": "995390601500",
        },
        {"hts_kor_isnm": "SK하이닉스", "mksc_shrn_iscd": "000660", "data_rank": "3"},
        {
            "hts_kor_isnm": "KODEX 레버리지",
            "mksc_shrn_iscd": "122630 ",
            "data_rank": "2",
            "acml_vol": "8800000",
        },
        {"hts_kor_isnm": "빈 코드", "mksc_shrn_iscd": "", "data_rank": "4"},
        {"hts_kor_isnm": "중복", "mksc_shrn_iscd": "005930", "data_rank": "5"},
    ],
    "rt_cd": "0",
    "msg_cd": "MCA00000",
    "msg1": "정상처리 되었습니다.",
}


def test_volume_rank_sample() -> None:
    assert parse_volume_rank(VOLUME_RANK_SAMPLE) == [
        RankedSymbol("005930", 1, 13_921_547),
        RankedSymbol("122630", 2, 8_800_000),
        RankedSymbol("000660", 3, 0),
    ]
    assert parse_volume_rank({"rt_cd": "0", "output": "none"}) == []


@settings(max_examples=200, deadline=None)
@given(
    mappings_with(
        TOKEN_KEYS,
        NUMBERS
        | st.sampled_from(["2026-11-25 11:00:00", "9999-12-31 23:59:59", "0001-01-01 00:00:00"]),
    )
)
def test_token_answer_gives_a_token_or_value_error(body: dict[str, Any]) -> None:
    try:
        token = parse_token_answer(body, received_at=1_700_000_000.0)
    except ValueError as error:
        assert "access_token" in str(error)
    else:
        assert isinstance(token, AccessToken) and token.value
        assert math.isfinite(token.expires_at)


CODES = (
    st.none()
    | st.text(max_size=10)
    | st.sampled_from(["0", "1", "EGW00201", "EGW00123", "EGW00133", "EGW00103", "OPSP0000"])
)


@settings(max_examples=300, deadline=None)
@given(CODES, CODES, CODES, st.integers(100, 599))
def test_classify_any_codes(
    rt_cd: str | None, msg_cd: str | None, error_code: str | None, status: int
) -> None:
    result = classify(rt_cd=rt_cd, msg_cd=msg_cd, error_code=error_code, http_status=status)
    assert result is None or isinstance(result, Classification)
