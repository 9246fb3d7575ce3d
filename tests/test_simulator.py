"""The KooDrive API simulator keeps its contract, proven over real HTTP on loopback."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

import koodrive_exporter
from helpers import SIM_APP_ID, SIM_APP_SECRET, SIM_NOW, SIM_TOKEN, sim_users
from koodrive_exporter import signing
from koodrive_exporter.simulator import (
    API_PATH,
    DEPARTMENTS_PATH,
    GROUPS_PATH,
    OVERVIEW_PATH,
    Fault,
    FaultQueue,
    Simulator,
    generate_users,
    load_users,
    scale_units,
)
from koodrive_exporter.simulator.cli import main, parse_listen
from koodrive_exporter.simulator.tenant import UNLIMITED_QUOTAS

NOW = SIM_NOW
USERS = list(sim_users())
TOKEN = SIM_TOKEN
APP_ID = SIM_APP_ID
APP_SECRET = SIM_APP_SECRET
ISO_MILLIS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(USERS) as simulator:
        yield simulator


def post(
    simulator: Simulator,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = 5,
) -> requests.Response:
    """POST to the API path with the mandatory headers, plus any given."""
    sent = {"X-User-Id": "1505084218764547200", "X-Date": "20251112T080000Z"}
    sent.update(headers or {})
    if data is None:
        data = b"" if body is None else json.dumps(body).encode()
    sent.setdefault("Content-Type", "application/json")
    return requests.post(
        simulator.url + API_PATH, data=data, headers=sent, timeout=timeout
    )


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["userId"] for row in rows]


# Paging and the response body.


def test_pages_cover_every_user_once_in_listing_order(sim: Simulator) -> None:
    rows = []
    for offset in (0, 100, 200):
        answer = post(sim, {"limit": 100, "offset": offset}).json()
        assert answer["code"] == 0
        assert answer["msg"] == "success"
        assert answer["total"] == 250
        rows.extend(answer["data"])

    assert rows == USERS


def test_last_page_is_short_and_a_page_past_the_end_is_empty(sim: Simulator) -> None:
    assert len(post(sim, {"limit": 100, "offset": 200}).json()["data"]) == 50

    past = post(sim, {"limit": 100, "offset": 250}).json()

    assert past["data"] == []
    assert past["total"] == 250


def test_limit_defaults_to_ten_and_offset_to_zero(sim: Simulator) -> None:
    answer = post(sim).json()

    assert answer["data"] == USERS[:10]


def test_rows_carry_the_raw_fields_of_each_user(sim: Simulator) -> None:
    row = post(sim, {"limit": 1}).json()["data"][0]

    assert set(row) == {
        "userId",
        "quota",
        "used",
        "createTime",
        "effectiveTime",
        "expirationTime",
    }


def test_user_ids_filter_keeps_listing_order_and_totals_the_matches(
    sim: Simulator,
) -> None:
    wanted = [USERS[40]["userId"], USERS[3]["userId"], "9999999999999999999"]

    answer = post(sim, {"userIds": wanted, "limit": 100}).json()

    assert ids(answer["data"]) == [USERS[3]["userId"], USERS[40]["userId"]]
    assert answer["total"] == 2


def test_a_user_id_asked_for_twice_is_listed_once(sim: Simulator) -> None:
    wanted = [USERS[8]["userId"], USERS[8]["userId"]]

    answer = post(sim, {"userIds": wanted}).json()

    assert ids(answer["data"]) == wanted[:1]
    assert answer["total"] == 1


def test_user_ids_filter_pages_over_the_filtered_users(sim: Simulator) -> None:
    wanted = ids(USERS[:5])

    answer = post(sim, {"userIds": wanted, "limit": 2, "offset": 2}).json()

    assert ids(answer["data"]) == wanted[2:4]
    assert answer["total"] == 5


def test_fifty_user_ids_are_accepted_and_fifty_one_refused(sim: Simulator) -> None:
    accepted = post(sim, {"userIds": ids(USERS[:50]), "limit": 100})
    refused = post(sim, {"userIds": ids(USERS[:51]), "limit": 100})

    assert accepted.status_code == 200
    assert len(accepted.json()["data"]) == 50
    assert refused.status_code == 400
    assert refused.json()["code"] == 13000102


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "10"},
        {"limit": 10.5},
        {"limit": True},
        {"offset": -1},
        {"offset": "0"},
        {"userIds": "1505084218764547200"},
        {"userIds": [1505084218764547200]},
        {"userIds": []},
        [],
    ],
)
def test_invalid_parameters_are_refused_with_400(sim: Simulator, body: Any) -> None:
    response = post(sim, body)

    assert response.status_code == 400
    assert response.json()["code"] == 13000102
    assert response.json()["msg"].startswith("parameter validation failed")


def test_a_body_that_is_not_json_is_refused_with_400(sim: Simulator) -> None:
    response = post(sim, data=b"limit=10")

    assert response.status_code == 400
    assert response.json()["code"] == 13000102


def test_max_page_size_sets_the_largest_limit() -> None:
    with Simulator(USERS, max_page_size=200) as simulator:
        assert len(post(simulator, {"limit": 200}).json()["data"]) == 200
        assert post(simulator, {"limit": 201}).status_code == 400


@pytest.mark.parametrize("missing", ["X-User-Id", "X-Date"])
def test_a_missing_mandatory_header_is_refused_with_400(
    sim: Simulator, missing: str
) -> None:
    response = requests.post(
        sim.url + API_PATH,
        json={},
        headers={name: "x" for name in ("X-User-Id", "X-Date") if name != missing},
        timeout=5,
    )

    assert response.status_code == 400
    assert missing in response.json()["msg"]


def test_a_missing_host_header_is_refused_with_400(sim: Simulator) -> None:
    port = int(sim.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.putrequest("POST", API_PATH, skip_host=True)
    connection.putheader("X-User-Id", "1")
    connection.putheader("X-Date", "20251112T080000Z")
    connection.putheader("Content-Length", "0")
    connection.endheaders()

    response = connection.getresponse()

    assert response.status == 400
    assert "Host" in json.loads(response.read())["msg"]
    connection.close()


def test_trace_id_is_echoed_only_when_sent(sim: Simulator) -> None:
    trace_id = "a" * 58

    assert post(sim, headers={"X-Traceid": trace_id}).headers["X-Traceid"] == trace_id
    assert "X-Traceid" not in post(sim).headers


def test_unknown_path_gives_404_json_and_other_methods_405(sim: Simulator) -> None:
    missing = requests.post(sim.url + "/koodrive/ose/v1/nothing", json={}, timeout=5)
    with requests.Session() as session:
        wrong_methods = [
            session.request(method, sim.url + API_PATH, timeout=5)
            for method in ("GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "GET")
        ]

    assert missing.status_code == 404
    assert "code" in missing.json()
    assert {response.status_code for response in wrong_methods} == {405}
    assert {response.headers["Allow"] for response in wrong_methods} == {"POST"}


def test_requests_are_counted_and_recorded_even_when_refused(sim: Simulator) -> None:
    post(sim, {"limit": 5}, headers={"X-Traceid": "trace-1"})
    post(sim, {"limit": 0})

    recorded = sim.requests

    assert sim.request_count == 2
    assert [entry["status"] for entry in recorded] == [200, 400]
    assert recorded[0]["path"] == API_PATH
    assert recorded[0]["body"] == {"limit": 5}
    assert recorded[0]["headers"]["x-traceid"] == "trace-1"
    assert recorded[0]["headers"]["X-User-Id"] == "1505084218764547200"

    sim.reset_stats()

    assert sim.request_count == 0
    assert sim.requests == []


def test_users_can_be_replaced_while_running(sim: Simulator) -> None:
    sim.set_users(USERS[:3])

    answer = post(sim, {"limit": 100}).json()

    assert answer["data"] == USERS[:3]
    assert answer["total"] == 3


def test_odd_values_are_served_exactly_as_given() -> None:
    odd = [
        {"userId": 42, "quota": 12, "used": "abc", "createTime": None},
        {"userId": "2", "quota": "1e3", "used": -1, "expirationTime": "1772006999088"},
    ]
    with Simulator(odd) as simulator:
        assert post(simulator, {"limit": 10}).json()["data"] == odd
        filtered = post(simulator, {"userIds": ["42"]}).json()["data"]

    assert filtered == odd[:1]


# Authentication by token.


@pytest.mark.parametrize("value", [f"Bearer {TOKEN}", f"Bearer+{TOKEN}", TOKEN])
def test_each_token_form_is_accepted(value: str) -> None:
    with Simulator(USERS, token=TOKEN) as simulator:
        response = post(simulator, headers={"Authorization": value})

    assert response.status_code == 200


@pytest.mark.parametrize("value", [None, "Bearer wrong", f"Bearer  {TOKEN}", "Basic x"])
def test_a_wrong_or_missing_token_gives_401(value: str | None) -> None:
    headers = {} if value is None else {"Authorization": value}
    with Simulator(USERS, token=TOKEN) as simulator:
        response = post(simulator, headers=headers)

    assert response.status_code == 401
    assert response.json()["code"] == "APIGW.0301"
    assert TOKEN not in response.text


def test_a_new_token_replaces_the_old_one() -> None:
    with Simulator(USERS, token=TOKEN) as simulator:
        simulator.set_token("fresh-token")
        old = post(simulator, headers={"Authorization": f"Bearer {TOKEN}"})
        new = post(simulator, headers={"Authorization": "Bearer fresh-token"})

    assert old.status_code == 401
    assert new.status_code == 200


def test_without_credentials_no_authorization_is_needed(sim: Simulator) -> None:
    assert post(sim, headers={"Authorization": "anything"}).status_code == 200


# Authentication by app signature.


def signed_request(
    simulator: Simulator,
    body: dict[str, Any],
    *,
    secret: str = APP_SECRET,
    app_id: str = APP_ID,
    moment: datetime = NOW,
    signed: tuple[str, ...] = signing.SIGNED_HEADERS,
) -> tuple[bytes, dict[str, str]]:
    """A body and headers signed with koodrive_exporter.signing."""
    data = json.dumps(body).encode()
    headers = {
        "Host": simulator.url.removeprefix("http://"),
        "X-Date": signing.format_x_date(moment),
        "X-User-Id": "1505084218764547200",
    }
    canonical = signing.canonical_request(
        "POST", API_PATH, [], headers, data, signed=signed
    )
    headers["Authorization"] = signing.authorization_header(
        app_id, secret, canonical, signed
    )
    return data, headers


@pytest.fixture
def app_sim() -> Iterator[Simulator]:
    simulator = Simulator(
        USERS, app_id=APP_ID, app_secret=APP_SECRET, clock=NOW.timestamp
    )
    with simulator:
        yield simulator


def test_a_correctly_signed_request_passes(app_sim: Simulator) -> None:
    data, headers = signed_request(app_sim, {"limit": 3})

    response = post(app_sim, data=data, headers=headers)

    assert response.status_code == 200
    assert response.json()["data"] == USERS[:3]


def test_a_signature_made_with_another_secret_fails(app_sim: Simulator) -> None:
    data, headers = signed_request(app_sim, {"limit": 3}, secret="not-the-secret")

    response = post(app_sim, data=data, headers=headers)

    assert response.status_code == 401
    assert "signature" in response.json()["msg"]
    assert APP_SECRET not in response.text


def test_an_unknown_app_id_fails(app_sim: Simulator) -> None:
    data, headers = signed_request(app_sim, {"limit": 3}, app_id="someone-else")

    assert post(app_sim, data=data, headers=headers).status_code == 401


def test_a_body_changed_after_signing_fails(app_sim: Simulator) -> None:
    _, headers = signed_request(app_sim, {"limit": 3})

    response = post(app_sim, data=json.dumps({"limit": 4}).encode(), headers=headers)

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("shift", "passes"),
    [
        (timedelta(minutes=-14, seconds=-59), True),
        (timedelta(minutes=-15, seconds=-1), False),
        (timedelta(seconds=59), True),
        (timedelta(seconds=61), False),
    ],
)
def test_x_date_must_be_recent_and_not_ahead(
    app_sim: Simulator, shift: timedelta, passes: bool
) -> None:
    data, headers = signed_request(app_sim, {"limit": 3}, moment=NOW + shift)

    status = post(app_sim, data=data, headers=headers).status_code

    assert status == (200 if passes else 401)


def test_x_user_id_must_be_among_the_signed_headers(app_sim: Simulator) -> None:
    data, headers = signed_request(app_sim, {"limit": 3}, signed=("host", "x-date"))

    response = post(app_sim, data=data, headers=headers)

    assert response.status_code == 401
    assert "x-user-id" in response.json()["msg"]


def test_a_missing_authorization_header_fails(app_sim: Simulator) -> None:
    data, headers = signed_request(app_sim, {"limit": 3})
    del headers["Authorization"]

    assert post(app_sim, data=data, headers=headers).status_code == 401


def test_with_token_and_app_credentials_either_passes() -> None:
    simulator = Simulator(
        USERS, token=TOKEN, app_id=APP_ID, app_secret=APP_SECRET, clock=NOW.timestamp
    )
    with simulator:
        data, headers = signed_request(simulator, {"limit": 3})
        by_signature = post(simulator, data=data, headers=headers)
        by_token = post(simulator, headers={"Authorization": f"Bearer+{TOKEN}"})

    assert by_signature.status_code == 200
    assert by_token.status_code == 200


def test_app_credentials_must_come_in_pairs() -> None:
    with pytest.raises(ValueError, match="both"):
        Simulator(USERS, app_id=APP_ID)


# Faults.


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (Fault("status"), 500, 13000201),
        (Fault("status", status=400, code=13000301), 400, 13000301),
        (Fault("code"), 200, 13000201),
        (Fault("code", code="13000412"), 200, "13000412"),
        (Fault("unauthorized"), 401, "APIGW.0301"),
    ],
)
def test_error_faults_answer_with_their_status_and_code(
    sim: Simulator, fault: Fault, status: int, code: int | str
) -> None:
    sim.faults.push(fault)

    response = post(sim)

    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["msg"]


@pytest.mark.parametrize(
    ("kind", "status"), [("rate_limited", 429), ("unavailable", 503)]
)
def test_back_off_faults_send_retry_after_when_given(
    sim: Simulator, kind: str, status: int
) -> None:
    sim.faults.push(Fault(kind, retry_after=2))
    sim.faults.push(Fault(kind, retry_after=0.25))
    sim.faults.push(Fault(kind))

    answers = [post(sim) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [status] * 3
    assert answers[0].headers["Retry-After"] == "2"
    assert answers[1].headers["Retry-After"] == "0.25"
    assert "Retry-After" not in answers[2].headers


def test_slow_fault_delays_a_normal_answer(sim: Simulator) -> None:
    sim.faults.push(Fault("slow", delay=0.3))

    started = time.monotonic()
    response = post(sim, {"limit": 2})
    elapsed = time.monotonic() - started

    assert elapsed >= 0.3
    assert response.json()["data"] == USERS[:2]


def test_hang_fault_outlasts_the_client_timeout(sim: Simulator) -> None:
    sim.faults.push(Fault("hang", delay=5))

    with pytest.raises(requests.exceptions.ReadTimeout):
        post(sim, timeout=0.3)


def test_stopping_ends_a_hanging_request_promptly() -> None:
    simulator = Simulator(USERS).start()
    simulator.faults.push(Fault("hang"))
    outcome: list[BaseException | requests.Response] = []

    def call() -> None:
        try:
            outcome.append(post(simulator, timeout=20))
        except requests.RequestException as error:
            outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while simulator.request_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)

    started = time.monotonic()
    simulator.stop()
    caller.join(timeout=5)

    assert time.monotonic() - started < 2
    assert not caller.is_alive()
    assert isinstance(outcome[0], requests.ConnectionError)


def test_truncated_fault_sends_half_the_body_then_closes(sim: Simulator) -> None:
    full_length = len(post(sim, {"limit": 20}).content)
    sim.faults.push(Fault("truncated"))
    port = int(sim.url.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    body = json.dumps({"limit": 20})
    headers = {"X-User-Id": "1", "X-Date": "20251112T080000Z"}
    connection.request("POST", API_PATH, body=body, headers=headers)

    response = connection.getresponse()
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()

    assert response.status == 200
    assert int(response.headers["Content-Length"]) == full_length
    assert len(cut.value.partial) == full_length // 2
    connection.close()


def test_truncated_fault_breaks_a_requests_client(sim: Simulator) -> None:
    sim.faults.push(Fault("truncated"))

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post(sim, {"limit": 20})


def test_malformed_fault_sends_html(sim: Simulator) -> None:
    sim.faults.push(Fault("malformed"))

    response = post(sim)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()


def test_wrong_shape_fault_sends_data_that_is_not_a_list(sim: Simulator) -> None:
    sim.faults.push(Fault("wrong_shape"))

    answer = post(sim).json()

    assert answer["code"] == 0
    assert answer["data"] == {"x": 1}


def test_faults_apply_in_order_each_for_its_number_of_times(sim: Simulator) -> None:
    sim.faults.push(Fault("status", status=502, times=2))
    sim.faults.push(Fault("unauthorized"))

    statuses = [post(sim).status_code for _ in range(4)]

    assert statuses == [502, 502, 401, 200]
    assert len(sim.faults) == 0


def test_clearing_faults_drops_them_all(sim: Simulator) -> None:
    sim.faults.push(Fault("status", times=3))
    sim.faults.clear()

    assert post(sim).status_code == 200


def test_fault_queue_hands_out_each_fault_times_times() -> None:
    faults = FaultQueue()
    first, second = Fault("slow", times=2), Fault("hang")
    faults.push(first)
    faults.push(second)

    taken = [faults.pop() for _ in range(4)]

    assert taken == [first, first, second, None]
    assert first.times == 2


@pytest.mark.parametrize(
    "raw",
    [
        {"kind": "explode"},
        {"kind": "status", "status": "500"},
        {"kind": "slow", "delay": -1},
        {"kind": "status", "times": 0},
        {"kind": "status", "color": "red"},
        {"status": 500},
        ["status"],
    ],
)
def test_invalid_faults_are_refused(raw: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        Fault.from_dict(raw)


def test_control_endpoints_queue_list_and_clear_faults(sim: Simulator) -> None:
    faults_url = sim.url + "/_simulator/faults"

    one = requests.post(faults_url, json={"kind": "status", "status": 500}, timeout=5)
    many = requests.post(
        faults_url,
        json=[{"kind": "rate_limited", "retry_after": 1}, {"kind": "slow"}],
        timeout=5,
    )
    listed = requests.get(faults_url, timeout=5).json()["faults"]
    refused = requests.post(faults_url, json={"kind": "explode"}, timeout=5)

    assert one.json() == {"pending": 1}
    assert many.json() == {"pending": 3}
    assert [fault["kind"] for fault in listed] == ["status", "rate_limited", "slow"]
    assert refused.status_code == 400
    assert post(sim).status_code == 500

    cleared = requests.delete(faults_url, timeout=5)

    assert cleared.json() == {"pending": 0}
    assert post(sim).status_code == 200


def test_stats_endpoint_reports_requests_and_users(sim: Simulator) -> None:
    post(sim)
    post(sim, {"limit": 0})

    stats = requests.get(sim.url + "/_simulator/stats", timeout=5).json()

    assert stats == {"requests": 2, "users": 250}


def test_home_page_says_what_it_is(sim: Simulator) -> None:
    response = requests.get(sim.url + "/", timeout=5)

    assert response.status_code == 200
    assert "KooDrive API simulator" in response.text
    assert API_PATH in response.text


# Behaviour flags.


def test_ignore_offset_serves_every_page_from_the_start(sim: Simulator) -> None:
    sim.ignore_offset = True

    answer = post(sim, {"limit": 5, "offset": 100}).json()

    assert answer["data"] == USERS[:5]


def test_omit_total_leaves_total_out(sim: Simulator) -> None:
    sim.omit_total = True

    assert "total" not in post(sim).json()


def test_page_cap_serves_short_pages(sim: Simulator) -> None:
    sim.page_cap = 7

    answer = post(sim, {"limit": 100, "offset": 10}).json()

    assert answer["data"] == USERS[10:17]
    assert answer["total"] == 250


def test_total_override_lies_about_the_total(sim: Simulator) -> None:
    sim.total_override = 5

    assert post(sim, {"limit": 100}).json()["total"] == 5


def test_code_as_string_sends_zero_as_text(sim: Simulator) -> None:
    sim.code_as_string = True

    assert post(sim).json()["code"] == "0"


def test_latency_delays_requests_but_lets_them_overlap() -> None:
    with Simulator(USERS, latency_seconds=0.3) as simulator:
        started = time.monotonic()
        threads = [threading.Thread(target=post, args=(simulator,)) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started

    assert simulator.request_count == 5
    assert 0.3 <= elapsed < 1.2


# Listening.


def test_a_non_loopback_address_needs_explicit_permission() -> None:
    lan_address = "192.0.2.10"
    with pytest.raises(ValueError, match="loopback"):
        Simulator(USERS, host=lan_address)

    allowed = Simulator(USERS, host=lan_address, allow_non_loopback=True)

    assert allowed.host == lan_address


def test_url_uses_the_bound_port() -> None:
    simulator = Simulator(USERS)
    with pytest.raises(RuntimeError):
        _ = simulator.url

    with simulator:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", simulator.url)
        assert not simulator.url.endswith(":0")


def test_ipv6_loopback_url_is_bracketed() -> None:
    try:
        simulator = Simulator(USERS, host="::1").start()
    except OSError:
        pytest.skip("IPv6 loopback is not available here")
    try:
        assert simulator.url.startswith("http://[::1]:")
        assert post(simulator, {"limit": 1}).status_code == 200
    finally:
        simulator.stop()


def test_a_hundred_thousand_users_are_paged_in_about_a_millisecond() -> None:
    many = generate_users(100_000, seed=1, now=NOW)
    with Simulator(many) as simulator, requests.Session() as session:
        headers = {"X-User-Id": "1", "X-Date": "20251112T080000Z"}
        timings = []
        for offset in range(99_000, 100_000, 100):
            started = time.perf_counter()
            answer = session.post(
                simulator.url + API_PATH,
                json={"limit": 100, "offset": offset},
                headers=headers,
                timeout=5,
            ).json()
            timings.append(time.perf_counter() - started)
            assert answer["data"] == many[offset : offset + 100]

    # A generous bound: a round trip takes about 1 ms, the bound allows for CI.
    assert statistics.median(timings) < 0.02


# Generated and loaded users.


def test_generation_is_deterministic_for_a_seed() -> None:
    assert generate_users(500, seed=3, now=NOW) == generate_users(500, seed=3, now=NOW)
    assert generate_users(500, seed=3, now=NOW) != generate_users(500, seed=4, now=NOW)
    assert generate_users(50, seed=3) == generate_users(50, seed=3)


def test_generated_fields_have_the_wire_types_and_formats() -> None:
    users = generate_users(2_000, seed=5, now=NOW)

    assert len({user["userId"] for user in users}) == 2_000
    for user in users:
        assert re.fullmatch(r"[1-9]\d{18}", user["userId"])
        assert user["quota"] in UNLIMITED_QUOTAS or user["quota"].isdigit()
        assert isinstance(user["used"], int)
        assert user["used"] >= 0
        times = [user["createTime"], user["effectiveTime"], user["expirationTime"]]
        assert all(ISO_MILLIS.match(value) for value in times)
        assert times == sorted(times)
        assert len(set(times)) == 3


def profile_counts(users: list[dict[str, Any]], now: datetime) -> dict[str, int]:
    """How many users fall in each situation an exporter must report."""
    soon = now + timedelta(days=14)
    counts = dict.fromkeys(
        ["unlimited", "full", "over_90", "expiring", "expired", "well_below"], 0
    )
    for user in users:
        expiration = datetime.strptime(user["expirationTime"], "%Y-%m-%dT%H:%M:%S.%fZ")
        expiration = expiration.replace(tzinfo=timezone.utc)
        if user["quota"] in UNLIMITED_QUOTAS:
            counts["unlimited"] += 1
            continue
        ratio = user["used"] / int(user["quota"])
        if ratio == 1:
            counts["full"] += 1
        elif ratio > 0.9:
            counts["over_90"] += 1
        elif ratio < 0.8:
            counts["well_below"] += 1
        if expiration < now:
            counts["expired"] += 1
        elif expiration < soon:
            counts["expiring"] += 1
    return counts


def test_generated_users_spread_over_every_situation() -> None:
    counts = profile_counts(generate_users(10_000, seed=9, now=NOW), NOW)

    assert counts["unlimited"] == 700
    assert counts["full"] == 300
    assert counts["over_90"] == 800
    assert counts["expiring"] == 500
    assert counts["expired"] == 300
    assert counts["well_below"] == 10_000 - 700 - 300 - 800


def test_unlimited_quotas_use_every_form() -> None:
    users = generate_users(1_000, seed=2, now=NOW)

    forms = {user["quota"] for user in users if user["quota"] in UNLIMITED_QUOTAS}

    assert forms == set(UNLIMITED_QUOTAS)


def test_a_small_tenant_still_has_every_situation() -> None:
    counts = profile_counts(generate_users(20, seed=1, now=NOW), NOW)

    assert all(count >= 1 for count in counts.values())


def test_a_hundred_thousand_users_generate_in_under_two_seconds() -> None:
    started = time.perf_counter()
    users = generate_users(100_000, seed=11)
    elapsed = time.perf_counter() - started

    assert len(users) == 100_000
    assert elapsed < 2


def test_users_load_from_a_json_list_and_a_yaml_mapping(tmp_path: Path) -> None:
    json_file = tmp_path / "users.json"
    json_file.write_text(json.dumps(USERS[:3]))
    yaml_file = tmp_path / "users.yaml"
    yaml_file.write_text(yaml.safe_dump({"users": USERS[:3]}))
    bare_times = tmp_path / "times.yml"
    bare_times.write_text("- userId: '1'\n  createTime: 2025-11-12T08:37:14.613Z\n")

    assert load_users(json_file) == USERS[:3]
    assert load_users(str(yaml_file)) == USERS[:3]
    assert load_users(bare_times)[0]["createTime"] == "2025-11-12T08:37:14.613Z"


@pytest.mark.parametrize("content", ['{"people": []}', "[1, 2]", '"users"'])
def test_users_files_of_another_shape_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "users.json"
    path.write_text(content)

    with pytest.raises(ValueError, match=r"users\.json"):
        load_users(path)


def test_units_scale_quota_and_used_but_not_unlimited_markers() -> None:
    users = [
        {"userId": "1", "quota": "107374182400", "used": 1536},
        {"userId": "2", "quota": "-1", "used": 1000},
        {"userId": "3", "quota": "", "used": "n/a"},
    ]

    scaled = scale_units(users, 2**30, 2**10)

    assert scaled[0]["quota"] == "100"
    assert scaled[0]["used"] == 1.5
    assert scaled[1] == {"userId": "2", "quota": "-1", "used": 1000 / 1024}
    assert scaled[2] == users[2]
    assert users[0]["quota"] == "107374182400"


# Command line.


def test_listen_accepts_ipv4_ipv6_and_names() -> None:
    assert parse_listen("127.0.0.1:8001") == ("127.0.0.1", 8001)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("localhost:9") == ("localhost", 9)


def test_cli_refuses_half_app_credentials() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--app-id", APP_ID])

    assert exit_info.value.code == 2


def test_cli_refuses_a_missing_users_file(tmp_path: Path) -> None:
    assert main(["--users-file", str(tmp_path / "absent.json")]) == 2


def start_cli(
    args: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[str], str, list[str], threading.Thread]:
    """Run the simulator command; returns it, its URL, its log lines and reader."""
    package_root = str(Path(koodrive_exporter.__file__).resolve().parents[1])
    env = {**os.environ, **env}
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (package_root, env.get("PYTHONPATH")) if part
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "koodrive_exporter.simulator", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr or []))
    reader.start()

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        for line in list(lines):
            if found := re.search(r"simulator started url=(\S+)", line):
                return process, found.group(1), lines, reader
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"the simulator did not log its start line: {lines}")


def test_cli_serves_until_sigterm_and_never_logs_the_token() -> None:
    args = ["--listen", "127.0.0.1:0", "--users", "30", "--token-env", "SIM_TOKEN"]
    args += ["--page-cap", "4", "--quota-unit", "KiB"]
    process, url, lines, reader = start_cli(args, {"SIM_TOKEN": TOKEN})
    try:
        response = requests.post(
            url + API_PATH,
            json={"limit": 10},
            headers={
                "Authorization": f"Bearer+{TOKEN}",
                "X-User-Id": "1",
                "X-Date": "20251112T080000Z",
            },
            timeout=5,
        )
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=5)
    log_text = "".join(lines)

    assert response.status_code == 200
    assert response.json()["total"] == 30
    assert len(response.json()["data"]) == 4
    assert response.json()["data"] == scale_units(generate_users(30), 1024)[:4]
    assert exit_code == 0
    assert "users=30 auth=token " in log_text
    assert "simulator stopped requests=1" in log_text
    assert TOKEN not in log_text


def test_cli_serves_departments_groups_and_capacity_as_flagged() -> None:
    args = ["--listen", "127.0.0.1:0", "--users", "30", "--quota-unit", "GiB"]
    args += ["--departments", "3", "--groups", "2", "--tenant-capacity-gb", "5000"]
    process, url, lines, reader = start_cli(args, {})
    headers = {"X-User-Id": "1", "X-Date": "20251112T080000Z"}
    try:
        answers = [
            requests.get(url + path, headers=headers, timeout=5).json()
            for path in (DEPARTMENTS_PATH, GROUPS_PATH, OVERVIEW_PATH)
        ]
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(timeout=5)
    departments, groups, overview = answers
    in_bytes = Simulator(generate_users(30), departments=3, groups=2)

    assert exit_code == 0
    assert departments["departments"] == in_bytes.departments()
    assert groups["groups"] == in_bytes.groups()
    assert overview["data"]["totalCapacity"] == 5000.0 * 10**6
    assert "departments=3 groups=2 tenant_capacity_gb=5000.0" in "".join(lines)
