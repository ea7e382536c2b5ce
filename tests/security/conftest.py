"""Fixtures: test certificates (made once per session), a Sentry envelope endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.certs import Pki, make_pki
from tests.tracking.sink import EnvelopeSink


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def sentry_sink() -> Iterator[EnvelopeSink]:
    with EnvelopeSink() as sink:
        yield sink
