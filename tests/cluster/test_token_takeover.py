"""A standby taking over a key reuses its owner's token: the simulator sees no new issuance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client import generate_latest

from metrics.registry import Metrics, new_registry
from observer.credentials import Credentials, demo_credentials
from observer.kis.client import TOKEN_PATH
from observer.readiness import Readiness
from observer.runtime import Endpoint, ObserverApp
from observer.sim import SimExchange
from tests.cluster.test_cluster_run import member_settings
from tests.core.conftest import running, sim_settings, value, wait_for

LABEL = "one-key-two-instances"  # both instances bring the same app key
KEY = demo_credentials(LABEL).app_key


def token_requests(stats: dict[str, Any]) -> int:
    return sum(stats["requests"].get(TOKEN_PATH, {}).values())


async def test_a_standby_with_another_data_dir_takes_over_without_issuing(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    metrics_a, metrics_b = (
        Metrics(new_registry(), version="a"),
        Metrics(new_registry(), version="b"),
    )
    async with SimExchange(sim_settings(symbols=40)) as sim:
        settings_a = member_settings(tmp_path, "a", postgres_url)
        settings_b = member_settings(tmp_path, "b", postgres_url)
        owner_stack = contextlib.AsyncExitStack()
        owner = await owner_stack.enter_async_context(
            running(sim, settings_a, metrics_a, label=LABEL)
        )
        async with owner_stack:
            await wait_for(
                lambda: value(metrics_a, "observer_track_a_sweeps_total") >= 1,
                what="the owner sweeping",
            )
            assert owner.context is not None
            token = await owner.context.client.tokens.get()
            async with running(sim, settings_b, metrics_b, label=LABEL) as standby:
                assert standby.context is not None and standby.context.cluster is not None
                await wait_for(
                    lambda: (
                        standby.readiness.report()["conditions"]
                        .get("cluster", {})
                        .get("reason", "")
                        .startswith("standby")
                    ),
                    what="b waiting as a standby",
                )
                assert value(metrics_b, "observer_track_a_sweeps_total") == 0
                await owner_stack.aclose()  # the owner stops: its connection and lock go
                before, key_before = sim.stats(), sim.key_stats(KEY)
                await wait_for(lambda: standby.context.cluster.owner, what="b owning the key")  # type: ignore[union-attr]
                await wait_for(
                    lambda: value(metrics_b, "observer_track_a_sweeps_total") >= 2,
                    what="b sweeping with the shared token",
                )
                after, key_after = sim.stats(), sim.key_stats(KEY)
                calls_after = key_after["business_calls"]
                assert await standby.context.client.tokens.get() == token
                assert standby.context.client.tokens.issued == 0
                assert value(metrics_b, "observer_token_refreshes_total") == 0
    assert before["tokens_issued"] == after["tokens_issued"] == 1
    assert token_requests(after) == token_requests(before) == 1
    assert after["rejections"]["EGW00133"] == 0 and after["rejections"]["EGW00201"] == 0
    # Per key (sim stats by fingerprint): one grant in all, the owner's; no refusal.
    assert key_before["token_grants"] == key_after["token_grants"] == 1
    assert key_after["tokens_issued"] == 1
    assert key_after["rejections"]["EGW00133"] == key_after["rejections"]["EGW00201"] == 0
    assert (
        key_after["rejections"].get("EGW00121", 0)
        == key_after["rejections"].get("EGW00123", 0)
        == 0
    )
    assert calls_after > key_before["business_calls"]  # b's calls, with the shared token
    assert value(metrics_b, "observer_track_a_snapshots_total") > 0
    assert not (tmp_path / "b" / "tokens").exists() or not any(
        (tmp_path / "b" / "tokens").iterdir()
    )
    with psycopg.connect(postgres_url) as connection:
        rows = connection.execute("SELECT convert_to(t::text, 'UTF8') FROM cluster_tokens t")
        stored = b"".join(bytes(row[0]) for row in rows)
    assert stored and token.encode() not in stored
    assert "token taken over from the cluster" in caplog.text
    assert token not in caplog.text and token not in generate_latest(metrics_b.registry).decode()


async def test_a_standby_with_another_app_secret_issues_its_own_once_allowed(
    tmp_path: Path, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The row does not open with another secret (a rotated one): a warning, then one issuance."""
    rotated = Credentials(KEY, demo_credentials("rotated").app_secret)
    metrics_a, metrics_b = (
        Metrics(new_registry(), version="a"),
        Metrics(new_registry(), version="b"),
    )
    async with SimExchange(sim_settings(symbols=20)) as sim:
        async with running(
            sim, member_settings(tmp_path, "a", postgres_url), metrics_a, label=LABEL
        ):
            await wait_for(
                lambda: value(metrics_a, "observer_token_refreshes_total") >= 1,
                what="the owner's token",
            )
        endpoint = Endpoint(sim.rest_url, sim.ws_url, rotated, always_open=True)
        app = ObserverApp(
            member_settings(tmp_path, "b", postgres_url),
            endpoint,
            metrics=metrics_b,
            readiness=Readiness(),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(app.run(stop))
        try:
            await wait_for(
                lambda: value(metrics_b, "observer_track_a_sweeps_total") >= 1 or task.done(),
                what="b sweeping with a token of its own",
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)
        stats = sim.key_stats(KEY)
        assert app.context is not None and app.context.client.tokens.issued == 1
    assert stats["token_grants"] == 2 and stats["rejections"]["EGW00133"] == 0
    assert "does not open" in caplog.text
    for secret in (*demo_credentials(LABEL).secrets(), rotated.app_secret):
        assert secret not in caplog.text
