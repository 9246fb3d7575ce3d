"""A self-contained demo: the exporter reading embedded KooDrive simulators.

One simulated tenant is served on /metrics with every collector on; with
several, each is served on /probe?tenant=demo-N, as a multi-tenant exporter.
"""

from __future__ import annotations

import secrets
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .config import (
    COLLECTORS,
    AuthSettings,
    KooDriveSettings,
    RefreshSettings,
    Settings,
)
from .simulator.app import Simulator
from .simulator.tenant import generate_users

DEMO_USER_ID = "1505084218764547200"


@dataclass
class Demo:
    """The running simulators and the settings that point the exporter at them."""

    settings: Settings
    simulators: dict[str, Simulator]
    resources: ExitStack

    def close(self) -> None:
        """Stop the simulators and remove the temporary token file."""
        self.resources.close()

    def __enter__(self) -> Demo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_demo(users: int = 200, seed: int = 1, tenants: int = 1) -> Demo:
    """Start loopback simulators with generated users and a fresh token."""
    resources = ExitStack()
    token = secrets.token_hex(24)
    folder = Path(
        resources.enter_context(tempfile.TemporaryDirectory(prefix="koodrive-demo-"))
    )
    token_file = folder / "token"
    token_file.write_text(token + "\n", encoding="utf-8")
    token_file.chmod(0o600)

    simulators: dict[str, Simulator] = {}
    for number in range(1, tenants + 1):
        name = f"demo-{number}" if tenants > 1 else ""
        simulator = Simulator(
            generate_users(users, seed=seed + number - 1),
            token=token,
            seed=seed + number - 1,
        )
        simulator.start()
        resources.callback(simulator.stop)
        simulators[name] = simulator

    tenant_settings = {
        name: KooDriveSettings(
            url=simulator.url,
            user_id=DEMO_USER_ID,
            auth=AuthSettings(token_file=token_file),
        )
        for name, simulator in simulators.items()
    }
    settings = Settings(
        koodrive=tenant_settings.get(""),
        tenants={name: value for name, value in tenant_settings.items() if name},
        collectors=COLLECTORS,
        refresh=RefreshSettings(min_interval_seconds=15.0, stale_after_seconds=300.0),
    )
    return Demo(settings=settings, simulators=simulators, resources=resources)
