"""Headless Chromium driven over the DevTools protocol (a WebSocket, with ``websockets``).

Just enough for a test: open a page in its own target, evaluate JavaScript in it,
wait for a condition the page shows, take a full-page PNG. No driver binary, no
Selenium: the browser speaks the protocol itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

LISTENING = re.compile(r"DevTools listening on (ws://\S+)")
START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0


class DevToolsError(AssertionError):
    """The browser answered a call with an error, or a page's script threw."""


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One browser tab, attached with its own session id."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self._browser = browser
        self._session = session_id

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        return await self._browser.call(method, session_id=self._session, **params)

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (awaited if it is a promise);
        None while a navigation leaves the page without a document to evaluate in."""
        try:
            answer = await self.call(
                "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
            )
        except DevToolsError as exc:
            if "execution context" in str(exc).lower():
                return None
            raise
        if "exceptionDetails" in answer:
            raise DevToolsError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def wait_for(
        self, expression: str, accept: Callable[[Any], bool], *, within_s: float, what: str
    ) -> Any:
        """Evaluate ``expression`` every 100 ms until ``accept`` takes its value; that value.

        A ``null`` value (the page not loaded yet) is never offered to ``accept``.
        """
        deadline = asyncio.get_running_loop().time() + within_s
        while True:
            value = await self.evaluate(expression)
            if value is not None and accept(value):
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {within_s} s waiting for {what}: {value!r}")
            await asyncio.sleep(0.1)

    async def screenshot(self, path: Path, *, width: int) -> bytes:
        """A PNG of the whole page at ``width`` CSS pixels, written to ``path``."""
        height = await self.evaluate("document.documentElement.scrollHeight")
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=int(height),
            deviceScaleFactor=1,
            mobile=False,
        )
        answer = await self.call("Page.captureScreenshot", format="png")
        data = base64.b64decode(answer["data"])
        await asyncio.to_thread(path.write_bytes, data)
        return data


class Browser:
    """A running headless Chromium and its DevTools connection."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._ids = itertools.count(1)

    async def call(
        self, method: str, *, session_id: str | None = None, **params: Any
    ) -> dict[str, Any]:
        """Send one command and wait for its answer; events meanwhile are skipped."""
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
        if session_id is not None:
            message["sessionId"] = session_id
        await self._connection.send(json.dumps(message))
        async with asyncio.timeout(CALL_TIMEOUT_S):
            while True:
                answer = json.loads(await self._connection.recv())
                if answer.get("id") == call_id:
                    break
        if "error" in answer:
            raise DevToolsError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    async def open(self, url: str, *, width: int = 1280, height: int = 900) -> Page:
        target = await self.call(
            "Target.createTarget", url=url, width=width, height=height, newWindow=True
        )
        attached = await self.call(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        return Page(self, attached["sessionId"])


@contextlib.asynccontextmanager
async def headless_chromium(profile_dir: Path) -> AsyncIterator[Browser]:
    """Start headless Chromium with a fresh profile in ``profile_dir``; stop it on exit."""
    binary = chromium_binary()
    assert binary is not None, "chromium not installed (make system-deps installs it)"
    arguments = [
        binary,
        "--headless",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--remote-debugging-port=0",  # the port it picked is in its "DevTools listening" line
        f"--user-data-dir={profile_dir}",
        "about:blank",
    ]
    if os.geteuid() == 0:
        arguments.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    process = await asyncio.create_subprocess_exec(
        *arguments, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        url = await asyncio.wait_for(_devtools_url(process.stderr), START_TIMEOUT_S)
        drain = asyncio.create_task(_drain(process.stderr))
        async with connect(url, max_size=None, open_timeout=START_TIMEOUT_S) as connection:
            yield Browser(connection)
        drain.cancel()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _devtools_url(stderr: asyncio.StreamReader) -> str:
    seen: list[str] = []
    while line := await stderr.readline():
        text = line.decode(errors="replace")
        if found := LISTENING.search(text):
            return found.group(1)
        seen.append(text)
    raise AssertionError("chromium exited before listening: " + "".join(seen[-20:]))


async def _drain(stderr: asyncio.StreamReader) -> None:
    """Keep reading Chromium's chatter so a full pipe never blocks it."""
    while await stderr.readline():
        pass
