"""The status page at ``/``: self-contained (no CDN), locked by its CSP, behind web-config auth.

That its script runs and fills the page in a real browser is shown by
``tests/e2e/test_status_page_browser.py``.
"""

from __future__ import annotations

import base64
import hashlib
import re

import aiohttp
import bcrypt

from exporter.server import ExporterServer, serving
from exporter.status_page import StatusPage, content_security_policy
from exporter.webconfig import WebConfig
from metrics.registry import Metrics

PASSWORD = "status-page-password"


async def fetch(url: str, **headers: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, dict(response.headers), await response.text()


def inline_blocks(page: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.S)


async def test_the_page_is_self_contained_and_reads_the_summary(metrics: Metrics) -> None:
    async with serving(ExporterServer(metrics, version="1.2.3"), "127.0.0.1", 0) as server:
        status, headers, page = await fetch(server.url + "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"
    # Nothing fetched from elsewhere: no external src/href, stylesheet link, import or url().
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I)
    assert not re.search(r"<link\b", page, re.I)
    for style in inline_blocks(page, "style"):
        assert not re.search(r"@import|url\(", style, re.I)
    assert re.search(r"""new URL\("api/summary", location\.origin""", page)
    for element in ("sweep-done", "sweep-total", "sweep-rate", "sweep-limit", "sweep-eta"):
        assert f'id="{element}"' in page
    for element in ("sweep-last", "token-validity", "queue-depth", "write-errors"):
        assert f'id="{element}"' in page
    for table in ('id="slots"', 'id="gap-table"'):
        assert table in page
    for link in ('href="metrics"', 'href="api/summary"', 'href="healthz"', 'href="readyz"'):
        assert link in page
    assert "version 1.2.3" in page


async def test_the_csp_allows_exactly_the_inline_blocks_and_this_origin(metrics: Metrics) -> None:
    async with serving(ExporterServer(metrics), "127.0.0.1", 0) as server:
        _, headers, page = await fetch(server.url + "/")
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in headers["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    for tag, directive in (("script", "script-src"), ("style", "style-src")):
        (block,) = inline_blocks(page, tag)
        digest = base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()
        assert policy[directive] == f"'sha256-{digest}'"
    assert "unsafe-inline" not in headers["Content-Security-Policy"]


def test_a_page_without_inline_blocks_gets_none() -> None:
    policy = content_security_policy("<p>nothing to run</p>")
    assert "script-src 'none'" in policy and "style-src 'none'" in policy


def test_the_version_is_escaped() -> None:
    page = StatusPage.render('<script>alert("x")</script>').body.decode()
    assert "<script>alert" not in page and "&lt;script&gt;alert(&quot;x&quot;)" in page


async def test_the_page_and_its_summary_need_the_web_config_credentials(metrics: Metrics) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    config = WebConfig(basic_auth_users={"viewer": hashed})
    good = "Basic " + base64.b64encode(f"viewer:{PASSWORD}".encode()).decode()
    bad = "Basic " + base64.b64encode(b"viewer:guess").decode()
    async with serving(ExporterServer(metrics, web_config=config), "127.0.0.1", 0) as server:
        for path in ("/", "/api/summary"):
            assert (await fetch(server.url + path))[0] == 401
            assert (await fetch(server.url + path, Authorization=bad))[0] == 401
        status, _, page = await fetch(server.url + "/", Authorization=good)
        assert status == 200 and 'id="sweep-done"' in page
        status, _, body = await fetch(server.url + "/api/summary", Authorization=good)
        assert status == 200 and '"sweep_progress"' in body
