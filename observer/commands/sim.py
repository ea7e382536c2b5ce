"""``observer sim``: run the KIS-compatible simulated exchange alone until SIGINT/SIGTERM.

Prints on stdout, one ``name value`` a line: the bound REST and WebSocket URLs
(port 0 picks free ports) as ``rest_url http://…`` and ``ws_url ws://…``; a
credential pair it accepts, ``app_key …`` and ``app_secret …`` (or
``credentials restricted`` when restricted); and ``symbol …``, a liquid listed
share to try first. Then serves. Credentials: ``--app-key``/``--app-secret`` or
``KIS_APP_KEY``/``KIS_APP_SECRET`` restrict the exchange to that one pair
(neither value is ever printed); otherwise any key of 36 characters with a
secret of 180 is accepted, each with its own limits and session (the printed
pair is one such, the same on every start; it is no secret).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING

from observer.commands import add_config_argument, settings_from_args
from observer.config_values import parse_listen
from observer.credentials import (
    APP_KEY_LENGTH,
    APP_SECRET_LENGTH,
    ENV_APP_KEY,
    ENV_APP_SECRET,
    demo_credentials,
    validate,
)
from observer.errors import ConfigError, CredentialsError

if TYPE_CHECKING:
    from observer.config import SimSettings

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_WS_LISTEN = "127.0.0.1:8081"
DEMO_LABEL = "observer sim"  # the printed pair: demo_credentials of this label


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"REST address (default {DEFAULT_LISTEN}; port 0 picks a free port)",
    )
    parser.add_argument(
        "--ws-listen",
        default=DEFAULT_WS_LISTEN,
        metavar="HOST:PORT",
        help=f"WebSocket address (default {DEFAULT_WS_LISTEN}; port 0 picks a free port)",
    )
    parser.add_argument("--symbols", type=int, metavar="N", help="instruments (default 2500)")
    parser.add_argument("--seed", type=int, metavar="S", help="market model seed (default 1)")
    parser.add_argument(
        "--rate-limit", type=float, metavar="R", help="REST calls per second per app key"
    )
    parser.add_argument(
        "--rate-window", choices=("sliding", "fixed", "bucket"), help="how the limit is measured"
    )
    parser.add_argument(
        "--always-open",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the market open around the clock (default on; --no-always-open: KRX hours)",
    )
    parser.add_argument("--speed", type=float, metavar="X", help="simulated seconds per second")
    parser.add_argument("--start-at", metavar="'YYYY-MM-DD HH:MM:SS'", help="simulated start, KST")
    parser.add_argument(
        "--app-key", help=f"accept only this app key (or {ENV_APP_KEY}; needs the secret too)"
    )
    parser.add_argument("--app-secret", help=f"accept only this app secret (or {ENV_APP_SECRET})")


def _settings(args: argparse.Namespace) -> SimSettings:
    """The simulator's settings and addresses, all checked before anything starts."""
    for option, value in (("--listen", args.listen), ("--ws-listen", args.ws_listen)):
        try:
            parse_listen(value)
        except ValueError as exc:
            raise ConfigError(f"{option} {value!r}: {exc}") from None
    overrides = {
        "sim": {
            "symbols": args.symbols,
            "seed": args.seed,
            "rate_limit": args.rate_limit,
            "rate_window": args.rate_window,
            "always_open": args.always_open,
            "speed": args.speed,
            "start_at": args.start_at,
        }
    }
    return settings_from_args(args, overrides).sim


def _credentials(args: argparse.Namespace) -> tuple[str | None, str | None]:
    app_key = args.app_key or os.environ.get(ENV_APP_KEY) or None
    app_secret = args.app_secret or os.environ.get(ENV_APP_SECRET) or None
    if (app_key is None) != (app_secret is None):
        raise CredentialsError("give both the app key and the app secret, or neither")
    if app_key is not None and app_secret is not None:
        validate(app_key, app_secret)
    return app_key, app_secret


async def _serve(
    args: argparse.Namespace, settings: SimSettings, app_key: str | None, app_secret: str | None
) -> int:
    from observer.sim import SimExchange  # aiohttp, websockets: once the options hold

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with SimExchange(
            settings,
            listen=args.listen,
            ws_listen=args.ws_listen,
            app_key=app_key,
            app_secret=app_secret,
        ) as sim:
            print(f"rest_url {sim.rest_url}", flush=True)
            print(f"ws_url {sim.ws_url}", flush=True)
            if app_key is None:
                pair = demo_credentials(DEMO_LABEL)
                print(f"app_key {pair.app_key}", flush=True)
                print(f"app_secret {pair.app_secret}", flush=True)
                rule = (
                    f"any app key of {APP_KEY_LENGTH} characters with an app secret of "
                    f"{APP_SECRET_LENGTH} is accepted (the pair above is one)"
                )
            else:
                print("credentials restricted", flush=True)
                rule = "only the configured app key and secret are accepted"
            symbol = sim.liquid_symbol()
            print(f"symbol {symbol}", flush=True)
            print(
                f"observer sim: {settings.symbols} symbols, seed {settings.seed}, "
                f"{settings.rate_limit:g}/s {settings.rate_window}, speed {settings.speed:g}; "
                f"{rule}; try symbol {symbol} ({sim.instrument_name(symbol)}); Ctrl-C to stop",
                file=sys.stderr,
                flush=True,
            )
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
    return 0


def main(args: argparse.Namespace) -> int:
    settings = _settings(args)
    app_key, app_secret = _credentials(args)
    return asyncio.run(_serve(args, settings, app_key, app_secret))
