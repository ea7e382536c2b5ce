"""Sentry error tracking: init, the secret scrubber, performance tracing and custom events.

Off unless ``settings.sentry.dsn`` or ``SENTRY_DSN`` names a DSN; when off, nothing
is initialised and every helper here is a cheap no-op. The only process-wide
state is what ``sentry_sdk`` itself keeps; the secrets the scrubber removes live
in a ``SecretScrubber`` owned by one ``Tracking``.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

import sentry_sdk
from sentry_sdk.integrations.aiohttp import AioHttpIntegration
from sentry_sdk.profiler.continuous_profiler import teardown_continuous_profiler
from sentry_sdk.tracing import Span
from sentry_sdk.utils import BadDsn, Dsn

from observer import __version__
from observer.config import SentrySettings
from observer.credentials import Credentials
from observer.errors import ConfigError
from observer.records import Gap
from observer.scrubbing import Event, SecretScrubber

P = ParamSpec("P")
R = TypeVar("R")

ENV_DSN = "SENTRY_DSN"


def _event(
    message: str, level: str, fingerprint: list[str], tags: dict[str, str], context: Event
) -> Event:
    """An event grouped by ``fingerprint``; ``context`` is ``{name: {field: value}}``."""
    return {
        "message": message,
        "level": level,
        "logger": "observer.tracking",
        "fingerprint": fingerprint,
        "tags": tags,
        "contexts": context,
    }


def slow_operation_event(name: str, op: str, elapsed_ms: float, threshold_ms: float) -> Event:
    """The warning sent when a monitored call takes longer than its threshold."""
    timing = dict(elapsed_ms=round(elapsed_ms, 3), threshold_ms=threshold_ms)
    return _event(
        f"slow operation: {op} {name}",
        "warning",
        ["slow-operation", op, name],
        {"op": op, "operation": name},
        {"performance": timing},
    )


def token_refresh_failed_event(
    *, reason: str, error_code: str | None, http_status: int | None, attempts: int, key: str
) -> Event:
    details = dict(reason=reason, error_code=error_code, http_status=http_status, attempts=attempts)
    return _event(
        f"token refresh failed: {error_code or reason}",
        "error",
        ["token-refresh-failed", error_code or "no-code"],
        {"error_code": error_code or "none", "key_fingerprint": key},
        {"token_refresh": details},  # not "token": the scrubber filters fields of that name
    )


def high_severity_gap_event(gap: Gap) -> Event:
    track, cause = gap.track.value, gap.cause.value
    details = dict(symbol=gap.symbol, start=gap.start, end=gap.end, recovery=gap.recovery.value)
    details |= dict(duration_s=gap.duration_seconds, missing_volume=gap.missing_volume)
    return _event(
        f"high-severity gap: track {track} {cause}",
        "error",
        ["high-severity-gap", track, cause],
        {"symbol": gap.symbol, "track": track, "cause": cause, "severity": gap.severity.value},
        {"gap": details},
    )


def slot_starvation_event(
    refused: int, window_s: float, *, capacity: int | None, allocated: int | None
) -> Event:
    counts = dict(refused=refused, window_s=window_s, capacity=capacity, allocated=allocated)
    return _event(
        "Track B slot starvation: triggers refused",
        "warning",
        ["slot-starvation", "b"],
        {"track": "b"},
        {"slots": counts},
    )


def reconnect_storm_event(count: int, window_s: float, *, last_reason: str | None) -> Event:
    counts = dict(count=count, window_s=window_s, last_reason=last_reason)
    fingerprint = ["reconnect-storm", "b"]
    return _event(
        "Track B reconnect storm", "error", fingerprint, {"track": "b"}, {"reconnects": counts}
    )


def _active() -> bool:
    return sentry_sdk.get_client().is_active()


class _Operation:
    """One traced operation: a transaction at top level, else a child of the current span."""

    def __init__(self, name: str, op: str, data: Mapping[str, Any]) -> None:
        self._name, self._op, self._data = name, op, data
        self._span: Span | None = None

    def __enter__(self) -> Span | None:
        if not _active():
            return None
        parent = sentry_sdk.get_current_span()
        if parent is None:
            span: Span = sentry_sdk.start_transaction(name=self._name, op=self._op, source="task")
        else:
            span = parent.start_child(op=self._op, name=self._name)
        for key, value in self._data.items():
            span.set_data(key, value)
        self._span = span.__enter__()
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._span is not None:
            span, self._span = self._span, None
            span.__exit__(exc_type, exc, tb)

    async def __aenter__(self) -> Span | None:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def trace_operation(name: str, op: str, **data: Any) -> _Operation:
    """``with`` / ``async with trace_operation("sweep", "track_a.sweep"):`` traces the block.

    A transaction when no span is current, a child span otherwise; an exception
    leaving the block marks it failed and propagates. No-op while tracking is off.
    """
    return _Operation(name, op, data)


def _report_if_slow(name: str, op: str, started: float, threshold_ms: float) -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    if elapsed_ms > threshold_ms and _active():
        sentry_sdk.capture_event(
            cast(Any, slow_operation_event(name, op, elapsed_ms, threshold_ms))
        )


def monitor_performance(
    *, threshold_ms: float, op: str, name: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Trace every call of a sync or async function; warn when one exceeds ``threshold_ms``.

    The call runs inside ``trace_operation(name or qualname, op)``; past the
    threshold (whether it returned or raised) a warning event fingerprinted by
    (op, name) is sent, so all slow calls of one function group in one issue.
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        label = name or func.__qualname__
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def traced_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                started = time.perf_counter()
                try:
                    async with trace_operation(label, op):
                        return await func(*args, **kwargs)
                finally:
                    _report_if_slow(label, op, started, threshold_ms)

            return cast(Callable[P, R], traced_async)

        @functools.wraps(func)
        def traced(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                with trace_operation(label, op):
                    return func(*args, **kwargs)
            finally:
                _report_if_slow(label, op, started, threshold_ms)

        return traced

    return decorate


class Tracking:
    """Sentry for one Observer process: ``start()`` initialises, ``close()`` flushes and stops.

    ``register_secret`` / ``register_credentials`` must be called with every secret
    as soon as it is known (credentials at start; the token manager and client
    with each access token and approval key) so the scrubber can remove its value.
    """

    def __init__(
        self,
        settings: SentrySettings,
        *,
        environ: Mapping[str, str] | None = None,
        release: str = f"observer@{__version__}",
        scrubber: SecretScrubber | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.dsn: str | None = settings.dsn or env.get(ENV_DSN) or None
        self.settings = settings
        self.release = release
        self.scrubber = scrubber or SecretScrubber()
        self.tags = dict(tags or {})
        self._started = False

    @property
    def enabled(self) -> bool:
        return self.dsn is not None

    def register_secret(self, value: str | None) -> None:
        self.scrubber.register(value)

    def register_credentials(self, credentials: Credentials) -> None:
        for value in credentials.secrets():
            self.scrubber.register(value)

    def options(self) -> dict[str, Any]:
        """The ``sentry_sdk.init`` keyword arguments (pure; what ``start`` uses)."""
        return {
            "dsn": self.dsn,
            "environment": self.settings.environment,
            "release": self.release,
            "traces_sample_rate": self.settings.traces_sample_rate,
            # Continuous profiling while a sampled transaction runs: sentry-sdk 2.x
            # deprecates transaction-based profiling (``profiles_sample_rate``).
            "profile_session_sample_rate": self.settings.profiles_sample_rate,
            "profile_lifecycle": "trace",
            "max_breadcrumbs": 50,
            # Never add sentry-trace/baggage headers to calls to the broker.
            "trace_propagation_targets": [],
            "integrations": [AioHttpIntegration(transaction_style="method_and_path_pattern")],
            "before_send": self.scrubber.before_send,
            "before_send_transaction": self.scrubber.before_send,
            "before_breadcrumb": self.scrubber.before_breadcrumb,
        }

    def check(self) -> None:
        """Raise ConfigError naming ``sentry.dsn`` (or ``SENTRY_DSN``) for a malformed DSN.

        Parses only: ``observer run`` calls it before anything starts.
        """
        if self.dsn is None:
            return
        try:
            Dsn(self.dsn)
        except BadDsn as exc:
            where = "sentry.dsn" if self.settings.dsn else ENV_DSN
            raise ConfigError(f"{where}: not a valid Sentry DSN: {exc}") from None

    def start(self) -> bool:
        """Initialise Sentry if a DSN is set; False (and nothing done) otherwise.

        Raises ConfigError naming ``sentry.dsn`` when the DSN is malformed.
        """
        if not self.enabled or self._started:
            return self._started
        try:
            sentry_sdk.init(**self.options())
        except BadDsn as exc:
            raise ConfigError(f"sentry.dsn: not a valid Sentry DSN: {exc}") from None
        sentry_sdk.get_global_scope().set_tags(self.tags)  # on every event and transaction
        self._started = True
        return True

    def close(self, timeout_s: float = 2.0) -> None:
        """Send what is queued (up to ``timeout_s``), then detach the client and its scopes."""
        if not self._started:
            return
        self._started = False
        teardown_continuous_profiler()  # process-wide in sentry-sdk; sends its last chunk
        client = sentry_sdk.get_client()
        client.close(timeout=timeout_s)
        scopes = (sentry_sdk.get_global_scope(), sentry_sdk.get_isolation_scope())
        for scope in (*scopes, sentry_sdk.get_current_scope()):
            scope.clear()
        scopes[0].set_client(None)

    def __enter__(self) -> Tracking:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _capture(self, event: Event) -> None:
        if self._started:
            sentry_sdk.capture_event(cast(Any, event))

    def token_refresh_failed(
        self,
        *,
        reason: str,
        error_code: str | None = None,
        http_status: int | None = None,
        attempts: int = 1,
        credentials: Credentials | None = None,
    ) -> None:
        """An access-token issuance failed (``error_code`` e.g. EGW00133 / EGW00103)."""
        key = credentials.fingerprint if credentials is not None else "unknown"
        self._capture(
            token_refresh_failed_event(
                reason=reason,
                error_code=error_code,
                http_status=http_status,
                attempts=attempts,
                key=key,
            )
        )

    def high_severity_gap(self, gap: Gap) -> None:
        self._capture(high_severity_gap_event(gap))

    def slot_starvation(
        self,
        refused: int,
        window_s: float,
        *,
        capacity: int | None = None,
        allocated: int | None = None,
    ) -> None:
        """``refused`` triggers found no Track B slot within the last ``window_s`` seconds."""
        self._capture(
            slot_starvation_event(refused, window_s, capacity=capacity, allocated=allocated)
        )

    def reconnect_storm(
        self, count: int, window_s: float, *, last_reason: str | None = None
    ) -> None:
        """``count`` WebSocket reconnects within the last ``window_s`` seconds."""
        self._capture(reconnect_storm_event(count, window_s, last_reason=last_reason))
