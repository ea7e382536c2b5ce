"""Fixtures of the stack tests: a generated folder, and the repository's committed one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from observer.stack import files as stack_files

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "compose"


def requires(binary: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(binary) is None, reason=f"{binary} not installed")


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    """A fresh ``observer generate`` output in a temporary folder."""
    out = tmp_path / "compose"
    stack_files.write_files(stack_files.render_files(out_dir=out), out)
    return out
