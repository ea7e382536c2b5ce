"""``compose.yaml``: Observer, Prometheus, Alertmanager and Grafana with pinned images.

Every service has a healthcheck; Prometheus and Grafana keep their data in
named volumes; only the four UI/API ports are published. Grafana's admin
password comes from ``GF_ADMIN_PASSWORD`` with no default: compose refuses to
start without it. A stack configuration may ask for N cluster members
(``observer-i``, each published on its own loopback port, with its app key from
``KIS_APP_KEY_i``) sharing a ``postgres`` service whose password comes only from
``POSTGRES_PASSWORD``, and for a ``victoriametrics`` service (loopback port 8428).
Paths are relative to the folder the file lives in; the build context is the
folder holding Observer's Dockerfile (``..`` for the committed ``compose/``).
Files a stack configuration names (receiver secrets, a file_sd list) are mounted
read-only at their own absolute path, so the generated configs name one path that
holds natively and in the containers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from observer.stack import layout

PROMETHEUS_IMAGE = "prom/prometheus:v2.53.2"
ALERTMANAGER_IMAGE = "prom/alertmanager:v0.27.0"
GRAFANA_IMAGE = "grafana/grafana-oss:11.2.2"
OBSERVER_IMAGE = "observer:local"

POSTGRES_IMAGE = "postgres:15"
VICTORIAMETRICS_IMAGE = "victoriametrics/victoria-metrics:v1.102.1"

PASSWORD_VARIABLE = "GF_ADMIN_PASSWORD"
# Compose's "required" substitution: no default, the message says what to do.
REQUIRED_PASSWORD = f"${{{PASSWORD_VARIABLE}:?set {PASSWORD_VARIABLE} to Grafana's admin password}}"
POSTGRES_PASSWORD_VARIABLE = "POSTGRES_PASSWORD"
REQUIRED_POSTGRES_PASSWORD = f"${{{POSTGRES_PASSWORD_VARIABLE}:?set {POSTGRES_PASSWORD_VARIABLE}}}"
POSTGRES_USER = "observer"
POSTGRES_DB = "observer"
# The members' shared database; the password is substituted by compose, never written here.
# It goes into a URL: use one without '@', ':' or '/'.
STORAGE_URL = (
    f"postgresql://{POSTGRES_USER}:{REQUIRED_POSTGRES_PASSWORD}"
    f"@postgres:{layout.POSTGRES_PORT}/{POSTGRES_DB}"
)


def required(variable: str, what: str) -> str:
    """Compose's required substitution of ``variable``: no default, refused when unset."""
    return f"${{{variable}:?set {variable} to {what}}}"


def _healthcheck(command: list[str], start_period_s: int = 10) -> dict[str, Any]:
    return {
        "test": ["CMD", *command],
        "interval": "15s",
        "timeout": "5s",
        "retries": 5,
        "start_period": f"{start_period_s}s",
    }


def _wget(url: str) -> list[str]:
    # The prom/* images are busybox-based and Grafana's is Alpine: both ship wget, not curl.
    return ["wget", "--quiet", "--spider", url]


# Observer, Prometheus and Alertmanager answer without authentication: they are
# published on the host's loopback only. Grafana asks for a password and is the
# one UI meant to be reached from other machines.
LOOPBACK = "127.0.0.1"


def _port(port: int, *, host: str = LOOPBACK) -> str:
    return f"{host}:{port}:{port}" if host else f"{port}:{port}"


DEFAULT_BUILD_CONTEXT = ".."


@dataclass(frozen=True, slots=True, kw_only=True)
class ComposeParams:
    """Where compose builds Observer from, and host files mounted into the services."""

    build_context: str = DEFAULT_BUILD_CONTEXT
    prometheus_files: tuple[str, ...] = ()
    alertmanager_files: tuple[str, ...] = ()
    observers: int = 0  # 0: the single embedded-storage Observer; N: members observer-1..N
    victoriametrics_retention: str | None = None  # None: no VictoriaMetrics service


def _same_path_mounts(paths: Sequence[str]) -> list[str]:
    return [f"{path}:{path}:ro" for path in dict.fromkeys(paths)]


def observer_service(build_context: str = DEFAULT_BUILD_CONTEXT) -> dict[str, Any]:
    probe = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{layout.OBSERVER_PORT}/healthz', timeout=4)"
    )
    return {
        "build": {"context": build_context, "dockerfile": "Dockerfile"},
        "image": OBSERVER_IMAGE,
        # The bundled simulator is the default provider; the exporter listens on every
        # interface inside the container so Prometheus can reach it by service name.
        "command": ["run", "--listen", f"0.0.0.0:{layout.OBSERVER_PORT}"],
        # The status page links the rest of the stack where a browser on the host finds it.
        "environment": {
            f"OBSERVER_EXPORTER__LINKS__{name.upper()}": f"http://localhost:{port}"
            for name, port in (
                ("prometheus", layout.PROMETHEUS_PORT),
                ("alertmanager", layout.ALERTMANAGER_PORT),
                ("grafana", layout.GRAFANA_PORT),
            )
        },
        "ports": [_port(layout.OBSERVER_PORT)],
        "restart": "unless-stopped",
        "healthcheck": _healthcheck(["python", "-c", probe], start_period_s=30),
    }


def member_name(index: int) -> str:
    return f"observer-{index}"


def member_port(index: int) -> int:
    """Where member ``index`` (from 1) is published on the host's loopback."""
    return layout.OBSERVER_PORT + index - 1


def member_service(build_context: str, index: int) -> dict[str, Any]:
    """Cluster member ``index``: its own app key, the shared PostgreSQL, cluster mode on."""
    name = member_name(index)
    service = observer_service(build_context)
    service["environment"] = {
        "KIS_APP_KEY": required(f"KIS_APP_KEY_{index}", f"{name}'s app key"),
        "KIS_APP_SECRET": required(f"KIS_APP_SECRET_{index}", f"{name}'s app secret"),
        "OBSERVER_CLUSTER__ENABLED": "true",
        "OBSERVER_CLUSTER__MEMBER_ID": name,
        "OBSERVER_STORAGE__URL": STORAGE_URL,
        **service["environment"],
    }
    service["ports"] = [f"{LOOPBACK}:{member_port(index)}:{layout.OBSERVER_PORT}"]
    service["depends_on"] = {"postgres": {"condition": "service_healthy"}}
    return service


def postgres_service() -> dict[str, Any]:
    """The members' shared database; not published, its password only from the environment."""
    return {
        "image": POSTGRES_IMAGE,
        "environment": {
            "POSTGRES_USER": POSTGRES_USER,
            "POSTGRES_DB": POSTGRES_DB,
            "POSTGRES_PASSWORD": REQUIRED_POSTGRES_PASSWORD,
        },
        "volumes": ["postgres-data:/var/lib/postgresql/data"],
        "restart": "unless-stopped",
        "healthcheck": _healthcheck(
            ["pg_isready", "-U", POSTGRES_USER, "-d", POSTGRES_DB], start_period_s=30
        ),
    }


def victoriametrics_service(retention_period: str) -> dict[str, Any]:
    """Long-term storage Prometheus remote-writes to; answers PromQL on the same port."""
    port = layout.VICTORIAMETRICS_PORT
    return {
        "image": VICTORIAMETRICS_IMAGE,
        "command": [
            "-storageDataPath=/storage",
            f"-retentionPeriod={retention_period}",
            f"-httpListenAddr=:{port}",
        ],
        "volumes": ["victoriametrics-data:/storage"],
        "ports": [_port(port)],
        "restart": "unless-stopped",
        "healthcheck": _healthcheck(_wget(f"http://127.0.0.1:{port}/health")),
    }


def prometheus_service(files: Sequence[str] = ()) -> dict[str, Any]:
    port = layout.PROMETHEUS_PORT
    return {
        "image": PROMETHEUS_IMAGE,
        "command": [
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            "--storage.tsdb.retention.time=15d",
            f"--web.listen-address=:{port}",
        ],
        "volumes": [
            "./prometheus:/etc/prometheus:ro",
            "prometheus-data:/prometheus",
            *_same_path_mounts(files),
        ],
        "ports": [_port(port)],
        "depends_on": ["alertmanager"],
        "restart": "unless-stopped",
        "healthcheck": _healthcheck(_wget(f"http://127.0.0.1:{port}/-/ready")),
    }


def alertmanager_service(files: Sequence[str] = ()) -> dict[str, Any]:
    port = layout.ALERTMANAGER_PORT
    return {
        "image": ALERTMANAGER_IMAGE,
        "command": [
            "--config.file=/etc/alertmanager/alertmanager.yml",
            "--storage.path=/alertmanager",
            f"--web.listen-address=:{port}",
            # One instance: no gossip port to bind or publish.
            "--cluster.listen-address=",
        ],
        "volumes": ["./alertmanager:/etc/alertmanager:ro", *_same_path_mounts(files)],
        "ports": [_port(port)],
        "restart": "unless-stopped",
        "healthcheck": _healthcheck(_wget(f"http://127.0.0.1:{port}/-/ready")),
    }


def grafana_service() -> dict[str, Any]:
    port = layout.GRAFANA_PORT
    return {
        "image": GRAFANA_IMAGE,
        "environment": {
            "GF_SECURITY_ADMIN_USER": "admin",
            "GF_SECURITY_ADMIN_PASSWORD": REQUIRED_PASSWORD,
            "GF_AUTH_ANONYMOUS_ENABLED": "false",
            "GF_USERS_ALLOW_SIGN_UP": "false",
            "GF_ANALYTICS_REPORTING_ENABLED": "false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        },
        "volumes": [
            f"./{layout.GRAFANA_PROVISIONING_DIR}:/etc/grafana/provisioning:ro",
            f"./{layout.GRAFANA_DASHBOARDS_DIR}:{layout.GRAFANA_DASHBOARDS_MOUNT}:ro",
            "grafana-data:/var/lib/grafana",
        ],
        "ports": [_port(port, host="")],
        "depends_on": ["prometheus"],
        "restart": "unless-stopped",
        "healthcheck": _healthcheck(_wget(f"http://127.0.0.1:{port}/api/health")),
    }


def _observers(params: ComposeParams) -> dict[str, Any]:
    if not params.observers:
        return {"observer": observer_service(params.build_context)}
    members = {
        member_name(index): member_service(params.build_context, index)
        for index in range(1, params.observers + 1)
    }
    return {**members, "postgres": postgres_service()}


def build_compose(params: ComposeParams = ComposeParams()) -> dict[str, Any]:
    volumes: dict[str, Any] = {"prometheus-data": {}, "grafana-data": {}}
    if params.observers:
        volumes["postgres-data"] = {}
    services = {
        **_observers(params),
        "prometheus": prometheus_service(params.prometheus_files),
        "alertmanager": alertmanager_service(params.alertmanager_files),
        "grafana": grafana_service(),
    }
    if params.victoriametrics_retention is not None:
        services["victoriametrics"] = victoriametrics_service(params.victoriametrics_retention)
        volumes["victoriametrics-data"] = {}
    return {"services": services, "volumes": volumes}


def render_files(params: ComposeParams = ComposeParams()) -> dict[str, str]:
    return {layout.COMPOSE_FILE: layout.dump_yaml(build_compose(params))}
