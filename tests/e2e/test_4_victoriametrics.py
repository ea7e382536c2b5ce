"""Long retention: a native Prometheus scraping the running Observer remote-writes to a native
VictoriaMetrics (the Debian ``victoria-metrics``), and the dashboard's panel queries return
data from VictoriaMetrics' ``/api/v1/query``, as Grafana's second data source would ask."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from observer.stack import layout, prometheus
from observer.stack.native import NativeStack
from observer.stack.process import ManagedProcess, StackError, free_port
from tests.e2e.conftest import World
from tests.e2e.harness import Api, e2e_files, http_session
from tests.e2e.test_2_dashboard import panel_queries
from tests.stack.poll import until

BINARY = "victoria-metrics"

pytestmark = pytest.mark.skipif(
    shutil.which(BINARY) is None, reason=f"{BINARY} not installed (make system-deps)"
)


async def _start_victoriametrics(directory: Path) -> tuple[ManagedProcess, str]:
    """VictoriaMetrics on a free loopback port; fresh samples visible at once (no 30 s offset)."""
    for _attempt in range(5):
        port = free_port()
        argv = [
            BINARY,
            f"-storageDataPath={directory / 'vm-data'}",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=1d",
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
        ]
        process = ManagedProcess(BINARY, argv, directory / "victoria-metrics.log")
        process.start()
        url = f"http://127.0.0.1:{port}"
        try:
            await process.wait_ready(f"{url}/health", 60)
        except StackError:
            await process.stop()
            if process.address_in_use():
                continue
            raise
        return process, url
    raise StackError(f"{BINARY}: no free port after 5 attempts")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def vm_api(world: World, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """VictoriaMetrics' query API, fed by a second Prometheus that remote-writes to it."""
    directory = tmp_path_factory.mktemp("victoriametrics")
    victoriametrics, vm_url = await _start_victoriametrics(directory)
    try:
        files = e2e_files(world.sink.url)
        profile = dataclasses.replace(prometheus.E2E, remote_write_url=f"{vm_url}/api/v1/write")
        files[layout.PROMETHEUS_CONFIG] = prometheus.render(profile, files)
        async with (
            NativeStack(files, observer_target=world.observer.target, data_dir=directory / "stack"),
            http_session() as http,
        ):
            yield Api(http, vm_url, world.api.alertmanager_url)
    finally:
        await victoriametrics.stop()


@pytest.mark.asyncio(loop_scope="session")
async def test_observer_samples_reach_victoriametrics(vm_api: Api) -> None:
    async def scraped() -> bool:
        return bool(await vm_api.query('up{job="observer"} == 1'))

    await until(scraped, timeout_seconds=60, what="up == 1 in VictoriaMetrics")


@pytest.mark.asyncio(loop_scope="session")
async def test_every_panel_query_returns_data_from_victoriametrics(vm_api: Api) -> None:
    queries = panel_queries()

    async def empty() -> list[str]:
        return [f"{title}: {expr}" for title, expr in queries if not await vm_api.query(expr)]

    async def all_answered() -> bool:
        return not await empty()

    # Recording rules run in Prometheus; their results arrive by remote write as well.
    try:
        await until(all_answered, timeout_seconds=90, what="data for every panel query")
    except AssertionError:
        raise AssertionError(
            "panels without data in VictoriaMetrics:\n" + "\n".join(await empty())
        ) from None
