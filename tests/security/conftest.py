"""Fixtures: test certificates (made once per session) and bcrypt users."""

from __future__ import annotations

import pytest

from tests.security.certs import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
