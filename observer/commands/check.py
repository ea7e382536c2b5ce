"""``observer check [DIR] [--config stack.yaml]``: validate a generated stack folder against
the configuration that made it; non-zero exit on any problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_DIR = Path("compose")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory",
        nargs="?",
        type=Path,
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"folder written by `observer generate` (default: {DEFAULT_DIR}/)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the stack configuration DIR was generated with (default: the defaults)",
    )
    parser.add_argument(
        "--no-tools",
        dest="tools",
        action="store_false",
        help="skip the checks that run promtool, amtool or docker-compose",
    )


def main(args: argparse.Namespace) -> int:
    from observer.stack.checks import run_checks
    from observer.stack.config import load_stack_config

    directory: Path = args.directory
    if not directory.is_dir():
        print(f"observer check: {directory} is not a folder", file=sys.stderr)
        return 1
    config = None if args.config is None else load_stack_config(args.config)
    report, problems = run_checks(
        directory, tools=args.tools, config=config, config_path=args.config
    )
    for line in report:
        print(line)
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    if problems:
        print(f"observer check: {len(problems)} problem(s) in {directory}", file=sys.stderr)
        return 1
    return 0
