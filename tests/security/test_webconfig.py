"""The exporter behind a web-config: TLS, client certificates, basic auth, bad files."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.server import ExporterServer
from exporter.webconfig import WebConfig, load_web_config, parse_basic_auth
from metrics.registry import Metrics
from observer.errors import ConfigError
from tests.security.certs import Pki

PASSWORD = "scrape-Pa55word"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def tls_block(pki: Pki, **extra: str) -> str:
    lines = [
        "tls_server_config:",
        f"  cert_file: {pki.server_cert}",
        f"  key_file: {pki.server_key}",
    ]
    lines += [f"  {key}: {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


USERS_BLOCK = f"basic_auth_users:\n  prometheus: '{HASH}'\n"


@asynccontextmanager
async def exporter(metrics: Metrics, web_config: WebConfig) -> AsyncIterator[ExporterServer]:
    server = ExporterServer(metrics, web_config=web_config, version="test")
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


def client_context(pki: Pki, *, ca: Path | None = None, with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca or pki.ca_cert))
    if with_cert:
        context.load_cert_chain(pki.client_cert, pki.client_key)
    return context


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def get(
    url: str, *, ssl_context: ssl.SSLContext | bool = True, auth: str | None = None
) -> tuple[int, str, dict[str, str]]:
    headers = {"Authorization": auth} if auth else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, ssl=ssl_context, headers=headers) as response,
    ):
        return response.status, await response.text(), dict(response.headers)


async def test_https_scrape_verified_by_the_test_ca(
    tmp_path: Path, pki: Pki, metrics: Metrics
) -> None:
    config = load_web_config(write(tmp_path / "web.yml", tls_block(pki)))
    async with exporter(metrics, config) as server:
        assert server.url.startswith("https://127.0.0.1:")
        status, body, _ = await get(f"{server.url}/metrics", ssl_context=client_context(pki))
        assert status == 200
        names = {family.name for family in text_string_to_metric_families(body)}
        assert "observer_system_uptime_seconds" in names
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await get(
                f"{server.url}/metrics", ssl_context=client_context(pki, ca=pki.other_ca_cert)
            )
        with pytest.raises(aiohttp.ClientError):
            await get(server.url.replace("https://", "http://") + "/metrics")


async def test_relative_paths_are_relative_to_the_web_config_file(
    tmp_path: Path, pki: Pki, metrics: Metrics
) -> None:
    shutil.copy(pki.server_cert, tmp_path / "server.crt")
    shutil.copy(pki.server_key, tmp_path / "server.key")
    path = write(
        tmp_path / "web.yml",
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    )
    async with exporter(metrics, load_web_config(path)) as server:
        status, _, _ = await get(f"{server.url}/healthz", ssl_context=client_context(pki))
        assert status == 200


async def test_client_certificates_required(tmp_path: Path, pki: Pki, metrics: Metrics) -> None:
    text = tls_block(
        pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki.ca_cert)
    )
    async with exporter(metrics, load_web_config(write(tmp_path / "web.yml", text))) as server:
        with pytest.raises(aiohttp.ClientError):
            await get(f"{server.url}/metrics", ssl_context=client_context(pki))
        status, _, _ = await get(
            f"{server.url}/metrics", ssl_context=client_context(pki, with_cert=True)
        )
        assert status == 200


async def test_basic_auth_answers_401_until_the_right_credentials(
    tmp_path: Path, pki: Pki, metrics: Metrics
) -> None:
    config = load_web_config(write(tmp_path / "web.yml", tls_block(pki) + USERS_BLOCK))
    tls = client_context(pki)
    async with exporter(metrics, config) as server:
        for path in ("/metrics", "/api/summary", "/healthz", "/"):
            status, _, headers = await get(server.url + path, ssl_context=tls)
            assert status == 401
            assert headers["WWW-Authenticate"].startswith("Basic ")
        for auth in (
            basic("prometheus", "wrong"),
            basic("nobody", PASSWORD),
            basic("prometheus", "x" * 100),  # past bcrypt's 72 bytes
            "Basic not-base64",
        ):
            status, _, _ = await get(f"{server.url}/metrics", ssl_context=tls, auth=auth)
            assert status == 401
        good = basic("prometheus", PASSWORD)
        status, body, _ = await get(f"{server.url}/api/summary", ssl_context=tls, auth=good)
        assert status == 200 and "universe" in body
        checks = config.bcrypt_checks
        for _ in range(5):
            status, _, _ = await get(f"{server.url}/metrics", ssl_context=tls, auth=good)
            assert status == 200
        assert config.bcrypt_checks == checks  # remembered: no bcrypt round per scrape


async def test_concurrent_first_scrapes_share_one_bcrypt_check() -> None:
    config = WebConfig(basic_auth_users={"prometheus": HASH})
    results = await asyncio.gather(*(config.check("prometheus", PASSWORD) for _ in range(20)))
    assert all(results) and config.bcrypt_checks == 1
    assert not await config.check("prometheus", PASSWORD + "!")
    assert not await config.check("Prometheus", PASSWORD)
    assert config.bcrypt_checks == 3


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("Bearer abc", None),
        ("Basic !!!", None),
        ("Basic dXNlcg==", None),  # "user": no colon
        ("Basic dXNlcjpwYTpzcw==", ("user", "pa:ss")),
        ("basic dXNlcjo=", ("user", "")),
    ],
)
def test_parse_basic_auth(header: str | None, expected: tuple[str, str] | None) -> None:
    assert parse_basic_auth(header) == expected


def test_an_empty_web_config_changes_nothing(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path / "web.yml", ""))
    assert config.ssl_context() is None and config.middleware() is None


def _tls_with(**extra: str) -> Callable[[Pki], str]:
    return lambda pki: tls_block(pki, **extra)


def _key_is_a_certificate(pki: Pki) -> str:
    return tls_block(pki).replace(str(pki.server_key), str(pki.ca_cert))


def _missing_cert_file(pki: Pki) -> str:
    return f"tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: {pki.server_key}\n"


BAD_FILES: list[tuple[str, Callable[[Pki], str], str]] = [
    (
        "unknown top-level key",
        lambda p: "http_server_config: {http2: false}\n",
        "http_server_config",
    ),
    ("not a mapping", lambda p: "- a\n- b\n", "top level must be a mapping"),
    ("invalid yaml", lambda p: "tls_server_config: [\n", "not valid YAML"),
    ("missing key_file", lambda p: f"tls_server_config:\n  cert_file: {p.ca_cert}\n", "key_file"),
    ("missing cert file", _missing_cert_file, "cert_file"),
    ("key is not a key", _key_is_a_certificate, "key_file"),
    ("old TLS", _tls_with(min_version="TLS10"), "min_version"),
    ("unknown tls option", _tls_with(cipher_suites="[]"), "cipher_suites"),
    ("request-only client auth", _tls_with(client_auth_type="RequireAnyClientCert"), "client_auth"),
    ("no client CA", _tls_with(client_auth_type="RequireAndVerifyClientCert"), "client_ca_file"),
    ("plain password", lambda p: "basic_auth_users: {prometheus: hunter2}\n", "basic_auth_users"),
    ("user with colon", lambda p: f"basic_auth_users:\n  'a:b': '{HASH}'\n", "basic_auth_users"),
    ("users not a mapping", lambda p: "basic_auth_users: [prometheus]\n", "basic_auth_users"),
]


@pytest.mark.parametrize(
    ("text", "names"), [(t, n) for _, t, n in BAD_FILES], ids=[i for i, _, _ in BAD_FILES]
)
def test_bad_web_config_is_a_config_error_naming_the_key(
    tmp_path: Path, pki: Pki, text: Callable[[Pki], str], names: str
) -> None:
    path = write(tmp_path / "web.yml", text(pki))
    with pytest.raises(ConfigError) as error:
        load_web_config(path)
    assert names in str(error.value) and str(path) in str(error.value)
    assert "hunter2" not in str(error.value)


def test_missing_web_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read web config"):
        load_web_config(tmp_path / "absent.yml")


def test_web_config_alias_bomb_and_oversized_file_are_refused(tmp_path: Path) -> None:
    """Issue 14: the web-config file is read as boundedly as the settings file."""
    bomb = "\n".join(
        ["a0: &a0 [x,x,x,x,x,x,x,x,x]"]
        + [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    )
    with pytest.raises(ConfigError, match=r"web\.yml: YAML expands to more than"):
        load_web_config(write(tmp_path / "web.yml", bomb))
    with pytest.raises(ConfigError, match=r"larger than \d+ bytes"):
        load_web_config(write(tmp_path / "web.yml", "#" * 70_000))


async def test_observer_run_serves_through_its_web_config(tmp_path: Path, pki: Pki) -> None:
    web = write(tmp_path / "web.yml", tls_block(pki) + USERS_BLOCK)
    config = write(tmp_path / "observer.yaml", "sim: {symbols: 20}\nlog_level: WARNING\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSERVER_", "SENTRY_"))}
    env["OBSERVER_EXPORTER__WEB_CONFIG"] = str(web)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "observer", "run", "--config", str(config),
        "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        key, _, url = line.decode().strip().partition(" ")
        assert key == "exporter_url" and url.startswith("https://127.0.0.1:"), line
        tls = client_context(pki)
        assert (await get(f"{url}/metrics", ssl_context=tls))[0] == 401
        status, body, _ = await get(
            f"{url}/metrics", ssl_context=tls, auth=basic("prometheus", PASSWORD)
        )
        assert status == 200 and "observer_system_uptime_seconds" in body
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
