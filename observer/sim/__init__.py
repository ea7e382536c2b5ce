"""A KIS-compatible simulated exchange with fault injection (see ``SimExchange``).

It serves the wire facts of ``kis-protocol.md`` on two loopback ports: REST
(aiohttp) and WebSocket (websockets). Decisions the spec leaves open:

- Rate limit: per app key, on business calls (``/uapi/…``) only. ``/oauth2/*``
  is governed by its own rules (one token grant per minute per key);
  master-file downloads are public and unlimited; ``/sim/*`` is never limited.
  Refused calls do not use up the allowance.
- Token errors on business calls answer ``rt_cd "1"`` with HTTP 500 by default
  (``SimSettings.token_error_http_status``: 200 or 500).
- Tokens, approval keys and rate limits run on the real clock; the market runs
  on the simulated clock (``speed``, ``start_at``).
- Trades by time (``inquire-time-itemconclusion``): newest first, pages of
  ``backfill_page_rows`` (30) rows, each page extended to include the whole of
  its oldest second; ``tr_cont`` is ``M`` while older trades exist, ``D`` on the
  last page. To page completely, re-query with the page's oldest
  ``stck_cntg_hour`` minus one second until ``tr_cont`` is ``D``; rows never
  repeat and paging terminates even when more than a page of trades share one
  second. Rows carry ``cntg_vol`` and KIS's own ``cnqn`` (same value). Trades are
  kept for ``trade_history_seconds`` of simulated time.
- ``ws_stall``: trades of the stalled stretch are never sent (a volume gap);
  ``frame_drop``: the next ``count`` records of the symbol, on whichever session
  sends them; ``ws_drop`` cuts connections without a close frame; ``ws_drop`` and
  ``token_expire`` act once and are not listed in ``active_faults``.
- ``observer sim`` listens on 127.0.0.1:8080 (REST) and 127.0.0.1:8081 (WebSocket)
  by default.
"""

from observer.sim.exchange import SimExchange

__all__ = ["SimExchange"]
