"""The current snapshot and how it is renewed: single-flight, throttled, bounded.

Scrapes never build anything: they read an immutable `State` through one
reference. A refresh runs in its own thread, builds a new state and swaps the
reference; concurrent scrapes wait on the same refresh, each only until its
own deadline, and then serve whatever state is current.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import __version__
from .config import RefreshSettings
from .errors import RefreshError
from .exposition import (
    Block,
    Exposition,
    StatusCollector,
    exposition_of,
    render,
    render_users,
)
from .snapshot import Listing, RefreshStatus
from .stats import ApiStats

log = logging.getLogger(__name__)

Fetch = Callable[[float], Listing]


@dataclass(frozen=True)
class State:
    """One refresh attempt's outcome, with its rendered exposition."""

    users_block: Block
    user_count: int
    status: RefreshStatus
    attempted_at: float
    succeeded_at: float | None
    exposition: Exposition
    stale_cache: list[Exposition] = field(
        default_factory=list, repr=False, compare=False
    )


class Refresher:
    """Owns the current state and every refresh of it."""

    def __init__(
        self,
        fetch: Fetch,
        settings: RefreshSettings,
        stats: ApiStats,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        version: str = __version__,
    ) -> None:
        self._fetch = fetch
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
        self._last_reason: str | None = None

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
        """True once a refresh has succeeded."""
        state = self._state
        return state is not None and state.succeeded_at is not None

    def scrape(self, deadline: float) -> Exposition:
        """The exposition to serve, refreshing first when on-scrape and due."""
        if self._settings.mode == "on_scrape" and self._due():
            done = self.trigger()
            # No refresh outlives its own timeout, so neither need the wait.
            budget = min(deadline - self._monotonic(), self._settings.timeout_seconds)
            done.wait(max(0.0, budget))
        return self.serving()

    def serving(self) -> Exposition:
        """The current exposition, without per-user series once they are stale."""
        state = self._state
        if state is None:
            return self._empty_exposition()
        if self._is_stale(state):
            return self._stale_exposition(state)
        return state.exposition

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
        thread = threading.Thread(
            target=self._run, args=(done,), name="koodrive-refresh", daemon=True
        )
        thread.start()
        return done

    def refresh_now(self) -> State:
        """Run one refresh in the calling thread and install its state."""
        started = self._monotonic()
        deadline = started + self._settings.timeout_seconds
        try:
            listing = self._fetch(deadline)
            return self._install_success(listing, started)
        except RefreshError as error:
            return self._install_failure(error, started)
        except Exception as exc:
            # A bug below must cost one refresh, not the exporter.
            log.exception("refresh crashed")
            error = RefreshError("internal_error", type(exc).__name__)
            return self._install_failure(error, started)

    def reconfigure(self, fetch: Fetch, settings: RefreshSettings) -> None:
        """Use a new fetch and settings from the next refresh on; keep the state."""
        was_background = self.background
        self._fetch = fetch
        self._settings = settings
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
            self.trigger().wait()
            self._stop.wait(self._settings.min_interval_seconds)

    def _run(self, done: threading.Event) -> None:
        try:
            self.refresh_now()
        finally:
            with self._lock:
                self._inflight = None
            done.set()

    def _due(self) -> bool:
        state = self._state
        if state is None:
            return True
        age = self._monotonic() - state.attempted_at
        return age >= self._settings.min_interval_seconds

    def _is_stale(self, state: State) -> bool:
        limit = self._settings.stale_after_seconds
        if not limit or state.succeeded_at is None:
            return False
        return self._monotonic() - state.succeeded_at > limit

    def _install_success(self, listing: Listing, started: float) -> State:
        first = not self.ready
        if listing.record_errors:
            self._stats.count_record_errors(listing.record_errors)
            for field_name, count in sorted(listing.record_errors.items()):
                log.warning(
                    "unreadable values dropped",
                    extra={
                        "fields": {
                            "field": field_name,
                            "count": count,
                            "example": listing.error_examples.get(field_name, ""),
                        }
                    },
                )
        if listing.over_limit:
            self._stats.count_users_dropped("limit", listing.over_limit)
            log.warning(
                "users over users.max_users not exported",
                extra={
                    "fields": {
                        "kept": len(listing.users),
                        "dropped": listing.over_limit,
                    }
                },
            )
        users_block = render_users(listing.users)
        # The duration covers rendering too: it is part of what a scrape waits for.
        duration = self._monotonic() - started
        status = self._status(
            up=True,
            users=len(listing.users),
            last_success=self._wall(),
            duration=duration,
            reason=None,
        )
        state = self._build_state(
            users_block, len(listing.users), status, started, True
        )
        fields = {
            "users": len(listing.users),
            "pages": listing.pages,
            "duplicates": listing.duplicates,
            "filtered": listing.filtered,
            "seconds": round(duration, 3),
        }
        if self._last_reason is not None:
            log.info("refresh recovered", extra={"fields": fields})
        elif first:
            log.info("first refresh succeeded", extra={"fields": fields})
        else:
            log.debug("refresh succeeded", extra={"fields": fields})
        self._last_reason = None
        return state

    def _install_failure(self, error: RefreshError, started: float) -> State:
        duration = self._monotonic() - started
        previous = self._state
        fields: dict[str, object] = {"reason": error.reason}
        if error.detail:
            fields["detail"] = error.detail
        if error.page is not None:
            fields["page"] = error.page
        if error.trace_id:
            fields["trace_id"] = error.trace_id
        log.warning("refresh failed", extra={"fields": fields})
        self._last_reason = error.reason

        users_block = previous.users_block if previous else render_users(())
        user_count = previous.user_count if previous else 0
        last_success = previous.status.last_success_seconds if previous else None
        status = self._status(
            up=False,
            users=user_count,
            last_success=last_success,
            duration=duration,
            reason=error.reason,
        )
        succeeded_at = previous.succeeded_at if previous else None
        return self._build_state(
            users_block, user_count, status, started, False, succeeded_at
        )

    def _build_state(
        self,
        users_block: Block,
        user_count: int,
        status: RefreshStatus,
        started: float,
        succeeded: bool,
        succeeded_at: float | None = None,
    ) -> State:
        now = self._monotonic()
        status_block = render(StatusCollector(status))
        state = State(
            users_block=users_block,
            user_count=user_count,
            status=status,
            attempted_at=started,
            succeeded_at=now if succeeded else succeeded_at,
            exposition=exposition_of((users_block, status_block)),
        )
        self._state = state
        return state

    def _status(
        self,
        *,
        up: bool,
        users: int,
        last_success: float | None,
        duration: float | None,
        reason: str | None,
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
        )

    def _stale_exposition(self, state: State) -> Exposition:
        # Built once per state: scrapes after the data went stale share it.
        if not state.stale_cache:
            status = self._status(
                up=state.status.up,
                users=0,
                last_success=state.status.last_success_seconds,
                duration=state.status.duration_seconds,
                reason=state.status.reason,
            )
            empty = render_users(())
            state.stale_cache.append(
                exposition_of((empty, render(StatusCollector(status))))
            )
        return state.stale_cache[0]

    def _empty_exposition(self) -> Exposition:
        status = self._status(
            up=False, users=0, last_success=None, duration=None, reason="no_refresh_yet"
        )
        return exposition_of((render_users(()), render(StatusCollector(status))))
