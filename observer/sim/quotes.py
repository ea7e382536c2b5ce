"""What the simulator says about trades: H0STCNT0 records, inquire-price output, trade pages.

Pure functions of the model's state, so frames and bodies are reproducible
from the seed. Every value is a string, as on the wire.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from observer.kis.h0stcnt0 import FIELD_COUNT
from observer.sim.model import SymbolProcess
from observer.sim.tape import Tick
from observer.sim.universe import Instrument, snap_down, snap_up, tick_down, tick_up

KST_OFFSET_SECONDS = 9 * 3600


def hhmmss_of(ts: float) -> str:
    """Korean wall-clock HHMMSS of simulated Unix seconds (cheap: no datetime)."""
    second = (int(ts) + KST_OFFSET_SECONDS) % 86400
    return f"{second // 3600:02d}{second // 60 % 60:02d}{second % 60:02d}"


def sign_code(price: int, base: int) -> str:
    """PRDY_VRSS_SIGN: 1 upper limit, 2 up, 3 flat, 4 lower limit, 5 down."""
    if price > base:
        return "1" if price >= snap_down(base * 1.3) else "2"
    if price < base:
        return "4" if price <= snap_up(base * 0.7) else "5"
    return "3"


def _relative_sign(price: int, reference: int) -> str:
    return "2" if price > reference else ("5" if price < reference else "3")


def _pct(numerator: float, denominator: float) -> str:
    return f"{(numerator / denominator * 100.0) if denominator else 0.0:.2f}"


def _usual_day_volume(instrument: Instrument) -> int:
    """A stable stand-in for yesterday's volume (PRDY_VOL_* fields)."""
    return max(1, int(instrument.trades_per_second * 23_400 * 2_000_000 / instrument.base_price))


def trade_record(instrument: Instrument, tick: Tick) -> list[str]:
    """The 46 ``H0STCNT0`` fields of one trade, in wire order (observer/kis/h0stcnt0.py)."""
    price, base = tick.price, tick.base
    ask, bid = (price, tick_down(price)) if tick.side > 0 else (tick_up(price), price)
    sell_volume = tick.cumulative_volume - tick.buy_volume
    usual = _usual_day_volume(instrument)
    depth = 1 + (tick.volume * 7 + tick.seq * 13) % 5_000
    fields = [
        instrument.code,
        hhmmss_of(tick.time),
        str(price),
        sign_code(price, base),
        str(price - base),
        _pct(price - base, base),
        f"{tick.turnover / tick.cumulative_volume if tick.cumulative_volume else price:.2f}",
        str(tick.open),
        str(tick.high),
        str(tick.low),
        str(ask),
        str(bid),
        str(tick.volume),
        str(tick.cumulative_volume),
        str(tick.turnover),
        str(tick.sell_count),
        str(tick.buy_count),
        str(tick.buy_count - tick.sell_count),
        _pct(tick.buy_volume, sell_volume),
        str(sell_volume),
        str(tick.buy_volume),
        "1" if tick.side > 0 else "5",
        _pct(tick.buy_volume, tick.cumulative_volume),
        _pct(tick.cumulative_volume, usual),
        hhmmss_of(tick.open_time),
        _relative_sign(price, tick.open),
        str(price - tick.open),
        hhmmss_of(tick.high_time),
        _relative_sign(price, tick.high),
        str(price - tick.high),
        hhmmss_of(tick.low_time),
        _relative_sign(price, tick.low),
        str(price - tick.low),
        str(tick.day),
        "20",  # regular session, normal
        "N",
        str(depth),
        str(1 + (depth * 3) % 5_000),
        str(depth * 10),
        str(depth * 9),
        _pct(tick.cumulative_volume, instrument.shares_listed),
        str(usual // 2),
        _pct(tick.cumulative_volume, max(1, usual // 2)),
        "0",
        "N",
        str(base),
    ]
    assert len(fields) == FIELD_COUNT
    return fields


def data_frame(tr_id: str, records: Sequence[Sequence[str]]) -> str:
    """``0|<tr_id>|<count>|<payload>``: several records joined by ``^`` in one frame."""
    payload = "^".join("^".join(record) for record in records)
    return f"0|{tr_id}|{len(records):03d}|{payload}"


_TEXT_FIELDS = (
    "iscd_stat_cls_code",
    "rprs_mrkt_kor_name",
    "bstp_kor_isnm",
    "temp_stop_yn",
    "oprc_rang_cont_yn",
    "clpr_rang_cont_yn",
    "crdt_able_yn",
    "elw_pblc_yn",
    "ssts_yn",
    "stck_shrn_iscd",
    "invt_caful_yn",
    "short_over_yn",
    "sltr_yn",
    "mang_issu_cls_code",
    "vi_cls_code",
    "ovtm_vi_cls_code",
    "new_hgpr_lwpr_cls_code",
    "grmn_rate_cls_code",
    "mrkt_warn_cls_code",
)
_NUMBER_FIELDS = (
    "marg_rate",
    "stck_prpr",
    "prdy_vrss",
    "prdy_vrss_sign",
    "prdy_ctrt",
    "acml_tr_pbmn",
    "acml_vol",
    "prdy_vrss_vol_rate",
    "stck_oprc",
    "stck_hgpr",
    "stck_lwpr",
    "stck_mxpr",
    "stck_llam",
    "stck_sdpr",
    "wghn_avrg_stck_prc",
    "hts_frgn_ehrt",
    "frgn_ntby_qty",
    "pgtr_ntby_qty",
    "pvt_scnd_dmrs_prc",
    "pvt_frst_dmrs_prc",
    "pvt_pont_val",
    "pvt_frst_dmsp_prc",
    "pvt_scnd_dmsp_prc",
    "dmrs_val",
    "dmsp_val",
    "cpfn",
    "rstc_wdth_prc",
    "stck_fcam",
    "stck_sspr",
    "aspr_unit",
    "hts_deal_qty_unit_val",
    "lstn_stcn",
    "hts_avls",
    "per",
    "pbr",
    "stac_month",
    "vol_tnrt",
    "eps",
    "bps",
    "d250_hgpr",
    "d250_hgpr_date",
    "d250_hgpr_vrss_prpr_rate",
    "d250_lwpr",
    "d250_lwpr_date",
    "d250_lwpr_vrss_prpr_rate",
    "stck_dryy_hgpr",
    "dryy_hgpr_vrss_prpr_rate",
    "dryy_hgpr_date",
    "stck_dryy_lwpr",
    "dryy_lwpr_vrss_prpr_rate",
    "dryy_lwpr_date",
    "w52_hgpr",
    "w52_hgpr_vrss_prpr_ctrt",
    "w52_hgpr_date",
    "w52_lwpr",
    "w52_lwpr_vrss_prpr_ctrt",
    "w52_lwpr_date",
    "whol_loan_rmnd_rate",
    "fcam_cnnm",
    "cpfn_cnnm",
    "apprch_rate",
    "frgn_hldn_qty",
    "last_ssts_cntg_qty",
)
PRICE_OUTPUT_FIELDS: tuple[str, ...] = _TEXT_FIELDS + _NUMBER_FIELDS


def zeroed_price_output() -> dict[str, str]:
    """``inquire-price`` output for a code the market does not list: every number "0"."""
    return {name: ("" if name in _TEXT_FIELDS else "0") for name in PRICE_OUTPUT_FIELDS}


def price_output(process: SymbolProcess) -> dict[str, str]:
    """``inquire-price`` ``output`` (≈80 string fields) for the symbol's current state."""
    item, price, base = process.instrument, process.price, process.base
    volume = process.cumulative_volume
    market_cap = price * item.shares_listed // 100_000_000  # 억 won
    high52, low52 = snap_down(base * 1.45), snap_up(base * 0.62)
    date_text = f"{process.day:%Y%m%d}"
    output = zeroed_price_output()
    output.update(
        iscd_stat_cls_code="55",
        rprs_mrkt_kor_name="KOSPI" if item.market == "kospi" else "KOSDAQ",
        bstp_kor_isnm="시뮬레이션",
        temp_stop_yn="N",
        oprc_rang_cont_yn="N",
        clpr_rang_cont_yn="N",
        crdt_able_yn="Y",
        elw_pblc_yn="N",
        ssts_yn="Y",
        stck_shrn_iscd=item.code,
        invt_caful_yn="N",
        short_over_yn="N",
        sltr_yn="N",
        mang_issu_cls_code="N",
        vi_cls_code="N",
        ovtm_vi_cls_code="N",
        mrkt_warn_cls_code="00",
        grmn_rate_cls_code="40",
        marg_rate="40.00",
        stck_prpr=str(price),
        prdy_vrss=str(price - base),
        prdy_vrss_sign=sign_code(price, base),
        prdy_ctrt=_pct(price - base, base),
        acml_tr_pbmn=str(process.turnover),
        acml_vol=str(volume),
        prdy_vrss_vol_rate=_pct(volume, _usual_day_volume(item)),
        stck_oprc=str(process.open),
        stck_hgpr=str(process.high),
        stck_lwpr=str(process.low),
        stck_mxpr=str(process.upper),
        stck_llam=str(process.lower),
        stck_sdpr=str(base),
        wghn_avrg_stck_prc=f"{process.turnover / volume if volume else price:.2f}",
        stck_fcam=str(item.face_value),
        aspr_unit=str(tick_up(price) - price),
        hts_deal_qty_unit_val="1",
        lstn_stcn=str(item.shares_listed),
        cpfn=str(item.shares_listed * item.face_value // 100_000_000),
        hts_avls=str(market_cap),
        per=f"{price / item.eps if item.eps else 0:.2f}",
        pbr=f"{price / item.bps if item.bps else 0:.2f}",
        eps=f"{item.eps:.2f}",
        bps=f"{item.bps:.2f}",
        stac_month="12",
        vol_tnrt=_pct(volume, item.shares_listed),
        w52_hgpr=str(high52),
        w52_hgpr_date=date_text,
        w52_hgpr_vrss_prpr_ctrt=_pct(price - high52, high52),
        w52_lwpr=str(low52),
        w52_lwpr_date=date_text,
        w52_lwpr_vrss_prpr_ctrt=_pct(price - low52, low52),
        d250_hgpr=str(high52),
        d250_lwpr=str(low52),
        d250_hgpr_date=date_text,
        d250_lwpr_date=date_text,
        stck_dryy_hgpr=str(high52),
        stck_dryy_lwpr=str(low52),
        dryy_hgpr_date=date_text,
        dryy_lwpr_date=date_text,
        hts_frgn_ehrt="12.34",
        whol_loan_rmnd_rate="0.10",
    )
    return output


def volume_rank_row(process: SymbolProcess, rank: int) -> dict[str, str]:
    """One ``volume-rank`` ``output`` row (FHPST01710000) for the symbol's current state."""
    item, price, base = process.instrument, process.price, process.base
    volume, usual = process.cumulative_volume, _usual_day_volume(process.instrument)
    return {
        "hts_kor_isnm": item.name,
        "mksc_shrn_iscd": item.code,
        "data_rank": str(rank),
        "stck_prpr": str(price),
        "prdy_vrss_sign": sign_code(price, base),
        "prdy_vrss": str(price - base),
        "prdy_ctrt": _pct(price - base, base),
        "acml_vol": str(volume),
        "prdy_vol": str(usual),
        "lstn_stcn": str(item.shares_listed),
        "avrg_vol": str(usual),
        "n_befr_clpr_vrss_prpr_rate": _pct(price - base, base),
        "vol_inrt": _pct(volume - usual, usual),
        "vol_tnrt": _pct(volume, item.shares_listed),
        "nday_vol_tnrt": _pct(usual, item.shares_listed),
        "avrg_tr_pbmn": str(usual * base),
        "tr_pbmn_tnrt": _pct(process.turnover, item.shares_listed * price),
        "nday_tr_pbmn_tnrt": _pct(usual * base, item.shares_listed * base),
        "acml_tr_pbmn": str(process.turnover),
    }


def conclusion_row(tick: Tick) -> dict[str, str]:
    """One ``inquire-time-itemconclusion`` ``output2`` row (``cnqn`` is KIS's own name)."""
    price, base = tick.price, tick.base
    sell_volume = tick.cumulative_volume - tick.buy_volume
    return {
        "stck_cntg_hour": hhmmss_of(tick.time),
        "stck_prpr": str(price),
        "prdy_vrss": str(price - base),
        "prdy_vrss_sign": sign_code(price, base),
        "prdy_ctrt": _pct(price - base, base),
        "askp": str(price if tick.side > 0 else tick_up(price)),
        "bidp": str(tick_down(price) if tick.side > 0 else price),
        "tday_rltv": _pct(tick.buy_volume, sell_volume),
        "acml_vol": str(tick.cumulative_volume),
        "cnqn": str(tick.volume),
        "cntg_vol": str(tick.volume),
    }


def conclusion_page(ticks: Sequence[Tick], at_or_before: str, rows: int) -> tuple[list[Tick], bool]:
    """One page of trades at or before HHMMSS ``at_or_before``, newest first.

    ``ticks`` are one business day's trades, oldest first (a list or a lazy
    ``TapeView``: only the page is materialised). The page holds ``rows``
    trades, extended to the whole of its oldest second so that the next page
    can start strictly before it: re-query with the page's oldest
    ``stck_cntg_hour`` minus one second. Returns (page, older trades exist).
    """
    end = bisect.bisect_right(ticks, at_or_before, key=lambda tick: hhmmss_of(tick.time))
    page: list[Tick] = []
    index = end - 1
    while index >= 0 and len(page) < rows:
        page.append(ticks[index])
        index -= 1
    if page:
        boundary = hhmmss_of(page[-1].time)
        while index >= 0 and hhmmss_of(ticks[index].time) == boundary:
            page.append(ticks[index])
            index -= 1
    return page, index >= 0
