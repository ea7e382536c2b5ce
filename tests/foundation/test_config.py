"""Settings: defaults, YAML, OBSERVER_* variables, and errors that name key, value and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from observer.config import ObserverSettings, load_settings, parse_listen, parse_shard
from observer.config_yaml import MAX_CONFIG_BYTES
from observer.errors import ConfigError
from observer.preflight import check_paths


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


# Issue 14, items 7-10: every value checked before anything starts, one line naming the key.

BILLION_LAUGHS = "\n".join(
    [f"a0: &a0 [{','.join(['lol'] * 9)}]"]
    + [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
)


def test_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    path = write(tmp_path, BILLION_LAUGHS)
    assert path.stat().st_size < 512  # 9^9 values once expanded
    with pytest.raises(ConfigError, match=r"observer\.yaml: YAML expands to more than 10000"):
        load_settings(path, environ={})


def test_exponent_numbers_are_numbers(tmp_path: Path) -> None:
    """``1e3`` is a number (as in YAML 1.2 and JSON); integers stay integers, words stay text."""
    text = "sim:\n  speed: 2e1\n  rate_limit: 1.5E+1\n  seed: 12\ntrack_b:\n  capacity: 3\n"
    settings = load_settings(write(tmp_path, text), environ={})
    assert settings.sim.speed == 20.0 and settings.sim.rate_limit == 15.0
    assert settings.sim.seed == 12 and settings.track_b.capacity == 3
    assert load_settings(environ={"OBSERVER_SENTRY__ENVIRONMENT": "e3"}).sentry.environment == "e3"


def test_few_aliases_are_still_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "sim: &s {symbols: 10}\ntrack_b: {capacity: 5}\n")
    assert load_settings(path, environ={}).sim.symbols == 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("&a [*a]", "refers to itself"),
        ("sim: &a {x: *a}", "refers to itself"),
        ("[" * 200 + "]" * 200, "nested deeper than 32"),
        ("sim: *nowhere", "undefined alias"),
    ],
)
def test_recursive_and_deep_yaml_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as error:
        load_settings(write(tmp_path, text), environ={})
    assert "\n" not in str(error.value)


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match=f"larger than {MAX_CONFIG_BYTES} bytes"):
        load_settings(path, environ={})
    with pytest.raises(ConfigError, match="larger than"):
        load_settings(Path("/dev/zero"), environ={})


def _float_keys() -> list[str]:
    """Every float setting, as ``section.key`` (or ``key`` at the top)."""
    keys = []
    for section, field in ObserverSettings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            keys += [
                f"{section}.{name}"
                for name, f in model.model_fields.items()
                if f.annotation is float
            ]
    return keys


FLOAT_KEYS = _float_keys()


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_every_float_setting_is_finite(tmp_path: Path, key: str, value: str) -> None:
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"{section}\.{name} = "):
        load_settings(write(tmp_path, f"{section}:\n  {name}: {value}\n"), environ={})


def test_float_keys_cover_the_schema() -> None:
    assert "rate_limit.rate_per_second" in FLOAT_KEYS and "sim.speed" in FLOAT_KEYS
    assert len(FLOAT_KEYS) > 25


@pytest.mark.parametrize(
    ("start_at", "expected"),
    [
        ("2026-02-30 10:00:00", "not a date and time that exists"),
        ("'2026-02-30 10:00:00'", "not a date and time that exists"),
        ("2026-13-01T10:00:00", "not a date and time that exists"),
        ("'0001-01-01 00:00:01'", "outside the simulator's clock"),
        ("'9999-12-31 23:59:59'", "outside the simulator's clock"),
        ("1969-12-31 23:59:59", "outside the simulator's clock"),
    ],
)
def test_sim_start_must_exist_and_fit_the_clock(
    tmp_path: Path, start_at: str, expected: str
) -> None:
    path = write(tmp_path, f"sim:\n  start_at: {start_at}\n")
    with pytest.raises(ConfigError, match=rf"sim\.start_at = .*{expected}") as error:
        load_settings(path, environ={})
    assert "Value error" not in str(error.value)


def test_sim_start_at_the_edges_and_unquoted(tmp_path: Path) -> None:
    for text in ("2026-03-01 10:00:00", "'2999-12-31 23:59:59'", "1970-01-02T00:00:00"):
        settings = load_settings(write(tmp_path, f"sim:\n  start_at: {text}\n"), environ={})
        assert settings.sim.start_at == text.strip("'")


@pytest.mark.parametrize("speed", [".inf", "1e300", "1.0e+300", "1001", "0"])
def test_sim_speed_is_bounded(tmp_path: Path, speed: str) -> None:
    with pytest.raises(ConfigError, match=r"sim\.speed = "):
        load_settings(write(tmp_path, f"sim:\n  speed: {speed}\n"), environ={})
    assert load_settings(environ={"OBSERVER_SIM__SPEED": "1000"}).sim.speed == 1000


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('storage:\n  path: "db\\0.sqlite"\n', r"storage\.path = 'db\\x00\.sqlite'"),
        ('data_dir: "var\\0"\n', r"data_dir = 'var\\x00'"),
        ('exporter:\n  listen: "127.0.0.1\\0:80"\n', r"exporter\.listen"),
    ],
)
def test_nul_in_a_value_is_refused(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(write(tmp_path, text), environ={})


@pytest.mark.parametrize(
    "listen",
    ["a" * 64 + ":80", "[]:0", "[::1:80", "::1]:80", "[127.0.0.1]:80", "a..b:80", "-a:80", "x y:1"],
)
def test_listen_refuses_unusable_hosts(tmp_path: Path, listen: str) -> None:
    with pytest.raises(ConfigError, match=r"exporter\.listen = "):
        load_settings(write(tmp_path, f"exporter:\n  listen: '{listen}'\n"), environ={})
    with pytest.raises(ValueError):
        parse_listen(listen)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (":9464", ("", 9464)),
        ("a" * 63 + ":1", ("a" * 63, 1)),
        ("prometheus-1.internal:9464", ("prometheus-1.internal", 9464)),
        ("bücher.example:80", ("bücher.example", 80)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
    ],
)
def test_listen_accepts_every_interface_and_names(text: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(text) == parsed


@pytest.mark.parametrize(
    ("key", "url", "reason"),
    [
        ("rest_url", "http://" + "a" * 64 + ":80", "neither an IP address nor a name"),
        ("rest_url", "notaurl", "scheme http or https"),
        ("rest_url", "ws://127.0.0.1:80", "scheme http or https"),
        ("rest_url", "http://127.0.0.1:99999", "port is not a number"),
        ("ws_url", "http://127.0.0.1:80", "scheme ws or wss"),
        ("ws_url", "ws://:80", "neither an IP address nor a name"),
    ],
)
def test_provider_urls_are_checked_before_any_request(key: str, url: str, reason: str) -> None:
    environ = {"OBSERVER_PROVIDER__KIND": "kis", f"OBSERVER_PROVIDER__{key.upper()}": url}
    environ |= {"OBSERVER_PROVIDER__ENV": "virtual"}
    with pytest.raises(ConfigError, match=rf"provider\.{key} = .*{reason}"):
        load_settings(environ=environ)


def test_environment_errors_name_the_variable(tmp_path: Path) -> None:
    key = r"rate_limit\.rate_per_second = inf \(from OBSERVER_RATE_LIMIT__RATE_PER_SECOND\)"
    with pytest.raises(ConfigError, match=key + ": .*finite"):
        load_settings(environ={"OBSERVER_RATE_LIMIT__RATE_PER_SECOND": ".inf"})
    with pytest.raises(ConfigError, match=r"'capacty' was unexpected.*OBSERVER_TRACK_B__CAPACTY"):
        load_settings(environ={"OBSERVER_TRACK_B__CAPACTY": "3"})
    with pytest.raises(ConfigError, match=r"sim\.symbols = 0 \(from OBSERVER_SIM\)"):
        load_settings(environ={"OBSERVER_SIM": "{symbols: 0}"})
    # A bad value from the file is not blamed on an unrelated variable.
    path = write(tmp_path, "sim:\n  symbols: 0\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, environ={"OBSERVER_SIM__SEED": "3"})
    assert "sim.symbols = 0:" in str(error.value) and "OBSERVER_" not in str(error.value)
    with pytest.raises(ConfigError, match=r"OBSERVER_SIM__SEED: YAML expands"):
        bomb = "{" + BILLION_LAUGHS.replace("\n", ", ") + "}"
        load_settings(environ={"OBSERVER_SIM__SEED": bomb})


def test_a_section_error_names_its_sources_and_shows_no_section() -> None:
    """A whole section (or document) is never quoted: it may carry a DSN or a password."""
    dsn = "https://0123456789abcdef0123456789abcdef@sentry.example/1"
    environ = {"OBSERVER_CLUSTER__ENABLED": "true", "SENTRY_DSN": "x"}
    with pytest.raises(ConfigError) as error:
        load_settings(environ=environ, overrides={"sentry": {"dsn": dsn}})
    message = str(error.value)
    assert "(top level) (from OBSERVER_CLUSTER__ENABLED, the command line): cluster" in message
    assert "0123456789abcdef" not in message
    with pytest.raises(ConfigError, match=r"^config: gaps \(from OBSERVER_GAPS__HIGH_AFTER"):
        load_settings(environ={"OBSERVER_GAPS__HIGH_AFTER_SECONDS": "1"})


def test_command_line_values_are_named_as_such() -> None:
    with pytest.raises(ConfigError, match=r"sim\.speed = .*\(from the command line\)"):
        load_settings(environ={"OBSERVER_SIM__SPEED": "2"}, overrides={"sim": {"speed": 1e300}})


@pytest.mark.parametrize("level", ["debug", "Warning", "ERROR", "info"])
def test_log_level_is_case_insensitive(tmp_path: Path, level: str) -> None:
    assert load_settings(environ={"OBSERVER_LOG_LEVEL": level}).log_level == level.upper()
    path = write(tmp_path, f"log_level: {level}\n")
    assert load_settings(path, environ={}).log_level == level.upper()
    with pytest.raises(ConfigError, match=r"log_level = 'VERBOSE' \(from OBSERVER_LOG_LEVEL\)"):
        load_settings(environ={"OBSERVER_LOG_LEVEL": "verbose"})


# Paths are checked (and directories made) before anything starts.


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(
        ConfigError, match=r"data_dir = '.*file' \(from OBSERVER_DATA_DIR\): exists"
    ):
        load_settings(environ={"OBSERVER_DATA_DIR": str(tmp_path / "file")}, check=check_paths)
    with pytest.raises(ConfigError, match=r"data_dir = .*cannot create: Not a directory"):
        load_settings(
            environ={}, overrides={"data_dir": str(tmp_path / "file" / "sub")}, check=check_paths
        )


def test_unusable_export_dir_and_storage_path_name_their_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config: exporter\.export_dir = '/proc/1/x' "):
        load_settings(
            environ={},
            overrides={"data_dir": str(tmp_path), "exporter": {"export_dir": "/proc/1/x"}},
            check=check_paths,
        )
    with pytest.raises(ConfigError, match=r"storage\.path = .*is a directory, not a file"):
        load_settings(
            environ={"OBSERVER_STORAGE__PATH": str(tmp_path)},
            overrides={"data_dir": str(tmp_path)},
            check=check_paths,
        )


def test_check_paths_makes_the_directories(tmp_path: Path) -> None:
    data_dir, export_dir = tmp_path / "a" / "b", tmp_path / "export"
    overrides = {"data_dir": str(data_dir), "exporter": {"export_dir": str(export_dir)}}
    settings = load_settings(environ={}, overrides=overrides, check=check_paths)
    assert data_dir.is_dir() and export_dir.is_dir()
    assert settings.database_path == data_dir / "observer.sqlite"


def test_password_file_is_read_boundedly(tmp_path: Path) -> None:
    from observer.preflight import storage_password

    def settings(path: str) -> ObserverSettings:
        storage = {"url": "postgresql://observer@127.0.0.1/observer", "password_file": path}
        return load_settings(environ={}, overrides={"storage": storage})

    with pytest.raises(ConfigError, match=r"storage\.password_file = '/dev/zero': larger than"):
        storage_password(settings("/dev/zero"))
    (tmp_path / "password").write_text("s3cret-pass\nignored\n")
    assert storage_password(settings(str(tmp_path / "password"))) == "s3cret-pass"
