"""``observer check [DIR]``: validate a generated stack folder; non-zero exit on any problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from observer.stack.checks import run_checks

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
        "--no-tools",
        dest="tools",
        action="store_false",
        help="skip the checks that run promtool, amtool or docker-compose",
    )


def main(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    if not directory.is_dir():
        print(f"observer check: {directory} is not a folder", file=sys.stderr)
        return 1
    report, problems = run_checks(directory, tools=args.tools)
    for line in report:
        print(line)
    for line in problems:
        print(f"problem: {line}", file=sys.stderr)
    if problems:
        print(f"observer check: {len(problems)} problem(s) in {directory}", file=sys.stderr)
        return 1
    return 0
