"""Rendering the registry: content negotiation, gzip, and the bytes of one scrape."""

from __future__ import annotations

import gzip
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

# Below this size gzip costs more CPU than it saves on loopback scrapes.
GZIP_MIN_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Rendered:
    body: bytes
    content_type: str
    content_encoding: str | None


def accepts_gzip(accept_encoding: str) -> bool:
    """True when an ``Accept-Encoding`` header allows gzip (and does not forbid it with q=0)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        quality = params.strip().removeprefix("q=").strip()
        try:
            return not quality or float(quality) > 0
        except ValueError:
            return False
    return False


def render(registry: CollectorRegistry, *, accept: str, accept_encoding: str) -> Rendered:
    """Encode ``registry`` as Prometheus text or OpenMetrics (when ``accept`` asks for it).

    CPU-bound: the exporter runs it in a worker thread so a scrape does not hold the loop.
    """
    encoder, content_type = choose_encoder(accept)
    body = encoder(registry)
    if accepts_gzip(accept_encoding) and len(body) >= GZIP_MIN_BYTES:
        return Rendered(gzip.compress(body, compresslevel=5), content_type, "gzip")
    return Rendered(body, content_type, None)
