"""Property: wherever a registered secret sits in an event, it does not survive the scrubber."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from observer.credentials import demo_credentials
from observer.scrubbing import SecretScrubber

APP_KEY, APP_SECRET = demo_credentials("scrubber-properties").secrets()
SECRETS = (APP_KEY, APP_SECRET, "a1b2c3d4-e5f6-4711-8a9b-0c1d2e3f4a5b")
SCRUBBER = SecretScrubber(SECRETS)


@st.composite
def texts_with_secrets(draw: st.DrawFn) -> str:
    """Text with a secret (raw, URL- or JSON-encoded) somewhere inside, or plain text."""
    before, after = draw(st.text(max_size=20)), draw(st.text(max_size=20))
    secret = draw(st.sampled_from(SECRETS))
    encode = draw(
        st.sampled_from(
            [lambda s: s, lambda s: urllib.parse.quote(s, safe=""), lambda s: json.dumps(s)[1:-1]]
        )
    )
    return draw(st.just(before + encode(secret) + after) | st.text(max_size=30))


EVENTS = st.recursive(
    texts_with_secrets() | st.integers() | st.none() | st.booleans(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10) | texts_with_secrets(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(EVENTS)
def test_no_registered_secret_survives(event: Any) -> None:
    scrubbed = json.dumps(SCRUBBER.scrub(event), ensure_ascii=False)
    for secret in SECRETS:
        assert secret not in scrubbed
        assert urllib.parse.quote(secret, safe="") not in scrubbed


@settings(max_examples=100, deadline=None)
@given(EVENTS)
def test_scrubbing_is_idempotent(event: Any) -> None:
    once = SCRUBBER.scrub(event)
    assert SCRUBBER.scrub(once) == once
