"""The status page at ``/``: one self-contained HTML file (``status_page.html``), no CDN.

Its inline style and script refresh it from ``/api/summary``. The response carries
a Content-Security-Policy that allows exactly those two inline blocks (by hash) and
same-origin requests, so the page cannot load anything from elsewhere even if edited
to try: it works offline, and behind the exporter's web-config like every route.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass
from importlib import resources

TEMPLATE = "status_page.html"
VERSION_PLACEHOLDER = "__VERSION__"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


def _hash_source(block: str) -> str:
    digest = hashlib.sha256(block.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def content_security_policy(page: str) -> str:
    """Same origin only; the page's inline ``<script>`` and ``<style>`` blocks by hash."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, block in _INLINE.findall(page):
        hashes[kind].append(_hash_source(block))
    scripts = " ".join(hashes["script"]) or "'none'"
    styles = " ".join(hashes["style"]) or "'none'"
    return "; ".join(
        [
            "default-src 'none'",
            "connect-src 'self'",
            f"script-src {scripts}",
            f"style-src {styles}",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


@dataclass(frozen=True, slots=True)
class StatusPage:
    """The rendered page and the headers it is served with."""

    body: bytes
    headers: dict[str, str]

    @classmethod
    def render(cls, version: str, template: str | None = None) -> StatusPage:
        """The page for ``version`` (escaped); ``template`` defaults to the packaged file."""
        if template is None:
            template = resources.files(__package__).joinpath(TEMPLATE).read_text("utf-8")
        page = template.replace(VERSION_PLACEHOLDER, html.escape(version))
        headers = {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": content_security_policy(page),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
        return cls(page.encode("utf-8"), headers)
