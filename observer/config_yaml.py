"""Bounded YAML for configuration: a size cap, and no alias bombs, deep nesting or recursion.

A 328-byte "billion laughs" (nine anchors, each a list of nine aliases of the
previous one) makes ``yaml.safe_load`` build 9^9 nodes: gigabytes and a
``MemoryError`` (issue 14). Before anything is constructed, one pass over the
parser's events (PyYAML's parser is iterative, so deep input cannot overflow the
stack) computes the size each anchor would expand to and refuses a document of
more than ``MAX_NODES`` nodes once aliases are expanded, more than ``MAX_DEPTH``
nested collections, or an alias to a collection that is still open (a recursive
structure). Only then is the value built, by a SafeLoader.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent

from observer.errors import ConfigError

MAX_CONFIG_BYTES = 64 * 1024  # the defaults dump to ~2 KiB; 64 KiB is room for comments
MAX_NODES = 10_000  # scalars and collections once every alias is expanded
MAX_DEPTH = 32  # nested mappings and sequences; the schema itself is two deep


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as text: ``start_at: 2026-02-30 10:00:00`` reaches the
    setting's own check (which names the key) instead of failing in the YAML constructor;
    and reads ``1e300`` as a number, as YAML 1.2 does."""


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# YAML 1.1 reads ``1e300`` and ``2e-3`` as text (its floats need a dot and a signed
# exponent); YAML 1.2 and every JSON reader take them as numbers, and so do we.
_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_config_text(path: Path, *, what: str = "") -> str:
    """The text of ``path``, read up to the cap; ConfigError names the path and the reason.

    ``what`` names the kind of file in the error (``cannot read web config: …``).
    """
    verb = f"cannot read {what}".rstrip()
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: {verb}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL in the path
        raise ConfigError(f"{path!r}: {verb}: {exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def load_yaml(text: str, *, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one YAML document within the bounds above (or the ones given: a generated
    file is larger than a configuration, but no alias bomb either).

    Raises ConfigError (one line: the problem and where) for invalid YAML or an
    oversized expansion; never MemoryError or RecursionError.
    """
    try:
        _check_shape(text, max_nodes, max_depth)
        return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_yaml_problem(exc)}") from None
    except (ValueError, OverflowError) as exc:  # a constructor's own check, e.g. !!binary
        raise ConfigError(f"not valid YAML: {exc}") from None


def _check_shape(text: str, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> None:
    """One pass over the events: expanded node count, depth, recursive aliases."""
    expanded: dict[str, int] = {}  # anchor → nodes it stands for
    stack: list[tuple[str | None, int]] = [(None, 0)]  # (anchor, nodes so far) per collection
    for event in yaml.parse(text, Loader=_ConfigLoader):
        if isinstance(event, CollectionStartEvent):
            if len(stack) > max_depth:
                raise ConfigError(f"YAML nested deeper than {max_depth} levels")
            stack.append((event.anchor, 1))
            continue
        if isinstance(event, CollectionEndEvent):
            anchor, size = stack.pop()
        elif isinstance(event, AliasEvent):
            if any(event.anchor == open_anchor for open_anchor, _ in stack):
                raise ConfigError(f"YAML alias *{event.anchor} refers to itself")
            anchor, size = None, expanded.get(event.anchor or "", 1)  # undefined: safe_load says
        elif isinstance(event, ScalarEvent):
            anchor, size = event.anchor, 1
        else:
            continue
        if anchor is not None:
            expanded[anchor] = size
        parent_anchor, parent_size = stack[-1]
        stack[-1] = (parent_anchor, parent_size + size)
        if parent_size + size > max_nodes:
            raise ConfigError(
                f"YAML expands to more than {max_nodes} values (aliases of aliases?); refused"
            )


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``expected ',' or ']', but got '<stream end>' at line 2, column 1``: one line."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem is None:
        return " ".join(str(exc).split())
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


# A generated stack file (rules, their unit tests, compose): far larger than a
# configuration, still nothing like an alias bomb's billions of values.
MAX_GENERATED_BYTES = 16 * 1024 * 1024
MAX_GENERATED_NODES = 2_000_000
MAX_GENERATED_DEPTH = 64


def load_generated_yaml(path: Path) -> Any:
    """A generated YAML file (``observer check``): bounded in size, values and depth.

    Raises ConfigError (one line) for a file that is too large or not valid YAML.
    """
    with path.open("rb") as handle:
        data = handle.read(MAX_GENERATED_BYTES + 1)
    if len(data) > MAX_GENERATED_BYTES:
        raise ConfigError(f"{path.name}: larger than {MAX_GENERATED_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path.name}: not UTF-8 text") from None
    return load_yaml(text, max_nodes=MAX_GENERATED_NODES, max_depth=MAX_GENERATED_DEPTH)


# libyaml's emitter when PyYAML has it: the same text as the pure-Python emitter
# (tests/stack/test_generate.py compares the two on every generated file) in a tenth of the
# time; the rules alone took 0.15 s a render in pure Python.
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump_generated_yaml(document: Any, *, width: int) -> str:
    """``document`` as block-style YAML in its own key order, Unicode as is, lines folded
    at ``width``."""
    return yaml.dump(
        document,
        Dumper=_DUMPER,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=width,
    )
