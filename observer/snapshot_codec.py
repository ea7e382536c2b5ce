"""Compact, exact storage of a current-price answer: a versioned field list and deflate.

A stored snapshot keeps every field the broker returned, but not as JSON with its
keys (about 2 KB a row, 4.5 KB on disk): the values are written in the order of a
frozen field list, as a JSON array (exact for any string), and deflated against a
preset dictionary made of a typical answer. About 130 bytes a snapshot.

Layout of ``encode``'s bytes: one version byte, then raw deflate of
``[v1, v2, ..., vN]`` or ``[v1, ..., vN, {extra: value}]`` where ``vi`` is the value
of the version's i-th field or ``null`` when the answer lacked it, and the trailing
object holds fields the list does not know (a broker that added one). A version's
field list and dictionary never change once released: a new list is a new version,
and every version stays decodable.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CURRENT_VERSION", "SnapshotCodecError", "decode", "encode"]

# inquire-price ``output`` fields (FHKST01010100), in the broker's order. Frozen: version 1.
_FIELDS_V1: tuple[str, ...] = (
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
# A typical answer encoded as above: deflate finds most of a new answer in it.
_DICTIONARY_V1 = (
    b'["55","KOSPI","KOSDAQ","N","N","N","Y","N","Y","312700","N","N","N","N","N","N","",'
    b'"40","00","40.00","42700","0","3","0.00","751093000","17590","72.44","42700","42700",'
    b'"42700","55500","29900","42700","42700.00","12.34","0","0","0","0","0","0","0","0","0",'
    b'"90","0","1000","0","50","1","9031417","3856","17.91","1.10","12","0.19","2384.00",'
    b'"38971.00","61900","20261202","0","26500","20261202","0","61900","0","20261202","26500",'
    b'"0","20261202","61900","-31.02","20261202","26500","61.13","20261202","0.10","0","0","0",'
    b'"0","0"]'
)


@dataclass(frozen=True, slots=True)
class _Version:
    fields: tuple[str, ...]
    dictionary: bytes

    @property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.fields)}


_VERSIONS = {1: _Version(_FIELDS_V1, _DICTIONARY_V1)}
CURRENT_VERSION = 1
_CURRENT = _VERSIONS[CURRENT_VERSION]
_CURRENT_INDEX = _CURRENT.index
_WBITS = -15  # raw deflate: no header or checksum (the database keeps its own)


class SnapshotCodecError(ValueError):
    """Bytes that ``decode`` cannot read: an unknown version or a damaged value."""


def encode(fields: Mapping[str, str]) -> bytes:
    """``fields`` (every value a string) as compact bytes; ``decode`` gives them back."""
    values: list[object] = [None] * len(_CURRENT.fields)
    extra: dict[str, str] = {}
    for name, value in fields.items():
        position = _CURRENT_INDEX.get(name)
        if position is None:
            extra[name] = value
        else:
            values[position] = value
    if extra:
        values.append(extra)
    text = json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()
    packer = zlib.compressobj(9, zlib.DEFLATED, _WBITS, 9, zdict=_CURRENT.dictionary)
    return bytes((CURRENT_VERSION,)) + packer.compress(text) + packer.flush()


def decode(data: bytes) -> dict[str, str]:
    """The fields ``encode`` was given (the listed ones in list order, then any extra)."""
    if not data or data[0] not in _VERSIONS:
        raise SnapshotCodecError(f"unknown snapshot encoding version {data[:1]!r}")
    version = _VERSIONS[data[0]]
    try:
        unpacker = zlib.decompressobj(_WBITS, zdict=version.dictionary)
        values = json.loads(unpacker.decompress(data[1:]) + unpacker.flush())
    except (zlib.error, ValueError) as exc:
        raise SnapshotCodecError(f"damaged snapshot fields: {exc}") from exc
    if not isinstance(values, list) or len(values) not in (
        len(version.fields),
        len(version.fields) + 1,
    ):
        raise SnapshotCodecError("damaged snapshot fields: wrong number of values")
    fields = {
        name: value
        for name, value in zip(version.fields, values, strict=False)
        if value is not None
    }
    if len(values) > len(version.fields):
        extra = values[-1]
        if not isinstance(extra, dict):
            raise SnapshotCodecError("damaged snapshot fields: extra fields are not an object")
        fields.update(extra)
    return fields
