"""``observer run --with-stack``: one command brings up Observer, Prometheus and Alertmanager."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from observer.stack.native import binaries_available
from tests.stack.poll import until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not binaries_available(), reason="Debian binaries not installed"),
]
STACK_UP = re.compile(r"stack up prometheus=(\S+) alertmanager=(\S+)")


async def _stack_urls(stderr: asyncio.StreamReader) -> tuple[str, str]:
    while line := await stderr.readline():
        if found := STACK_UP.search(line.decode()):
            return found.group(1), found.group(2)
    raise AssertionError("observer run ended without bringing the stack up")


async def test_run_with_stack_is_scraped_by_its_own_prometheus(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "observer", "run", "--listen", "127.0.0.1:0",
        "--with-stack", "always", "--data-dir", str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line.startswith(b"exporter_url "), line
        exporter_url = line.decode().split()[1]
        prometheus_url, alertmanager_url = await asyncio.wait_for(_stack_urls(process.stderr), 90)
        exporter_target = exporter_url.removeprefix("http://")

        async with aiohttp.ClientSession() as http:

            async def observer_target_up() -> bool:
                url = f"{prometheus_url}/api/v1/targets"
                async with http.get(url) as response:
                    targets = (await response.json())["data"]["activeTargets"]
                return any(
                    t["labels"].get("job") == "observer"
                    and t["labels"].get("instance") == exporter_target
                    and t["health"] == "up"
                    for t in targets
                )

            await until(observer_target_up, timeout_seconds=60, what="Observer scraped, up")
            async with http.get(f"{alertmanager_url}/-/ready") as response:
                assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
