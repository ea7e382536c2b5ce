"""Config files and ``OBSERVER_*`` variables: any input gives settings or a ConfigError."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from observer.config import (
    ObserverSettings,
    json_schema,
    load_settings,
    parse_listen,
    settings_from_mapping,
)
from observer.config_values import SIM_MAX_SPEED, parse_sim_start
from observer.errors import ConfigError
from observer.sim.calendar import parse_kst
from observer.sim.clock import SimClock
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


# Issue 14: a hostile value for any setting, from a file or an OBSERVER_* variable, is either
# usable (finite, existing, fitting) or refused with one line that names where it came from.


def _setting_fields() -> dict[tuple[str, ...], Any]:
    """Every setting's path and its annotation."""
    fields: dict[tuple[str, ...], Any] = {}
    for name, field in ObserverSettings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            fields |= {(name, key): f.annotation for key, f in model.model_fields.items()}
        else:
            fields[(name,)] = field.annotation
    return fields


SETTING_FIELDS = _setting_fields()
EDGE_FLOATS = st.sampled_from(
    [float("inf"), float("-inf"), float("nan"), 1e300, -1e300, 5e-324, -0.0, 1e15]
)
EDGE_INTS = st.sampled_from([0, -1, 2**31, 2**63, 10**30, -(10**30)])
EDGE_TEXT = st.sampled_from(
    [
        "2026-02-30 10:00:00", "0001-01-01 00:00:01", "9999-12-31 23:59:59",
        "2999-12-31 23:59:59", "1970-01-02 00:00:00", "h" * 64 + ":80", "[]:0", ":0",
        "[::1]:0", "[::1:0", "var\x00", "/proc/1/x", "debug", "Warning", "inf", ".inf",
        "1/0", "0/1", "kis", "virtual", "",
    ]
)  # fmt: skip
ANY_VALUE = (
    st.floats() | st.integers() | st.text(max_size=70) | st.booleans() | st.none() | EDGE_TEXT
)


def _hostile(path: tuple[str, ...]) -> st.SearchStrategy[tuple[tuple[str, ...], Any]]:
    """Mostly the edges of the setting's own type (so that they get past the type check)."""
    annotation = SETTING_FIELDS[path]
    edges = EDGE_FLOATS if annotation is float else EDGE_INTS if annotation is int else EDGE_TEXT
    return st.tuples(st.just(path), edges | edges | ANY_VALUE)


HOSTILE_SETTINGS = st.lists(
    st.sampled_from(sorted(SETTING_FIELDS)).flatmap(_hostile), min_size=1, max_size=2
).map(dict)


def _assert_usable(settings: ObserverSettings) -> None:
    """What "validated before anything starts" promises the code that runs afterwards."""
    for section in settings.model_dump().values():
        for value in section.values() if isinstance(section, dict) else [section]:
            if isinstance(value, float):
                assert math.isfinite(value)
            if isinstance(value, str | Path):
                assert "\x00" not in str(value)
    parse_listen(settings.exporter.listen)
    assert 0 < settings.sim.speed <= SIM_MAX_SPEED
    if settings.sim.start_at is not None:
        start = parse_sim_start(settings.sim.start_at)
        SimClock(start=parse_kst(settings.sim.start_at), speed=settings.sim.speed).now()
        assert start.year < 3000


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HOSTILE_SETTINGS, st.booleans())
def test_hostile_values_are_usable_or_refused_in_one_line(
    values: dict[tuple[str, ...], Any], from_environment: bool
) -> None:
    document: dict[str, Any] = {}
    environ: dict[str, str] = {}
    for path, value in values.items():
        if from_environment:
            environ["OBSERVER_" + "__".join(path).upper()] = yaml.safe_dump(value)
        elif len(path) == 1:
            document[path[0]] = value
        else:
            document.setdefault(path[0], {})[path[1]] = value
    try:
        result = load_settings(None, environ=environ, overrides=document)
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message and "\r" not in message and len(message) < 4000
        assert ("OBSERVER_" if from_environment else "(from the command line)") in message
    else:
        _assert_usable(result)
