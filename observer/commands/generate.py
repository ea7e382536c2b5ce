"""``observer generate [--out DIR]``: write dashboards, rules and stack files, deterministically."""

from __future__ import annotations

import argparse
from pathlib import Path

from observer.stack import files as stack_files

DEFAULT_OUT = Path("compose")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"folder to write into (default: {DEFAULT_OUT}/)",
    )


def main(args: argparse.Namespace) -> int:
    out_dir: Path = args.out
    rendered = stack_files.render_files()
    stack_files.write_files(rendered, out_dir)
    for relative in rendered:
        print(out_dir / relative)
    return 0
