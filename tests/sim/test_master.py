"""Master files: the cp949 fixed-width format, round trips, garbage, and the served archives."""

from __future__ import annotations

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from observer.kis.master import (
    TAIL_LENGTH,
    MasterFileError,
    MasterRow,
    isin_for,
    parse_master,
    render_master,
    unzip_master,
    zip_master,
)
from observer.sim import SimExchange

HANGUL = st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3)  # cp949 covers these
NAME_CHARS = st.one_of(HANGUL, st.sampled_from("ABCXYZ0123456789&-. "))


@st.composite
def rows(draw: st.DrawFn, market: str) -> MasterRow:
    code = draw(st.from_regex(r"[0-9]{6}|[0-9A-Z]{6,9}", fullmatch=True))
    name = draw(st.text(NAME_CHARS, min_size=1, max_size=40)).strip() or "이름"
    group = draw(st.sampled_from(["ST", "EF", "RT", "MF", "DR"]))
    return MasterRow(code, isin_for(code[:6]), name, group, market)  # type: ignore[arg-type]


@pytest.mark.parametrize("market", ["kospi", "kosdaq"])
def test_layout_matches_the_brokers_sample_parser(market: str) -> None:
    row = MasterRow("005930", "KR7005930003", "삼성전자", "ST", market)  # type: ignore[arg-type]
    line = render_master([row], market).decode("cp949")
    tail = TAIL_LENGTH[market]  # type: ignore[index]
    # The broker's own parser: row[0:len(row) - (tail + 1)] with the newline still on.
    head = line[0 : len(line) - (tail + 1)]
    assert head[0:9].rstrip() == "005930"
    assert head[9:21].rstrip() == "KR7005930003"
    assert head[21:].strip() == "삼성전자"
    assert line[-(tail + 1) :][:2] == "ST"
    assert line.endswith("\n") and len(line[-(tail + 1) : -1]) == tail


def test_isin_check_digit_matches_real_isins() -> None:
    assert isin_for("005930") == "KR7005930003"  # Samsung Electronics
    assert isin_for("000660") == "KR7000660001"  # SK hynix


@given(st.lists(rows("kospi"), max_size=20), st.lists(rows("kosdaq"), max_size=20))
def test_render_then_parse_round_trips(kospi: list[MasterRow], kosdaq: list[MasterRow]) -> None:
    for market, items in (("kospi", kospi), ("kosdaq", kosdaq)):
        data = render_master(items, market)
        assert parse_master(data, market) == items
        assert parse_master(unzip_master(zip_master(data, market)), market) == items
        crlf = data.replace(b"\n", b"\r\n").rstrip(b"\n")  # CRLF, no final newline
        assert parse_master(crlf, market) == items


@given(st.binary(max_size=400))
def test_garbage_never_crashes_and_errors_are_clear(data: bytes) -> None:
    try:
        parse_master(data, "kospi")
    except MasterFileError as exc:
        assert "kospi master file" in str(exc) or "zip" in str(exc)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe\xfd garbage", "not cp949"),
        (b"005930   KR7005930003 too short\n", "shorter than"),
        (b"PK\x03\x04rest", "zip archive"),
    ],
)
def test_garbage_names_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(MasterFileError, match=message):
        parse_master(data, "kospi")


def test_bad_archives_and_markets_are_refused() -> None:
    with pytest.raises(MasterFileError, match="zip"):
        unzip_master(b"not a zip at all")
    with pytest.raises(MasterFileError, match="market"):
        parse_master(b"", "konex")
    with pytest.raises(MasterFileError, match="cp949"):
        render_master([MasterRow("000010", isin_for("000010"), "名\u0e01", "ST", "kospi")], "kospi")


async def test_served_master_files_parse_back_into_the_universe(
    sim: SimExchange, http: aiohttp.ClientSession
) -> None:
    parsed: list[MasterRow] = []
    for market in ("kospi", "kosdaq"):
        url = f"{sim.rest_url}/common/master/{market}_code.mst.zip"
        async with http.get(url) as response:  # public download: no token, no headers
            assert response.status == 200
            archive = await response.read()
        parsed.extend(parse_master(unzip_master(archive), market))
    shares = {row.code for row in parsed if row.group == "ST"}
    assert shares == set(sim.universe_codes())
    assert len(shares) == 200
    assert {row.group for row in parsed} > {"ST"}  # ETF/REIT lines too: clients filter ST
    assert all(len(code) == 6 and code.isdigit() for code in shares)
    instruments = sim.state.model.universe.instruments
    for row in parsed:
        if row.group == "ST":
            assert row.name == instruments[row.code].name
            assert row.market == instruments[row.code].market
            assert row.isin == isin_for(row.code)
