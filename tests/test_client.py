"""Tests of the KooDrive client against a mocked API: paging, retries, errors."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

from helpers import StaticSecret
from koodrive_exporter import config
from koodrive_exporter.auth import EnvSecret, FileSecret, KooDriveAuth, TokenAuth
from koodrive_exporter.client import USAGE_PATH, KooDriveClient
from koodrive_exporter.config import KooDriveSettings
from koodrive_exporter.errors import ApiError, DeadlineExceededError, RefreshError
from koodrive_exporter.selection import UserSelection
from koodrive_exporter.snapshot import Listing
from koodrive_exporter.stats import ApiStats

BASE = "https://koodrive.test"
URL = BASE + USAGE_PATH
CALLER = "1505084218764547200"
TOKEN = "tok-4b1d0c9e"
NOW = datetime(2025, 11, 12, 8, 37, 14, tzinfo=timezone.utc)
DEADLINE = 1000.0
FIRST_ID = 1_000_000_000_000_000_000

Reply = tuple[int, dict[str, str], str]


@dataclass
class FakeTime:
    """A monotonic clock that only moves when the client sleeps."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        """The current fake time."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Record the wait and move the clock on."""
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Harness:
    """A client with its fake time and counters."""

    client: KooDriveClient
    time: FakeTime
    stats: ApiStats

    def list_users(self, deadline: float = DEADLINE) -> Listing:
        """List every user before `deadline`."""
        return self.client.list_users(deadline)


def make_settings(**koodrive: Any) -> KooDriveSettings:
    """Validated settings for the mocked API, through the real config parser."""
    document = {
        "koodrive": {
            "url": BASE,
            "user_id": CALLER,
            "auth": {"token_env": "KOODRIVE_TOKEN"},
            **koodrive,
        }
    }
    return config.parse(document).koodrive


def counting_trace_ids() -> Callable[[], str]:
    """Trace IDs 1, 2, 3... as 58 hex digits."""
    count = 0

    def next_id() -> str:
        nonlocal count
        count += 1
        return f"{count:058x}"

    return next_id


def make_client(
    settings: KooDriveSettings | None = None,
    *,
    auth: KooDriveAuth | None = None,
    jitter: float = 1.0,
    trace_ids: Callable[[], str] | None = None,
    selection: UserSelection | None = None,
) -> Harness:
    """A client with fake time, a fixed jitter and a static token."""
    fake = FakeTime()
    stats = ApiStats()
    extra: dict[str, Any] = {}
    if trace_ids is not None:
        extra["trace_ids"] = trace_ids
    client = KooDriveClient(
        settings or make_settings(),
        requests.Session(),
        auth or TokenAuth(CALLER, StaticSecret(TOKEN), "Bearer ", clock=lambda: NOW),
        stats,
        monotonic=fake.monotonic,
        sleep=fake.sleep,
        jitter=lambda: jitter,
        selection=selection,
        **extra,
    )
    return Harness(client, fake, stats)


def user_row(index: int, **fields: Any) -> dict[str, Any]:
    """A readable API row for the user numbered `index`."""
    row = {
        "userId": str(FIRST_ID + index),
        "quota": "1000",
        "used": index,
        "createTime": "2025-11-12T08:37:14.613Z",
    }
    row.update(fields)
    return row


def reply(document: object, status: int = 200, **headers: str) -> Reply:
    """A JSON answer for a responses callback."""
    return status, headers, json.dumps(document)


def ok(rows: list[Any], total: object = None) -> Reply:
    """A successful page answer, with `total` when given."""
    document: dict[str, Any] = {"code": "0", "msg": "success", "data": rows}
    if total is not None:
        document["total"] = total
    return reply(document)


class FakeApi:
    """Answers page requests from a list of rows, optionally misbehaving."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        *,
        send_total: bool = True,
        cap: int | None = None,
        ignore_offset: bool = False,
    ) -> None:
        self.rows = rows
        self.send_total = send_total
        self.cap = cap
        self.ignore_offset = ignore_offset

    def __call__(self, request: requests.PreparedRequest) -> Reply:
        """Serve the page the request body asks for."""
        body = json.loads(request.body or b"{}")
        rows = self.rows
        if "userIds" in body:
            wanted = set(body["userIds"])
            rows = [row for row in rows if row["userId"] in wanted]
        start = 0 if self.ignore_offset else body["offset"]
        size = min(body["limit"], self.cap) if self.cap else body["limit"]
        return ok(rows[start : start + size], len(rows) if self.send_total else None)


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    """Intercept every request made through `requests`; nothing leaves the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def serve(api: responses.RequestsMock, callback: Callable[..., Reply]) -> None:
    """Answer every POST to the usage endpoint with `callback`."""
    api.add_callback(
        responses.POST, URL, callback=callback, content_type="application/json"
    )


def sent_bodies(api: responses.RequestsMock) -> list[dict[str, Any]]:
    """The decoded JSON bodies of every request made."""
    return [json.loads(call.request.body) for call in api.calls]


def sent_header(api: responses.RequestsMock, name: str) -> list[str | None]:
    """One header's value in every request made."""
    return [call.request.headers.get(name) for call in api.calls]


def user_ids(listing: Listing) -> list[str]:
    """The listed user IDs, in order."""
    return [user.user_id for user in listing.users]


def ids(*indexes: int) -> list[str]:
    """The user IDs of numbered users."""
    return [str(FIRST_ID + index) for index in indexes]


# Paging

MODES = pytest.mark.parametrize("concurrency", [1, 4], ids=["sequential", "parallel"])


@MODES
@pytest.mark.parametrize(
    ("count", "offsets"), [(250, [0, 100, 200]), (200, [0, 100]), (1, [0])]
)
def test_paging_with_total_stops_exactly_at_total(
    api: responses.RequestsMock, concurrency: int, count: int, offsets: list[int]
) -> None:
    serve(api, FakeApi([user_row(i) for i in range(count)]))

    listing = make_client(make_settings(concurrency=concurrency)).list_users()

    assert sorted(body["offset"] for body in sent_bodies(api)) == offsets
    assert user_ids(listing) == ids(*range(count))
    assert listing.pages == len(offsets)
    assert listing.duplicates == 0


@MODES
def test_zero_total_ends_after_one_page(
    api: responses.RequestsMock, concurrency: int
) -> None:
    serve(api, FakeApi([]))

    listing = make_client(make_settings(concurrency=concurrency)).list_users()

    assert len(api.calls) == 1
    assert listing.users == ()


@MODES
def test_short_pages_continue_until_total(
    api: responses.RequestsMock, concurrency: int
) -> None:
    serve(api, FakeApi([user_row(i) for i in range(75)], cap=30))

    listing = make_client(make_settings(concurrency=concurrency)).list_users()

    assert sorted(body["offset"] for body in sent_bodies(api)) == [0, 30, 60]
    assert [body["limit"] for body in sent_bodies(api)] == [100, 100, 100]
    assert user_ids(listing) == ids(*range(75))


@MODES
def test_without_total_paging_stops_on_an_empty_page(
    api: responses.RequestsMock, concurrency: int
) -> None:
    serve(api, FakeApi([user_row(i) for i in range(150)], send_total=False))

    listing = make_client(make_settings(concurrency=concurrency)).list_users()

    assert [body["offset"] for body in sent_bodies(api)] == [0, 100, 150]
    assert len(listing.users) == 150
    assert listing.pages == 3


def test_without_total_short_pages_continue(api: responses.RequestsMock) -> None:
    serve(api, FakeApi([user_row(i) for i in range(45)], send_total=False, cap=20))

    listing = make_client().list_users()

    assert [body["offset"] for body in sent_bodies(api)] == [0, 20, 40, 45]
    assert len(listing.users) == 45


@pytest.mark.parametrize("send_total", [True, False])
def test_server_ignoring_offset_does_not_loop_when_sequential(
    api: responses.RequestsMock, send_total: bool
) -> None:
    rows = [user_row(i) for i in range(250)]
    serve(api, FakeApi(rows, send_total=send_total, ignore_offset=True))

    listing = make_client(make_settings(concurrency=1)).list_users()

    assert len(api.calls) == 2
    assert user_ids(listing) == ids(*range(100))
    assert listing.duplicates == 100


def test_server_ignoring_offset_is_caught_on_the_second_page_when_parallel(
    api: responses.RequestsMock,
) -> None:
    serve(api, FakeApi([user_row(i) for i in range(2500)], ignore_offset=True))

    listing = make_client(make_settings(concurrency=4)).list_users()

    # The second page is fetched alone and brings nothing new: no fan-out to
    # the 25 pages the total claims.
    assert len(api.calls) == 2
    assert user_ids(listing) == ids(*range(100))
    assert listing.duplicates == 100


@MODES
def test_listing_cut_short_before_total_is_logged(
    api: responses.RequestsMock, caplog: pytest.LogCaptureFixture, concurrency: int
) -> None:
    serve(api, FakeApi([user_row(i) for i in range(250)], ignore_offset=True))

    with caplog.at_level(logging.WARNING, logger="koodrive_exporter.client"):
        make_client(make_settings(concurrency=concurrency)).list_users()

    [record] = [r for r in caplog.records if r.name == "koodrive_exporter.client"]
    assert record.getMessage() == "listing ended before total"
    assert record.fields["users_seen"] == 100
    assert record.fields["total"] == 250


def test_complete_listing_logs_no_warning(
    api: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    serve(api, FakeApi([user_row(i) for i in range(250)]))

    with caplog.at_level(logging.WARNING, logger="koodrive_exporter.client"):
        make_client().list_users()

    assert [r for r in caplog.records if r.name == "koodrive_exporter.client"] == []


def test_empty_page_before_total_ends_the_listing(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, json={"code": 0, "data": [user_row(1)], "total": 9})
    api.add(responses.POST, URL, json={"code": 0, "data": [], "total": 9})

    listing = make_client(make_settings(concurrency=1)).list_users()

    assert len(api.calls) == 2
    assert user_ids(listing) == ids(1)


def test_parallel_listing_finishes_a_tenant_that_grew(
    api: responses.RequestsMock,
) -> None:
    rows = [user_row(i) for i in range(300)]

    def growing(request: requests.PreparedRequest) -> Reply:
        offset = json.loads(request.body or b"{}")["offset"]
        return ok(rows[offset : offset + 100], total=200 if offset == 0 else 300)

    serve(api, growing)

    listing = make_client(make_settings(concurrency=4)).list_users()

    assert sorted(body["offset"] for body in sent_bodies(api)) == [0, 100, 200]
    assert user_ids(listing) == ids(*range(300))


def test_parallel_pages_are_merged_in_page_order(api: responses.RequestsMock) -> None:
    third_answered = threading.Event()

    def answer(request: requests.PreparedRequest) -> Reply:
        offset = json.loads(request.body or b"{}")["offset"]
        if offset == 0:
            return ok([user_row(0), user_row(1)], total=6)
        if offset == 2:
            # Page 2 answers only after page 3, yet must still win.
            third_answered.wait(timeout=30)
            return ok([user_row(2), user_row(9, used=222)], total=6)
        third_answered.set()
        return ok([user_row(9, used=333), user_row(4)], total=6)

    serve(api, answer)

    listing = make_client(make_settings(concurrency=4)).list_users()

    assert user_ids(listing) == ids(0, 1, 2, 9, 4)
    assert listing.users[3].used_bytes == 222
    assert listing.duplicates == 1


def test_user_repeated_across_pages_is_listed_once(
    api: responses.RequestsMock,
) -> None:
    api.add(
        responses.POST,
        URL,
        json={"code": 0, "data": [user_row(1), user_row(2, used=5)], "total": 4},
    )
    api.add(
        responses.POST,
        URL,
        json={"code": 0, "data": [user_row(2, used=99), user_row(3)], "total": 4},
    )

    listing = make_client().list_users()

    assert user_ids(listing) == ids(1, 2, 3)
    assert listing.duplicates == 1
    assert listing.users[1].used_bytes == 5


def test_numeric_and_string_forms_of_one_id_are_one_user(
    api: responses.RequestsMock,
) -> None:
    rows = [user_row(1), user_row(1, userId=FIRST_ID + 1)]
    api.add(responses.POST, URL, json={"code": 0, "data": rows, "total": 2})

    listing = make_client().list_users()

    assert user_ids(listing) == ids(1)
    assert listing.duplicates == 1


@MODES
def test_max_pages_guard_stops_a_listing_that_never_ends(
    api: responses.RequestsMock, concurrency: int
) -> None:
    serve(api, FakeApi([user_row(i) for i in range(500)]))
    harness = make_client(make_settings(max_pages=2, concurrency=concurrency))

    with pytest.raises(RefreshError) as caught:
        harness.list_users()

    assert caught.value.reason == "too_many_pages"
    assert "max_pages=2" in str(caught.value)
    assert 1 <= len(api.calls) <= 2


def test_max_pages_guard_without_total(api: responses.RequestsMock) -> None:
    serve(api, FakeApi([user_row(i) for i in range(500)], send_total=False))

    with pytest.raises(RefreshError) as caught:
        make_client(make_settings(max_pages=3)).list_users()

    assert caught.value.reason == "too_many_pages"
    assert len(api.calls) == 3


@MODES
def test_listing_of_exactly_max_pages_succeeds(
    api: responses.RequestsMock, concurrency: int
) -> None:
    serve(api, FakeApi([user_row(i) for i in range(200)]))
    settings = make_settings(max_pages=2, concurrency=concurrency)

    listing = make_client(settings).list_users()

    assert len(listing.users) == 200


# Request contents


def test_request_body_has_offset_and_limit_from_page_size(
    api: responses.RequestsMock,
) -> None:
    serve(api, FakeApi([user_row(i) for i in range(60)]))

    make_client(make_settings(page_size=25)).list_users()

    assert sorted(sent_bodies(api), key=lambda body: body["offset"]) == [
        {"offset": 0, "limit": 25},
        {"offset": 25, "limit": 25},
        {"offset": 50, "limit": 25},
    ]
    assert sent_header(api, "Content-Type") == ["application/json"] * 3


def test_configured_user_ids_are_sent_in_chunks_of_fifty(
    api: responses.RequestsMock,
) -> None:
    wanted = ids(*range(120))
    serve(api, FakeApi([user_row(i) for i in range(130)]))

    listing = make_client(make_settings(user_ids=wanted, concurrency=1)).list_users()

    bodies = sent_bodies(api)
    assert [body["userIds"] for body in bodies] == [
        wanted[:50],
        wanted[50:100],
        wanted[100:],
    ]
    assert all(body["offset"] == 0 and body["limit"] == 100 for body in bodies)
    assert user_ids(listing) == wanted


def test_user_id_chunks_fetched_in_parallel_cover_every_id(
    api: responses.RequestsMock,
) -> None:
    wanted = ids(*range(120))
    serve(api, FakeApi([user_row(i) for i in range(130)]))

    listing = make_client(make_settings(user_ids=wanted, concurrency=4)).list_users()

    chunks = sorted((body["userIds"] for body in sent_bodies(api)), key=len)
    assert [len(chunk) for chunk in chunks] == [20, 50, 50]
    assert sorted(id_ for chunk in chunks for id_ in chunk) == sorted(wanted)
    assert sorted(user_ids(listing)) == sorted(wanted)


def test_user_cap_keeps_configured_ids_in_order_when_chunks_run_in_parallel(
    api: responses.RequestsMock,
) -> None:
    wanted = ids(*range(60))
    second_chunk_merged = threading.Event()
    attempts = 0

    def trace_ids() -> str:
        # The third request is the second chunk asking for its next page,
        # which it does only after merging its first page.
        nonlocal attempts
        attempts += 1
        if attempts == 3:
            second_chunk_merged.set()
        return f"{attempts:058x}"

    def answer(request: requests.PreparedRequest) -> Reply:
        body = json.loads(request.body or b"{}")
        chunk = body["userIds"]
        if chunk[0] == wanted[0]:
            second_chunk_merged.wait(timeout=10)
            return ok([user_row(i) for i in range(50)], total=50)
        if body["offset"] == 0:
            return ok([user_row(i) for i in range(50, 60)], total=11)
        return ok([], total=11)

    serve(api, answer)
    harness = make_client(
        make_settings(user_ids=wanted, concurrency=2),
        trace_ids=trace_ids,
        selection=UserSelection(max_users=50),
    )

    listing = harness.list_users()

    assert user_ids(listing) == wanted[:50]


def test_user_id_chunk_pages_on_when_the_server_pages_it(
    api: responses.RequestsMock,
) -> None:
    wanted = ids(*range(30))
    serve(api, FakeApi([user_row(i) for i in range(30)], cap=20))

    listing = make_client(make_settings(user_ids=wanted)).list_users()

    assert [(b["offset"], len(b["userIds"])) for b in sent_bodies(api)] == [
        (0, 30),
        (20, 30),
    ]
    assert user_ids(listing) == wanted


def test_every_request_carries_the_koodrive_headers(
    api: responses.RequestsMock,
) -> None:
    serve(api, FakeApi([user_row(i) for i in range(5)], cap=2))

    make_client().list_users()

    assert len(api.calls) == 3
    trace_ids = sent_header(api, "X-Traceid")
    assert all(re.fullmatch(r"[0-9a-f]{58}", str(value)) for value in trace_ids)
    assert len(set(trace_ids)) == 3
    assert sent_header(api, "X-User-Id") == [CALLER] * 3
    assert sent_header(api, "X-Date") == ["20251112T083714Z"] * 3
    assert sent_header(api, "Host") == ["koodrive.test"] * 3
    assert sent_header(api, "Authorization") == ["Bearer " + TOKEN] * 3


def test_each_retry_gets_a_fresh_trace_id(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, status=503)
    api.add(responses.POST, URL, json={"code": 0, "data": [], "total": 0})

    make_client().list_users()

    first, second = sent_header(api, "X-Traceid")
    assert first != second


def test_timeout_is_capped_by_the_remaining_deadline(
    api: responses.RequestsMock,
) -> None:
    serve(api, FakeApi([]))

    make_client(make_settings(timeout_seconds=10)).list_users(deadline=3.0)

    assert api.calls[0].request.req_kwargs["timeout"] == 3.0


def test_redirects_are_not_followed(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, status=302, headers={"Location": BASE + "/login"})

    with pytest.raises(ApiError) as caught:
        make_client().list_users()

    assert caught.value.reason == "http_3xx"
    assert len(api.calls) == 1


def test_certificates_are_verified_by_default(api: responses.RequestsMock) -> None:
    serve(api, FakeApi([]))

    make_client().list_users()

    # requests may swap True for the bundle named by REQUESTS_CA_BUNDLE.
    assert api.calls[0].request.req_kwargs["verify"] not in (False, None, "")


def test_certificate_check_can_be_switched_off(api: responses.RequestsMock) -> None:
    serve(api, FakeApi([]))

    settings = make_settings(tls={"insecure_skip_verify": True})
    make_client(settings).list_users()

    assert api.calls[0].request.req_kwargs["verify"] is False


def test_ca_file_is_used_for_verification(
    api: responses.RequestsMock, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("x", encoding="utf-8")
    serve(api, FakeApi([]))

    make_client(make_settings(tls={"ca_file": str(ca_file)})).list_users()

    assert api.calls[0].request.req_kwargs["verify"] == str(ca_file)


# Decoding answers


@pytest.mark.parametrize("code", [0, "0"])
def test_zero_code_as_number_or_string_is_success(
    api: responses.RequestsMock, code: object
) -> None:
    api.add(responses.POST, URL, json={"code": code, "data": [user_row(1)]})
    api.add(responses.POST, URL, json={"code": code, "data": []})

    listing = make_client().list_users()

    assert user_ids(listing) == ids(1)


def test_null_data_is_an_empty_page(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, json={"code": "0", "data": None})

    listing = make_client().list_users()

    assert listing.users == ()


def test_numeric_string_total_is_accepted(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, json={"code": 0, "data": [user_row(1)], "total": "1"})

    listing = make_client().list_users()

    assert len(api.calls) == 1
    assert user_ids(listing) == ids(1)


@pytest.mark.parametrize(
    ("code", "text"), [(13000201, "13000201"), ("APIGW.0301", "APIGW.0301")]
)
def test_error_code_in_a_200_answer_is_an_api_error(
    api: responses.RequestsMock, code: object, text: str
) -> None:
    api.add(
        responses.POST,
        URL,
        json={"code": code, "msg": "inner server invoke failure"},
    )
    harness = make_client()

    with pytest.raises(ApiError) as caught:
        harness.list_users()

    assert caught.value.reason == "api_error"
    assert caught.value.code == text
    assert "inner server invoke failure" in caught.value.detail
    assert len(api.calls) == 1
    assert harness.stats.requests() == {"api_error": 1}


@pytest.mark.parametrize("code", [True, False, "00", None])
def test_code_that_is_not_zero_is_refused(
    api: responses.RequestsMock, code: object
) -> None:
    api.add(responses.POST, URL, json={"code": code, "data": []})

    with pytest.raises(ApiError) as caught:
        make_client().list_users()

    assert caught.value.reason == "api_error"


@pytest.mark.parametrize(
    "body",
    [
        "<html>gateway</html>",
        '{"code":0,"data":[{"userId":"1"',
        "",
        "[]",
        '"ok"',
        '{"data": []}',
        '{"code": 0, "data": {"userId": "1"}}',
        '{"code": 0, "data": "rows"}',
        '{"code": 0, "data": [], "total": "many"}',
        '{"code": 0, "data": [], "total": -1}',
        '{"code": 0, "data": [], "total": 2.5}',
        '{"code": 0, "data": [], "total": true}',
    ],
)
def test_malformed_answer_is_a_bad_response(
    api: responses.RequestsMock, body: str
) -> None:
    api.add(responses.POST, URL, body=body, content_type="application/json")
    harness = make_client()

    with pytest.raises(RefreshError) as caught:
        harness.list_users()

    assert caught.value.reason == "bad_response"
    assert not isinstance(caught.value, ApiError)
    assert len(api.calls) == 1
    assert harness.stats.requests() == {"bad_response": 1}


def test_error_carries_the_trace_id_and_page_of_the_failed_request(
    api: responses.RequestsMock,
) -> None:
    api.add(responses.POST, URL, json={"code": 0, "data": [user_row(1)], "total": 2})
    api.add(responses.POST, URL, body="not json")

    with pytest.raises(RefreshError) as caught:
        make_client(trace_ids=counting_trace_ids()).list_users()

    assert caught.value.page == 2
    assert caught.value.trace_id == sent_header(api, "X-Traceid")[1]
    assert caught.value.trace_id == f"{2:058x}"


# Record errors


def test_record_errors_are_counted_by_field_with_examples(
    api: responses.RequestsMock,
) -> None:
    rows = [
        user_row(1),
        user_row(2, used="x"),
        user_row(3, used=None),
        user_row(4, createTime="2025-02-30"),
        {"userId": 1.5e18, "used": 1},
        "not a row",
    ]
    api.add(responses.POST, URL, json={"code": 0, "data": rows, "total": 6})

    listing = make_client().list_users()

    assert user_ids(listing) == ids(1, 2, 3, 4)
    assert listing.record_errors == {"used": 2, "createTime": 1, "userId": 1, "row": 1}
    assert listing.error_examples["used"].startswith(f"user_id={FIRST_ID + 2} ")
    assert listing.error_examples["createTime"].startswith(f"user_id={FIRST_ID + 4} ")
    assert not listing.error_examples["userId"].startswith("user_id=")
    assert "str" in listing.error_examples["row"]


def test_record_errors_add_up_across_pages(api: responses.RequestsMock) -> None:
    first = [user_row(1, used="x")]
    second = [user_row(2, used="y")]
    api.add(responses.POST, URL, json={"code": 0, "data": first, "total": 2})
    api.add(responses.POST, URL, json={"code": 0, "data": second, "total": 2})

    listing = make_client().list_users()

    assert listing.record_errors == {"used": 2}
    assert listing.error_examples["used"].startswith(f"user_id={FIRST_ID + 1} ")


def test_page_of_unreadable_rows_does_not_end_the_listing(
    api: responses.RequestsMock,
) -> None:
    api.add(
        responses.POST,
        URL,
        json={"code": 0, "data": [{"userId": None}, {"userId": 2.0}], "total": 3},
    )
    api.add(responses.POST, URL, json={"code": 0, "data": [user_row(7)], "total": 3})

    listing = make_client().list_users()

    assert len(api.calls) == 2
    assert user_ids(listing) == ids(7)
    assert listing.record_errors == {"userId": 2}


def test_units_and_zone_from_settings_reach_the_records(
    api: responses.RequestsMock,
) -> None:
    row = user_row(1, quota="2", used=3, createTime="2025-11-12 16:37:14")
    api.add(responses.POST, URL, json={"code": 0, "data": [row], "total": 1})
    settings = make_settings(
        units={"quota": "GiB", "used": "KB"}, timezone="Asia/Shanghai"
    )

    [user] = make_client(settings).list_users().users

    assert user.quota_bytes == 2 * 1024**3
    assert user.used_bytes == 3000
    assert user.creation_seconds == NOW.timestamp()


# Failures and retries


def test_unauthorized_fails_with_http_401(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, status=401, json={"code": "401", "msg": "expired"})
    harness = make_client()

    with pytest.raises(ApiError) as caught:
        harness.list_users()

    assert caught.value.reason == "http_401"
    assert caught.value.status == 401
    assert len(api.calls) == 1
    assert harness.time.sleeps == []
    assert harness.stats.requests() == {"http_401": 1}


def write_token(path: Path, token: str) -> None:
    """Write a token and move the file's mtime forward so the change is seen."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(token + "\n", encoding="utf-8")
    later = max(before, path.stat().st_mtime_ns) + 1_000_000_000
    os.utime(path, ns=(later, later))


def token_file_auth(path: Path) -> TokenAuth:
    """Token authentication reading `path`."""
    return TokenAuth(CALLER, FileSecret(path), "Bearer ", clock=lambda: NOW)


def test_unauthorized_with_unchanged_token_file_is_not_retried(
    api: responses.RequestsMock, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    write_token(path, "tok-old")
    api.add(responses.POST, URL, status=401)

    with pytest.raises(ApiError) as caught:
        make_client(auth=token_file_auth(path)).list_users()

    assert caught.value.reason == "http_401"
    assert len(api.calls) == 1


def test_unauthorized_then_rotated_token_file_succeeds(
    api: responses.RequestsMock, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    write_token(path, "tok-old")

    def rotate_then_accept(request: requests.PreparedRequest) -> Reply:
        if request.headers["Authorization"] == "Bearer tok-old":
            write_token(path, "tok-new")
            return reply({"code": "401", "msg": "token expired"}, status=401)
        return ok([user_row(1)], total=1)

    serve(api, rotate_then_accept)
    harness = make_client(auth=token_file_auth(path))

    listing = harness.list_users()

    assert user_ids(listing) == ids(1)
    assert sent_header(api, "Authorization") == ["Bearer tok-old", "Bearer tok-new"]
    assert harness.time.sleeps == []
    assert harness.stats.requests() == {"http_401": 1, "success": 1}


def test_credential_is_renewed_only_once_per_request(
    api: responses.RequestsMock, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    write_token(path, "tok-0")
    rotations = iter(range(1, 10))

    def always_rotate(request: requests.PreparedRequest) -> Reply:
        write_token(path, f"tok-{next(rotations)}")
        return reply({"code": "401"}, status=401)

    serve(api, always_rotate)

    with pytest.raises(ApiError) as caught:
        make_client(auth=token_file_auth(path)).list_users()

    assert caught.value.reason == "http_401"
    assert len(api.calls) == 2


def test_missing_credential_fails_before_any_request(
    api: responses.RequestsMock,
) -> None:
    auth = TokenAuth(CALLER, EnvSecret("KOODRIVE_TOKEN", {}), "Bearer ")

    with pytest.raises(RefreshError) as caught:
        make_client(auth=auth).list_users()

    assert caught.value.reason == "credentials"
    assert "KOODRIVE_TOKEN" in str(caught.value)
    assert len(api.calls) == 0


def test_too_many_requests_waits_for_retry_after(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, status=429, headers={"Retry-After": "2"})
    api.add(responses.POST, URL, json={"code": 0, "data": [user_row(1)], "total": 1})
    harness = make_client(jitter=0.0)

    listing = harness.list_users()

    assert user_ids(listing) == ids(1)
    assert harness.time.sleeps == [2.0]
    assert harness.stats.requests() == {"http_429": 1, "success": 1}


def test_retry_after_is_a_floor_not_a_ceiling(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, status=503, headers={"Retry-After": "1"})
    api.add(responses.POST, URL, json={"code": 0, "data": [], "total": 0})
    settings = make_settings(retries={"backoff_seconds": 4, "max_backoff_seconds": 8})
    harness = make_client(settings, jitter=1.0)

    harness.list_users()

    assert harness.time.sleeps == [4.0]


def test_retry_after_http_date_in_the_past_waits_only_the_backoff(
    api: responses.RequestsMock,
) -> None:
    api.add(
        responses.POST,
        URL,
        status=429,
        headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
    )
    api.add(responses.POST, URL, json={"code": 0, "data": [], "total": 0})
    harness = make_client(jitter=1.0)

    harness.list_users()

    assert harness.time.sleeps == [0.5]


def test_odd_retry_after_header_is_ignored(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, status=429, headers={"Retry-After": "\u00b2"})
    api.add(responses.POST, URL, json={"code": 0, "data": [], "total": 0})

    listing = make_client().list_users()

    assert listing.users == ()


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried_up_to_max_attempts(
    api: responses.RequestsMock, status: int
) -> None:
    api.add(responses.POST, URL, status=status)
    harness = make_client(make_settings(retries={"max_attempts": 3}), jitter=1.0)

    with pytest.raises(ApiError) as caught:
        harness.list_users()

    assert caught.value.reason == "http_5xx"
    assert caught.value.status == status
    assert len(api.calls) == 3
    assert harness.time.sleeps == [0.5, 1.0]
    assert harness.stats.requests() == {"http_5xx": 3}


def test_server_error_then_success_recovers(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, status=500, json={"code": 13000201, "msg": "inner"})
    api.add(responses.POST, URL, json={"code": 0, "data": [user_row(1)], "total": 1})
    harness = make_client()

    listing = harness.list_users()

    assert user_ids(listing) == ids(1)
    assert len(api.calls) == 2
    assert harness.stats.requests() == {"http_5xx": 1, "success": 1}


def test_error_body_code_is_kept_on_http_errors(api: responses.RequestsMock) -> None:
    api.add(
        responses.POST,
        URL,
        status=400,
        json={"code": "13000102", "msg": "parameter validation failed"},
    )

    with pytest.raises(ApiError) as caught:
        make_client().list_users()

    assert caught.value.reason == "http_4xx"
    assert caught.value.code == "13000102"
    assert "parameter validation failed" in caught.value.detail
    assert len(api.calls) == 1


def test_backoff_doubles_up_to_its_ceiling(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, status=503)
    settings = make_settings(
        retries={"max_attempts": 6, "backoff_seconds": 1, "max_backoff_seconds": 3}
    )
    harness = make_client(settings, jitter=1.0)

    with pytest.raises(ApiError):
        harness.list_users()

    assert harness.time.sleeps == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_backoff_is_scaled_by_jitter(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, status=503)
    harness = make_client(make_settings(retries={"max_attempts": 3}), jitter=0.5)

    with pytest.raises(ApiError):
        harness.list_users()

    assert harness.time.sleeps == [0.25, 0.5]


def test_no_retry_when_the_wait_would_pass_the_deadline(
    api: responses.RequestsMock,
) -> None:
    api.add(responses.POST, URL, status=503, headers={"Retry-After": "5"})
    harness = make_client()

    with pytest.raises(ApiError) as caught:
        harness.list_users(deadline=3.0)

    assert caught.value.reason == "http_5xx"
    assert len(api.calls) == 1
    assert harness.time.sleeps == []


def test_retries_stop_when_backoff_reaches_the_deadline(
    api: responses.RequestsMock,
) -> None:
    api.add(responses.POST, URL, status=500)
    settings = make_settings(retries={"max_attempts": 10, "backoff_seconds": 1})
    harness = make_client(settings, jitter=1.0)

    with pytest.raises(ApiError):
        harness.list_users(deadline=4.0)

    assert harness.time.sleeps == [1.0, 2.0]
    assert len(api.calls) == 3


def test_passed_deadline_sends_nothing(api: responses.RequestsMock) -> None:
    serve(api, FakeApi([user_row(1)]))
    harness = make_client()
    harness.time.now = 10.0

    with pytest.raises(DeadlineExceededError) as caught:
        harness.list_users(deadline=10.0)

    assert caught.value.reason == "deadline"
    assert len(api.calls) == 0
    assert harness.stats.requests() == {}


@pytest.mark.parametrize(
    "failure",
    [requests.exceptions.ReadTimeout(), requests.exceptions.ConnectTimeout()],
)
def test_timeouts_are_retried_then_reported(
    api: responses.RequestsMock, failure: Exception
) -> None:
    api.add(responses.POST, URL, body=failure)
    harness = make_client(make_settings(retries={"max_attempts": 2}))

    with pytest.raises(RefreshError) as caught:
        harness.list_users()

    assert caught.value.reason == "timeout"
    assert len(api.calls) == 2
    assert harness.stats.requests() == {"timeout": 2}


def test_timeout_then_success_recovers(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, body=requests.exceptions.ReadTimeout())
    api.add(responses.POST, URL, json={"code": 0, "data": [user_row(1)], "total": 1})

    listing = make_client().list_users()

    assert user_ids(listing) == ids(1)


def test_connection_errors_are_retried_then_reported(
    api: responses.RequestsMock,
) -> None:
    error = requests.exceptions.ConnectionError("[Errno 111] Connection refused")
    api.add(responses.POST, URL, body=error)
    harness = make_client(make_settings(retries={"max_attempts": 3}))

    with pytest.raises(RefreshError) as caught:
        harness.list_users()

    assert caught.value.reason == "connection"
    assert "connection refused" in caught.value.detail
    assert len(api.calls) == 3
    assert harness.stats.requests() == {"connection": 3}


def test_tls_failure_is_not_retried(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, body=requests.exceptions.SSLError("bad cert"))
    harness = make_client()

    with pytest.raises(RefreshError) as caught:
        harness.list_users()

    assert caught.value.reason == "tls"
    assert len(api.calls) == 1
    assert harness.stats.requests() == {"tls": 1}


def test_request_outcomes_are_counted(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, status=503)
    api.add(responses.POST, URL, body=requests.exceptions.ReadTimeout())
    api.add(responses.POST, URL, status=429)
    api.add(responses.POST, URL, json={"code": 0, "data": [user_row(1)], "total": 2})
    api.add(responses.POST, URL, json={"code": 0, "data": [user_row(2)], "total": 2})
    harness = make_client()

    harness.list_users()

    assert harness.stats.requests() == {
        "http_5xx": 1,
        "timeout": 1,
        "http_429": 1,
        "success": 2,
    }


def test_counters_accumulate_across_listings(api: responses.RequestsMock) -> None:
    serve(api, FakeApi([user_row(1)]))
    harness = make_client()

    harness.list_users()
    harness.list_users()

    assert harness.stats.requests() == {"success": 2}


def test_token_never_appears_in_errors(api: responses.RequestsMock) -> None:
    api.add(responses.POST, URL, status=401, json={"code": "401", "msg": "bad token"})

    with pytest.raises(ApiError) as caught:
        make_client().list_users()

    assert TOKEN not in str(caught.value)
    assert TOKEN not in caught.value.detail
