"""Immutable values passed from the refresh to the exposition."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .records import UserQuota


@dataclass(frozen=True)
class Listing:
    """What one complete pass over a paged listing produced."""

    items: tuple[Any, ...]
    pages: int
    record_errors: dict[str, int] = field(default_factory=dict)
    error_examples: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0
    filtered: int = 0
    over_limit: int = 0

    @property
    def users(self) -> tuple[UserQuota, ...]:
        """The items of a users listing."""
        return self.items


@dataclass(frozen=True)
class RefreshStatus:
    """The exporter's own view of its last refresh, rendered beside the users."""

    up: bool
    users: int
    last_success_seconds: float | None
    duration_seconds: float | None
    reason: str | None
    requests: dict[str, int]
    record_errors: dict[str, int]
    version: str
    users_dropped: dict[str, int] = field(default_factory=dict)
    collectors: dict[str, bool] = field(default_factory=dict)
