"""The current snapshot and how it is renewed: single-flight, throttled, bounded.

Scrapes never build anything: they read an immutable `State` through one
reference. A refresh runs in its own thread, asks every collector for fresh
data, builds a new state and swaps the reference; concurrent scrapes wait on
the same refresh, each only until its own deadline, and then serve whatever
state is current. A collector that fails keeps its last good data until that
data is stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import __version__
from .collectors import Collected, Source
from .config import RefreshSettings
from .errors import RefreshError
from .exposition import Block, Exposition, StatusCollector, exposition_of, render
from .snapshot import RefreshStatus
from .stats import ApiStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One collector's last good block and how its last fetch went."""

    name: str
    block: Block | None
    up: bool
    succeeded_at: float | None
    users: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class State:
    """One refresh attempt's outcome, with its rendered exposition."""

    parts: tuple[Part, ...]
    status: RefreshStatus
    attempted_at: float
    succeeded_at: float | None
    exposition: Exposition
    stale_cache: dict[frozenset[str], Exposition] = field(
        default_factory=dict, repr=False, compare=False
    )


class Refresher:
    """Owns the current state and every refresh of it."""

    def __init__(
        self,
        sources: Sequence[Source],
        settings: RefreshSettings,
        stats: ApiStats,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        version: str = __version__,
        tenant: str = "",
    ) -> None:
        self._tenant = tenant
        self._sources = tuple(sources)
        self._settings = settings
        self._stats = stats
        self._monotonic = monotonic
        self._wall = wall
        self._version = version
        self._state: State | None = None
        self._lock = threading.Lock()
        self._inflight: threading.Event | None = None
        self._stop = threading.Event()
        self._background: threading.Thread | None = None
        self._failing = False
        self._force = False

    @property
    def stats(self) -> ApiStats:
        """The counters this refresher's collectors report into."""
        return self._stats

    @property
    def state(self) -> State | None:
        """The current state, or None before the first refresh finished."""
        return self._state

    @property
    def background(self) -> bool:
        """True when refreshes run on a timer rather than on scrapes."""
        return self._settings.mode == "background"

    @property
    def ready(self) -> bool:
        """True once a refresh has succeeded for every collector."""
        state = self._state
        return state is not None and state.succeeded_at is not None

    @property
    def attempted(self) -> bool:
        """True once any refresh has finished, successful or not."""
        return self._state is not None

    def scrape(self, deadline: float) -> Exposition:
        """The exposition to serve, refreshing first when on-scrape and due."""
        if self._settings.mode == "on_scrape" and self._due():
            done = self.trigger()
            # No refresh outlives its own timeout, so neither need the wait.
            budget = min(deadline - self._monotonic(), self._settings.timeout_seconds)
            done.wait(max(0.0, budget))
        return self.serving()

    def serving(self) -> Exposition:
        """The current exposition, without any collector's data once it is stale."""
        state = self._state
        if state is None:
            return self._empty_exposition()
        stale = frozenset(part.name for part in state.parts if self._is_stale(part))
        if not stale:
            return state.exposition
        # Built once per state and stale set: later scrapes share it.
        cached = state.stale_cache.get(stale)
        if cached is None:
            cached = self._assemble(state.parts, state.status, stale)
            state.stale_cache[stale] = cached
        return cached

    def trigger(self) -> threading.Event:
        """Start a refresh unless one runs or a fresh state exists; return its event."""
        with self._lock:
            if self._inflight is not None:
                return self._inflight
            done = threading.Event()
            if not self._due():
                done.set()
                return done
            self._inflight = done
            self._force = False
        thread = threading.Thread(
            target=self._run, args=(done,), name="koodrive-refresh", daemon=True
        )
        thread.start()
        return done

    def refresh_now(self) -> State:
        """Run one refresh in the calling thread and install its state."""
        started = self._monotonic()
        deadline = started + self._settings.timeout_seconds
        previous = (
            {part.name: part for part in self._state.parts} if self._state else {}
        )
        parts = [
            self._collect(source, deadline, previous.get(source.name))
            for source in self._sources
        ]
        return self._install(parts, started)

    def reconfigure(self, sources: Sequence[Source], settings: RefreshSettings) -> None:
        """Use new collectors and settings from the next refresh on; keep the state."""
        was_background = self.background
        self._sources = tuple(sources)
        self._settings = settings
        self._force = True
        if self.background and not was_background:
            self._stop.clear()
            self.start_background()
        elif was_background and not self.background:
            self.stop()

    def start_background(self) -> None:
        """Refresh on a timer of `min_interval_seconds` until `stop()`."""
        self._background = threading.Thread(
            target=self._loop, name="koodrive-background", daemon=True
        )
        self._background.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background timer; a refresh under way is abandoned."""
        self._stop.set()
        if self._background is not None:
            self._background.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.trigger().wait(self._settings.timeout_seconds + 1)
            self._stop.wait(self._settings.min_interval_seconds)

    def _run(self, done: threading.Event) -> None:
        state = None
        try:
            state = self.refresh_now()
        finally:
            with self._lock:
                self._inflight = None
            done.set()
        # Prometheus asks for gzip: compress the new blocks now, after the
        # waiting scrapes were released, rather than in the next scrape.
        for part in state.parts if state else ():
            if part.block is not None:
                part.block.deflated(openmetrics=False)

    def _collect(self, source: Source, deadline: float, previous: Part | None) -> Part:
        try:
            collected = source.collect(deadline)
        except RefreshError as error:
            return self._failed(source.name, error, previous)
        except Exception as exc:
            # A bug below must cost one collector one refresh, not the exporter.
            log.exception(
                "collector crashed",
                extra={"fields": self._context() | {"collector": source.name}},
            )
            error = RefreshError("internal_error", type(exc).__name__)
            return self._failed(source.name, error, previous)
        self._account(source.name, collected)
        return Part(
            source.name, collected.block, True, self._monotonic(), collected.users
        )

    def _failed(self, name: str, error: RefreshError, previous: Part | None) -> Part:
        fields: dict[str, object] = {"collector": name, "reason": error.reason}
        if error.detail:
            fields["detail"] = error.detail
        if error.page is not None:
            fields["page"] = error.page
        if error.trace_id:
            fields["trace_id"] = error.trace_id
        log.warning("refresh failed", extra={"fields": self._context() | fields})
        if previous is None:
            return Part(name, None, False, None, reason=error.reason)
        return Part(
            name,
            previous.block,
            False,
            previous.succeeded_at,
            previous.users,
            reason=error.reason,
        )

    def _account(self, name: str, collected: Collected) -> None:
        if collected.record_errors:
            self._stats.count_record_errors(collected.record_errors)
            for field_name, count in sorted(collected.record_errors.items()):
                log.warning(
                    "unreadable values dropped",
                    extra={
                        "fields": {
                            "collector": name,
                            "field": field_name,
                            "count": count,
                            "example": collected.error_examples.get(field_name, ""),
                        }
                    },
                )
        if collected.over_limit:
            self._stats.count_users_dropped("limit", collected.over_limit)
            log.warning(
                "users over users.max_users not exported",
                extra={
                    "fields": {"kept": collected.users, "dropped": collected.over_limit}
                },
            )
        log.debug(
            "collector succeeded",
            extra={
                "fields": self._context() | {"collector": name, **collected.details}
            },
        )

    def _install(self, parts: list[Part], started: float) -> State:
        now = self._monotonic()
        duration = now - started
        previous = self._state
        failures = [part for part in parts if not part.up]
        succeeded = not failures
        last_success = previous.status.last_success_seconds if previous else None
        if succeeded:
            last_success = self._wall()
        status = self._status(
            up=succeeded,
            users=_users_in(parts, frozenset()),
            last_success=last_success,
            duration=duration,
            reason=failures[0].reason if failures else None,
            collectors={part.name: part.up for part in parts},
        )
        self._log_outcome(succeeded, parts, duration, first=not self.ready)
        succeeded_at = (
            now if succeeded else (previous.succeeded_at if previous else None)
        )
        state = State(
            parts=tuple(parts),
            status=status,
            attempted_at=started,
            succeeded_at=succeeded_at,
            exposition=self._assemble(parts, status, frozenset()),
        )
        self._state = state
        return state

    def _log_outcome(
        self, succeeded: bool, parts: list[Part], duration: float, *, first: bool
    ) -> None:
        if not succeeded:
            self._failing = True
            return
        fields = {"users": _users_in(parts, frozenset()), "seconds": round(duration, 3)}
        if self._failing:
            log.info("refresh recovered", extra={"fields": self._context() | fields})
        elif first:
            log.info(
                "first refresh succeeded", extra={"fields": self._context() | fields}
            )
        else:
            log.debug("refresh succeeded", extra={"fields": self._context() | fields})
        self._failing = False

    def _assemble(
        self, parts: Sequence[Part], status: RefreshStatus, stale: frozenset[str]
    ) -> Exposition:
        if stale:
            status = self._status(
                up=status.up,
                users=_users_in(parts, stale),
                last_success=status.last_success_seconds,
                duration=status.duration_seconds,
                reason=status.reason,
                collectors=status.collectors,
            )
        blocks = [
            part.block
            for part in parts
            if part.block is not None and part.name not in stale
        ]
        return exposition_of((*blocks, render(StatusCollector(status))))

    def _context(self) -> dict[str, object]:
        return {"tenant": self._tenant} if self._tenant else {}

    def _due(self) -> bool:
        state = self._state
        if state is None or self._force:
            return True
        age = self._monotonic() - state.attempted_at
        return age >= self._settings.min_interval_seconds

    def _is_stale(self, part: Part) -> bool:
        limit = self._settings.stale_after_seconds
        if not limit or part.succeeded_at is None:
            return False
        return self._monotonic() - part.succeeded_at > limit

    def _status(
        self,
        *,
        up: bool,
        users: int,
        last_success: float | None,
        duration: float | None,
        reason: str | None,
        collectors: dict[str, bool],
    ) -> RefreshStatus:
        return RefreshStatus(
            up=up,
            users=users,
            last_success_seconds=last_success,
            duration_seconds=duration,
            reason=reason,
            requests=self._stats.requests(),
            record_errors=self._stats.record_errors(),
            version=self._version,
            users_dropped=self._stats.users_dropped(),
            collectors=collectors,
        )

    def _empty_exposition(self) -> Exposition:
        status = self._status(
            up=False,
            users=0,
            last_success=None,
            duration=None,
            reason="no_refresh_yet",
            collectors={source.name: False for source in self._sources},
        )
        return exposition_of((render(StatusCollector(status)),))


def _users_in(parts: Sequence[Part], stale: frozenset[str]) -> int:
    for part in parts:
        if part.name == "users" and part.name not in stale and part.block is not None:
            return part.users or 0
    return 0
