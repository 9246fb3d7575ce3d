"""Counters that outlive any one snapshot: API request outcomes and record errors."""

from __future__ import annotations

import threading
from collections import Counter


class ApiStats:
    """Thread-safe monotonic counters, read as copies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._record_errors: Counter[str] = Counter()
        self._users_dropped: Counter[str] = Counter()

    def count_request(self, outcome: str) -> None:
        """Count one API request by its outcome label."""
        with self._lock:
            self._requests[outcome] += 1

    def count_record_errors(self, by_field: dict[str, int]) -> None:
        """Add unreadable values, by API field name."""
        with self._lock:
            self._record_errors.update(by_field)

    def count_users_dropped(self, reason: str, count: int) -> None:
        """Count users listed but not exported, by reason (such as `limit`)."""
        with self._lock:
            self._users_dropped[reason] += count

    def requests(self) -> dict[str, int]:
        """A copy of the request counters."""
        with self._lock:
            return dict(self._requests)

    def record_errors(self) -> dict[str, int]:
        """A copy of the record-error counters."""
        with self._lock:
            return dict(self._record_errors)

    def users_dropped(self) -> dict[str, int]:
        """A copy of the dropped-user counters."""
        with self._lock:
            return dict(self._users_dropped)
