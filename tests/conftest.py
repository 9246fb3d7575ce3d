"""Shared fixtures: a loopback simulator, token files, settings and a live exporter."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests

from helpers import numbered_users, parse_samples
from koodrive_exporter import config
from koodrive_exporter.cli import Exporter, build_exporter
from koodrive_exporter.simulator.app import Simulator


@pytest.fixture
def token() -> str:
    """A fresh random token, so a leak of it is easy to grep for."""
    return "tok-" + secrets.token_hex(16)


@pytest.fixture
def token_file(tmp_path: Path, token: str) -> Path:
    """The token in a file, as an operator would mount it."""
    path = tmp_path / "token"
    path.write_text(token + "\n", encoding="utf-8")
    return path


@pytest.fixture
def simulator(token: str) -> Iterator[Simulator]:
    """A running loopback simulator with 25 users that accepts `token`."""
    with Simulator(numbered_users(25), token=token) as sim:
        yield sim


@dataclass
class LiveExporter:
    """An exporter serving on a loopback port, with helpers to scrape it."""

    exporter: Exporter
    base: str

    def get(self, path: str = "/metrics", **headers: str) -> requests.Response:
        """GET a path of the exporter."""
        return requests.get(self.base + path, headers=headers, timeout=30)

    def samples(self, **headers: str) -> dict[str, float]:
        """Scrape /metrics and map each sample line's name+labels to its value."""
        text = self.get(**headers).text
        return parse_samples(text)


@pytest.fixture
def live_exporter() -> Iterator[Callable[..., LiveExporter]]:
    """Start exporters for given settings; all are stopped after the test."""
    started: list[Exporter] = []

    def start(settings: config.Settings, *, background: bool = False) -> LiveExporter:
        if background:
            settings = replace(
                settings, refresh=replace(settings.refresh, mode="background")
            )
        exporter = build_exporter(settings, "127.0.0.1", 0)
        exporter.start()
        started.append(exporter)
        return LiveExporter(exporter, f"http://127.0.0.1:{exporter.server.port}")

    yield start
    for exporter in started:
        exporter.stop()
