"""classify(): decisions on rt_cd / msg_cd / error_code, HTTP status only as a fallback."""

from __future__ import annotations

from metrics import catalog
from observer.kis.errors import ErrorClass, classify


def test_success_is_rt_cd_zero_whatever_the_status() -> None:
    assert classify(rt_cd="0", msg_cd="MCA00000", http_status=200) is None
    assert classify(rt_cd="0", msg_cd="MCA00000", http_status=500) is None


def test_rate_limit_comes_as_http_500_and_is_retryable() -> None:
    got = classify(rt_cd="1", msg_cd="EGW00201", http_status=500)
    assert got is not None and got.error_class is ErrorClass.RATE_LIMIT
    assert got.retryable and got.rate_limited and not got.token_rejected


def test_token_errors_on_200_or_500_ask_for_a_refresh() -> None:
    for code in ("EGW00121", "EGW00122", "EGW00123"):
        for status in (200, 500):
            got = classify(rt_cd="1", msg_cd=code, http_status=status)
            assert got is not None and got.error_class is ErrorClass.TOKEN
            assert got.token_rejected and got.retryable


def test_oauth_error_codes() -> None:
    throttled = classify(error_code="EGW00133", http_status=403)
    assert throttled is not None and throttled.issuance_throttled and throttled.retryable
    bad_key = classify(error_code="EGW00103", http_status=403)
    assert bad_key is not None and bad_key.error_class is ErrorClass.AUTH
    assert not bad_key.retryable


def test_business_refusal_vs_server_error() -> None:
    refusal = classify(rt_cd="1", msg_cd="OPSQ2000", http_status=200)
    assert refusal is not None and refusal.error_class is ErrorClass.BUSINESS
    assert not refusal.retryable
    server = classify(rt_cd="1", msg_cd="OPSQ9999", http_status=503)
    assert server is not None and server.error_class is ErrorClass.SERVER and server.retryable


def test_no_codes_falls_back_to_http_status() -> None:
    assert classify(http_status=200) is None
    server = classify(http_status=502)
    assert server is not None and server.error_class is ErrorClass.SERVER and server.retryable
    client = classify(http_status=404)
    assert client is not None and client.error_class is ErrorClass.CLIENT
    assert not client.retryable


def test_classes_are_the_catalog_label_values() -> None:
    assert {c.value for c in ErrorClass} == set(catalog.API_ERROR_CLASSES)
