"""The KOSPI / KOSDAQ universe master files: fixed-width cp949 lines, zipped.

One line per instrument (``kis-protocol.md`` "Universe master files"), e.g.
(trimmed; ``…`` stands for the rest of the fixed-width tail)::

    005930   KR7005930003삼성전자ST1000000000000NNNN…
    ^ code   ^ ISIN      ^ name  ^ tail: 227 chars (KOSPI) / 221 (KOSDAQ)

Columns are counted in *characters* of the cp949-decoded line, as the broker's
own sample parser does (``row[0:9]`` short code, ``row[9:21]`` ISIN,
``row[21:-tail]`` Korean name). The tail starts with the 2-character security
group code (``ST`` shares, ``EF`` ETF, ``RT`` REITs, …). Both the simulator
(render) and Observer's universe loader (parse) use this module.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from observer.errors import ObserverError

Market = Literal["kospi", "kosdaq"]
MARKETS: tuple[Market, ...] = ("kospi", "kosdaq")
ENCODING = "cp949"
CODE_WIDTH = 9  # columns 0-8
ISIN_WIDTH = 12  # columns 9-20
NAME_START = CODE_WIDTH + ISIN_WIDTH  # 21

# Tail field widths, in order, from the broker's published parsers
# (kis_kospi_code_mst.py / kis_kosdaq_code_mst.py); they sum to the tail length.
_KOSPI_WIDTHS = (
    *(2, 1, 4, 4, 4),
    *(1,) * 26,
    *(9, 5, 5, 1, 1, 1, 2, 1, 1, 1, 2, 2, 2, 3, 1, 3, 12, 12, 8, 15, 21, 2, 7),
    *(1, 1, 1, 1, 1),
    *(9, 9, 9, 5, 9, 8, 9, 3, 1, 1, 1),
)
_KOSDAQ_WIDTHS = (
    *(2, 1, 4, 4, 4),
    *(1,) * 21,
    *(9, 5, 5, 1, 1, 1, 2, 1, 1, 1, 2, 2, 2, 3, 1, 3, 12, 12, 8, 15, 21, 2, 7),
    *(1, 1, 1, 1),
    *(9, 9, 9, 5, 9, 8, 9, 3, 1, 1, 1),
)
TAIL_WIDTHS: dict[Market, tuple[int, ...]] = {"kospi": _KOSPI_WIDTHS, "kosdaq": _KOSDAQ_WIDTHS}
TAIL_LENGTH: dict[Market, int] = {"kospi": 227, "kosdaq": 221}
# Index, within the tail fields, of the base price (기준가) and the trading unit.
_BASE_PRICE_FIELD: dict[Market, int] = {"kospi": 31, "kosdaq": 26}
MEMBER_NAME: dict[Market, str] = {"kospi": "kospi_code.mst", "kosdaq": "kosdaq_code.mst"}
assert all(sum(TAIL_WIDTHS[m]) == TAIL_LENGTH[m] for m in MARKETS)


class MasterFileError(ObserverError):
    """A master file (or its zip archive) is not in the format the broker publishes."""


@dataclass(frozen=True, slots=True)
class MasterRow:
    """One instrument line: short code, ISIN, Korean name, group code, market."""

    code: str  # short code, "005930"
    isin: str  # standard code, "KR7005930003"
    name: str  # Korean name, "삼성전자"
    group: str  # 2-character security group: "ST" shares, "EF" ETF, "RT" REITs, …
    market: Market


def isin_for(code: str) -> str:
    """The Korean ISIN of a 6-digit share code: ``KR7`` + code + ``00`` + check digit."""
    body = f"KR7{code}00"
    digits = "".join(str(int(ch, 36)) for ch in body)  # letters A=10 … Z=35
    total = 0
    for position, ch in enumerate(reversed(digits)):
        value = int(ch) * (2 if position % 2 == 0 else 1)
        total += value // 10 + value % 10
    return body + str((10 - total % 10) % 10)


def _check_market(market: str) -> Market:
    if market not in MARKETS:
        raise MasterFileError(f"unknown market {market!r}: expected 'kospi' or 'kosdaq'")
    return market


def _tail(row: MasterRow, base_price: int) -> str:
    widths = TAIL_WIDTHS[row.market]
    fields: list[str] = []
    for index, width in enumerate(widths):
        if index == 0:
            fields.append(row.group.ljust(2)[:2])
        elif index == _BASE_PRICE_FIELD[row.market]:
            fields.append(str(base_price).rjust(width, "0")[-width:])
        elif width == 1:
            fields.append("N")
        else:
            fields.append("0" * width)
    return "".join(fields)


def render_master(
    rows: Iterable[MasterRow], market: str, *, base_prices: dict[str, int] | None = None
) -> bytes:
    """The ``.mst`` file for ``market``: one cp949 line per row, ``\\n``-terminated.

    ``base_prices`` (code → won) fills the tail's base-price field; zero when absent.
    Raises MasterFileError for a row of another market, a code or ISIN too wide
    for its columns, or a name cp949 cannot encode.
    """
    checked = _check_market(market)
    out = io.BytesIO()
    for row in rows:
        if row.market != checked:
            raise MasterFileError(f"row {row.code!r} belongs to {row.market}, not {checked}")
        if not row.code or len(row.code) > CODE_WIDTH or len(row.isin) > ISIN_WIDTH:
            raise MasterFileError(f"code {row.code!r} or ISIN {row.isin!r} does not fit")
        if "\n" in row.name or "\r" in row.name:
            raise MasterFileError(f"name of {row.code!r} contains a line break")
        line = (
            row.code.ljust(CODE_WIDTH)
            + row.isin.ljust(ISIN_WIDTH)
            + row.name
            + _tail(row, (base_prices or {}).get(row.code, 0))
            + "\n"
        )
        try:
            out.write(line.encode(ENCODING))
        except UnicodeEncodeError as exc:
            raise MasterFileError(f"name of {row.code!r} is not encodable in cp949") from exc
    return out.getvalue()


def parse_master(data: bytes, market: str) -> list[MasterRow]:
    """Every instrument line of a ``.mst`` file (all groups; filter ``group == "ST"``).

    Tolerates ``\\r\\n`` line ends, a missing final newline, blank lines and
    padding around the name. Raises MasterFileError naming the line number and
    the reason for undecodable bytes, a line shorter than its fixed-width tail,
    a zip archive passed by mistake, or an empty short code.
    """
    checked = _check_market(market)
    if data.startswith(b"PK\x03\x04"):
        raise MasterFileError("this is a zip archive: unzip_master() it first")
    try:
        text = data.decode(ENCODING)
    except UnicodeDecodeError as exc:
        raise MasterFileError(
            f"{checked} master file is not cp949 text (bad byte at offset {exc.start})"
        ) from None
    tail_length = TAIL_LENGTH[checked]
    rows: list[MasterRow] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if len(line) < NAME_START + tail_length:
            raise MasterFileError(
                f"{checked} master file line {number}: {len(line)} characters, shorter than "
                f"code, ISIN and the {tail_length}-character tail"
            )
        head, tail = line[:-tail_length], line[-tail_length:]
        code = head[:CODE_WIDTH].strip()
        if not code or not code.isalnum():
            raise MasterFileError(f"{checked} master file line {number}: no short code")
        rows.append(
            MasterRow(
                code=code,
                isin=head[CODE_WIDTH:NAME_START].strip(),
                name=head[NAME_START:].strip(),
                group=tail[:2].strip(),
                market=checked,
            )
        )
    return rows


def zip_master(mst_bytes: bytes, market: str) -> bytes:
    """A zip archive holding ``mst_bytes`` as ``kospi_code.mst`` / ``kosdaq_code.mst``."""
    member = MEMBER_NAME[_check_market(market)]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, mst_bytes)
    return out.getvalue()


def unzip_master(zip_bytes: bytes) -> bytes:
    """The ``.mst`` member of a master-file archive; MasterFileError if there is none."""
    try:
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            members = [name for name in archive.namelist() if name.endswith(".mst")]
            if len(members) != 1:
                raise MasterFileError(
                    f"master archive holds {len(members)} .mst members, expected one"
                )
            return archive.read(members[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
        raise MasterFileError(f"not a readable master zip archive: {exc}") from None
