"""``observer generate [--config stack.yaml] [--out DIR]``: write dashboards, rules and stack
files, deterministically; ``--print-defaults`` prints the stack configuration's defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUT = Path("compose")
DEFAULTS_HEADER = (
    "# Observer stack configuration: every default (`observer generate --print-defaults`).\n"
    "# Keep only what you change; the schema is docs/stack.schema.json.\n"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"folder to write into (default: {DEFAULT_OUT}/)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="stack configuration YAML (see docs/stack.schema.json; default: the defaults)",
    )
    parser.add_argument(
        "--print-defaults",
        action="store_true",
        help="print the stack configuration with every default and exit",
    )


def main(args: argparse.Namespace) -> int:
    from observer.stack import adapt
    from observer.stack import files as stack_files
    from observer.stack.config import StackConfig, dump_config, load_stack_config

    if args.print_defaults:
        print(DEFAULTS_HEADER + dump_config(StackConfig(), adapt.default_rules()), end="")
        return 0
    out_dir: Path = args.out
    config = None if args.config is None else load_stack_config(args.config)
    rendered = stack_files.render_files(config=config, out_dir=out_dir)
    stack_files.write_files(rendered, out_dir)
    for relative in rendered:
        print(out_dir / relative)
    return 0
