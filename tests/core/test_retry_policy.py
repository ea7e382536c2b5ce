"""RetryPolicy: what each failed REST answer leads to, per call (pure, no server)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from observer.kis.errors import Classification, classify, transport_failure
from observer.kis.retry import Retry, RetryPolicy


def failed(
    *,
    rt_cd: str | None = None,
    msg_cd: str | None = None,
    error_code: str | None = None,
    http_status: int = 200,
) -> Classification:
    """What classify makes of a failed answer."""
    failure = classify(rt_cd=rt_cd, msg_cd=msg_cd, error_code=error_code, http_status=http_status)
    assert failure is not None
    return failure


EXPIRED = failed(rt_cd="1", msg_cd="EGW00123", http_status=500)
INVALID = failed(rt_cd="1", msg_cd="EGW00121")
RATE = failed(rt_cd="1", msg_cd="EGW00201", http_status=500)
THROTTLED = failed(error_code="EGW00133", http_status=403)
AUTH = failed(error_code="EGW00103", http_status=403)
BUSINESS = failed(rt_cd="1", msg_cd="APBK0919")
SERVER = failed(http_status=503)
LOST = transport_failure("ClientConnectorError")


def test_a_rejected_token_is_refreshed_once_per_call() -> None:
    call = RetryPolicy().for_call()
    assert call.after(EXPIRED) is Retry.REFRESH_TOKEN
    assert call.after(INVALID) is Retry.GIVE_UP  # the fresh token was refused too
    assert RetryPolicy().for_call().after(INVALID) is Retry.REFRESH_TOKEN  # a new call: again


def test_rate_limited_calls_back_off_up_to_the_limit() -> None:
    call = RetryPolicy(rate_limit_retries=2).for_call()
    assert [call.after(RATE) for _ in range(3)] == [Retry.BACK_OFF, Retry.BACK_OFF, Retry.GIVE_UP]
    assert RetryPolicy(rate_limit_retries=0).for_call().after(RATE) is Retry.GIVE_UP


def test_each_cure_is_counted_on_its_own() -> None:
    call = RetryPolicy().for_call()
    steps = [call.after(f) for f in (RATE, EXPIRED, RATE, EXPIRED, RATE)]
    assert steps == [
        Retry.BACK_OFF,
        Retry.REFRESH_TOKEN,
        Retry.BACK_OFF,
        Retry.GIVE_UP,  # a second token refusal in one call
        Retry.GIVE_UP,  # the third EGW00201
    ]


def test_what_no_retry_cures_gives_up_at_once() -> None:
    for failure in (THROTTLED, AUTH, BUSINESS, SERVER, LOST):
        assert RetryPolicy().for_call().after(failure) is Retry.GIVE_UP, failure


failures = st.sampled_from([EXPIRED, INVALID, RATE, THROTTLED, AUTH, BUSINESS, SERVER, LOST])


@given(
    st.lists(failures, max_size=30),
    st.integers(0, 3),
    st.integers(0, 5),
)
def test_a_call_never_retries_more_than_the_policy_allows(
    sequence: list[Classification], refreshes: int, rate_retries: int
) -> None:
    call = RetryPolicy(token_refreshes=refreshes, rate_limit_retries=rate_retries).for_call()
    steps = [call.after(f) for f in sequence]
    assert steps.count(Retry.REFRESH_TOKEN) <= refreshes
    assert steps.count(Retry.BACK_OFF) <= rate_retries
