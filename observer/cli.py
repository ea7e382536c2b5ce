"""The ``observer`` command line: one subcommand per module in ``observer.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from observer import __version__
from observer.errors import ConfigError, ObserverError

# name → (module, one-line help). Each module has add_arguments(parser) and main(args) -> int.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("observer.commands.run", "run Observer and its exporter"),
    "sim": ("observer.commands.sim", "run the KIS-compatible simulated exchange alone"),
    "generate": ("observer.commands.generate", "write dashboards, rules and the stack config"),
    "check": ("observer.commands.check", "validate what generate wrote"),
    "stack": ("observer.commands.stack", "run Prometheus and Alertmanager natively"),
    "db": ("observer.commands.db", "look at the store, migrate its schema, copy it elsewhere"),
    "cluster": ("observer.commands.cluster", "several keys as one collector: a local demo"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = argparse.ArgumentParser(
        prog="observer",
        description="Collect KIS market data within the broker's limits and export its health.",
    )
    parser.add_argument("--version", action="version", version=f"observer {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules: dict[str, ModuleType] = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; returns the process exit code.

    Configuration errors exit 2 with one line naming the key; other deliberate
    errors exit 1 with one line; nothing ends in a traceback.
    """
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    module = modules[args.command]
    try:
        code: int = module.main(args)
    except ConfigError as exc:
        print(f"observer {args.command}: configuration error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except ObserverError as exc:
        print(f"observer {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def _one_line(error: Exception) -> str:
    """The message with line breaks escaped: one error, one line, whatever it quotes."""
    return str(error).replace("\r", "\\r").replace("\n", "\\n")
