"""The status page of a real ``observer run`` in headless Chromium, over the DevTools protocol.

The browser runs the page's own script against a live Observer (300 symbols at
20 calls/s, so a sweep takes about 15 s): the readiness shows why not yet, the
sweep progress it shows advances, the slot table fills (seeded from the volume
ranking, then Track A's triggers), a dropped frame shows as a gap that backfill
recovers, the stack's links appear when ``--with-stack`` ran it, and a
full-page screenshot goes to ``docs/status-page.png`` (shown in the README).
Behind basic auth, the page opened with credentials in its address refreshes too.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml

from exporter.server import ExporterServer, serving
from exporter.webconfig import WebConfig
from metrics.registry import Metrics
from observer.credentials import demo_credentials
from observer.sim import SimExchange
from observer.stack.native import binaries_available
from tests.browser.cdp import Page, chromium_binary, headless_chromium
from tests.core.conftest import sim_settings

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(chromium_binary() is None, reason="chromium not installed"),
]
# Where the screenshot goes: the test's own directory, or the README's picture when
# STATUS_PAGE_SCREENSHOT names it (`STATUS_PAGE_SCREENSHOT=docs/status-page.png`), so a
# test run leaves the work tree as it found it.
SCREENSHOT_VARIABLE = "STATUS_PAGE_SCREENSHOT"
WIDTH = 1280
WITHIN_S = 60.0
TRIGGER_KINDS = {"price_move", "volume_surge", "volume_rank"}
CREDENTIALS = demo_credentials("status-page")
PASSWORD = "status-page-password"

# What the page shows, read from its DOM as a person would read it.
PAGE_STATE = """(() => {
  if (!document.getElementById("sweep-done")) return null;  // still loading
  const text = (id) => document.getElementById(id).textContent.trim();
  const rows = (selector) => [...document.querySelectorAll(selector + " tbody tr")]
    .map((tr) => [...tr.cells].map((td) => td.textContent.trim()));
  return {
    refreshes: Number(document.body.dataset.refreshes || 0),
    ready: text("ready"), reason: text("ready-reason"), state: text("sweep-state"),
    done: text("sweep-done"), total: text("sweep-total"), sweeps: text("sweep-count"),
    rate: text("sweep-rate"), limit: text("sweep-limit"), eta: text("sweep-eta"),
    token: text("token-state"), queue: text("queue-capacity"), error: text("error"),
    slots: rows("#slots"), gaps: rows("#gap-table"),
    links: Object.fromEntries([...document.querySelectorAll("#links a")]
      .map((a) => [a.textContent.trim(), a.href])),
  };
})()"""


def number(shown: str) -> int:
    return int(shown.replace(",", "")) if shown not in ("", "–") else -1


def progress(state: dict[str, Any]) -> tuple[int, int]:
    return number(state["sweeps"]), number(state["done"])


def held(state: dict[str, Any]) -> list[list[str]]:
    return [row for row in state["slots"] if len(row) == 7]


def gaps(state: dict[str, Any]) -> list[list[str]]:
    return [row for row in state["gaps"] if len(row) == 8]


@asynccontextmanager
async def observer_run(sim: SimExchange, base: Path) -> AsyncIterator[tuple[Any, str]]:
    config = base / "observer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "rate_limit": {"rate_per_second": 20.0},
                "track_a": {"sweep_when_closed": True},
                "storage": {"flush_interval_seconds": 0.05},
            }
        )
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("OBSERVER_")}
    env |= {"KIS_APP_KEY": CREDENTIALS.app_key, "KIS_APP_SECRET": CREDENTIALS.app_secret}
    env.pop("SENTRY_DSN", None)
    log = (base / "observer.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "observer", "run", "--config", str(config),
        "--provider", "kis", "--rest-url", sim.rest_url, "--ws-url", sim.ws_url,
        "--listen", "127.0.0.1:0", "--data-dir", str(base / "data"), "--with-stack", "auto",
        stdout=asyncio.subprocess.PIPE, stderr=log, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), WITHIN_S)
        assert line.startswith(b"exporter_url "), (base / "observer.log").read_text()[-2000:]
        yield process, line.decode().split()[1]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()


async def test_the_status_page_shows_observer_working_in_chromium(tmp_path: Path) -> None:
    # speed 10: seeded and triggered symbols trade within seconds.
    settings = sim_settings(symbols=300, rate_limit=20.0, speed=10.0)
    exchange = SimExchange(settings, app_key=CREDENTIALS.app_key, app_secret=CREDENTIALS.app_secret)
    async with (
        exchange as sim,
        headless_chromium(tmp_path / "profile") as browser,
        observer_run(sim, tmp_path) as (process, url),
    ):
        page = await browser.open(url + "/", width=WIDTH)

        async def shown(accept: Any, what: str) -> dict[str, Any]:
            state: dict[str, Any] = await page.wait_for(
                PAGE_STATE, accept, within_s=WITHIN_S, what=what
            )
            return state

        first = await shown(lambda s: s["refreshes"] >= 1, "the page's first refresh")
        assert first["ready"] == "not ready" and "first_sweep" in first["reason"], first
        assert first["error"] == ""

        # The sweep progress the page shows advances between two reads.
        running = await shown(
            lambda s: s["state"] == "sweeping" and number(s["done"]) > 0, "a sweep under way"
        )
        assert number(running["total"]) == 300 and running["limit"] == "20"
        later = await shown(lambda s: progress(s) > progress(running), "the progress to advance")
        assert later["refreshes"] > running["refreshes"]

        # The slot table fills.
        filled = await shown(lambda s: len(held(s)) >= 3, "held slots")
        for slot, symbol, _since, _for, _frame, trigger, _score in held(filled):
            assert slot.isdigit() and len(symbol) == 6 and trigger in TRIGGER_KINDS, filled

        # A dropped frame of a trading held symbol shows as a gap, then as recovered.
        target = await _trading_held_symbol(page, sim)
        await sim.inject({"kind": "frame_drop", "symbol": target, "count": 2})
        recovered = await shown(
            lambda s: any(row[1] == target and row[7] == "full" for row in gaps(s)),
            f"a recovered gap of {target}",
        )
        (row,) = [row for row in gaps(recovered) if row[1] == target]
        assert (row[2], row[3]) == ("B", "volume_jump"), row

        done = await shown(lambda s: s["ready"] == "ready", "readiness")
        assert done["reason"] == "" and done["token"] == "valid" and done["queue"] == "50,000"
        assert {"/metrics", "/api/summary"} <= done["links"].keys()
        if binaries_available():  # --with-stack auto ran them: the page links to both
            done = await shown(
                lambda s: {"Prometheus", "Alertmanager"} <= s["links"].keys(), "stack links"
            )
            assert done["links"]["Prometheus"].startswith("http://")
        assert done["error"] == ""

        shot = Path(os.environ.get(SCREENSHOT_VARIABLE) or tmp_path / "status-page.png")
        png = await page.screenshot(shot, width=WIDTH)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert int.from_bytes(png[16:20], "big") == WIDTH  # IHDR width

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), WITHIN_S) == 0


async def test_the_page_refreshes_behind_basic_auth(tmp_path: Path, metrics: Metrics) -> None:
    """Opened as http://user:password@host/ (a URL whose credentials a fetch refuses), the
    page still reads its summary; without the credentials Chromium gets no page at all."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    server = ExporterServer(metrics, web_config=WebConfig(basic_auth_users={"viewer": hashed}))
    async with (
        serving(server, "127.0.0.1", 0),
        headless_chromium(tmp_path / "profile") as browser,
    ):
        refused = await browser.open(server.url + "/")
        title = await refused.wait_for(
            "document.readyState === 'complete' ? document.title : null",
            lambda title: True,
            within_s=WITHIN_S,
            what="the refused page",
        )
        assert title != "Observer status"
        page = await browser.open(f"http://viewer:{PASSWORD}@127.0.0.1:{server.port}/")
        state = await page.wait_for(
            PAGE_STATE,
            lambda s: s["refreshes"] >= 2 or s["error"] != "",
            within_s=WITHIN_S,
            what="two refreshes",
        )
        assert state["error"] == "" and state["ready"] == "not ready", state


async def _trading_held_symbol(page: Page, sim: SimExchange) -> str:
    """A symbol the page lists as held to which the exchange has sent frames."""

    def trading(state: dict[str, Any]) -> bool:
        sent = sim.stats()["frames_sent"]
        return any(sent.get(row[1], 0) > 0 for row in held(state))

    state = await page.wait_for(PAGE_STATE, trading, within_s=WITHIN_S, what="a trading slot")
    sent = sim.stats()["frames_sent"]
    return str(next(row[1] for row in held(state) if sent.get(row[1], 0) > 0))
