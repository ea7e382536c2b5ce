"""``observer cluster demo``: members answer as one cluster; SIGTERM leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.foundation.test_cli import run_cli

START_WITHIN_S = 120.0
STOP_WITHIN_S = 90.0


def _gauge(url: str, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return None


def _read_announcement(process: subprocess.Popen[str]) -> dict[str, list[str]]:
    """The ``name value…`` lines the demo prints, up to the last member's status page."""
    assert process.stdout is not None
    values: dict[str, list[str]] = {}
    while len(values.get("status_page", [])) < 2:
        line = process.stdout.readline()
        assert line, f"demo ended early: exit {process.wait()}"
        name, *rest = line.split()
        values.setdefault(name, []).append(" ".join(rest))
    return values


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_demo_members_form_one_cluster_and_sigterm_removes_everything() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSERVER_", "KIS_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "observer", "cluster", "demo", "--members", "2", "--symbols", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        values = _read_announcement(process)
        data_dir = Path(values["data_dir"][0])
        urls = [entry.split()[1] for entry in values["exporter_url"]]
        assert len(urls) == 2 and all(u.startswith("http://127.0.0.1:") for u in urls)
        assert "@127.0.0.1:" in values["postgres_url"][0]
        assert ":" not in values["postgres_url"][0].split("//")[1].split("@")[0]  # no password
        postgres_port = int(values["postgres_url"][0].rsplit(":", 1)[1].split("/")[0])
        postmaster = int((data_dir / "postgres" / "data" / "postmaster.pid").read_text().split()[0])
        deadline = time.monotonic() + START_WITHIN_S

        def split() -> bool:
            # A member that starts sweeping takes its share at once; the others give it up
            # at their next rebalance: briefly both sweep it (never neither).
            owned = [_gauge(url, "observer_cluster_symbols_owned") for url in urls]
            return all(owned) and sum(o or 0 for o in owned) == 60

        while not (all(_gauge(url, "observer_cluster_members") == 2 for url in urls) and split()):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "members never split the universe"
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=STOP_WITHIN_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert not data_dir.exists()
    # The postmaster's command line names its data directory (-D …): none is left. Its pid
    # alone proves nothing, as another test's process may have been given it since.
    assert postmaster not in _processes_mentioning(str(data_dir))
    assert _processes_mentioning(str(data_dir)) == []
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", postgres_port))


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--members", "0", "--members 0"),
        ("--members", "three", "--members 'three'"),
        ("--symbols", "5", "--symbols 5"),
    ],
)
def test_bad_option_is_one_line_and_exit_2(option: str, value: str, named: str) -> None:
    result = run_cli("cluster", "demo", option, value)
    assert result.returncode == 2
    assert named in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
