"""Secrets never leave the process: not in logs, tracebacks, metrics or pages."""

from __future__ import annotations

import io
import logging
import secrets
from pathlib import Path

import pytest
import requests

from helpers import CALLER_ID, make_settings
from koodrive_exporter import config, logs
from koodrive_exporter.cli import build_exporter
from koodrive_exporter.collectors import Source
from koodrive_exporter.config import RefreshSettings
from koodrive_exporter.refresh import Refresher
from koodrive_exporter.simulator.app import Simulator
from koodrive_exporter.simulator.faults import Fault
from koodrive_exporter.stats import ApiStats


@pytest.fixture(params=["logfmt", "json"])
def captured_logs(request):
    """Every log line, at debug level, in each format, as the CLI writes them."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure("debug", request.param, stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_an_app_secret_stays_out_of_every_output(
    tmp_path: Path, captured_logs: io.StringIO
) -> None:
    secret = "app-secret-" + secrets.token_hex(12)
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret, encoding="utf-8")
    with Simulator([], app_id="app", app_secret=secret) as sim:
        settings = config.parse(
            {
                "koodrive": {
                    "url": sim.url,
                    "user_id": CALLER_ID,
                    "auth": {"app_id": "app", "app_secret_file": str(secret_file)},
                    "retries": {"max_attempts": 1},
                },
                "refresh": {"min_interval_seconds": 0},
            }
        )
        exporter = build_exporter(settings, "127.0.0.1", 0)
        exporter.start()
        base = f"http://127.0.0.1:{exporter.server.port}"
        try:
            outputs = [requests.get(base + "/metrics", timeout=10).text]
            sim.faults.push(Fault(kind="unauthorized"))
            outputs.append(requests.get(base + "/metrics", timeout=10).text)
            outputs.append(requests.get(base + "/", timeout=10).text)
            signatures = [r["headers"].get("Authorization", "") for r in sim.requests]
        finally:
            exporter.stop()

    text = captured_logs.getvalue()
    assert "refresh failed" in text
    assert secret not in text
    assert all(secret not in output for output in outputs)
    signature = signatures[0].rsplit("Signature=", 1)[-1]
    assert signature and signature not in text


def test_a_secret_in_an_exception_message_is_redacted_from_the_traceback_line(
    tmp_path: Path, token: str, token_file: Path, captured_logs: io.StringIO
) -> None:
    # Reading the token registers it, as the exporter does at its first request.
    with Simulator([], token=token) as sim:
        exporter = build_exporter(make_settings(sim.url, token_file), "127.0.0.1", 0)
        exporter.refresher.refresh_now()
        exporter.server.stop()

    def leaky(deadline: float):
        raise RuntimeError(f"the server echoed Authorization: Bearer {token}")

    refresher = Refresher([Source("users", leaky)], RefreshSettings(), ApiStats())
    state = refresher.refresh_now()

    text = captured_logs.getvalue()
    assert state.status.reason == "internal_error"
    assert "collector crashed" in text
    assert logs.REDACTED in text
    assert token not in text


def test_a_missing_token_file_error_names_the_file_not_a_secret(
    tmp_path: Path, captured_logs: io.StringIO
) -> None:
    with Simulator([], token="whatever-token") as sim:
        settings = make_settings(sim.url, tmp_path / "absent-token")
        exporter = build_exporter(settings, "127.0.0.1", 0)
        state = exporter.refresher.refresh_now()
        exporter.server.stop()

    assert state.status.reason == "credentials"
    assert "absent-token" in captured_logs.getvalue()
