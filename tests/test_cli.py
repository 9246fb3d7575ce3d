"""The command line as an operator runs it: flags, config check, demo, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from koodrive_exporter import __version__
from koodrive_exporter.cli import parse_listen_address

EXPORTER = [sys.executable, "-m", "koodrive_exporter.cli"]


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """Run the exporter to completion and capture its output."""
    return subprocess.run(
        [*EXPORTER, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **environ},
    )


def wait_for(url: str, timeout: float = 20.0) -> requests.Response:
    """GET `url` until it answers 200; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = requests.get(url, timeout=5)
            if response.status_code == 200:
                return response
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer in time"
        time.sleep(0.1)


def test_version_flag_prints_the_version() -> None:
    result = run("--version")

    assert result.returncode == 0
    assert __version__ in result.stdout


def test_config_check_accepts_a_valid_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "koodrive:\n"
        "  url: https://koodrive.example\n"
        "  user_id: '1505084218764547200'\n"
        "  auth: {token_env: KOODRIVE_TOKEN}\n",
        encoding="utf-8",
    )

    result = run(
        "--config.check", "--config.file", str(config), KOODRIVE_TOKEN="a-token"
    )
    unreadable = run("--config.check", "--config.file", str(config), KOODRIVE_TOKEN="")
    no_collector = run(
        "--config.check",
        "--config.file",
        str(config),
        "--no-collector.users",
        KOODRIVE_TOKEN="a-token",
    )

    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert unreadable.returncode == 1
    assert "koodrive.auth" in unreadable.stderr
    assert "KOODRIVE_TOKEN" in unreadable.stderr
    assert no_collector.returncode == 1
    assert "collectors" in no_collector.stderr


def test_config_check_names_every_bad_key_and_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        "koodrive:\n"
        "  url: ftp://nowhere\n"
        "  user_id: '1'\n"
        "  auth: {token_env: KOODRIVE_TOKEN}\n"
        "  page_size: 1000\n"
        "  colour: blue\n"
        "refresh: {mode: never}\n",
        encoding="utf-8",
    )

    result = run("--config.check", "--config.file", str(config))

    assert result.returncode == 1
    for key in (
        "koodrive.url",
        "koodrive.page_size",
        "koodrive.colour",
        "refresh.mode",
    ):
        assert key in result.stderr


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run("--config.file", str(tmp_path / "absent.yml"))

    assert result.returncode == 1
    assert "absent.yml" in result.stderr


def test_a_bad_listen_address_exits_2() -> None:
    result = run("--web.listen-address", "nowhere", "--demo")

    assert result.returncode == 2
    assert "--web.listen-address" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":9877", ("0.0.0.0", 9877)),
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:9877", ("::1", 9877)),
    ],
)
def test_listen_addresses_are_parsed(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen_address(text) == expected


def test_demo_serves_per_user_series_and_stops_cleanly_on_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            *EXPORTER,
            "--demo",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--log.format",
            "json",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/-/ready")
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()

    assert process.returncode == 0
    assert metrics.count("koodrive_user_used_bytes{") == 200
    assert "koodrive_up 1.0" in metrics
    events = [json.loads(line)["msg"] for line in stderr.splitlines() if line]
    assert "exporter started" in events
    assert events[-1] == "stopped"


def test_demo_with_two_tenants_serves_each_on_probe() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            *EXPORTER,
            "--demo",
            "--demo.tenants",
            "2",
            "--web.listen-address",
            f"127.0.0.1:{port}",
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/-/ready")
        second = requests.get(base + "/probe?tenant=demo-2", timeout=10).text
        own = requests.get(base + "/metrics", timeout=10).text
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
    finally:
        process.kill()

    assert second.count("koodrive_user_used_bytes{") == 200
    assert "koodrive_department_used_bytes{" in second
    assert "koodrive_tenant_capacity_bytes " in second
    assert "koodrive_exporter_tenants 2.0" in own
    assert process.returncode == 0
