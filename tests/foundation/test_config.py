"""Settings: defaults, YAML, OBSERVER_* variables, and errors that name key, value and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from observer.config import ObserverSettings, load_settings, parse_listen, parse_shard
from observer.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "observer.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_need_no_file() -> None:
    settings = load_settings(environ={})
    assert settings == ObserverSettings()
    assert settings.provider.kind == "sim"
    assert settings.exporter.listen == "127.0.0.1:9464"
    assert settings.track_b.capacity == 41
    assert settings.database_path == Path("var/observer.sqlite")


def test_yaml_then_environment_then_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "track_b:\n  capacity: 30\nsim:\n  symbols: 100\n")
    settings = load_settings(
        path,
        environ={"OBSERVER_TRACK_B__CAPACITY": "20", "OBSERVER_LOG_LEVEL": "DEBUG"},
        overrides={"sim": {"seed": 7}},
    )
    assert settings.track_b.capacity == 20
    assert settings.sim.symbols == 100 and settings.sim.seed == 7
    assert settings.log_level == "DEBUG"


def test_settings_are_frozen() -> None:
    settings = ObserverSettings()
    with pytest.raises(Exception, match="frozen"):
        settings.track_b.capacity = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("track_b:\n  capacity: 42\n", r"track_b\.capacity = 42: .*greater than the maximum of 41"),
        ("track_b:\n  capacity: lots\n", r"track_b\.capacity = 'lots': .*not of type 'integer'"),
        ("track_b:\n  capacty: 3\n", r"track_b: Additional properties .*'capacty'"),
        ("exporter:\n  listen: nowhere\n", r"exporter\.listen = 'nowhere': .*HOST:PORT"),
        ("universe:\n  shard: 3/3\n", r"universe\.shard = '3/3': .*0\.\.n-1"),
        ("gaps:\n  medium_after_seconds: 10\n  high_after_seconds: 5\n", r"gaps.*greater than"),
        ("provider:\n  kind: kis\n", r"provider.*needs env"),
        ("log:\n  progress_seconds: 0\n", r"log\.progress_seconds = 0: "),
        ("log:\n  progress_seconds: .inf\n", r"log\.progress_seconds = inf: "),
        ("log:\n  progress_seconds: soon\n", r"log\.progress_seconds = 'soon': "),
        ("log:\n  progres_seconds: 5\n", r"log: Additional properties .*'progres_seconds'"),
        ("exporter:\n  links: {grafana: 'javascript:alert(1)'}\n", r"exporter\.links.*http://"),
        ("exporter:\n  links: {grafana: localhost:3000}\n", r"exporter\.links.*http://"),
        ("exporter:\n  links: {'Bad Name': 'http://x'}\n", r"exporter\.links.*link name"),
        ("- a list\n", r"top level must be a mapping"),
        ("track_b: [\n", r"not valid YAML"),
    ],
)
def test_bad_files_name_the_key_and_the_reason(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(write(tmp_path, text), environ={})


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(ConfigError, match=r"sim\.symbols = 0"):
        load_settings(environ={"OBSERVER_SIM__SYMBOLS": "0"})


def test_status_page_links_from_the_environment() -> None:
    settings = load_settings(environ={"OBSERVER_EXPORTER__LINKS__GRAFANA": "http://localhost:3000"})
    assert settings.exporter.links == {"grafana": "http://localhost:3000"}


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.yaml", environ={})


@pytest.mark.parametrize(
    ("text", "parsed"), [("127.0.0.1:0", ("127.0.0.1", 0)), ("[::1]:80", ("::1", 80))]
)
def test_parse_listen(text: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(text) == parsed


def test_parse_shard() -> None:
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "a/b", "1", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["sim", "track_b", "capacity", "x", "listen"]), children, max_size=3
        )
    ),
    max_leaves=10,
)


@given(documents)
def test_any_document_loads_or_gives_a_config_error(document: object) -> None:
    from observer.config import settings_from_mapping

    try:
        settings_from_mapping(document)
    except ConfigError as exc:
        assert str(exc)


def test_yaml_round_trip_of_defaults(tmp_path: Path) -> None:
    dumped = ObserverSettings().model_dump(mode="json")
    path = write(tmp_path, yaml.safe_dump(dumped))
    assert load_settings(path, environ={}) == ObserverSettings()
