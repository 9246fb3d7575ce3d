"""The simulator's overview, department and group APIs agree with its users.

Proven over real HTTP on loopback, like the user listing in test_simulator.py.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from collections.abc import Iterator
from fractions import Fraction
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from helpers import SIM_APP_ID, SIM_APP_SECRET, SIM_NOW, SIM_TOKEN, sim_users
from koodrive_exporter import signing
from koodrive_exporter.simulator import (
    API_PATH,
    DEPARTMENTS_PATH,
    GROUPS_PATH,
    OVERVIEW_PATH,
    Fault,
    Simulator,
    generate_users,
    scale_units,
)
from koodrive_exporter.simulator.cli import build_parser
from koodrive_exporter.simulator.spaces import size_in_bytes

NOW = SIM_NOW
USERS = list(sim_users())
TOKEN = SIM_TOKEN
APP_ID = SIM_APP_ID
APP_SECRET = SIM_APP_SECRET
MANDATORY = {"X-User-Id": "1505084218764547200", "X-Date": "20251112T080000Z"}

DEPARTMENT_FIELDS = ["id", "name", "status", "capacity", "spaceUsed", "userNum"]
GROUP_FIELDS = ["id", "name", "capacity", "spaceUsed", "memberNum"]
OVERVIEW_FIELDS = ["totalAllocation", "totalCapacity", "totalUsed", "quota"]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(USERS) as simulator:
        yield simulator


def get(
    simulator: Simulator,
    path: str,
    params: dict[str, Any] | list[tuple[str, Any]] | None = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 5,
) -> requests.Response:
    """GET an API path with the mandatory headers, plus any given."""
    sent = dict(MANDATORY)
    sent.update(headers or {})
    return requests.get(
        simulator.url + path, params=params, headers=sent, timeout=timeout
    )


def department_of(user: dict[str, Any], count: int) -> int:
    """The department position the simulator promises: CRC-32 of the user ID."""
    return zlib.crc32(user["userId"].encode()) % count


def positive(value: Any) -> int:
    """A generated quota or usage in bytes, zero when it holds no space."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return max(number, 0)


# The tenant overview.


def test_overview_sends_the_tenant_totals_as_floats(sim: Simulator) -> None:
    answer = get(sim, OVERVIEW_PATH).json()

    assert answer["code"] == 0
    assert answer["msg"] == "success"
    assert list(answer["data"]) == OVERVIEW_FIELDS
    assert all(isinstance(value, float) for value in answer["data"].values())
    assert answer["data"] == sim.overview()
    # The quota is in GB, the totals in KB.
    assert answer["data"]["quota"] * 10**6 == answer["data"]["totalCapacity"]


def test_tenant_capacity_defaults_to_a_quarter_more_than_allocated_in_thousands(
    sim: Simulator,
) -> None:
    overview = sim.overview()
    allocation_gb = Fraction(overview["totalAllocation"]) / 10**6
    capacity_gb = overview["quota"]

    expected = math.ceil(allocation_gb * 5 / 4 / 1000) * 1000

    assert capacity_gb == expected
    assert capacity_gb % 1000 == 0
    assert overview["totalCapacity"] == capacity_gb * 10**6
    assert overview["totalCapacity"] >= 1.25 * overview["totalAllocation"]


def test_a_configured_tenant_capacity_is_sent_as_capacity_and_quota() -> None:
    with Simulator(USERS, tenant_capacity_gb=123_456.5) as simulator:
        data = get(simulator, OVERVIEW_PATH).json()["data"]

    assert data["totalCapacity"] == 123_456.5 * 10**6
    assert data["quota"] == 123_456.5


@pytest.mark.parametrize("capacity", [0, -1, math.inf, math.nan])
def test_a_tenant_capacity_that_is_not_a_positive_number_is_refused(
    capacity: float,
) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Simulator(USERS, tenant_capacity_gb=capacity)


# The department listing.


def test_departments_list_every_department_with_the_documented_fields(
    sim: Simulator,
) -> None:
    answer = get(sim, DEPARTMENTS_PATH).json()

    assert answer["code"] == 0
    assert answer["msg"] == "success"
    assert answer["total"] == 8
    assert [row["id"] for row in answer["departments"]] == [
        f"dept-00{number}" for number in range(1, 9)
    ]
    for row in answer["departments"]:
        assert list(row) == DEPARTMENT_FIELDS
        assert row["status"] == 1
        assert isinstance(row["capacity"], float)
        assert isinstance(row["spaceUsed"], float)
        assert isinstance(row["userNum"], int)
    assert answer["departments"] == sim.departments()


def test_department_names_include_quotes_backslashes_and_non_ascii(
    sim: Simulator,
) -> None:
    response = get(sim, DEPARTMENTS_PATH)

    names = [row["name"] for row in response.json()["departments"]]
    awkward = [name for name in names if '"' in name and "\\" in name]

    assert 'R&D "Labs" \\ Zürich' in names
    assert len(awkward) >= 2
    assert all(not name.isascii() for name in awkward)
    assert len(set(names)) == len(names)
    assert response.headers["Content-Type"].lower().endswith("charset=utf-8")


def test_department_pages_cover_every_department_once(sim: Simulator) -> None:
    rows = []
    totals = set()
    for offset in (0, 3, 6):
        answer = get(sim, DEPARTMENTS_PATH, {"offset": offset, "limit": 3}).json()
        rows.extend(answer["departments"])
        totals.add(answer["total"])

    past = get(sim, DEPARTMENTS_PATH, {"offset": 8, "limit": 3}).json()

    assert rows == sim.departments()
    assert totals == {8}
    assert past["departments"] == []
    assert past["total"] == 8


def test_limit_defaults_to_ten() -> None:
    with Simulator(USERS, departments=25) as simulator:
        answer = get(simulator, DEPARTMENTS_PATH).json()

    assert answer["departments"] == simulator.departments()[:10]
    assert answer["total"] == 25


def test_key_word_filters_names_and_totals_the_matches(sim: Simulator) -> None:
    labs = get(sim, DEPARTMENTS_PATH, {"keyWord": "Labs"}).json()
    accented = get(sim, DEPARTMENTS_PATH, {"keyWord": 'Conformité" \\'}).json()
    nothing = get(sim, DEPARTMENTS_PATH, {"keyWord": "Nowhere"}).json()
    empty = get(sim, DEPARTMENTS_PATH, {"keyWord": ""}).json()

    assert [row["name"] for row in labs["departments"]] == ['R&D "Labs" \\ Zürich']
    assert labs["total"] == 1
    assert [row["id"] for row in accented["departments"]] == ["dept-008"]
    assert nothing == {"code": 0, "msg": "success", "total": 0, "departments": []}
    assert empty["total"] == 8


def test_key_word_pages_over_the_matching_departments() -> None:
    with Simulator(USERS, departments=30) as simulator:
        wanted = [row for row in simulator.departments() if "Sales" in row["name"]]
        answer = get(
            simulator, DEPARTMENTS_PATH, {"keyWord": "Sales", "limit": 2, "offset": 1}
        ).json()

    assert len(wanted) >= 3
    assert answer["departments"] == wanted[1:3]
    assert answer["total"] == len(wanted)


def test_more_departments_than_names_get_numbered_names() -> None:
    departments = Simulator(USERS, departments=30).departments()

    names = [row["name"] for row in departments]

    assert len(set(names)) == 30
    assert "Engineering 2" in names
    assert departments[-1]["id"] == "dept-030"


def test_at_least_one_department_is_needed() -> None:
    with pytest.raises(ValueError, match="department"):
        Simulator(USERS, departments=0)


# The group listing.


def test_groups_list_every_team_space_with_the_documented_fields(
    sim: Simulator,
) -> None:
    answer = get(sim, GROUPS_PATH, {"limit": 100}).json()

    assert answer["code"] == 0
    assert answer["msg"] == "success"
    assert answer["total"] == 5
    assert [row["id"] for row in answer["groups"]] == [
        f"group-00{number}" for number in range(1, 6)
    ]
    for row in answer["groups"]:
        assert list(row) == GROUP_FIELDS
        assert isinstance(row["capacity"], float)
        assert isinstance(row["spaceUsed"], float)
        assert row["memberNum"] >= 1
    assert answer["groups"] == sim.groups()


def test_groups_are_mostly_below_capacity_with_one_over_90_and_one_full(
    sim: Simulator,
) -> None:
    ratios = sorted(row["spaceUsed"] / (row["capacity"] * 1e6) for row in sim.groups())

    assert ratios[-1] == 1
    assert 0.9 < ratios[-2] < 1
    assert all(0 < ratio < 0.9 for ratio in ratios[:-2])


def test_group_pages_cover_every_group_once(sim: Simulator) -> None:
    pages = [
        get(sim, GROUPS_PATH, {"offset": offset, "limit": 2}).json()
        for offset in (0, 2, 4, 6)
    ]

    rows = [row for page in pages for row in page["groups"]]

    assert rows == sim.groups()
    assert [page["total"] for page in pages] == [5, 5, 5, 5]
    assert pages[-1]["groups"] == []


def test_groups_follow_the_seed_and_the_count() -> None:
    same = Simulator(USERS, seed=3).groups()
    many = Simulator(USERS, groups=20).groups()

    assert Simulator(USERS, seed=3).groups() == same
    assert Simulator(USERS, seed=4).groups() != same
    assert Simulator(USERS, groups=0).groups() == []
    assert len({row["id"] for row in many}) == 20
    assert len({row["name"] for row in many}) == 20


def test_groups_do_not_change_with_the_users(sim: Simulator) -> None:
    before = sim.groups()

    sim.set_users(USERS[:10])

    assert sim.groups() == before


# Parameters, methods and headers.


@pytest.mark.parametrize("path", [DEPARTMENTS_PATH, GROUPS_PATH])
@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"limit": "1.5"},
        {"limit": ""},
        {"limit": "+5"},
        {"offset": -1},
        {"offset": "x"},
        {"offset": "9" * 5000},
        [("limit", 5), ("limit", 6)],
    ],
)
def test_invalid_query_parameters_are_refused_with_400(
    sim: Simulator, path: str, params: Any
) -> None:
    response = get(sim, path, params)

    assert response.status_code == 400
    assert response.json()["code"] == 13000102
    assert response.json()["msg"].startswith("parameter validation failed")


def test_the_largest_limit_follows_max_page_size() -> None:
    with Simulator(USERS, departments=150, max_page_size=120) as simulator:
        largest = get(simulator, DEPARTMENTS_PATH, {"limit": 120})
        too_large = get(simulator, DEPARTMENTS_PATH, {"limit": 121})

    assert len(largest.json()["departments"]) == 120
    assert too_large.status_code == 400


def test_unknown_query_parameters_are_ignored(sim: Simulator) -> None:
    answer = get(sim, GROUPS_PATH, {"limit": 2, "sort": "name"}).json()

    assert answer["groups"] == sim.groups()[:2]


@pytest.mark.parametrize("path", [OVERVIEW_PATH, DEPARTMENTS_PATH, GROUPS_PATH])
def test_other_methods_get_405_and_are_counted(sim: Simulator, path: str) -> None:
    with requests.Session() as session:
        answers = [
            session.request(method, sim.url + path, headers=MANDATORY, timeout=5)
            for method in ("POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
        ]

    assert {answer.status_code for answer in answers} == {405}
    assert {answer.headers["Allow"] for answer in answers} == {"GET"}
    assert sim.request_count == 6


@pytest.mark.parametrize("path", [OVERVIEW_PATH, DEPARTMENTS_PATH, GROUPS_PATH])
@pytest.mark.parametrize("missing", ["X-User-Id", "X-Date"])
def test_a_missing_mandatory_header_is_refused(
    sim: Simulator, path: str, missing: str
) -> None:
    headers = {name: value for name, value in MANDATORY.items() if name != missing}

    response = requests.get(sim.url + path, headers=headers, timeout=5)

    assert response.status_code == 400
    assert missing in response.json()["msg"]


def test_requests_are_recorded_with_their_query(sim: Simulator) -> None:
    get(sim, OVERVIEW_PATH)
    get(sim, DEPARTMENTS_PATH, {"limit": 3, "keyWord": "Sales"})
    get(sim, GROUPS_PATH, {"limit": 0})

    recorded = sim.requests

    assert sim.request_count == 3
    assert [entry["path"] for entry in recorded] == [
        OVERVIEW_PATH,
        DEPARTMENTS_PATH,
        GROUPS_PATH,
    ]
    assert [entry["method"] for entry in recorded] == ["GET"] * 3
    assert [entry["status"] for entry in recorded] == [200, 200, 400]
    assert recorded[1]["query"] == "limit=3&keyWord=Sales"
    assert recorded[1]["body"] is None


def test_trace_id_is_echoed(sim: Simulator) -> None:
    trace_id = "b" * 58

    response = get(sim, GROUPS_PATH, headers={"X-Traceid": trace_id})

    assert response.headers["X-Traceid"] == trace_id


# Consistency with the users.


def test_department_usage_adds_up_to_the_tenant_usage_exactly(sim: Simulator) -> None:
    departments = get(sim, DEPARTMENTS_PATH, {"limit": 100}).json()["departments"]
    overview = get(sim, OVERVIEW_PATH).json()["data"]

    assert sum(row["spaceUsed"] for row in departments) == overview["totalUsed"]
    assert sum(row["userNum"] for row in departments) == len(USERS)


def test_allocation_is_department_and_group_capacity_added_up(sim: Simulator) -> None:
    departments = get(sim, DEPARTMENTS_PATH, {"limit": 100}).json()["departments"]
    groups = get(sim, GROUPS_PATH, {"limit": 100}).json()["groups"]
    overview = get(sim, OVERVIEW_PATH).json()["data"]

    served = sum(row["capacity"] for row in departments) + sum(
        row["capacity"] for row in groups
    )
    from_users = sum(positive(user["quota"]) for user in USERS) / 1e9

    assert served * 10**6 == overview["totalAllocation"]
    assert overview["totalAllocation"] == pytest.approx(
        (from_users + sum(row["capacity"] for row in groups)) * 10**6, rel=1e-12
    )


def test_each_department_sums_its_members_by_user_id_checksum(
    sim: Simulator,
) -> None:
    members: list[list[dict[str, Any]]] = [[] for _ in range(8)]
    for user in USERS:
        members[department_of(user, 8)].append(user)

    departments = sim.departments()

    for row, people in zip(departments, members, strict=True):
        quota_bytes = sum(positive(user["quota"]) for user in people)
        used_bytes = sum(positive(user["used"]) for user in people)
        assert row["userNum"] == len(people)
        assert row["capacity"] == quota_bytes / 10**9
        assert row["spaceUsed"] == used_bytes / 10**3
    assert all(row["userNum"] > 0 for row in departments)


def test_removing_a_user_lowers_its_department_by_its_usage(sim: Simulator) -> None:
    leaving = next(user for user in USERS if positive(user["used"]) > 10**6)
    position = department_of(leaving, 8)
    before = get(sim, DEPARTMENTS_PATH).json()["departments"]
    overview_before = get(sim, OVERVIEW_PATH).json()["data"]

    sim.set_users([user for user in USERS if user is not leaving])
    after = get(sim, DEPARTMENTS_PATH).json()["departments"]
    overview_after = get(sim, OVERVIEW_PATH).json()["data"]

    drop = before[position]["spaceUsed"] - after[position]["spaceUsed"]
    assert drop == pytest.approx(leaving["used"] / 1e3, rel=1e-9)
    assert after[position]["userNum"] == before[position]["userNum"] - 1
    assert [row for index, row in enumerate(after) if index != position] == [
        row for index, row in enumerate(before) if index != position
    ]
    assert overview_before["totalUsed"] - overview_after["totalUsed"] == (
        pytest.approx(leaving["used"] / 1e3, rel=1e-9)
    )
    assert sum(row["spaceUsed"] for row in after) == overview_after["totalUsed"]
    assert overview_after["totalCapacity"] == overview_before["totalCapacity"]


def test_a_user_keeps_its_department_when_others_change() -> None:
    fewer = Simulator(USERS[:40]).departments()
    everyone = Simulator(USERS).departments()
    alone = Simulator([USERS[0]]).departments()

    position = department_of(USERS[0], 8)

    assert alone[position]["userNum"] == 1
    assert fewer[position]["userNum"] >= 1
    assert everyone[position]["userNum"] >= fewer[position]["userNum"]


def test_scaled_users_give_the_same_departments_with_their_units() -> None:
    scaled = scale_units(USERS, 2**30, 2**10)

    in_units = Simulator(scaled, quota_unit=2**30, used_unit=2**10)

    assert in_units.departments() == Simulator(USERS).departments()
    assert in_units.overview() == Simulator(USERS).overview()


def test_odd_values_hold_no_space_but_their_users_still_count() -> None:
    odd = [
        {"userId": "1", "quota": "", "used": "abc"},
        {"userId": "2", "quota": None, "used": -5},
        {"userId": "3", "quota": "-1", "used": True},
        {"userId": "4", "quota": "0", "used": None},
        {"userId": "5", "quota": "2e9", "used": "1500"},
        {"userId": 6, "quota": 1_000_000_000, "used": 0.5},
    ]

    simulator = Simulator(odd, departments=1, groups=0)
    (department,) = simulator.departments()

    assert department["userNum"] == 6
    assert department["capacity"] == 3.0
    assert department["spaceUsed"] == 1.5005
    assert simulator.overview() == {
        "totalAllocation": 3e6,
        "totalCapacity": 1e9,
        "totalUsed": 1.5005,
        "quota": 1000.0,
    }


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        ("1073741824", 1, 2**30),
        (12, 1, 12),
        ("1.5", 1024, 1536),
        (0.25, 4, 1),
        (" 7 ", 1, 7),
        ("1e3", 1, 1000),
        ("", 1, None),
        (None, 1, None),
        ("0", 1, None),
        ("-1", 1, None),
        (-3.5, 1, None),
        (True, 1, None),
        ("abc", 1, None),
        ("nan", 1, None),
        ("1e400", 1, None),
        (math.inf, 1, None),
        ([1], 1, None),
    ],
)
def test_sizes_are_read_from_numbers_and_numeric_text(
    value: Any, unit: int, expected: int | None
) -> None:
    assert size_in_bytes(value, unit) == expected


def test_aggregates_for_a_hundred_thousand_users_are_served_quickly() -> None:
    many = generate_users(100_000, seed=1, now=NOW)
    started = time.perf_counter()
    simulator = Simulator(many)
    built = time.perf_counter() - started

    with simulator, requests.Session() as session:
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            session.get(
                simulator.url + DEPARTMENTS_PATH, headers=MANDATORY, timeout=5
            ).raise_for_status()
            timings.append(time.perf_counter() - started)

    # Generous bounds for CI: building takes about 0.15 s, a request 1 ms.
    assert built < 2
    assert sorted(timings)[10] < 0.02
    assert sum(row["userNum"] for row in simulator.departments()) == 100_000


# Authentication.


@pytest.mark.parametrize("path", [OVERVIEW_PATH, DEPARTMENTS_PATH, GROUPS_PATH])
def test_the_token_is_checked_on_every_space_api(path: str) -> None:
    with Simulator(USERS, token=TOKEN) as simulator:
        accepted = get(simulator, path, headers={"Authorization": f"Bearer+{TOKEN}"})
        refused = get(simulator, path, headers={"Authorization": "Bearer wrong"})
        missing = get(simulator, path)

    assert accepted.status_code == 200
    assert [refused.status_code, missing.status_code] == [401, 401]
    assert refused.json()["code"] == "APIGW.0301"
    assert TOKEN not in refused.text


@pytest.fixture
def app_sim() -> Iterator[Simulator]:
    simulator = Simulator(
        USERS, app_id=APP_ID, app_secret=APP_SECRET, clock=NOW.timestamp
    )
    with simulator:
        yield simulator


def signed_get(
    simulator: Simulator,
    path: str,
    params: dict[str, Any],
    *,
    signed_method: str = "GET",
    signed_params: dict[str, Any] | None = None,
) -> requests.Response:
    """GET with an app signature made by koodrive_exporter.signing.

    The signature covers `signed_params` when given, so a test can send a
    query other than the one signed.
    """
    headers = {
        **MANDATORY,
        "Host": simulator.url.removeprefix("http://"),
        "X-Date": signing.format_x_date(NOW),
    }
    signed_url = (
        requests.Request("GET", simulator.url + path, params=signed_params or params)
        .prepare()
        .url
        or ""
    )
    canonical = signing.canonical_request(
        signed_method,
        path,
        parse_qsl(urlsplit(signed_url).query, keep_blank_values=True),
        headers,
        b"",
    )
    headers["Authorization"] = signing.authorization_header(
        APP_ID, APP_SECRET, canonical
    )
    return requests.get(simulator.url + path, params=params, headers=headers, timeout=5)


def test_a_get_signed_over_its_query_string_passes(app_sim: Simulator) -> None:
    params = {"limit": 2, "offset": 0, "keyWord": 'R&D "Labs" \\ Zürich'}

    response = signed_get(app_sim, DEPARTMENTS_PATH, params)

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["departments"]] == ["dept-004"]
    assert "%22" in response.url


@pytest.mark.parametrize("path", [OVERVIEW_PATH, DEPARTMENTS_PATH, GROUPS_PATH])
def test_each_space_api_accepts_a_signed_get(app_sim: Simulator, path: str) -> None:
    assert signed_get(app_sim, path, {"limit": 5}).status_code == 200


def test_a_query_changed_after_signing_fails(app_sim: Simulator) -> None:
    response = signed_get(
        app_sim,
        DEPARTMENTS_PATH,
        {"limit": 5, "offset": 5},
        signed_params={"limit": 5, "offset": 0},
    )

    assert response.status_code == 401
    assert "signature" in response.json()["msg"]


def test_a_query_left_out_of_the_signature_fails(app_sim: Simulator) -> None:
    response = signed_get(
        app_sim, GROUPS_PATH, {"limit": 5}, signed_params={"other": "x"}
    )

    assert response.status_code == 401


def test_a_get_signed_as_a_post_fails(app_sim: Simulator) -> None:
    response = signed_get(app_sim, OVERVIEW_PATH, {}, signed_method="POST")

    assert response.status_code == 401


# Faults and behaviour flags.


@pytest.mark.parametrize("path", [OVERVIEW_PATH, DEPARTMENTS_PATH, GROUPS_PATH])
def test_error_faults_apply_to_the_space_apis(sim: Simulator, path: str) -> None:
    sim.faults.push(Fault("status", status=502, times=2))
    sim.faults.push(Fault("rate_limited", retry_after=3))
    sim.faults.push(Fault("code", code="13000412"))

    answers = [get(sim, path) for _ in range(5)]

    assert [answer.status_code for answer in answers] == [502, 502, 429, 200, 200]
    assert answers[2].headers["Retry-After"] == "3"
    assert answers[3].json()["code"] == "13000412"
    assert answers[4].json()["code"] == 0


def test_one_fault_queue_serves_every_api_in_arrival_order(sim: Simulator) -> None:
    sim.faults.push(Fault("status", status=500))
    sim.faults.push(Fault("unauthorized"))

    overview = get(sim, OVERVIEW_PATH)
    users = requests.post(sim.url + API_PATH, json={}, headers=MANDATORY, timeout=5)
    groups = get(sim, GROUPS_PATH)

    assert [overview.status_code, users.status_code, groups.status_code] == [
        500,
        401,
        200,
    ]


def test_wrong_shape_faults_break_each_api_in_its_own_way(sim: Simulator) -> None:
    sim.faults.push(Fault("wrong_shape", times=3))

    overview = get(sim, OVERVIEW_PATH).json()
    departments = get(sim, DEPARTMENTS_PATH).json()
    groups = get(sim, GROUPS_PATH).json()

    assert overview["code"] == 0
    assert isinstance(overview["data"], list)
    assert isinstance(departments["departments"], dict)
    assert isinstance(groups["groups"], dict)


def test_truncated_and_malformed_faults_apply_to_the_space_apis(
    sim: Simulator,
) -> None:
    sim.faults.push(Fault("truncated"))
    sim.faults.push(Fault("malformed"))

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(sim, DEPARTMENTS_PATH, {"limit": 100})
    malformed = get(sim, OVERVIEW_PATH)

    assert malformed.headers["Content-Type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.text)


def test_slow_fault_and_latency_delay_the_space_apis() -> None:
    with Simulator(USERS, latency_seconds=0.1) as simulator:
        simulator.faults.push(Fault("slow", delay=0.2))
        started = time.monotonic()
        response = get(simulator, GROUPS_PATH)
        elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert elapsed >= 0.3


def test_paging_flags_apply_to_departments_and_groups(sim: Simulator) -> None:
    sim.ignore_offset = True
    sim.page_cap = 2
    sim.code_as_string = True

    departments = get(sim, DEPARTMENTS_PATH, {"offset": 4, "limit": 5}).json()
    groups = get(sim, GROUPS_PATH, {"offset": 3, "limit": 5}).json()
    overview = get(sim, OVERVIEW_PATH).json()

    assert departments["departments"] == sim.departments()[:2]
    assert groups["groups"] == sim.groups()[:2]
    assert [departments["code"], groups["code"], overview["code"]] == ["0"] * 3
    assert departments["total"] == 8


def test_omit_total_leaves_total_out_of_both_listings(sim: Simulator) -> None:
    sim.omit_total = True

    assert "total" not in get(sim, DEPARTMENTS_PATH).json()
    assert "total" not in get(sim, GROUPS_PATH).json()


def test_total_override_lies_in_the_user_listing_only(sim: Simulator) -> None:
    sim.total_override = 3

    assert get(sim, DEPARTMENTS_PATH).json()["total"] == 8
    assert get(sim, GROUPS_PATH).json()["total"] == 5


def test_home_page_lists_the_space_apis(sim: Simulator) -> None:
    text = requests.get(sim.url + "/", timeout=5).text

    assert all(path in text for path in (OVERVIEW_PATH, DEPARTMENTS_PATH, GROUPS_PATH))


# Command line.


def test_cli_reads_department_group_and_capacity_flags() -> None:
    args = build_parser().parse_args(
        ["--departments", "3", "--groups", "0", "--tenant-capacity-gb", "2500.5"]
    )
    defaults = build_parser().parse_args([])

    assert (args.departments, args.groups, args.tenant_capacity_gb) == (3, 0, 2500.5)
    assert (defaults.departments, defaults.groups) == (8, 5)
    assert defaults.tenant_capacity_gb is None


@pytest.mark.parametrize(
    "argv",
    [
        ["--departments", "0"],
        ["--groups", "-1"],
        ["--tenant-capacity-gb", "0"],
        ["--tenant-capacity-gb", "nan"],
    ],
)
def test_cli_refuses_impossible_department_group_and_capacity_values(
    argv: list[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)

    assert exit_info.value.code == 2
