"""The package layering, read from the imports (ast), and the rules it must keep.

Layers, from the leaves up:

- ``metrics`` (the metric vocabulary) and ``observer.errors`` import nothing of ours;
- the domain (``observer/`` but its composition root, the simulator and the stack
  generators) never imports the exporter, ``aiohttp.web`` or the generators;
- the exporter's HTTP side reads the vocabulary and a few domain leaves only;
- the generators (``rules/``, ``dashboards/``, ``observer/stack``) import the
  vocabulary, each other and ``observer.errors``, never the runtime;
- the simulator imports no client code (the wire formats excepted);
- only the composition root (``observer/commands/``, ``observer/cli.py``,
  ``observer/__main__.py``) imports ``observer.commands``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

OURS = ("observer", "exporter", "metrics", "rules", "dashboards")
COMPOSITION_ROOT = ("observer.commands", "observer.cli", "observer.__main__")
GENERATORS = ("rules", "dashboards", "observer.stack")
WIRE_FORMATS = ("observer.kis.h0stcnt0", "observer.kis.master")


@dataclass(frozen=True, slots=True)
class Rule:
    """Modules under ``scope`` (minus ``exempt``) may import ours only from ``allowed``
    (when given) and never from ``forbidden`` (except from ``excepted``); prefixes are
    dotted module names."""

    name: str
    scope: tuple[str, ...]
    exempt: tuple[str, ...] = ()
    allowed: tuple[str, ...] | None = None
    forbidden: tuple[str, ...] = ()
    excepted: tuple[str, ...] = ()


RULES = (
    Rule("the metric vocabulary is a leaf", scope=("metrics",), allowed=("metrics",)),
    Rule("shared errors are a leaf", scope=("observer.errors",), allowed=()),
    Rule(
        "the domain never imports the exporter, aiohttp.web or the generators",
        scope=("observer",),
        exempt=(*COMPOSITION_ROOT, "observer.sim", "observer.stack"),
        forbidden=("exporter", "aiohttp.web", "rules", "dashboards", "observer.stack"),
    ),
    Rule(
        "the exporter reads the vocabulary and domain leaves only",
        scope=("exporter",),
        allowed=(
            "exporter",
            "metrics",
            "observer.config_yaml",
            "observer.errors",
            "observer.readiness",
            "observer.scrubbing",
            "observer.status",
        ),
    ),
    Rule(
        "the generators never import the runtime",
        scope=GENERATORS,
        # config_yaml: the bounded YAML loader (a leaf: yaml and observer.errors only).
        allowed=(*GENERATORS, "metrics", "observer.errors", "observer.config_yaml"),
        forbidden=("aiohttp.web",),
    ),
    Rule(
        "the simulator imports no client code (wire formats excepted)",
        scope=("observer.sim",),
        forbidden=(
            "observer.kis",
            "observer.runtime",
            "observer.track_a",
            "observer.track_b",
            "observer.storage",
            "observer.limiter",
            "exporter",
        ),
        excepted=WIRE_FORMATS,
    ),
    Rule(
        "only the composition root imports observer.commands",
        scope=OURS,
        exempt=COMPOSITION_ROOT,
        forbidden=("observer.commands", "observer.cli"),
    ),
)


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str) -> Iterator[str]:
    """Every module ``source`` imports: ``from a import b`` gives ``a`` and ``a.b``
    (``b`` may be a submodule); relative imports are resolved against ``module``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level] if node.level else []
                base = ".".join([*package, base] if base else package)
            yield base
            for alias in node.names:
                yield f"{base}.{alias.name}"


def _broken_by(rule: Rule, imported: str) -> bool:
    if _under(imported, rule.excepted):
        return False
    if _under(imported, rule.forbidden):
        return True
    ours = _under(imported, OURS)
    if rule.allowed is None or not ours:
        return False
    # "from observer import errors" names the package itself too: the bare package is fine.
    return imported not in OURS and not _under(imported, rule.allowed)


def violations(root: Path, rules: tuple[Rule, ...] = RULES) -> list[str]:
    """``module imports name: rule`` for every import under ``root`` that breaks a rule."""
    found: list[str] = []
    for package in OURS:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(root, path)
            imported = set(imports_of(path.read_text(encoding="utf-8"), module))
            for rule in rules:
                if not _under(module, rule.scope) or _under(module, rule.exempt):
                    continue
                found += [
                    f"{module} imports {name}: {rule.name}"
                    for name in sorted(imported)
                    if _broken_by(rule, name)
                ]
    return found
