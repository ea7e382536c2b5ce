"""The package layering holds, and the check fails on a deliberate bad import."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.foundation.layering import imports_of, violations

ROOT = Path(__file__).resolve().parents[2]


def test_the_tree_keeps_its_layers() -> None:
    assert violations(ROOT) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("path", "source", "rule"),
    [
        ("observer/track_a.py", "from exporter.server import Readiness\n", "the domain"),
        ("observer/runtime.py", "import aiohttp.web\n", "the domain"),
        ("observer/kis/client.py", "from aiohttp import web\n", "the domain"),
        ("metrics/catalog.py", "from observer.records import Severity\n", "vocabulary"),
        ("observer/errors.py", "from metrics import catalog\n", "shared errors"),
        ("rules/build.py", "from observer.runtime import ObserverApp\n", "generators"),
        ("dashboards/lint.py", "from exporter import server\n", "generators"),
        ("observer/stack/native.py", "from observer.track_b import TrackB\n", "generators"),
        ("observer/sim/rest.py", "from observer.kis.client import KisClient\n", "simulator"),
        ("exporter/server.py", "from observer.runtime import ObserverApp\n", "exporter"),
        ("observer/track_b.py", "from observer.commands import run\n", "composition root"),
        ("observer/limiter.py", "def f():\n    from exporter import catalog\n", "the domain"),
    ],
)
def test_a_bad_import_is_caught(tmp_path: Path, path: str, source: str, rule: str) -> None:
    found = violations(_tree(tmp_path, {path: source}))
    assert found, f"{path}: {source!r} went unnoticed"
    assert all(rule in line for line in found), found


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("observer/sim/rest.py", "from observer.kis.master import zip_master\n"),
        ("observer/commands/run.py", "from exporter.server import ExporterServer\n"),
        ("rules/model.py", "from observer.errors import ObserverError\n"),
        ("observer/track_a.py", "from metrics import catalog\nimport aiohttp\n"),
        ("exporter/server.py", "from observer.readiness import Readiness\n"),
    ],
)
def test_allowed_imports_pass(tmp_path: Path, path: str, source: str) -> None:
    assert violations(_tree(tmp_path, {path: source})) == []


def test_relative_imports_are_resolved() -> None:
    names = set(imports_of("from ..exporter import server\n", "observer.track_a"))
    assert "exporter.server" in names
