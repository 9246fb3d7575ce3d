"""Properties over arbitrary input: API rows, whole API pages, the exposition.

Hypothesis generates what a broken or hostile server could send; the
properties say what must hold whatever it sends: rows are read without an
exception, a refresh ends in a success or a failure with a reason, and the
served exposition parses, with every user ID back exactly as it was sent.
The examples at the end pin inputs that once broke these properties.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
import responses
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from koodrive_exporter import config
from koodrive_exporter.auth import EnvSecret, TokenAuth
from koodrive_exporter.client import USAGE_PATH, KooDriveClient
from koodrive_exporter.collectors import users_source
from koodrive_exporter.config import UNIT_FACTORS
from koodrive_exporter.records import TIME_FIELDS, RecordParser, UserQuota
from koodrive_exporter.refresh import Refresher, State
from koodrive_exporter.stats import ApiStats

BASE = "https://koodrive.test"
URL = BASE + USAGE_PATH
CALLER = "1505084218764547200"
TOKEN_ENV = "KOODRIVE_PROPERTY_TOKEN"
TOKEN = "tok-property-5e1f"
ROW_FIELDS = ("userId", "quota", "used", *TIME_FIELDS)
SIZE_ATTRIBUTES = ("quota_bytes", "used_bytes")
ATTRIBUTE_OF = {
    "quota": "quota_bytes",
    "used": "used_bytes",
    "createTime": "creation_seconds",
    "effectiveTime": "effective_seconds",
    "expirationTime": "expiration_seconds",
}
TIME_ATTRIBUTES = ("creation_seconds", "effective_seconds", "expiration_seconds")

# Integers from here on cannot become a float: json.loads returns them exactly.
FLOAT_INT_LIMIT = 2**1024

QUICK = settings(
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HTTP = settings(
    deadline=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ZONES: tuple[tzinfo, ...] = (
    timezone.utc,
    timezone(timedelta(hours=8)),
    timezone(-timedelta(hours=14)),
    ZoneInfo("America/New_York"),
)


# Strategies.


integers = (
    st.integers()
    | st.integers(min_value=FLOAT_INT_LIMIT // 2, max_value=10**400)
    | st.integers(min_value=-(10**400), max_value=-FLOAT_INT_LIMIT // 2)
)


def json_documents(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Any JSON value, nested, whose strings come from `text`."""
    scalars = st.none() | st.booleans() | integers | st.floats() | text
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4)
        ),
        max_leaves=12,
    )


# Every code point, lone surrogates included: json.loads can produce them.
any_text = st.text(
    alphabet=st.characters(exclude_categories=())
    | st.sampled_from(["\ud800", "\udfff", '"', "\\", "\n"]),
    max_size=20,
)
# What UTF-8 can carry: the exposition is UTF-8, so a user ID must be too.
utf8_text = st.text(max_size=20)

numeric_texts = st.from_regex(
    r"\A\s?[+-]?(\d{1,30}(\.\d{0,10})?|\.\d{1,10})([eE][+-]?\d{1,3})?\s?\Z"
)
offsets = st.sampled_from(["", "Z", "z", "+08:00", "-0500", "+14", "-14:00", "+2400"])


@st.composite
def time_texts(draw: st.DrawFn) -> str:
    """A time written in one of the forms KooDrive may use, valid or nearly."""
    day = draw(st.dates())
    moment = draw(st.times())
    form = draw(st.sampled_from(["date", "iso", "space", "fraction"]))
    if form == "date":
        return day.isoformat()
    separator = " " if form == "space" else "T"
    text = f"{day.isoformat()}{separator}{moment.strftime('%H:%M:%S')}"
    if form == "fraction":
        text += "." + draw(st.from_regex(r"\A\d{1,9}\Z"))
    return text + draw(offsets)


field_values = (
    json_documents(any_text)
    | numeric_texts
    | time_texts()
    | st.integers(min_value=0, max_value=10**15)
)
real_rows = st.fixed_dictionaries({}, optional=dict.fromkeys(ROW_FIELDS, field_values))
rows = real_rows | json_documents(any_text)


def wire_rows(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """Rows to send over HTTP: the real fields holding anything, or anything."""
    values = json_documents(text) | numeric_texts | time_texts()
    shaped = st.fixed_dictionaries({}, optional=dict.fromkeys(ROW_FIELDS, values))
    return shaped | json_documents(text)


@st.composite
def page_bodies(draw: st.DrawFn) -> bytes:
    """A page body: a page of odd rows, a page of any values, any JSON, any bytes."""
    documents = json_documents(any_text)
    kind = draw(st.sampled_from(["page", "page", "shaped", "document", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "document":
        return json.dumps(draw(documents)).encode("utf-8")
    if kind == "page":
        page: dict[str, Any] = {
            "code": draw(st.sampled_from([0, "0"])),
            "data": draw(st.lists(wire_rows(any_text), max_size=6)),
        }
        totals = st.integers(min_value=0, max_value=40)
    else:
        page = {
            "code": draw(st.sampled_from([0, "0"]) | documents),
            "data": draw(st.lists(wire_rows(any_text), max_size=6) | documents),
        }
        totals = st.integers(min_value=0, max_value=40) | documents
    if draw(st.booleans()):
        page["total"] = draw(totals)
    if draw(st.booleans()):
        page["msg"] = draw(documents)
    return json.dumps(page).encode("utf-8")


retry_after_values = st.none() | st.sampled_from(
    ["0", "1", "120", "-1", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "9" * 40]
)
replies = st.tuples(
    st.sampled_from([200] * 8 + [400, 401, 403, 429, 500, 502, 503]),
    page_bodies(),
    retry_after_values,
)


# Harness.


def settings_for(*, page_size: int = 100, concurrency: int = 4) -> config.Settings:
    """Settings through the real parser, with small bounds so runs stay short."""
    return config.parse(
        {
            "koodrive": {
                "url": BASE,
                "user_id": CALLER,
                "auth": {"token_env": TOKEN_ENV},
                "page_size": page_size,
                "concurrency": concurrency,
                "max_pages": 20,
                "retries": {"max_attempts": 2, "backoff_seconds": 0.01},
            },
            "refresh": {"timeout_seconds": 20},
        }
    )


def refresh_against(
    served: list[tuple[int, bytes, str | None]],
    *,
    page_size: int = 100,
    concurrency: int = 4,
) -> tuple[Refresher, State]:
    """Serve these replies in order (the last repeats) and refresh once."""
    parsed = settings_for(page_size=page_size, concurrency=concurrency)
    stats = ApiStats()
    auth = TokenAuth(CALLER, EnvSecret(TOKEN_ENV, {TOKEN_ENV: TOKEN}), "Bearer ")
    sleeps: list[float] = []
    with requests.Session() as session:
        # A fixed jitter keeps the global random state out of the examples.
        client = KooDriveClient(
            parsed.koodrive,
            session,
            auth,
            stats,
            sleep=sleeps.append,
            jitter=lambda: 0.5,
            trace_ids=lambda: "0" * 58,
        )
        refresher = Refresher([users_source(client.list_users)], parsed.refresh, stats)
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            for status, body, retry_after in served:
                headers = {"Retry-After": retry_after} if retry_after else {}
                mock.add(responses.POST, URL, body=body, status=status, headers=headers)
            state = refresher.refresh_now()
    return refresher, state


def page(users: list[dict[str, Any]]) -> tuple[int, bytes, None]:
    """One successful page holding every user, with its total."""
    body = {"code": 0, "msg": "success", "data": users, "total": len(users)}
    return 200, json.dumps(body).encode("utf-8"), None


def families_of(refresher: Refresher, *, openmetrics: bool) -> dict[str, Any]:
    """The served exposition parsed by prometheus_client, by family name."""
    body = refresher.serving().body(openmetrics=openmetrics, compressed=False)
    parse: Callable[[str], Any] = parse_openmetrics if openmetrics else parse_text
    return {family.name: family for family in parse(body.decode("utf-8"))}


def labels_of(family: Any) -> dict[str, float]:
    """user_id -> value for every sample of a per-user family; {} when absent."""
    if family is None:
        return {}
    return {sample.labels["user_id"]: sample.value for sample in family.samples}


def in_bytes(number: float, factor: int) -> float | None:
    """`number` units in bytes, or None when that is beyond a float's range."""
    try:
        product = float(number) * factor
    except OverflowError:
        return None
    return product if math.isfinite(product) else None


def assert_well_formed(record: UserQuota | None) -> None:
    """Sizes are finite and non-negative, times finite, each or None."""
    if record is None:
        return
    assert isinstance(record.user_id, str)
    assert record.user_id
    for name in SIZE_ATTRIBUTES:
        value = getattr(record, name)
        assert value is None or (math.isfinite(value) and value >= 0), (name, value)
    for name in TIME_ATTRIBUTES:
        value = getattr(record, name)
        assert value is None or math.isfinite(value), (name, value)


# Properties of one row.


@QUICK
@given(row=rows, zone=st.sampled_from(ZONES))
def test_any_row_is_read_without_an_exception_into_finite_values(
    row: Any, zone: tzinfo
) -> None:
    record, errors = RecordParser(1, 1, zone).parse(row)

    assert_well_formed(record)
    if not isinstance(row, dict):
        assert record is None
        assert [error.field for error in errors] == ["row"]
    assert all(error.field in (*ROW_FIELDS, "row") for error in errors)


@QUICK
@given(
    number=st.floats(min_value=0, allow_infinity=False)
    | st.integers(min_value=0, max_value=10**400),
    quota_unit=st.sampled_from(sorted(UNIT_FACTORS)),
    used_unit=st.sampled_from(sorted(UNIT_FACTORS)),
    as_text=st.booleans(),
)
def test_sizes_are_converted_by_their_unit_or_dropped_never_infinite(
    number: float, quota_unit: str, used_unit: str, as_text: bool
) -> None:
    value: Any = repr(number) if as_text else number
    parser = RecordParser(UNIT_FACTORS[quota_unit], UNIT_FACTORS[used_unit], ZONES[0])

    record, errors = parser.parse({"userId": "u", "quota": value, "used": value})

    assert record is not None
    assert_well_formed(record)
    fields = [error.field for error in errors]
    assert set(fields) <= {"quota", "used"}
    used = in_bytes(number, UNIT_FACTORS[used_unit])
    if used is None:
        assert record.used_bytes is None
        assert "used" in fields
    else:
        # Converted sizes are rounded to whole bytes.
        assert record.used_bytes == pytest.approx(used, abs=0.5)
        assert "used" not in fields
    quota = in_bytes(number, UNIT_FACTORS[quota_unit])
    if quota is None or quota == 0:
        assert record.quota_bytes is None
    else:
        assert record.quota_bytes == pytest.approx(quota, abs=0.5)


@QUICK
@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.just(timezone.utc),
    )
)
def test_an_iso_time_with_z_reads_back_as_its_unix_seconds(moment: datetime) -> None:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    record, errors = RecordParser(1, 1, ZONES[1]).parse(
        {"userId": "u", "used": 0, "createTime": text}
    )

    assert errors == []
    assert record is not None
    assert record.creation_seconds == pytest.approx(moment.timestamp(), abs=1e-3)


# Properties of a whole refresh from API page bodies to the exposition.


@HTTP
@given(
    served=st.lists(replies, min_size=1, max_size=3),
    page_size=st.sampled_from([1, 3, 100]),
    concurrency=st.sampled_from([1, 4]),
)
def test_any_page_body_ends_in_success_or_a_failure_with_a_reason(
    served: list[tuple[int, bytes, str | None]], page_size: int, concurrency: int
) -> None:
    refresher, state = refresh_against(
        served, page_size=page_size, concurrency=concurrency
    )

    status = state.status
    event(f"reason={status.reason}")
    if status.up:
        assert status.reason is None
    else:
        assert isinstance(status.reason, str)
        assert status.reason
    assert refresher.state is state

    text = families_of(refresher, openmetrics=False)
    assert [s.value for s in text["koodrive_up"].samples] == [float(status.up)]
    assert text["koodrive_users"].samples[0].value == status.users
    openmetrics = families_of(refresher, openmetrics=True)
    assert [s.value for s in openmetrics["koodrive_up"].samples] == [float(status.up)]
    for family in ("koodrive_user_used_bytes", "koodrive_user_quota_bytes"):
        assert labels_of(text.get(family)) == labels_of(openmetrics.get(family))


@HTTP
@given(
    user_ids=st.lists(utf8_text.filter(bool), min_size=1, max_size=12, unique=True),
    quoted=st.sampled_from(['"', "\\", "\n", '\\"', "\\n", "}", "=", ","]),
)
def test_user_ids_of_any_text_round_trip_exactly_as_label_values(
    user_ids: list[str], quoted: str
) -> None:
    escaped = f"x{quoted}y"
    if escaped not in user_ids:
        user_ids = [*user_ids, escaped]
    users = [
        {"userId": user_id, "quota": "1000", "used": position}
        for position, user_id in enumerate(user_ids)
    ]

    refresher, state = refresh_against([page(users)])

    assert state.status.up, state.status.reason
    expected = {user_id: float(position) for position, user_id in enumerate(user_ids)}
    for openmetrics in (False, True):
        families = families_of(refresher, openmetrics=openmetrics)
        assert labels_of(families["koodrive_user_used_bytes"]) == expected
        assert set(labels_of(families["koodrive_user_quota_bytes"])) == set(expected)


# Inputs that once broke the properties above.


@pytest.mark.parametrize("field", ["used", "quota", "createTime", "expirationTime"])
def test_an_integer_beyond_float_range_is_an_unreadable_value(field: str) -> None:
    record, errors = RecordParser(1, 1, timezone.utc).parse(
        {"userId": "u", "used": 1, field: 10**400}
    )

    assert record is not None
    assert_well_formed(record)
    assert getattr(record, ATTRIBUTE_OF[field]) is None
    if field != "quota":
        assert [error.field for error in errors] == [field]


def test_an_integer_beyond_float_range_drops_one_sample_not_the_refresh() -> None:
    users = [{"userId": "big", "used": 10**400}, {"userId": "fine", "used": 5}]

    refresher, state = refresh_against([page(users)])

    assert state.status.up, state.status.reason
    families = families_of(refresher, openmetrics=False)
    assert labels_of(families["koodrive_user_used_bytes"]) == {"fine": 5.0}
    errors = {
        s.labels["field"]: s.value for s in families["koodrive_record_errors"].samples
    }
    assert errors["used"] == 1.0


def test_a_bare_expiration_date_on_the_last_calendar_day_does_not_raise() -> None:
    record, errors = RecordParser(1, 1, timezone.utc).parse(
        {"userId": "u", "used": 1, "expirationTime": "9999-12-31"}
    )

    assert record is not None
    assert_well_formed(record)
    if record.expiration_seconds is None:
        assert [error.field for error in errors] == ["expirationTime"]
    else:
        assert record.expiration_seconds == 253402300800.0


def test_a_size_too_large_for_its_unit_is_dropped_not_published_as_infinite() -> None:
    parser = RecordParser(UNIT_FACTORS["tib"], UNIT_FACTORS["tib"], ZONES[0])

    record, errors = parser.parse({"userId": "u", "quota": "1e300", "used": 1e300})

    assert record is not None
    assert record.quota_bytes is None
    assert record.used_bytes is None
    assert [error.field for error in errors] == ["used"]


def test_a_user_id_utf8_cannot_encode_drops_that_row_only() -> None:
    body = (
        b'{"code":0,"total":2,"data":['
        b'{"userId":"\\ud800","used":1},{"userId":"ok","used":2}]}'
    )

    refresher, state = refresh_against([(200, body, None)])

    assert state.status.up, state.status.reason
    assert refresher.state is state
    families = families_of(refresher, openmetrics=False)
    assert labels_of(families["koodrive_user_used_bytes"]) == {"ok": 2.0}


@pytest.mark.parametrize("total", [10**19, 10**400], ids=["1e19", "1e400"])
def test_a_total_too_large_to_page_fails_with_a_specific_reason(total: int) -> None:
    body = json.dumps({"code": 0, "data": [{"userId": "u", "used": 1}], "total": total})

    _, state = refresh_against([(200, body.encode("utf-8"), None)])

    assert state.status.reason in ("too_many_pages", "bad_response")


def test_the_last_representable_day_is_read_for_times_other_than_expiry() -> None:
    record, errors = RecordParser(1, 1, timezone.utc).parse(
        {"userId": "u", "used": 1, "createTime": "9999-12-31"}
    )

    assert errors == []
    assert record is not None
    last_day = datetime.combine(date(9999, 12, 31), time(), timezone.utc)
    assert record.creation_seconds == last_day.timestamp()
