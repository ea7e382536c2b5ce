"""Files Observer reads back: web-config documents and the token cache, any content."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.webconfig import WebConfig, web_config_from_mapping
from observer.credentials import demo_credentials
from observer.errors import ConfigError
from observer.kis.token import AccessToken, TokenCache
from tests.parsers.strategies import SCALARS, json_trees, mappings_with

WEB_KEYS = [
    "tls_server_config",
    "basic_auth_users",
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
    "prometheus",
]
WEB_LEAVES = SCALARS | st.sampled_from(
    ["TLS12", "TLS13", "NoClientCert", "RequireAndVerifyClientCert", "/dev/null", "x.crt", "$2b$"]
)


@settings(max_examples=200, deadline=None)
@given(json_trees() | mappings_with(WEB_KEYS, mappings_with(WEB_KEYS, WEB_LEAVES) | WEB_LEAVES))
def test_any_web_config_document_gives_a_config_or_config_error(document: Any) -> None:
    try:
        config = web_config_from_mapping(document, base_dir=Path("/nonexistent"), source="web.yml")
    except ConfigError as error:
        assert str(error).startswith("web.yml: ")
    else:
        assert isinstance(config, WebConfig)


TOKEN_CACHE_CONTENT = (
    st.binary(max_size=200)
    | json_trees().map(lambda tree: repr(tree).encode())
    | st.fixed_dictionaries(
        {"access_token": SCALARS, "expires_at": SCALARS, "issued_at": SCALARS}
    ).map(lambda d: json.dumps(d).encode())
)


@settings(max_examples=150, deadline=None)
@given(TOKEN_CACHE_CONTENT)
def test_any_token_cache_content_gives_a_token_or_none(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        cache = TokenCache(Path(directory), demo_credentials("parsers"), "http://sim")
        descriptor = os.open(cache.path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(content)
        token = cache.load()
        if token is not None:  # a token Observer can use: it has a value and comes due
            assert isinstance(token, AccessToken) and token.value
            assert math.isfinite(token.expires_at) and math.isfinite(token.issued_at)
