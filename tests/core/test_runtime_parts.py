"""Runtime decisions that need no running system: rates, concurrency, endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from observer.config import load_settings
from observer.credentials import demo_credentials
from observer.errors import ObserverError
from observer.records import Trigger, TriggerKind
from observer.runtime import (
    REAL_DOMAINS,
    TriggerHub,
    rate_per_second,
    resolve_endpoint,
    track_a_concurrency,
)


def test_virtual_domain_runs_at_two_per_second_unless_told() -> None:
    virtual = {"provider": {"kind": "kis", "env": "virtual"}}
    assert rate_per_second(load_settings(environ={}, overrides=virtual)) == 2.0
    told = virtual | {"rate_limit": {"rate_per_second": 1.5}}
    assert rate_per_second(load_settings(environ={}, overrides=told)) == 1.5
    assert rate_per_second(load_settings(environ={})) == 20.0


def test_enough_calls_in_flight_for_a_second_of_latency() -> None:
    assert track_a_concurrency(20.0) == 22
    assert track_a_concurrency(2.0) == 4
    assert track_a_concurrency(10_000.0) == 256


async def test_endpoints_from_settings(tmp_path: Path) -> None:
    credentials = demo_credentials("endpoint")
    real = load_settings(environ={}, overrides={"provider": {"kind": "kis", "env": "real"}})
    async with resolve_endpoint(real, credentials) as endpoint:
        assert (endpoint.rest_url, endpoint.ws_url) == REAL_DOMAINS["real"]
        assert endpoint.master_url is not None and not endpoint.simulated
    with pytest.raises(ObserverError, match="KIS_APP_KEY"):
        async with resolve_endpoint(real, None):
            pass
    sim = load_settings(environ={}, overrides={"sim": {"symbols": 5}, "data_dir": str(tmp_path)})
    async with resolve_endpoint(sim) as endpoint:
        assert endpoint.simulated and endpoint.always_open
        assert endpoint.rest_url.startswith("http://127.0.0.1:")


def test_trigger_hub_fans_out_and_is_a_no_op_alone() -> None:
    hub = TriggerHub()
    trigger = Trigger(symbol="005930", kind=TriggerKind.PRICE_MOVE, score=1.5, at=0.0)
    hub.publish(trigger)
    got: list[Trigger] = []
    hub.subscribe(got.append)
    hub.publish(trigger)
    assert got == [trigger] and hub.published == 2
