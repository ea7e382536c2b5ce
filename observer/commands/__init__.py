"""Subcommands of ``observer``; each module has ``add_arguments(parser)`` and ``main(args)``.

A module's top level imports only what ``add_arguments`` needs; ``main`` imports the
machinery it runs once the arguments hold. ``observer --help``, ``observer X --help``
and a refused option then start in a fraction of a second instead of loading aiohttp,
pydantic, grafanalib, psycopg and sentry first (tests spawn dozens of these; issue 11);
``tests/foundation/test_cli.py`` holds that line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from observer.config import ObserverSettings


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="YAML settings (see docs/config.schema.json)"
    )


def settings_from_args(
    args: argparse.Namespace,
    overrides: dict[str, Any] | None = None,
    *,
    check: Callable[[ObserverSettings], None] | None = None,
) -> ObserverSettings:
    """Settings from ``--config``, ``OBSERVER_*`` and command-line ``overrides``.

    ``overrides`` is a nested mapping of only the options given on the command
    line (``None`` values are dropped), so flags win over files and variables;
    ``check`` is passed to ``load_settings``.
    """
    from observer.config import load_settings  # pydantic and jsonschema: see the docstring

    path = getattr(args, "config", None)
    return load_settings(path, overrides=_drop_none(overrides or {}), check=check)


def _drop_none(tree: dict[str, Any]) -> dict[str, Any]:
    pruned: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            value = _drop_none(value)
            if not value:
                continue
        elif value is None:
            continue
        elif isinstance(value, Path):  # the schema check sees a YAML document: paths are strings
            value = str(value)
        pruned[key] = value
    return pruned
