"""Hostile inputs found by trying to break the exporter, each pinned by a test."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from helpers import make_settings, parse_samples
from koodrive_exporter import client as client_module
from koodrive_exporter import config
from koodrive_exporter.cli import build_exporter
from koodrive_exporter.errors import ConfigError
from koodrive_exporter.simulator.app import Simulator
from koodrive_exporter.simulator.faults import Fault
from koodrive_exporter.webconfig import WebGuard, parse_web_config


class TricklingServer:
    """Answers every request with headers at once and then one byte a tick."""

    def __init__(self, tick: float = 0.1) -> None:
        self._tick = tick
        self._stop = threading.Event()
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            threading.Thread(
                target=self._trickle, args=(connection,), daemon=True
            ).start()

    def _trickle(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000\r\n\r\n{"
            )
            while not self._stop.wait(self._tick):
                try:
                    connection.sendall(b" ")
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()


def test_a_body_sent_a_byte_at_a_time_fails_at_the_refresh_deadline(
    token_file: Path, live_exporter
) -> None:
    server = TricklingServer()
    try:
        settings = make_settings(
            f"http://127.0.0.1:{server.port}",
            token_file,
            timeout_seconds=0.5,
            retries={"max_attempts": 1},
            refresh={"timeout_seconds": 1.5},
        )
        live = live_exporter(settings)
        started = time.monotonic()
        while time.monotonic() - started < 10:
            state = live.exporter.refresher.state
            if state is not None:
                break
            time.sleep(0.05)
        samples = live.samples(**{"X-Prometheus-Scrape-Timeout-Seconds": "3"})
    finally:
        server.close()

    assert state is not None
    assert state.status.reason == "timeout"
    assert samples["koodrive_up"] == 0.0


def test_an_oversized_body_is_a_bad_response(
    simulator: Simulator, token_file: Path, live_exporter, monkeypatch
) -> None:
    monkeypatch.setattr(client_module, "MAX_BODY_BYTES", 1000)
    live = live_exporter(
        make_settings(simulator.url, token_file, retries={"max_attempts": 1})
    )

    samples = live.samples()

    assert samples["koodrive_up"] == 0.0
    assert samples['koodrive_api_requests_total{outcome="bad_response"}'] >= 1.0


def test_a_token_with_a_line_break_fails_without_reaching_the_logs(
    simulator: Simulator, tmp_path: Path, live_exporter, caplog
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first-half\nsecond-half\n", encoding="utf-8")
    caplog.set_level("DEBUG")
    live = live_exporter(make_settings(simulator.url, token_file))

    samples = live.samples()

    assert samples["koodrive_up"] == 0.0
    assert "first-half" not in caplog.text
    assert "second-half" not in caplog.text
    assert live.exporter.refresher.state.status.reason == "credentials"


def test_a_broken_web_config_file_keeps_the_server_answering(
    simulator: Simulator, token_file: Path, tmp_path: Path
) -> None:
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users: {}\n", encoding="utf-8")
    exporter = build_exporter(
        make_settings(simulator.url, token_file), "127.0.0.1", 0, web_config_file=web
    )
    exporter.start()
    url = f"http://127.0.0.1:{exporter.server.port}/-/healthy"
    try:
        for broken in (b"# r\xe9sum\xe9\n", b"basic_auth_users: " + b"[" * 3000):
            web.write_bytes(broken)
            later = web.stat().st_mtime_ns + 2_000_000_000
            os.utime(web, ns=(later, later))
            assert requests.get(url, timeout=10).status_code == 200
    finally:
        exporter.stop()


@pytest.mark.parametrize(
    "content", [b"koodrive: {}\n# r\xe9sum\xe9\n", b"koodrive: " + b"[" * 3000]
)
def test_an_undecodable_or_too_deep_config_file_is_a_config_error(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "config.yml"
    path.write_bytes(content)

    with pytest.raises(ConfigError):
        config.load_file(path)


def test_durations_too_large_for_timers_are_refused(token_file: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        make_settings(
            "http://127.0.0.1:1",
            token_file,
            timeout_seconds=1e10,
            refresh={"timeout_seconds": 1e10, "scrape_timeout_seconds": 1e10},
        )

    keys = {key for key, _ in raised.value.problems}
    assert {"koodrive.timeout_seconds", "refresh.timeout_seconds"} <= keys


def test_a_truncated_bcrypt_hash_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        parse_web_config(
            "basic_auth_users:\n  prom: '$2y$10$notAValidHash'\n", tmp_path
        )


def test_a_non_ascii_authorization_header_is_simply_unauthorized(
    tmp_path: Path,
) -> None:
    web = tmp_path / "web.yml"
    hashed = "$2b$04$" + "a" * 53
    web.write_text(f"basic_auth_users:\n  u: '{hashed}'\n", encoding="utf-8")
    guard = WebGuard(web)

    assert not guard.authorized("Basic é")
    assert not guard.authorized("basic " + base64.b64encode(b"u:x").decode())


def test_request_headers_are_matched_whatever_their_case(
    simulator: Simulator, token_file: Path, live_exporter
) -> None:
    settings = make_settings(
        simulator.url, token_file, refresh={"min_interval_seconds": 300}
    )
    live = live_exporter(settings)
    live.samples()

    raw = requests.get(
        live.base + "/metrics",
        headers={"accept-encoding": "gzip", "accept": "application/openmetrics-text"},
        stream=True,
        timeout=10,
    )

    assert raw.headers["Content-Encoding"] == "gzip"
    assert raw.headers["Content-Type"].startswith("application/openmetrics-text")


def test_an_overview_of_the_wrong_shape_keeps_the_last_totals(
    simulator: Simulator, token_file: Path, live_exporter
) -> None:
    settings = make_settings(simulator.url, token_file)
    settings = settings.with_collectors({"users": False, "overview": True})
    live = live_exporter(settings)
    assert "koodrive_tenant_used_bytes" in live.samples()

    simulator.faults.push(Fault(kind="wrong_shape"))
    text = requests.get(live.base + "/metrics", timeout=10).text
    samples = parse_samples(text)

    assert samples['koodrive_collector_up{collector="overview"}'] == 0.0
    assert "koodrive_tenant_used_bytes" in samples
