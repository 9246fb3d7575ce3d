"""Configuration reload on SIGHUP and POST /-/reload, keeping the old one if bad."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from helpers import CALLER_ID, make_settings, parse_samples
from koodrive_exporter.cli import Exporter, build_exporter
from koodrive_exporter.config import Settings
from koodrive_exporter.simulator.app import Simulator


def write_config(path: Path, url: str, token_file: Path, max_users: int) -> None:
    """An exporter configuration whose only varying part is the user cap."""
    path.write_text(
        f"koodrive:\n  url: {url}\n  user_id: '{CALLER_ID}'\n"
        f"  auth: {{token_file: {token_file}}}\n"
        "refresh: {min_interval_seconds: 0, stale_after_seconds: 0}\n"
        f"users: {{max_users: {max_users}}}\n",
        encoding="utf-8",
    )


def start_with_lifecycle(settings: Settings, config_file: Path) -> tuple[Exporter, str]:
    """An exporter that may be reloaded over HTTP, started, with its base URL."""
    exporter = build_exporter(
        settings, "127.0.0.1", 0, config_file=config_file, enable_lifecycle=True
    )
    exporter.start()
    return exporter, f"http://127.0.0.1:{exporter.server.port}"


def users_exported(base: str) -> float:
    text = requests.get(base + "/metrics", timeout=10).text
    return parse_samples(text)["koodrive_users"]


def test_post_reload_applies_a_new_config_and_refuses_a_bad_one(
    simulator: Simulator, token_file: Path, tmp_path: Path
) -> None:
    config_file = tmp_path / "config.yml"
    write_config(config_file, simulator.url, token_file, 5)
    exporter, base = start_with_lifecycle(
        make_settings(
            simulator.url,
            token_file,
        ),
        config_file,
    )
    try:
        assert users_exported(base) == 25.0

        assert requests.post(base + "/-/reload", timeout=10).status_code == 200
        assert users_exported(base) == 5.0

        config_file.write_text("koodrive: {url: 1}\n", encoding="utf-8")
        failed = requests.post(base + "/-/reload", timeout=10)
        assert failed.status_code == 500
        assert "koodrive.url" in failed.text
        assert users_exported(base) == 5.0
        assert requests.get(base + "/-/reload", timeout=10).status_code == 405
    finally:
        exporter.stop()


def test_reload_endpoint_is_off_without_the_lifecycle_flag(
    simulator: Simulator, token_file: Path
) -> None:
    exporter = build_exporter(make_settings(simulator.url, token_file), "127.0.0.1", 0)
    exporter.start()
    try:
        url = f"http://127.0.0.1:{exporter.server.port}/-/reload"
        assert requests.post(url, timeout=10).status_code == 404
    finally:
        exporter.stop()


def test_sighup_reloads_the_config_file(
    simulator: Simulator, token_file: Path, tmp_path: Path
) -> None:
    config_file = tmp_path / "config.yml"
    write_config(config_file, simulator.url, token_file, 3)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "koodrive_exporter.cli",
            "--config.file",
            str(config_file),
            "--web.listen-address",
            "127.0.0.1:0",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        assert process.stderr is not None
        for _ in range(50):
            line = process.stderr.readline()
            if "exporter started" in line:
                port = int(line.split("port=")[1].split()[0])
                break
        assert port, "exporter did not start"
        base = f"http://127.0.0.1:{port}"
        assert users_exported(base) == 3.0

        write_config(config_file, simulator.url, token_file, 7)
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while users_exported(base) != 7.0:
            assert time.monotonic() < deadline, "reload not applied"
            time.sleep(0.1)

        config_file.write_text("not: [valid\n", encoding="utf-8")
        process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert process.poll() is None
        assert users_exported(base) == 7.0
    finally:
        process.terminate()
        process.communicate(timeout=20)
    assert process.returncode == 0


def test_a_reload_reaches_the_metrics_without_waiting_for_the_interval(
    simulator: Simulator, token_file: Path, tmp_path: Path
) -> None:
    config_file = tmp_path / "config.yml"
    write_config(config_file, simulator.url, token_file, 4)
    slow = config_file.read_text(encoding="utf-8").replace(
        "min_interval_seconds: 0", "min_interval_seconds: 3600"
    )
    config_file.write_text(slow, encoding="utf-8")
    exporter, base = start_with_lifecycle(
        make_settings(
            simulator.url, token_file, refresh={"min_interval_seconds": 3600}
        ),
        config_file,
    )
    try:
        assert users_exported(base) == 25.0

        assert requests.post(base + "/-/reload", timeout=10).status_code == 200
        deadline = time.monotonic() + 10
        while users_exported(base) != 4.0:
            assert time.monotonic() < deadline, "reloaded settings never showed"
            time.sleep(0.05)
    finally:
        exporter.stop()
