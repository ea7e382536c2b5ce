"""Master files: any bytes give rows or a MasterFileError, never another exception."""

from __future__ import annotations

import io
import zipfile

from hypothesis import given, settings
from hypothesis import strategies as st

from observer.kis.master import (
    CODE_WIDTH,
    ENCODING,
    MARKETS,
    TAIL_LENGTH,
    Market,
    MasterFileError,
    MasterRow,
    parse_master,
    unzip_master,
    zip_master,
)

MARKET = st.sampled_from(MARKETS)
# Characters cp949 can encode, including Hangul, so lines decode and go deep.
NAME_CHARS = st.sampled_from("삼성전자SK하이닉스ABC 123&()-.")


@st.composite
def master_lines(draw: st.DrawFn, market: Market) -> bytes:
    """Lines near the real shape: code, ISIN, name, a tail of about the right length."""
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        code = draw(st.text("0123456789A ", max_size=CODE_WIDTH)).ljust(CODE_WIDTH)
        isin = draw(st.text("KR0123456789", min_size=12, max_size=12))
        name = draw(st.text(NAME_CHARS, max_size=12))
        length = TAIL_LENGTH[market] + draw(st.integers(-3, 3))
        tail = draw(st.sampled_from(["ST", "EF", "RT", "  "])) + "N" * max(0, length - 2)
        ending = draw(st.sampled_from(["\n", "\r\n", ""]))
        lines.append((code + isin + name + tail + ending).encode(ENCODING))
    return b"".join(lines)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_bytes_give_rows_or_master_file_error(data: st.DataObject) -> None:
    market: Market = data.draw(MARKET)
    raw = data.draw(st.binary(max_size=600) | master_lines(market))
    try:
        rows = parse_master(raw, market)
    except MasterFileError as error:
        assert str(error)
    else:
        assert all(isinstance(row, MasterRow) and row.code and row.market == market for row in rows)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), MARKET)
def test_any_archive_bytes_give_a_member_or_master_file_error(raw: bytes, market: str) -> None:
    assert unzip_master(zip_master(raw, market)) == raw
    for candidate in (raw, b"PK\x03\x04" + raw, zip_master(raw, market)[: len(raw) // 2]):
        try:
            unzip_master(candidate)
        except MasterFileError as error:
            assert str(error)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from(["kospi_code.mst", "x.mst", "readme.txt"]), max_size=3, unique=True)
)
def test_archives_with_other_members(names: list[str]) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in names:
            archive.writestr(name, b"data")
    try:
        assert unzip_master(out.getvalue()) == b"data"
    except MasterFileError as error:
        assert ".mst members" in str(error)
