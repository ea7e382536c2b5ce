"""Parsers of single setting values: listen addresses, shards, the simulator's start.

Each returns the parsed value or raises ValueError saying what is wrong; the
settings model (``observer.config``) turns that into an error naming the key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

# The simulator's clock must stay within what its calendar and date formats handle
# (chk-holiday's BASS_DT is refused outside 1970-2999), with years to run at top speed.
SIM_START_EARLIEST = dt.datetime(1970, 1, 2)
SIM_START_LATEST = dt.datetime(2999, 12, 31, 23, 59, 59)
SIM_MAX_SPEED = 1000.0
_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6, ``:PORT`` for every interface).

    The host is an IP address or a name of DNS labels (1-63 characters each);
    ``""`` is returned for every interface. ValueError says what is wrong.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isascii() or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"expected HOST:PORT with a port from 0 to 65535, got {value!r}")
    if host.startswith("[") or host.endswith("]"):
        if not (host.startswith("[") and host.endswith("]")) or not _is_ipv6(host[1:-1]):
            raise ValueError(f"expected [IPv6]:PORT, got {value!r}")
        return host[1:-1], int(port_text)
    if host and not _is_ip(host) and not _is_host_name(host):
        raise ValueError(
            "the host is neither an IP address nor a name of DNS labels (1-63 characters)"
        )
    return host, int(port_text)


def parse_endpoint_url(value: str, *, schemes: tuple[str, ...]) -> SplitResult:
    """A URL with one of ``schemes``, a usable host (as ``parse_listen``) and a valid port.

    A host label of 64 characters once ended ``observer run`` in an idna traceback
    at the first request (issue 14); ValueError says what is wrong instead.
    """
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ValueError(f"expected a URL with scheme {' or '.join(schemes)}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None
    host = parts.hostname or ""
    if not host or not (_is_ip(host) or _is_host_name(host)):
        raise ValueError(
            "the host is neither an IP address nor a name of DNS labels (1-63 characters)"
        )
    return parts


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_host_name(text: str) -> bool:
    """DNS labels of 1-63 characters, 253 in all (the idna codec raises on longer ones)."""
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_name.removesuffix(".").split(".")
    return len(ascii_name) <= 253 and all(_HOST_LABEL.match(label) for label in labels)


def parse_sim_start(value: str) -> dt.datetime:
    """``YYYY-MM-DD HH:MM:SS`` (KST) that exists and fits the simulator's clock; else ValueError."""
    try:
        start = dt.datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError as exc:
        raise ValueError(f"not a date and time that exists ({exc})") from None
    if start.tzinfo is not None or not SIM_START_EARLIEST <= start <= SIM_START_LATEST:
        raise ValueError(
            f"outside the simulator's clock, {SIM_START_EARLIEST} to {SIM_START_LATEST}"
        )
    return start


def parse_shard(value: str) -> tuple[int, int]:
    """Split ``i/n`` with 0 <= i < n; ValueError says what is wrong."""
    index_text, sep, count_text = value.partition("/")
    if not sep or not index_text.isdigit() or not count_text.isdigit():
        raise ValueError(f"expected i/n, got {value!r}")
    index, count = int(index_text), int(count_text)
    if count < 1 or index >= count:
        raise ValueError(f"shard index must be in 0..n-1 and n >= 1, got {value!r}")
    return index, count
