"""One Observer, one Prometheus, one Alertmanager and a webhook sink, shared by the e2e tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from observer.stack.native import NativeStack, binaries_available, stop_detached
from observer.stack.process import stop_pid_file
from tests.e2e.harness import Api, ObserverProcess, WebhookSink, e2e_files, http_session
from tests.stack.poll import until


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            if not binaries_available():
                item.add_marker(pytest.mark.skip(reason="prometheus/alertmanager not installed"))


@dataclass
class World:
    observer: ObserverProcess
    stack: NativeStack
    sink: WebhookSink
    api: Api


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's folder; on the way out, stops whatever its pid files still name."""
    base = tmp_path_factory.mktemp("e2e")
    yield base
    # A safety net for a teardown that did not run to its end: stop only processes
    # whose command line names this folder.
    stop_detached(base / "stack")
    stop_pid_file(base / "observer.pid", marker=str(base))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def world(e2e_dir: Path) -> AsyncIterator[World]:
    base = e2e_dir
    sink = WebhookSink()
    await sink.start()
    observer = ObserverProcess(base)
    try:
        await observer.start()
        async with (
            NativeStack(
                e2e_files(sink.url),
                observer_target=observer.target,
                data_dir=base / "stack",
                # Alerts fired before Prometheus has found Alertmanager are sent again
                # after this delay (1 m by default).
                prometheus_args=["--rules.alert.resend-delay=1s"],
            ) as stack,
            http_session() as http,
        ):
            api = Api(http, stack.prometheus_url, stack.alertmanager_url)
            await until(
                lambda: _scraped(api),
                timeout_seconds=30,
                what="Prometheus scraping Observer (up == 1)",
            )
            yield World(observer, stack, sink, api)
    finally:
        await observer.stop()
        await sink.close()


async def _scraped(api: Api) -> bool:
    return bool(await api.query('up{job="observer"} == 1'))
