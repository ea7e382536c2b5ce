"""The ``H0STCNT0`` real-time trade record: its 46 fields, in wire order.

A data frame is ``<enc>|<tr_id>|<count>|<payload>``; the payload is every
record's fields joined by ``^``, e.g. (trimmed)
``0|H0STCNT0|001|005930^093015^71500^2^500^0.70^71420.55^…^20261123^…``.
"""

from __future__ import annotations

TR_ID = "H0STCNT0"

FIELDS: tuple[str, ...] = (
    "MKSC_SHRN_ISCD",  # 0 short code
    "STCK_CNTG_HOUR",  # 1 HHMMSS
    "STCK_PRPR",  # 2 price
    "PRDY_VRSS_SIGN",  # 3
    "PRDY_VRSS",  # 4
    "PRDY_CTRT",  # 5
    "WGHN_AVRG_STCK_PRC",  # 6
    "STCK_OPRC",  # 7
    "STCK_HGPR",  # 8
    "STCK_LWPR",  # 9
    "ASKP1",  # 10
    "BIDP1",  # 11
    "CNTG_VOL",  # 12 trade volume
    "ACML_VOL",  # 13 cumulative volume
    "ACML_TR_PBMN",  # 14
    "SELN_CNTG_CSNU",  # 15
    "SHNU_CNTG_CSNU",  # 16
    "NTBY_CNTG_CSNU",  # 17
    "CTTR",  # 18
    "SELN_CNTG_SMTN",  # 19
    "SHNU_CNTG_SMTN",  # 20
    "CCLD_DVSN",  # 21
    "SHNU_RATE",  # 22
    "PRDY_VOL_VRSS_ACML_VOL_RATE",  # 23
    "OPRC_HOUR",  # 24
    "OPRC_VRSS_PRPR_SIGN",  # 25
    "OPRC_VRSS_PRPR",  # 26
    "HGPR_HOUR",  # 27
    "HGPR_VRSS_PRPR_SIGN",  # 28
    "HGPR_VRSS_PRPR",  # 29
    "LWPR_HOUR",  # 30
    "LWPR_VRSS_PRPR_SIGN",  # 31
    "LWPR_VRSS_PRPR",  # 32
    "BSOP_DATE",  # 33 YYYYMMDD
    "NEW_MKOP_CLS_CODE",  # 34
    "TRHT_YN",  # 35
    "ASKP_RSQN1",  # 36
    "BIDP_RSQN1",  # 37
    "TOTAL_ASKP_RSQN",  # 38
    "TOTAL_BIDP_RSQN",  # 39
    "VOL_TNRT",  # 40
    "PRDY_SMNS_HOUR_ACML_VOL",  # 41
    "PRDY_SMNS_HOUR_ACML_VOL_RATE",  # 42
    "HOUR_CLS_CODE",  # 43
    "MRKT_TRTM_CLS_CODE",  # 44
    "VI_STND_PRC",  # 45
)
FIELD_COUNT = len(FIELDS)
INDEX: dict[str, int] = {name: position for position, name in enumerate(FIELDS)}
assert FIELD_COUNT == 46
