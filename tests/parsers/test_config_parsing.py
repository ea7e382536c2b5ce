"""Config files and ``OBSERVER_*`` variables: any input gives settings or a ConfigError."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from observer.config import ObserverSettings, json_schema, load_settings, settings_from_mapping
from observer.errors import ConfigError
from tests.parsers.strategies import SCALARS, json_trees, mappings_with


def _setting_names() -> list[str]:
    """Every section and field name of the schema, so generated documents reach them."""
    schema = json_schema()
    names = set(schema["properties"])
    for definition in schema.get("$defs", {}).values():
        names |= set(definition.get("properties", {}))
    return sorted(names)


NAMES = _setting_names()
LEAVES = SCALARS | st.sampled_from(["127.0.0.1:0", "1/2", "sim", "kis", "DEBUG", "virtual"])
DOCUMENTS = json_trees() | mappings_with(NAMES, mappings_with(NAMES, LEAVES) | LEAVES)


@settings(max_examples=300, deadline=None)
@given(DOCUMENTS)
def test_any_document_gives_settings_or_config_error(document: Any) -> None:
    try:
        result = settings_from_mapping(document)
    except ConfigError as error:
        assert str(error)
    else:
        assert isinstance(result, ObserverSettings)


ENV_NAMES = st.sampled_from(NAMES).map(str.upper) | st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_", max_size=12
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.lists(ENV_NAMES, min_size=1, max_size=3).map(lambda p: "OBSERVER_" + "__".join(p)),
        st.text(max_size=20) | st.sampled_from(["[", "{a: 1}", "- x", "!!python/none", "'"]),
        max_size=4,
    )
)
def test_any_environment_gives_settings_or_config_error(environ: dict[str, str]) -> None:
    try:
        load_settings(None, environ=environ)
    except ConfigError as error:
        assert str(error)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | st.sampled_from(
        [b"a: [", b"\xff\xfe", b"!!python/object:os.system x", b"- 1\n- 2", b"&a [*a]"]
    )
)
def test_any_config_file_gives_settings_or_config_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "observer.yaml"
        path.write_bytes(content)
        try:
            load_settings(path, environ={})
        except ConfigError as error:
            assert str(error).startswith(str(path))
