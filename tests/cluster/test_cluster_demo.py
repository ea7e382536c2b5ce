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


def _read_announcement(process: subprocess.Popen[str], members: int = 2) -> dict[str, list[str]]:
    """The ``name value…`` lines the demo prints, up to the last member's status page."""
    assert process.stdout is not None
    values: dict[str, list[str]] = {}
    while len(values.get("status_page", [])) < members:
        line = process.stdout.readline()
        assert line, f"demo ended early: exit {process.wait()}"
        name, *rest = line.split()
        values.setdefault(name, []).append(" ".join(rest))
    return values


def _answers(url: str) -> bool:
    """Something accepts connections at ``url``'s host and port."""
    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex((host, int(port))) == 0


def _stop_postgres(data: Path) -> None:
    """Stop the server a killed demo left behind (its postmaster pid is the lock file's)."""
    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_WITHIN_S
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


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
        if process.poll() is None:  # a failed assertion: let the demo clean up, as Ctrl-C would
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_WITHIN_S)
            except subprocess.TimeoutExpired:
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


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_demo_killed_outright_takes_its_members_and_simulator_with_it() -> None:
    """SIGKILL leaves the demo no chance to stop anyone: its members and simulator end on
    their own (parent-death signal). PostgreSQL, a daemon of pg_ctl, is stopped here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBSERVER_", "KIS_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "observer", "cluster", "demo", "--members", "1", "--symbols", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    data_dir: Path | None = None
    try:
        values = _read_announcement(process, members=1)
        data_dir = Path(values["data_dir"][0])
        sim_url = values["rest_url"][0]
        member_url = values["exporter_url"][0].split()[1]
        assert _answers(sim_url) and _answers(member_url)
        process.kill()
        process.wait()
        deadline = time.monotonic() + STOP_WITHIN_S
        while _answers(sim_url) or _answers(member_url):
            assert time.monotonic() < deadline, "a member or the simulator outlived the demo"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if data_dir is not None:
            _stop_postgres(data_dir / "postgres" / "data")
            subprocess.run(["rm", "-rf", str(data_dir)], check=False)
