"""Building ``H0STCNT0`` frames for tests, field by field as the wire carries them."""

from __future__ import annotations

from observer.kis import h0stcnt0
from observer.records import Trade


def record_fields(trade: Trade, *, extra: int = 0) -> list[str]:
    """The 46 fields of ``trade`` (plus ``extra`` trailing fields KIS might append)."""
    fields = ["0"] * h0stcnt0.FIELD_COUNT
    index = h0stcnt0.INDEX
    fields[index["MKSC_SHRN_ISCD"]] = trade.symbol
    fields[index["STCK_CNTG_HOUR"]] = trade.time
    fields[index["STCK_PRPR"]] = str(trade.price)
    fields[index["CNTG_VOL"]] = str(trade.volume)
    fields[index["ACML_VOL"]] = str(trade.cumulative_volume)
    fields[index["BSOP_DATE"]] = trade.business_date
    fields[index["PRDY_CTRT"]] = "0.70"
    return fields + [f"X{n}" for n in range(extra)]


def frame(trades: list[Trade], *, extra: int = 0) -> str:
    payload = "^".join(field for t in trades for field in record_fields(t, extra=extra))
    return f"0|{h0stcnt0.TR_ID}|{len(trades):03d}|{payload}"


def trade(
    symbol: str = "005930",
    *,
    time: str = "093015",
    price: int = 71500,
    volume: int = 10,
    cumulative: int = 1000,
    date: str = "20261124",
) -> Trade:
    return Trade(
        symbol=symbol,
        business_date=date,
        time=time,
        price=price,
        volume=volume,
        cumulative_volume=cumulative,
    )
