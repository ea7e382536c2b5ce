"""Observer's settings: a frozen, validated model loaded from YAML and ``OBSERVER_*``.

Every value has a unit in its name or description and a documented default.
Unknown keys are errors. Credentials are never settings: they come only from
``KIS_APP_KEY`` / ``KIS_APP_SECRET`` (see ``observer.credentials``).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from observer.config_values import SIM_MAX_SPEED, parse_endpoint_url, parse_sim_start
from observer.config_values import parse_listen as parse_listen  # re-exported
from observer.config_values import parse_shard as parse_shard  # re-exported
from observer.config_yaml import load_yaml, read_config_text
from observer.errors import ConfigError

ENV_PREFIX = "OBSERVER_"
ENV_NESTING = "__"
LINK_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


class _Section(BaseModel):
    # Infinity and NaN are never a usable setting: ".inf" calls per second overflowed the
    # limiter (issue 14), and an infinite speed or delay only fails later, mid-run.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str | Path) and "\x00" in str(value):
            raise ValueError("contains a NUL byte")
        return value


class ExporterSettings(_Section):
    listen: str = Field(
        "127.0.0.1:9464",
        description="HOST:PORT the exporter binds; port 0 picks a free port. Loopback by "
        "default so metrics are not exposed beyond the host unless asked for.",
    )
    export_dir: Path | None = Field(
        None, description="If set, metrics.prom and summary.json are written here atomically."
    )
    export_interval_seconds: float = Field(15.0, gt=0, description="Seconds between file exports.")
    web_config: Path | None = Field(
        None,
        description="Exporter-toolkit web-config YAML (tls_server_config, basic_auth_users).",
    )
    max_connections: int = Field(
        128,
        ge=1,
        le=100_000,
        description="Open connections the exporter holds at most; more are closed at once, "
        "before any TLS work. Lowered further to stay below the descriptor limit.",
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds from accepting a connection to the end of its first request head "
        "(TLS handshake included); a slower client is disconnected.",
    )
    idle_timeout_seconds: float = Field(
        75.0,
        gt=0,
        le=86400,
        description="Seconds a connection may wait for its next request (keep-alive) before it "
        "is closed; also bounds the time to send a later request head.",
    )
    links: dict[str, str] = Field(
        {},
        description="Links the status page shows, name → http(s) URL as a browser reaches it "
        "(e.g. grafana: http://localhost:3000); observer run --with-stack adds prometheus and "
        "alertmanager itself.",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("links")
    @classmethod
    def _http_links(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not LINK_NAME.fullmatch(name):
                raise ValueError(f"link name {name!r}: lower-case letters, digits, - and _")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"link {name!r}: an http:// or https:// URL, got {url!r}")
        return value


class ProviderSettings(_Section):
    kind: Literal["sim", "kis"] = Field(
        "sim", description="sim: start the embedded simulated exchange; kis: an external endpoint."
    )
    env: Literal["real", "virtual"] | None = Field(
        None, description="With kind=kis: use the broker's real or virtual (mock) domains."
    )
    rest_url: str | None = Field(None, description="With kind=kis: REST base URL (http, https).")
    ws_url: str | None = Field(None, description="With kind=kis: WebSocket URL (ws, wss).")

    @field_validator("rest_url")
    @classmethod
    def _rest_url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_endpoint_url(value, schemes=("http", "https"))
        return value

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_endpoint_url(value, schemes=("ws", "wss"))
        return value

    @model_validator(mode="after")
    def _kis_needs_endpoint(self) -> ProviderSettings:
        if self.kind == "kis" and self.env is None and not (self.rest_url and self.ws_url):
            raise ValueError("kind 'kis' needs env (real|virtual) or both rest_url and ws_url")
        return self


class SimSettings(_Section):
    symbols: int = Field(2500, ge=1, le=5000, description="Instruments in the simulated market.")
    seed: int = Field(1, description="Seed of the deterministic market model.")
    rate_limit: float = Field(20.0, gt=0, description="REST calls per second per app key.")
    rate_window: Literal["sliding", "fixed", "bucket"] = Field(
        "sliding", description="How the simulator measures the rate limit."
    )
    always_open: bool = Field(
        True, description="Keep the simulated market open around the clock (demos, tests)."
    )
    speed: float = Field(
        1.0, gt=0, le=SIM_MAX_SPEED, description="Simulated seconds per real second."
    )
    ping_interval_seconds: float = Field(100.0, gt=0, description="PINGPONG heartbeat period.")
    start_at: str | None = Field(
        None,
        pattern=r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}$",
        description="Simulated start, KST 'YYYY-MM-DD HH:MM:SS' from 1970-01-02 to "
        "2999-12-31; unset: the current time.",
    )
    token_min_interval_seconds: float = Field(
        60.0, ge=0, description="Least time between two token grants per app key (EGW00133)."
    )
    token_error_http_status: Literal[200, 500] = Field(
        500, description="HTTP status of business calls refused for an expired/invalid token."
    )
    backfill_page_rows: int = Field(
        30, ge=1, le=1000, description="Rows per trades-by-time page (ends on a whole second)."
    )
    trade_history_seconds: float = Field(
        3600.0, gt=0, description="Simulated seconds of generated trades kept for backfill."
    )
    push_interval_seconds: float = Field(
        0.1, gt=0, le=5, description="Real seconds between WebSocket pushes of new trades."
    )

    @field_validator("start_at")
    @classmethod
    def _start_exists(cls, value: str | None) -> str | None:
        if value is not None:
            parse_sim_start(value)
        return value


class RateLimitSettings(_Section):
    rate_per_second: float = Field(
        20.0, gt=0, description="REST calls per second per app key (20 real, 2 virtual)."
    )
    backoff_seconds: float = Field(
        1.0, gt=0, description="Pause of all calls after the server answers EGW00201."
    )
    safety_seconds: float = Field(
        0.002,
        ge=0,
        le=0.1,
        description="Margin added to the 1 s window between a call's latest possible arrival "
        "(send time plus its round trip's excess) and the one `rate` calls later; doubled "
        "after each EGW00201, halved back after five quiet minutes.",
    )


class TokenSettings(_Section):
    refresh_margin_seconds: float = Field(
        5 * 3600.0,
        ge=60,
        description="Refresh this long before expiry; 5 h so that the broker's same-token-"
        "within-6-h rule hands out a new token.",
    )
    min_issue_interval_seconds: float = Field(
        60.0,
        ge=0,
        description="Least time between two token issuance attempts (the broker allows one "
        "a minute, EGW00133); lower only against a simulator configured likewise.",
    )


class UniverseSettings(_Section):
    shard: str | None = Field(
        None, description="i/n: keep a stable 1/n of the universe (hash of the code), 0-based i."
    )
    refresh_interval_seconds: float = Field(
        86400.0, gt=0, description="Seconds between master-file reloads."
    )

    @field_validator("shard")
    @classmethod
    def _shard(cls, value: str | None) -> str | None:
        if value is not None:
            parse_shard(value)
        return value


class TrackASettings(_Section):
    enabled: bool = True
    sweep_when_closed: bool = Field(False, description="Keep sweeping while the market is closed.")
    retries: int = Field(2, ge=0, le=10, description="Retries of a failed snapshot in a sweep.")
    expected_cadence_seconds: float = Field(
        300.0, gt=0, description="A snapshot older than this while the market is open is a gap."
    )


class TrackBSettings(_Section):
    enabled: bool = True
    capacity: int = Field(41, ge=1, le=41, description="Registration slots (KIS allows 41).")
    seed_slots: int = Field(
        30,
        ge=0,
        le=41,
        description="Slots claimed at start for the broker's most traded symbols (volume-rank "
        "answers 30 at most; never more than capacity); 0: wait for Track A's triggers.",
    )
    min_hold_seconds: float = Field(
        60.0, ge=0, description="A subscription is not evicted before holding its slot this long."
    )
    price_move_pct: float = Field(
        1.0, gt=0, description="Price change since the last snapshot that raises a trigger, %."
    )
    volume_surge_ratio: float = Field(
        3.0, gt=1, description="Volume since the last snapshot vs its usual, raising a trigger."
    )
    idle_timeout_seconds: float = Field(
        30.0, gt=0, description="No data frame this long while open: reconnect (watchdog)."
    )
    silent_symbol_seconds: float = Field(
        300.0, gt=0, description="A registered symbol silent this long is a gap."
    )
    reconnect_initial_seconds: float = Field(0.5, gt=0, description="First reconnect delay.")
    reconnect_max_seconds: float = Field(30.0, gt=0, description="Cap of the reconnect delay.")


class GapSettings(_Section):
    medium_after_seconds: float = Field(
        60.0, gt=0, description="A gap this long or longer is medium severity."
    )
    high_after_seconds: float = Field(
        300.0, gt=0, description="A gap this long or longer is high severity."
    )

    @model_validator(mode="after")
    def _ordered(self) -> GapSettings:
        if self.high_after_seconds <= self.medium_after_seconds:
            raise ValueError("high_after_seconds must be greater than medium_after_seconds")
        return self


class StorageSettings(_Section):
    path: Path | None = Field(None, description="SQLite file; default <data_dir>/observer.sqlite.")
    url: str | None = Field(
        None,
        description=(
            "PostgreSQL database instead of the SQLite file: "
            "postgresql://user[:password]@host[:port]/database (or OBSERVER_STORAGE__URL)."
        ),
    )
    password_file: Path | None = Field(
        None, description="File holding the PostgreSQL password (overrides one in url)."
    )
    batch_size: int = Field(4096, ge=1, description="Rows per write transaction at most.")
    queue_size: int = Field(50_000, ge=1, description="Records the write queue holds.")
    flush_interval_seconds: float = Field(0.25, gt=0, description="Longest wait before a write.")
    retention_days: int = Field(
        30,
        ge=0,
        le=36500,
        description="Days of snapshots and trades kept, today included; 0 keeps all.",
    )
    gap_retention_days: int = Field(
        365, ge=0, le=36500, description="Days of gaps kept, today included; 0 keeps all."
    )
    retention_interval_seconds: float = Field(
        3600.0, gt=0, le=86400, description="Seconds between retention passes (one at start)."
    )

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        # The value is never echoed: it may hold a password.
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql://user@host:port/database URL")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("the port of the URL is not a number from 0 to 65535") from None
        if not parts.hostname or not parts.path.strip("/"):
            raise ValueError("the URL needs a host and a database name")
        return value


class LogSettings(_Section):
    progress_seconds: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="Seconds between two progress lines (sweep n/N, rate, slots, gaps, "
        "queue) in the log.",
    )


class ClusterSettings(_Section):
    enabled: bool = Field(
        False,
        description="One of several Observers (one per app key) sharing storage.url's database.",
    )
    rebalance_seconds: float = Field(
        10.0, gt=0, le=3600, description="Seconds between looks at the live members."
    )
    member_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="This instance's name among the members; default host-pid-random.",
    )


class SentrySettings(_Section):
    dsn: str | None = Field(None, description="Sentry DSN; off when unset (or SENTRY_DSN).")
    environment: str = Field("production", description="Sentry environment tag.")
    traces_sample_rate: float = Field(0.0, ge=0, le=1)
    profiles_sample_rate: float = Field(0.0, ge=0, le=1)


class ObserverSettings(_Section):
    """Everything Observer can be told; see docs/config.schema.json."""

    data_dir: Path = Field(
        Path("var"), description="Token cache, SQLite database and stack data live here."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least level logged; case-insensitive (OBSERVER_LOG_LEVEL=debug)."
    )
    log: LogSettings = LogSettings()
    exporter: ExporterSettings = ExporterSettings()
    provider: ProviderSettings = ProviderSettings()
    sim: SimSettings = SimSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    token: TokenSettings = TokenSettings()
    universe: UniverseSettings = UniverseSettings()
    track_a: TrackASettings = TrackASettings()
    track_b: TrackBSettings = TrackBSettings()
    gaps: GapSettings = GapSettings()
    storage: StorageSettings = StorageSettings()
    sentry: SentrySettings = SentrySettings()
    cluster: ClusterSettings = ClusterSettings()

    @model_validator(mode="after")
    def _cluster_needs_postgres(self) -> ObserverSettings:
        if self.cluster.enabled and self.storage.url is None:
            raise ValueError(
                "cluster.enabled needs storage.url: the members share a PostgreSQL database"
            )
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def database_path(self) -> Path:
        return self.storage.path or self.data_dir / "observer.sqlite"

    @property
    def storage_target(self) -> Path | str:
        """Where records go: the PostgreSQL URL when set, else the SQLite file."""
        return self.storage.url or self.database_path


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a config file, as written to docs/config.schema.json."""
    schema = ObserverSettings.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Observer configuration"
    return schema


@functools.cache
def _schema_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json_schema())


def render_json_schema() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


Origins = dict[tuple[str, ...], str]  # a value's path → where it came from (a variable name)
COMMAND_LINE = "the command line"
MAX_SHOWN_CHARS = 80  # of a refused value in an error line


class SettingError(ConfigError):
    """One setting's value is unusable; ``load_settings`` adds where the value came from."""

    def __init__(self, key: tuple[str, ...], value: object, reason: str) -> None:
        self.key, self.value, self.reason = key, value, reason
        super().__init__(f"{'.'.join(key)} = {_clip(repr(value))}: {reason}")


def _leaf_paths(value: Any, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    if isinstance(value, Mapping) and value:
        return [leaf for key, item in value.items() for leaf in _leaf_paths(item, (*prefix, key))]
    return [prefix]


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], Origins]:
    """``OBSERVER_TRACK_B__CAPACITY=30`` → ``{"track_b": {"capacity": 30}}``, and origins."""
    tree: dict[str, Any] = {}
    origins: Origins = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name.removeprefix(ENV_PREFIX).split(ENV_NESTING)]
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: {part!r} is both a value and a section")
        try:
            node[path[-1]] = load_yaml(raw) if raw else raw
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None
        origins |= dict.fromkeys(_leaf_paths(node[path[-1]], tuple(path)), name)
    return tree, origins


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


# Values that may hold a credential: an error names the key and the reason, never the value.
SECRET_KEYS = frozenset({"storage.url"})


def _clip(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _from(paths: list[tuple[str, ...]], origins: Origins) -> str:
    """`` (from OBSERVER_SIM__SPEED)`` when a refused value came from a variable or flag."""
    names = {  # a section's (or the top level's) error: every value under it
        origin
        for path in paths
        for origin_path, origin in origins.items()
        if origin_path[: len(path)] == path or path[: len(origin_path)] == origin_path
    }
    return f" (from {', '.join(sorted(names))})" if names else ""


def _describe(error: jsonschema.ValidationError, origins: Origins) -> str:
    path = tuple(str(part) for part in error.absolute_path)
    key = ".".join(path) or "(top level)"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        extra = [(*path, str(name)) for name in error.instance if name not in known]
        return f"{key}: {_clip(error.message)}{_from(extra, origins)}"
    if key in SECRET_KEYS or isinstance(error.instance, dict):  # the message would quote it
        return f"{key}{_from([path], origins)}: refused by the schema ({error.validator})"
    return f"{key} = {_clip(repr(error.instance))}{_from([path], origins)}: {_clip(error.message)}"


def settings_from_mapping(
    document: Any, *, source: str = "config", origins: Origins | None = None
) -> ObserverSettings:
    """Validate a parsed document (schema first, then the model); ConfigError on failure.

    ``origins`` maps value paths to the ``OBSERVER_*`` variable (or the command
    line) they came from, so that the error names it.
    """
    origins = origins or {}
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping, got {type(document).__name__}"
        )
    if isinstance(document.get("log_level"), str):  # case-insensitive; the schema lists upper
        document = {**document, "log_level": document["log_level"].upper()}
    validator = _schema_validator()
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ConfigError(f"{source}: " + "; ".join(_describe(e, origins) for e in errors))
    try:
        return ObserverSettings.model_validate(document)
    except ValidationError as exc:
        problems = []
        for item in exc.errors():
            path = tuple(str(part) for part in item["loc"])
            key = ".".join(path) or "(top level)"
            value = item.get("input")
            # A whole section is not shown: it may hold a secret (storage.url) and is long.
            hidden = key in SECRET_KEYS or isinstance(value, dict)
            shown = "" if hidden else f" = {_clip(repr(value))}"
            reason = _clip(item["msg"].removeprefix("Value error, "))
            problems.append(f"{key}{shown}{_from([path], origins)}: {reason}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def load_settings(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    check: Callable[[ObserverSettings], None] | None = None,
) -> ObserverSettings:
    """Settings from an optional YAML file, then ``OBSERVER_*`` variables, then ``overrides``.

    ``overrides`` are the command line's options; ``check`` may look further
    (``observer.preflight``) and raise SettingError. Raises ConfigError naming
    the key, the value, the variable or option it came from, and the reason.
    """
    document: dict[str, Any] = {}
    source = "config"
    if path is not None:
        source = str(path)
        try:
            loaded = load_yaml(read_config_text(path))
        except ConfigError as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith(source) else f"{path}: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        document = loaded or {}
    env, origins = _env_overrides(os.environ if environ is None else environ)
    overrides = overrides or {}
    origins |= dict.fromkeys(_leaf_paths(overrides, ()), COMMAND_LINE)
    origins.pop((), None)
    merged = _merge(_merge(document, env), overrides)
    settings = settings_from_mapping(merged, source=source, origins=origins)
    if check is not None:
        try:
            check(settings)
        except SettingError as exc:
            where = _from([exc.key], origins)
            shown = _clip(repr(exc.value))
            raise ConfigError(
                f"{source}: {'.'.join(exc.key)} = {shown}{where}: {exc.reason}"
            ) from None
    return settings
