"""Fixtures: a Sentry envelope endpoint on loopback and Trackings that always close."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sentry_sdk

from observer.config import SentrySettings
from observer.tracking import Tracking
from tests.tracking.sink import EnvelopeSink

MakeTracking = Callable[..., Tracking]


@pytest.fixture
def sink() -> Iterator[EnvelopeSink]:
    with EnvelopeSink() as endpoint:
        yield endpoint


@pytest.fixture
def make_tracking(sink: EnvelopeSink) -> Iterator[MakeTracking]:
    """``make_tracking(traces_sample_rate=1.0)``: a started Tracking sending to ``sink``."""
    made: list[Tracking] = []

    def make(*, tags: dict[str, str] | None = None, **settings: Any) -> Tracking:
        tracking = Tracking(
            SentrySettings(dsn=sink.dsn, environment="test", **settings), environ={}, tags=tags
        )
        made.append(tracking)
        assert tracking.start()
        return tracking

    with sentry_sdk.isolation_scope():
        yield make
        for tracking in made:
            tracking.close()
    assert not sentry_sdk.get_client().is_active()
