"""Refresh rules with a fake clock and a fake fetch: no HTTP, no sleeping."""

from __future__ import annotations

import threading
import time

import pytest

from helpers import parse_samples
from koodrive_exporter.collectors import users_source
from koodrive_exporter.config import RefreshSettings
from koodrive_exporter.errors import RefreshError
from koodrive_exporter.records import UserQuota
from koodrive_exporter.refresh import Refresher
from koodrive_exporter.snapshot import Listing
from koodrive_exporter.stats import ApiStats


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def listing_of(*user_ids: str) -> Listing:
    """A listing whose users each use 1 byte of a 10-byte quota."""
    users = tuple(UserQuota(uid, 10.0, 1.0, None, None, None) for uid in user_ids)
    return Listing(items=users, pages=1)


class ScriptedFetch:
    """Returns or raises the scripted results in order, counting calls."""

    def __init__(self, *results: Listing | Exception) -> None:
        self.results = list(results)
        self.calls = 0

    def __call__(self, deadline: float) -> Listing:
        self.calls += 1
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(result, Exception):
            raise result
        return result


def make_refresher(fetch, clock: FakeClock, **settings: float | str) -> Refresher:
    return Refresher(
        [users_source(fetch)],
        RefreshSettings(**settings),
        ApiStats(),
        monotonic=clock,
        wall=lambda: 5e9,
    )


def samples_of(refresher: Refresher) -> dict[str, float]:
    body = refresher.serving().body(openmetrics=False, compressed=False)
    return parse_samples(body.decode())


def test_a_snapshot_younger_than_the_interval_is_reused() -> None:
    clock = FakeClock()
    fetch = ScriptedFetch(listing_of("a"))
    refresher = make_refresher(fetch, clock, min_interval_seconds=60)
    refresher.refresh_now()

    clock.now += 59
    refresher.scrape(deadline=clock.now + 10)
    assert fetch.calls == 1

    clock.now += 2
    refresher.scrape(deadline=clock.now + 10)
    assert fetch.calls == 2


def test_a_failure_keeps_the_users_and_reports_down() -> None:
    clock = FakeClock()
    fetch = ScriptedFetch(listing_of("a", "b"), RefreshError("http_5xx"))
    refresher = make_refresher(fetch, clock)
    refresher.refresh_now()
    refresher.refresh_now()

    samples = samples_of(refresher)

    assert samples["koodrive_up"] == 0.0
    assert samples['koodrive_user_used_bytes{user_id="b"}'] == 1.0
    assert samples["koodrive_last_refresh_success_timestamp_seconds"] == 5e9
    assert refresher.ready


def test_stale_users_are_dropped_after_stale_after_seconds() -> None:
    clock = FakeClock()
    fetch = ScriptedFetch(listing_of("a"), RefreshError("timeout"))
    refresher = make_refresher(fetch, clock, stale_after_seconds=300)
    refresher.refresh_now()
    clock.now += 100
    refresher.refresh_now()

    clock.now += 199
    assert 'koodrive_user_used_bytes{user_id="a"}' in samples_of(refresher)

    clock.now += 2
    samples = samples_of(refresher)
    assert 'koodrive_user_used_bytes{user_id="a"}' not in samples
    assert samples["koodrive_users"] == 0.0
    assert samples["koodrive_up"] == 0.0


def test_an_unexpected_exception_becomes_a_failed_refresh() -> None:
    clock = FakeClock()
    refresher = make_refresher(ScriptedFetch(ZeroDivisionError()), clock)

    state = refresher.refresh_now()

    assert state.status.up is False
    assert state.status.reason == "internal_error"
    assert not refresher.ready


def test_before_any_refresh_the_exposition_says_down_and_not_ready() -> None:
    refresher = make_refresher(ScriptedFetch(listing_of("a")), FakeClock())

    samples = samples_of(refresher)

    assert samples["koodrive_up"] == 0.0
    assert not refresher.ready


def test_concurrent_scrapes_wait_on_one_refresh_and_get_its_result() -> None:
    release = threading.Event()
    calls = []

    def slow_fetch(deadline: float) -> Listing:
        calls.append(deadline)
        release.wait(10)
        return listing_of("a", "b", "c")

    refresher = Refresher(
        [users_source(slow_fetch)], RefreshSettings(min_interval_seconds=60), ApiStats()
    )
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(refresher.scrape(deadline=float("inf")))
        )
        for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(10)

    assert len(calls) == 1
    assert len(results) == 10
    assert all(result is results[0] for result in results)


def test_a_scrape_past_its_deadline_serves_the_last_snapshot() -> None:
    release = threading.Event()
    fetch_results = [listing_of("old")]

    def fetch(deadline: float) -> Listing:
        if not fetch_results:
            release.wait(10)
            return listing_of("new")
        return fetch_results.pop()

    refresher = Refresher(
        [users_source(fetch)], RefreshSettings(min_interval_seconds=0), ApiStats()
    )
    refresher.refresh_now()

    exposition = refresher.scrape(deadline=time.monotonic() + 0.05)
    release.set()

    body = exposition.body(openmetrics=False, compressed=False).decode()
    assert 'user_id="old"' in body
    assert 'user_id="new"' not in body


@pytest.mark.parametrize("mode", ["on_scrape", "background"])
def test_background_flag_follows_the_mode(mode: str) -> None:
    refresher = make_refresher(ScriptedFetch(listing_of("a")), FakeClock(), mode=mode)

    assert refresher.background is (mode == "background")
