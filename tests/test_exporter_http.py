"""The whole exporter over real HTTP: simulator -> client -> refresh -> /metrics."""

from __future__ import annotations

import gzip
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from helpers import make_settings, numbered_users, parse_samples, wire_user
from koodrive_exporter.simulator.app import Simulator
from koodrive_exporter.simulator.faults import Fault

USED = 'koodrive_user_used_bytes{user_id="%s"}'
QUOTA = 'koodrive_user_quota_bytes{user_id="%s"}'


def user_ids_in(samples: dict[str, float]) -> set[str]:
    """The user IDs that have a used-bytes series."""
    prefix = 'koodrive_user_used_bytes{user_id="'
    return {key[len(prefix) : -2] for key in samples if key.startswith(prefix)}


def wait_until(condition, timeout: float = 10.0) -> None:
    """Poll `condition` until true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_metrics_show_every_user_of_a_paged_tenant(
    simulator, token_file, live_exporter
):
    simulator.set_users(numbered_users(250))
    live = live_exporter(make_settings(simulator.url, token_file, page_size=100))

    samples = live.samples()

    assert samples["koodrive_up"] == 1.0
    assert samples["koodrive_users"] == 250.0
    assert len(user_ids_in(samples)) == 250
    assert samples[USED % "1000000000000000249"] == 249.0
    assert samples[QUOTA % "1000000000000000000"] == 1000.0
    bodies = [request["body"] for request in simulator.requests]
    pages = sorted((body["offset"], body["limit"]) for body in bodies)
    assert pages == [(0, 100), (100, 100), (200, 100)]


def test_short_pages_with_total_are_followed_to_the_total(
    simulator, token_file, live_exporter
):
    simulator.set_users(numbered_users(30))
    simulator.page_cap = 7
    live = live_exporter(make_settings(simulator.url, token_file))

    assert len(user_ids_in(live.samples())) == 30


def test_short_pages_without_total_end_only_on_an_empty_page(
    simulator, token_file, live_exporter
):
    simulator.set_users(numbered_users(30))
    simulator.page_cap = 7
    simulator.omit_total = True
    live = live_exporter(make_settings(simulator.url, token_file))

    assert len(user_ids_in(live.samples())) == 30


def test_a_server_ignoring_offset_does_not_make_the_exporter_loop(
    simulator, token_file, live_exporter
):
    simulator.set_users(numbered_users(250))
    simulator.ignore_offset = True
    live = live_exporter(make_settings(simulator.url, token_file, page_size=100))

    samples = live.samples()

    assert len(user_ids_in(samples)) == 100
    # One real page, one repeat that proves no progress, then it stops.
    assert simulator.request_count <= 4


def test_a_user_repeated_across_pages_is_one_series(
    simulator, token_file, live_exporter
):
    users = numbered_users(5)
    simulator.set_users([*users, users[1], users[3]])
    live = live_exporter(make_settings(simulator.url, token_file, page_size=3))

    text = live.get().text

    assert text.count('koodrive_user_used_bytes{user_id="1000000000000000001"}') == 1
    assert parse_samples(text)["koodrive_users"] == 5.0


def test_odd_wire_forms_are_read(simulator, token_file, live_exporter):
    simulator.set_users(
        [
            wire_user("9223372036854775809", quota="2", used="1.5e0"),
            wire_user("unlimited-empty", quota="", used=" 7 "),
            wire_user("unlimited-null", quota=None, used=8),
            wire_user("unlimited-zero", quota="0", used=9),
            wire_user("unlimited-negative", quota="-1", used=10),
            wire_user("unlimited-text", quota="unlimited", used=11),
        ]
    )
    simulator.code_as_string = True
    settings = make_settings(
        simulator.url, token_file, units={"quota": "KiB", "used": "KiB"}
    )
    live = live_exporter(settings)

    samples = live.samples()

    assert samples["koodrive_up"] == 1.0
    assert samples[QUOTA % "9223372036854775809"] == 2048.0
    assert samples[USED % "9223372036854775809"] == 1536.0
    for name in ("empty", "null", "zero", "negative", "text"):
        assert QUOTA % f"unlimited-{name}" not in samples
        assert USED % f"unlimited-{name}" in samples
    assert samples[USED % "unlimited-empty"] == 7 * 1024


def test_an_error_code_keeps_the_last_snapshot_and_sets_up_to_zero(
    simulator, token_file, live_exporter
):
    live = live_exporter(make_settings(simulator.url, token_file))
    assert live.samples()["koodrive_up"] == 1.0

    simulator.faults.push(Fault(kind="code", code=13000201))
    samples = live.samples()

    assert samples["koodrive_up"] == 0.0
    assert len(user_ids_in(samples)) == 25
    assert samples['koodrive_api_requests_total{outcome="api_error"}'] == 1.0


def test_a_truncated_body_is_a_failed_refresh_with_a_reason(
    simulator, token_file, live_exporter, caplog
):
    live = live_exporter(make_settings(simulator.url, token_file))
    live.samples()

    simulator.faults.push(Fault(kind="truncated", times=10))
    samples = live.samples()

    assert samples["koodrive_up"] == 0.0
    assert samples['koodrive_api_requests_total{outcome="bad_response"}'] >= 1.0
    assert any("reason" in str(getattr(r, "fields", "")) for r in caplog.records)
    assert "failed (bad_response)" in live.get("/").text


def test_a_truncated_body_once_is_retried(simulator, token_file, live_exporter):
    live = live_exporter(make_settings(simulator.url, token_file))
    live.samples()

    simulator.faults.push(Fault(kind="truncated"))
    samples = live.samples()

    assert samples["koodrive_up"] == 1.0
    assert samples['koodrive_api_requests_total{outcome="bad_response"}'] == 1.0


def test_a_rotated_token_file_is_used_after_a_401(
    simulator, token_file, live_exporter, tmp_path
):
    live = live_exporter(make_settings(simulator.url, token_file))
    assert live.samples()["koodrive_up"] == 1.0

    simulator.set_token("rotated-token")
    assert live.samples()["koodrive_up"] == 0.0

    token_file.write_text("rotated-token\n", encoding="utf-8")
    stat = token_file.stat()
    os.utime(token_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    samples = live.samples()

    assert samples["koodrive_up"] == 1.0
    assert samples['koodrive_api_requests_total{outcome="http_401"}'] >= 1.0


def test_429_with_retry_after_is_retried_after_the_wait(
    simulator, token_file, live_exporter
):
    live = live_exporter(make_settings(simulator.url, token_file))
    live.samples()

    simulator.faults.push(Fault(kind="rate_limited", retry_after=1))
    started = time.monotonic()
    samples = live.samples()

    assert samples["koodrive_up"] == 1.0
    assert time.monotonic() - started >= 1.0
    assert samples['koodrive_api_requests_total{outcome="http_429"}'] == 1.0


def test_a_hung_api_does_not_hold_a_scrape_past_its_deadline(
    simulator, token_file, live_exporter
):
    settings = make_settings(
        simulator.url,
        token_file,
        timeout_seconds=30,
        refresh={"timeout_seconds": 60},
    )
    live = live_exporter(settings)
    assert live.samples()["koodrive_up"] == 1.0

    simulator.faults.push(Fault(kind="hang", delay=20))
    started = time.monotonic()
    response = live.get(**{"X-Prometheus-Scrape-Timeout-Seconds": "1.5"})
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed < 5.0
    assert len(user_ids_in(parse_samples(response.text))) == 25


def test_concurrent_scrapes_share_one_refresh(token, token_file, live_exporter):
    with Simulator(numbered_users(450), token=token, latency_seconds=0.1) as sim:
        settings = make_settings(
            sim.url, token_file, page_size=100, refresh={"min_interval_seconds": 300}
        )
        live = live_exporter(settings)
        barrier = threading.Barrier(20)

        def scrape() -> dict[str, float]:
            barrier.wait()
            return live.samples()

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(lambda _: scrape(), range(20)))

        assert sim.request_count == 5
        assert all(len(user_ids_in(result)) == 450 for result in results)


def test_a_deleted_user_disappears_at_the_next_successful_refresh(
    simulator, token_file, live_exporter
):
    live = live_exporter(make_settings(simulator.url, token_file))
    assert "1000000000000000003" in user_ids_in(live.samples())

    simulator.set_users(
        [u for u in simulator.users if u["userId"] != "1000000000000000003"]
    )
    ids = user_ids_in(live.samples())

    assert "1000000000000000003" not in ids
    assert len(ids) == 24


def test_a_young_snapshot_is_reused_instead_of_calling_the_api(
    simulator, token_file, live_exporter
):
    settings = make_settings(
        simulator.url, token_file, refresh={"min_interval_seconds": 300}
    )
    live = live_exporter(settings)
    live.samples()
    calls = simulator.request_count

    for _ in range(5):
        live.samples()

    assert simulator.request_count == calls


def test_per_user_series_are_dropped_once_stale(simulator, token_file, live_exporter):
    settings = make_settings(
        simulator.url,
        token_file,
        refresh={"min_interval_seconds": 0.2, "stale_after_seconds": 0.5},
    )
    live = live_exporter(settings)
    assert len(user_ids_in(live.samples())) == 25

    simulator.faults.push(Fault(kind="status", status=500, times=1000))
    time.sleep(0.6)
    samples = live.samples()

    assert samples["koodrive_up"] == 0.0
    assert user_ids_in(samples) == set()
    assert "koodrive_last_refresh_success_timestamp_seconds" in samples


def test_background_mode_refreshes_without_scrapes(
    simulator, token_file, live_exporter
):
    settings = make_settings(
        simulator.url, token_file, refresh={"min_interval_seconds": 0.2}
    )
    live_exporter(settings, background=True)

    wait_until(lambda: simulator.request_count >= 3)


def test_readiness_waits_for_a_first_successful_refresh(
    simulator, token_file, live_exporter
):
    simulator.faults.push(Fault(kind="status", status=500, times=1000))
    settings = make_settings(simulator.url, token_file, retries={"max_attempts": 1})
    live = live_exporter(settings)
    wait_until(lambda: simulator.request_count >= 1)

    assert live.get("/-/healthy").status_code == 200
    assert live.get("/-/ready").status_code == 503

    simulator.faults.clear()
    live.samples()
    assert live.get("/-/ready").status_code == 200


def test_gzip_and_openmetrics_are_served_when_asked(
    simulator, token_file, live_exporter
):
    settings = make_settings(
        simulator.url, token_file, refresh={"min_interval_seconds": 300}
    )
    live = live_exporter(settings)
    plain = live.get(**{"Accept-Encoding": "identity"})

    raw = requests.get(
        live.base + "/metrics",
        headers={"Accept-Encoding": "gzip"},
        stream=True,
        timeout=10,
    )
    compressed = raw.raw.read()
    openmetrics = live.get(Accept="application/openmetrics-text; version=1.0.0")

    assert raw.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(compressed) == plain.content
    assert openmetrics.headers["Content-Type"].startswith(
        "application/openmetrics-text"
    )
    assert openmetrics.text.endswith("# EOF\n")
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")


def test_landing_page_links_and_never_shows_the_token(
    simulator, token, token_file, live_exporter
):
    live = live_exporter(make_settings(simulator.url, token_file))
    live.samples()

    page = live.get("/")

    assert page.status_code == 200
    assert 'href="/metrics"' in page.text
    assert "last refresh succeeded" in page.text
    assert token not in page.text
    assert live.get("/nowhere").status_code == 404


def test_the_token_never_reaches_logs_or_metrics(
    simulator, token, token_file, live_exporter, caplog
):
    caplog.set_level("DEBUG")
    live = live_exporter(make_settings(simulator.url, token_file))
    simulator.faults.push(Fault(kind="unauthorized"))
    live.samples()
    metrics = live.samples()

    assert token not in caplog.text
    assert token not in str(metrics)
    assert all(token not in str(getattr(r, "fields", "")) for r in caplog.records)


def test_user_ids_are_requested_in_chunks_of_at_most_fifty(
    simulator, token_file, live_exporter
):
    simulator.set_users(numbered_users(120))
    wanted = [str(1_000_000_000_000_000_000 + i) for i in range(0, 120, 1)][:110]
    live = live_exporter(make_settings(simulator.url, token_file, user_ids=wanted))

    ids = user_ids_in(live.samples())

    assert ids == set(wanted)
    sizes = [len(request["body"]["userIds"]) for request in simulator.requests]
    assert max(sizes) <= 50
    assert sum(sizes[:3]) == 110


def test_the_exposition_escapes_awkward_user_ids(simulator, token_file, live_exporter):
    awkward = 'quote"back\\slash-ünï'
    simulator.set_users([wire_user(awkward)])
    live = live_exporter(make_settings(simulator.url, token_file))

    text = live.get().text

    assert 'user_id="quote\\"back\\\\slash-ünï"' in text


def test_tls_verification_uses_the_configured_ca_file(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not really a certificate\n", encoding="utf-8")
    token = tmp_path / "t"
    token.write_text("x", encoding="utf-8")

    settings = make_settings("https://127.0.0.1:1", token, tls={"ca_file": str(ca)})

    assert settings.koodrive.ca_file == ca
    assert settings.koodrive.tls_verify is True


def test_concurrent_paging_makes_exactly_one_call_per_page(
    simulator, token_file, live_exporter
):
    simulator.set_users(numbered_users(1000))
    live = live_exporter(make_settings(simulator.url, token_file, concurrency=4))

    samples = live.samples()

    assert len(user_ids_in(samples)) == 1000
    assert simulator.request_count == 10
    offsets = sorted(request["body"]["offset"] for request in simulator.requests)
    assert offsets == list(range(0, 1000, 100))


def test_concurrent_paging_follows_a_server_that_caps_its_pages(
    simulator, token_file, live_exporter
):
    simulator.set_users(numbered_users(200))
    simulator.page_cap = 30
    live = live_exporter(make_settings(simulator.url, token_file, concurrency=4))

    assert len(user_ids_in(live.samples())) == 200
    assert simulator.request_count == 7


def test_concurrent_paging_against_a_server_ignoring_offset_ends(
    simulator, token_file, live_exporter
):
    simulator.set_users(numbered_users(500))
    simulator.ignore_offset = True
    simulator.total_override = 200_000
    live = live_exporter(make_settings(simulator.url, token_file, concurrency=4))

    samples = live.samples()

    # The second page, fetched alone, shows the offset is ignored: no request
    # goes out for the 2,000 pages the total claims.
    assert len(user_ids_in(samples)) == 100
    assert simulator.request_count == 2


def test_one_failing_page_fails_the_concurrent_refresh(
    simulator, token_file, live_exporter
):
    simulator.set_users(numbered_users(500))
    settings = make_settings(
        simulator.url, token_file, concurrency=4, retries={"max_attempts": 1}
    )
    live = live_exporter(settings)
    live.samples()

    simulator.faults.push(Fault(kind="code", code=13000301, times=1))
    simulator.faults.push(Fault(kind="status", status=400, times=1))
    samples = live.samples()

    assert samples["koodrive_up"] == 0.0
    assert len(user_ids_in(samples)) == 500
