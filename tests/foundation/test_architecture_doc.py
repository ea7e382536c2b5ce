"""docs/architecture.md names real modules, and every module has its row."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("metrics", "exporter", "observer", "observer/kis", "rules", "dashboards")
PATH = re.compile(r"`((?:metrics|exporter|observer|rules|dashboards)(?:/[\w.]+)*/?)`")


def _mentioned() -> set[str]:
    return set(PATH.findall(DOC.read_text(encoding="utf-8")))


def test_every_path_the_doc_names_exists() -> None:
    missing = sorted(p for p in _mentioned() if not (ROOT / p).exists())
    assert missing == [], f"docs/architecture.md names what is not there: {missing}"


def test_every_module_has_a_row() -> None:
    mentioned = _mentioned()
    modules = [
        f"{package}/{path.name}"
        for package in PACKAGES
        for path in sorted((ROOT / package).glob("*.py"))
        if not path.name.startswith("__")
    ]
    covered = {m for m in modules if m in mentioned or f"{m.rsplit('/', 1)[0]}/" in mentioned}
    assert sorted(set(modules) - covered) == []
