"""No secret reaches Sentry: the scrubber alone, then every byte a real endpoint receives."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import AsyncIterator

import aiohttp
import pytest
import sentry_sdk
from aiohttp import web

from observer.credentials import demo_credentials
from observer.scrubbing import (
    REDACTED,
    SecretScrubber,
    is_secret_key,
    scrub_credential_shapes,
)
from observer.tracking import Tracking, trace_operation
from tests.tracking.conftest import MakeTracking
from tests.tracking.sink import EnvelopeSink

CREDENTIALS = demo_credentials("tracking-scrubber")
APP_KEY, APP_SECRET = CREDENTIALS.secrets()
# Deliberately not JWT-shaped, so only the registered values can catch them.
ACCESS_TOKEN = "tok_" + "9f8e7d6c5b4a" * 4
APPROVAL_KEY = "a1b2c3d4-e5f6-4711-8a9b-0c1d2e3f4a5b"
SECRETS = (APP_KEY, APP_SECRET, ACCESS_TOKEN, APPROVAL_KEY)


def forms(secret: str) -> set[str]:
    """A secret as it could appear on the wire: raw, URL-encoded, and every long slice."""
    shown = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    shown |= {secret[i : i + 16] for i in range(0, len(secret) - 15, 8)}
    return shown


def assert_no_secret(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for secret in SECRETS:
        leaked = [form for form in forms(secret) if form in text]
        assert not leaked, f"secret material reached the endpoint: {len(leaked)} forms"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("appkey", True),
        ("AppSecret", True),
        ("secretkey", True),
        ("Authorization", True),
        ("access_token", True),
        ("approval_key", True),
        ("x-auth-token", True),
        ("token", True),
        ("tokens_consumed", False),
        ("tr_key", False),
        ("symbol", False),
    ],
)
def test_secret_field_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


def test_text_is_scrubbed_by_value_by_name_and_by_shape() -> None:
    scrubber = SecretScrubber([APP_KEY, "short"])
    jwt = "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJ0b2tlbiJ9.c2lnbmF0dXJlLXZhbHVl"
    scrubbed = scrubber.scrub_text(
        f"key {APP_KEY} url /x?appsecret=s3cr3t-value&FID_INPUT_ISCD=005930 "
        f'body {{"approval_key": "ak-123456789"}} jwt {jwt} header Bearer abcdefgh12345678 '
        f"quoted {urllib.parse.quote(APP_KEY, safe='')} short stays"
    )
    for secret in (APP_KEY, "s3cr3t-value", "ak-123456789", jwt, "abcdefgh12345678"):
        assert secret not in scrubbed
    assert "FID_INPUT_ISCD=005930" in scrubbed and "short stays" in scrubbed
    assert "Bearer [Filtered]" in scrubbed


@pytest.mark.parametrize(
    "text",
    [
        # aiohttp's error for a header with a stray control byte, as a bytes repr
        "Invalid header value char:\n\n  b'Authorization: Basic cHJvbWV0aG\\x01V1czpz'\n   ^",
        "Basic cHJvbWV0aG\x01V1czpzY3JhcGU=",  # the byte itself
        "Basic cHJvbWV0aG\\x01V1czpzY3JhcGU=",  # its escape, no header name
        "{'Proxy-Authorization': 'Digest username=cHJvbWV0aGV1czpz'}",
        "authorization=cHJvbWV0aGV1czpz&x=1",
        "bearer cHJvbWV0aGV1czpzY3JhcGU=",
    ],
)
def test_credential_shapes_go_whole_even_with_a_control_byte_inside(text: str) -> None:
    scrubbed = scrub_credential_shapes(text)
    for piece in ("cHJvbWV0aG", "V1czpz", "Y3JhcGU"):
        assert piece not in scrubbed, scrubbed
    assert REDACTED in scrubbed
    assert SecretScrubber().scrub_text(text).count("V1czpz") == 0


def test_words_like_basic_are_not_credentials() -> None:
    text = 'WWW-Authenticate: Basic realm="Observer exporter", basic sweep done'
    assert scrub_credential_shapes(text) == text


def test_structures_are_scrubbed_by_field_name() -> None:
    scrubber = SecretScrubber()
    event = {
        "request": {
            "headers": {"appkey": "k" * 36, "tr_id": "FHKST01010100"},
            "header_pairs": [["Authorization", "Basic dXNlcjpwYXNz"], ["custtype", "P"]],
        },
        "frames": [{"vars": {"access_token": "opaque", "count": 3, "empty_token": ""}}],
    }
    scrubbed = scrubber.scrub(event)
    assert scrubbed["request"]["headers"] == {"appkey": REDACTED, "tr_id": "FHKST01010100"}
    assert scrubbed["request"]["header_pairs"] == [["Authorization", REDACTED], ["custtype", "P"]]
    assert scrubbed["frames"][0]["vars"] == {
        "access_token": REDACTED,
        "count": 3,
        "empty_token": "",
    }


@pytest.fixture
def tracking(make_tracking: MakeTracking) -> Tracking:
    tracking = make_tracking(traces_sample_rate=1.0)
    tracking.register_credentials(CREDENTIALS)
    tracking.register_secret(ACCESS_TOKEN)
    tracking.register_secret(APPROVAL_KEY)
    return tracking


@pytest.fixture
async def broker_like_server(tracking: Tracking) -> AsyncIterator[str]:
    """An aiohttp app whose handler fails with a secret in its message.

    Built after Sentry is initialised, as in Observer, so the aiohttp integration
    traces it (it patches ``web.Application`` on first init).
    """

    async def fail(request: web.Request) -> web.Response:
        raise RuntimeError(f"upstream refused appsecret {request.headers['appsecret']}")

    app = web.Application()
    app.router.add_get("/uapi/domestic-stock/v1/quotations/inquire-price", fail)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def fail_with_secrets_in_locals() -> None:
    note = f"cached for key {APP_KEY} until tomorrow"  # innocent name, secret value
    keys = {"current": APPROVAL_KEY}
    raise PermissionError(f"token {ACCESS_TOKEN} rejected ({len(note)}, {len(keys)})")


async def test_no_secret_in_any_envelope_byte(sink: EnvelopeSink, broker_like_server: str) -> None:
    log = logging.getLogger("observer.test")

    # 1. An HTTP call with the secrets in headers and the query string, failing
    #    server-side with the secret in the exception message (aiohttp integration).
    headers = {
        "authorization": f"Bearer {ACCESS_TOKEN}",
        "appkey": APP_KEY,
        "appsecret": APP_SECRET,
        "x-approval": APPROVAL_KEY,
        "tr_id": "FHKST01010100",
    }
    query = {"FID_INPUT_ISCD": "005930", "approval_key": APPROVAL_KEY, "note": APP_KEY}
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{broker_like_server}/uapi/domestic-stock/v1/quotations/inquire-price",
            headers=headers,
            params=query,
        ) as response,
    ):
        assert response.status == 500
    # 2. Secrets in local variables of the raising frame and in its message,
    #    after breadcrumbs that carry them in a log line.
    log.info("refreshing with %s and %s", APP_SECRET, ACCESS_TOKEN)
    try:
        fail_with_secrets_in_locals()
    except PermissionError as exc:
        sentry_sdk.capture_exception(exc)
    # 3. A transaction whose span data, tags and description carry them.
    with trace_operation(f"approval {APPROVAL_KEY}", "kis.approval") as span:
        assert span is not None
        span.set_data("url", f"http://broker/oauth2/Approval?appkey={APP_KEY}")
        span.set_tag("secret_in_tag", APP_SECRET)
    log.error("approval failed for body %s", {"secretkey": APP_SECRET, "appkey": APP_KEY})
    await asyncio.to_thread(sentry_sdk.flush)

    def complete(s: EnvelopeSink) -> bool:
        messages = [e.get("logentry", {}).get("message", "") for e in s.items("event")]
        types = [
            v["type"] for e in s.items("event") for v in e.get("exception", {}).get("values", [])
        ]
        return (
            "RuntimeError" in types
            and "PermissionError" in types
            and any(m.startswith("approval failed") for m in messages)
            and any(
                t.get("contexts", {}).get("trace", {}).get("op") == "kis.approval"
                for t in s.items("transaction")
            )
        )

    sink.wait_for(complete)
    for envelope in sink.envelopes:
        assert_no_secret(envelope.raw)
    # The scrubbed fields are still there, so the test would see a leak through them.
    (local_failure,) = [
        e
        for e in sink.items("event")
        if e.get("exception", {}).get("values", [{}])[-1].get("type") == "PermissionError"
    ]
    frame = local_failure["exception"]["values"][-1]["stacktrace"]["frames"][-1]
    assert frame["function"] == "fail_with_secrets_in_locals"
    assert REDACTED in frame["vars"]["note"]
    (server_failure,) = [
        e
        for e in sink.items("event")
        if e.get("exception", {}).get("values", [{}])[-1].get("type") == "RuntimeError"
        and "request" in e
    ]
    request_headers = {k.lower(): v for k, v in server_failure["request"]["headers"].items()}
    assert request_headers["appkey"] == REDACTED
    assert request_headers["tr_id"] == "FHKST01010100"
    assert "FID_INPUT_ISCD=005930" in server_failure["request"]["query_string"]
