"""A self-contained demo: the exporter reading an embedded KooDrive simulator."""

from __future__ import annotations

import secrets
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .config import AuthSettings, KooDriveSettings, RefreshSettings, Settings
from .simulator.app import Simulator
from .simulator.tenant import generate_users

DEMO_USER_ID = "1505084218764547200"


@dataclass
class Demo:
    """The running simulator and the settings that point the exporter at it."""

    settings: Settings
    simulator: Simulator
    resources: ExitStack

    def close(self) -> None:
        """Stop the simulator and remove the temporary token file."""
        self.resources.close()

    def __enter__(self) -> Demo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_demo(users: int = 200, seed: int = 1) -> Demo:
    """Start a loopback simulator with generated users and a fresh token."""
    resources = ExitStack()
    token = secrets.token_hex(24)
    folder = Path(
        resources.enter_context(tempfile.TemporaryDirectory(prefix="koodrive-demo-"))
    )
    token_file = folder / "token"
    token_file.write_text(token + "\n", encoding="utf-8")
    token_file.chmod(0o600)

    simulator = Simulator(generate_users(users, seed=seed), token=token)
    simulator.start()
    resources.callback(simulator.stop)

    settings = Settings(
        koodrive=KooDriveSettings(
            url=simulator.url,
            user_id=DEMO_USER_ID,
            auth=AuthSettings(token_file=token_file),
        ),
        refresh=RefreshSettings(min_interval_seconds=15.0, stale_after_seconds=300.0),
    )
    return Demo(settings=settings, simulator=simulator, resources=resources)
