"""Helpers shared by the tests: raw API rows, settings and exposition parsing."""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from koodrive_exporter import config
from koodrive_exporter.simulator.tenant import generate_users

CALLER_ID = "1505084218764547200"


def wire_user(user_id: str, quota: Any = "1000", used: Any = 100, **times: Any) -> dict:
    """A raw API row as KooDrive sends it, with sensible times by default."""
    row = {
        "userId": user_id,
        "quota": quota,
        "used": used,
        "createTime": "2025-01-01T00:00:00.000Z",
        "effectiveTime": "2025-01-02T00:00:00.000Z",
        "expirationTime": "2027-01-01T00:00:00.000Z",
    }
    row.update(times)
    return row


def numbered_users(count: int, start: int = 0) -> list[dict]:
    """`count` users with 19-digit IDs, each quota 1000 bytes and distinct usage."""
    return [
        wire_user(str(1_000_000_000_000_000_000 + start + i), used=i)
        for i in range(count)
    ]


def make_settings(
    url: str, token_file: Path, *, refresh: dict | None = None, **koodrive: Any
) -> config.Settings:
    """Validated settings for a simulator, through the real config parser."""
    document = {
        "koodrive": {
            "url": url,
            "user_id": CALLER_ID,
            "auth": {"token_file": str(token_file)},
            "retries": {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05},
            **koodrive,
        },
        "refresh": {
            "min_interval_seconds": 0,
            "stale_after_seconds": 0,
            **(refresh or {}),
        },
    }
    return config.parse(document)


def parse_samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample line of a text exposition."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


class StaticSecret:
    """A secret source that always returns one value."""

    description = "test secret"

    def __init__(self, value: str) -> None:
        self.value = value

    def read(self) -> str:
        """Return the value."""
        return self.value

    def reload(self) -> bool:
        """Nothing to reload."""
        return False


# The simulator tests' shared case: a fixed moment, tenant and credentials.
SIM_NOW = datetime(2025, 11, 12, 8, 0, 0, tzinfo=timezone.utc)
SIM_TOKEN = "c69b0f40334782d560bb154032cf22ef43d671843c4ffbad"
SIM_APP_ID = "exporter-app"
SIM_APP_SECRET = "app-secret-for-tests"


@functools.cache
def sim_users() -> tuple[dict, ...]:
    """250 generated users at SIM_NOW, the same in every simulator test."""
    return tuple(generate_users(250, seed=7, now=SIM_NOW))
