"""Tests of reading API rows into `UserQuota` records: sizes, units, times, IDs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from koodrive_exporter.config import UNIT_FACTORS
from koodrive_exporter.records import (
    TIME_FIELDS,
    FieldError,
    RecordParser,
    UserQuota,
)

UTC = timezone.utc
PLUS_EIGHT = timezone(timedelta(hours=8))
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
USER = "1505084218764547200"

RECORD_TIME_ATTRIBUTES = {
    "createTime": "creation_seconds",
    "effectiveTime": "effective_seconds",
    "expirationTime": "expiration_seconds",
}


# 2025-11-12T08:37:14Z, the instant of the one example time KooDrive publishes.
EXAMPLE_INSTANT = datetime(2025, 11, 12, 8, 37, 14, tzinfo=UTC).timestamp()


def parse_row(
    row: object,
    *,
    quota_factor: float = 1,
    used_factor: float = 1,
    tz: tzinfo = UTC,
) -> tuple[UserQuota | None, list[FieldError]]:
    """Parse one row with the given units and zone."""
    return RecordParser(quota_factor, used_factor, tz).parse(row)


def row_with(**fields: Any) -> dict[str, Any]:
    """A readable row for USER, overridden by `fields`."""
    row: dict[str, Any] = {"userId": USER, "quota": "1048576", "used": 0}
    row.update(fields)
    return row


def utc(*parts: int) -> float:
    """Unix seconds of a UTC wall-clock time."""
    return datetime(*parts, tzinfo=UTC).timestamp()


def read_create_time(value: object, tz: tzinfo = UTC) -> float | None:
    """The creation time read from `value`, asserting it raised no error."""
    record, errors = parse_row(row_with(createTime=value), tz=tz)
    assert errors == []
    assert record is not None
    return record.creation_seconds


# Sizes


def test_documented_example_row_reads_exactly() -> None:
    row = {
        "quota": "1048576",
        "userId": USER,
        "used": 0,
        "createTime": "2025-11-12T08:37:14.613Z",
        "effectiveTime": "2025-11-12T08:37:14.613Z",
        "expirationTime": "2025-11-12T08:37:14.613Z",
    }

    record, errors = parse_row(row)

    assert errors == []
    assert record is not None
    assert record.user_id == USER
    assert record.quota_bytes == 1048576
    assert record.used_bytes == 0
    for seconds in (
        record.creation_seconds,
        record.effective_seconds,
        record.expiration_seconds,
    ):
        assert seconds == pytest.approx(EXAMPLE_INSTANT + 0.613, abs=1e-6)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (2048, 2048.0),
        (2048.5, 2048.5),
        ("2048", 2048.0),
        ("1.5", 1.5),
        ("1.5e3", 1500.0),
        ("1.5E3", 1500.0),
        ("2e-1", 0.2),
        (" 2048 ", 2048.0),
        ("\t7\n", 7.0),
        ("+12", 12.0),
        (".5", 0.5),
        ("2.", 2.0),
    ],
)
def test_sizes_read_from_numbers_and_numeric_strings(
    raw: object, expected: float
) -> None:
    record, errors = parse_row(row_with(quota=raw, used=raw))

    assert errors == []
    assert record is not None
    assert record.quota_bytes == pytest.approx(expected)
    assert record.used_bytes == pytest.approx(expected)


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("bytes", 1),
        ("kb", 1000),
        ("mb", 1000000),
        ("gb", 1000000000),
        ("tb", 1000000000000),
        ("kib", 1024),
        ("mib", 1048576),
        ("gib", 1073741824),
        ("tib", 1099511627776),
    ],
)
def test_unit_factors_convert_sizes_to_bytes(unit: str, factor: int) -> None:
    assert UNIT_FACTORS[unit] == factor

    record, errors = parse_row(
        row_with(quota="3", used=2.5),
        quota_factor=UNIT_FACTORS[unit],
        used_factor=UNIT_FACTORS[unit],
    )

    assert errors == []
    assert record is not None
    assert record.quota_bytes == 3 * factor
    assert record.used_bytes == 2.5 * factor


def test_unit_table_has_exactly_the_documented_units() -> None:
    assert set(UNIT_FACTORS) == {
        "bytes",
        "kb",
        "mb",
        "gb",
        "tb",
        "kib",
        "mib",
        "gib",
        "tib",
    }


def test_quota_and_used_take_their_own_factors() -> None:
    record, _ = parse_row(
        row_with(quota="10", used=7753298),
        quota_factor=UNIT_FACTORS["gb"],
        used_factor=UNIT_FACTORS["kb"],
    )

    assert record is not None
    assert record.quota_bytes == 10 * 10**9
    assert record.used_bytes == 7753298 * 10**3


@pytest.mark.parametrize("quota", [None, "", "   ", "0", 0, 0.0, "-1", -5, "-0.5"])
def test_every_unlimited_quota_form_gives_no_quota_but_keeps_used(
    quota: object,
) -> None:
    record, errors = parse_row(row_with(quota=quota, used="512"), quota_factor=1024)

    assert errors == []
    assert record is not None
    assert record.quota_bytes is None
    assert record.used_bytes == 512


@pytest.mark.parametrize("quota", ["abc", "NaN", "1,024", True, [], {}])
def test_odd_quota_means_no_limit_and_is_reported(quota: object) -> None:
    record, errors = parse_row(row_with(quota=quota, used="512"), quota_factor=1024)

    assert record is not None
    assert record.quota_bytes is None
    assert record.used_bytes == 512
    assert [(error.field, error.user_id) for error in errors] == [("quota", USER)]


def test_missing_quota_key_means_unlimited() -> None:
    row = {"userId": USER, "used": 5}

    record, errors = parse_row(row)

    assert errors == []
    assert record is not None
    assert record.quota_bytes is None
    assert record.used_bytes == 5


@pytest.mark.parametrize(
    "used",
    [
        None,
        "",
        "x",
        "1,024",
        "1_000",
        "0x10",
        -1,
        "-0.5",
        "nan",
        "NaN",
        "inf",
        "-Infinity",
        "1e400",
        float("nan"),
        float("inf"),
        True,
        False,
        [],
        {},
    ],
)
def test_unreadable_used_drops_only_that_sample(used: object) -> None:
    row = row_with(quota="100", used=used, createTime="2025-11-12T08:37:14Z")

    record, errors = parse_row(row)

    assert record is not None
    assert record.used_bytes is None
    assert record.quota_bytes == 100
    assert record.creation_seconds == EXAMPLE_INSTANT
    assert [(error.field, error.user_id) for error in errors] == [("used", USER)]
    assert errors[0].reason


def test_missing_used_key_is_reported() -> None:
    record, errors = parse_row({"userId": USER, "quota": "1"})

    assert record is not None
    assert record.used_bytes is None
    assert [error.field for error in errors] == ["used"]


# Times


@pytest.mark.parametrize(
    "text",
    [
        "2025-11-12T08:37:14Z",
        "2025-11-12T08:37:14z",
        "2025-11-12t08:37:14Z",
        "2025-11-12T16:37:14+08:00",
        "2025-11-12T16:37:14+0800",
        "2025-11-12T16:37:14+08",
        "2025-11-12T03:07:14-0530",
        "2025-11-12T03:07:14-05:30",
        "2025-11-12 16:37:14 +08:00",
        "2025-11-12T08:37:14+00:00",
        "  2025-11-12T08:37:14Z  ",
    ],
)
def test_iso_times_with_zone_or_offset_name_one_instant(text: str) -> None:
    assert read_create_time(text, tz=SHANGHAI) == EXAMPLE_INSTANT


@pytest.mark.parametrize(
    ("text", "fraction"),
    [
        ("2025-11-12T08:37:14.613Z", 0.613),
        ("2025-11-12T08:37:14,5Z", 0.5),
        ("2025-11-12T08:37:14.613000Z", 0.613),
        ("2025-11-12T08:37:14.000001Z", 0.000001),
        ("2025-11-12T08:37:14.613000123Z", 0.613000123),
        ("2025-11-12T16:37:14.25+08:00", 0.25),
    ],
)
def test_fractional_seconds_are_kept(text: str, fraction: float) -> None:
    seconds = read_create_time(text)

    assert seconds == pytest.approx(EXAMPLE_INSTANT + fraction, abs=1e-6)


def test_time_without_seconds_is_read() -> None:
    assert read_create_time("2025-11-12T08:37Z") == utc(2025, 11, 12, 8, 37)


@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        ("2025-11-12 08:37:14", UTC, EXAMPLE_INSTANT),
        ("2025-11-12T08:37:14", UTC, EXAMPLE_INSTANT),
        ("2025-11-12 16:37:14", PLUS_EIGHT, EXAMPLE_INSTANT),
        ("2025-11-12T16:37:14", PLUS_EIGHT, EXAMPLE_INSTANT),
        ("2025-11-12 16:37:14", SHANGHAI, EXAMPLE_INSTANT),
        ("2025-11-12T16:37:14.5", SHANGHAI, EXAMPLE_INSTANT + 0.5),
        ("2025-01-15 12:00:00", BERLIN, utc(2025, 1, 15, 11)),
        ("2025-07-01 12:00:00", BERLIN, utc(2025, 7, 1, 10)),
        ("2025-07-01T12:00:00", BERLIN, utc(2025, 7, 1, 10)),
    ],
)
def test_naive_times_are_read_in_the_configured_zone(
    text: str, tz: tzinfo, expected: float
) -> None:
    assert read_create_time(text, tz=tz) == pytest.approx(expected, abs=1e-6)


def test_explicit_offset_wins_over_configured_zone() -> None:
    assert read_create_time("2025-07-01T12:00:00Z", tz=BERLIN) == utc(2025, 7, 1, 12)


@pytest.mark.parametrize(
    ("tz", "start", "next_midnight"),
    [
        (UTC, utc(2025, 11, 12), utc(2025, 11, 13)),
        (PLUS_EIGHT, utc(2025, 11, 11, 16), utc(2025, 11, 12, 16)),
        (SHANGHAI, utc(2025, 11, 11, 16), utc(2025, 11, 12, 16)),
    ],
)
def test_date_only_is_start_of_day_and_expiration_is_next_midnight(
    tz: tzinfo, start: float, next_midnight: float
) -> None:
    row = row_with(
        createTime="2025-11-12",
        effectiveTime="2025-11-12",
        expirationTime="2025-11-12",
    )

    record, errors = parse_row(row, tz=tz)

    assert errors == []
    assert record is not None
    assert record.creation_seconds == start
    assert record.effective_seconds == start
    assert record.expiration_seconds == next_midnight


def test_date_only_expiration_on_a_dst_change_day_ends_at_local_midnight() -> None:
    # Europe/Berlin moves to summer time on 2025-03-30: the day lasts 23 hours,
    # from 00:00+01:00 to the next 00:00+02:00.
    row = row_with(createTime="2025-03-30", expirationTime="2025-03-30")

    record, errors = parse_row(row, tz=BERLIN)

    assert errors == []
    assert record is not None
    assert record.creation_seconds == utc(2025, 3, 29, 23)
    assert record.expiration_seconds == utc(2025, 3, 30, 22)


def test_full_expiration_time_is_not_moved_to_end_of_day() -> None:
    record, _ = parse_row(row_with(expirationTime="2025-11-12T00:00:00Z"))

    assert record is not None
    assert record.expiration_seconds == utc(2025, 11, 12)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1762936634, EXAMPLE_INSTANT),
        (1762936634.613, EXAMPLE_INSTANT + 0.613),
        ("1762936634", EXAMPLE_INSTANT),
        (" 1762936634 ", EXAMPLE_INSTANT),
        ("1762936634.613", EXAMPLE_INSTANT + 0.613),
        (1762936634613, EXAMPLE_INSTANT + 0.613),
        ("1762936634613", EXAMPLE_INSTANT + 0.613),
        ("1.762936634613e12", EXAMPLE_INSTANT + 0.613),
    ],
)
def test_epoch_seconds_and_milliseconds_are_read(
    value: object, expected: float
) -> None:
    assert read_create_time(value) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("value", [0, "0", 0.0, "1970-01-01T00:00:00Z", "1969-12-31"])
def test_epoch_zero_and_earlier_mean_no_time_set(value: object) -> None:
    record, errors = RecordParser(1, 1, timezone.utc).parse(
        {"userId": "u", "used": 1, "expirationTime": value, "createTime": value}
    )

    assert record is not None
    assert record.expiration_seconds is None
    assert record.creation_seconds is None
    assert errors == []


def test_epoch_threshold_separates_seconds_from_milliseconds() -> None:
    assert read_create_time(99_999_999_999) == 99_999_999_999
    assert read_create_time(100_000_000_000) == 100_000_000


@pytest.mark.parametrize(
    "value",
    [
        "2025-02-30",
        "2025-02-29T00:00:00Z",
        "2025-13-01",
        "2025-00-10",
        "2025-11-12T25:00:00Z",
        "2025-11-12T08:60:00Z",
        "2025-11-12T08:37:61Z",
        "2025-11-12T08:37:14+24:00",
        "2025-11-12T08:37:14+08:60",
        "garbage",
        "12/11/2025",
        "2025-11-12T08:37:14 UTC",
        "2025-11-12T08:37:14.Z",
        "20251112T083714Z",
        "-1",
        -1,
        float("nan"),
        float("inf"),
        "1e400",
        True,
        False,
        [],
        {},
    ],
)
def test_unreadable_time_drops_only_that_field(value: object) -> None:
    row = row_with(
        quota="7",
        used=3,
        createTime=value,
        effectiveTime="2025-11-12T08:37:14Z",
    )

    record, errors = parse_row(row)

    assert record is not None
    assert record.creation_seconds is None
    assert record.effective_seconds == EXAMPLE_INSTANT
    assert record.quota_bytes == 7
    assert record.used_bytes == 3
    assert [(error.field, error.user_id) for error in errors] == [("createTime", USER)]


@pytest.mark.parametrize("name", TIME_FIELDS)
def test_time_error_names_its_own_field(name: str) -> None:
    record, errors = parse_row(row_with(**{name: "not a time"}))

    assert record is not None
    assert getattr(record, RECORD_TIME_ATTRIBUTES[name]) is None
    assert [error.field for error in errors] == [name]


@pytest.mark.parametrize("value", [None, "", "   "])
def test_empty_time_is_absent_without_error(value: object) -> None:
    row = row_with(createTime=value, effectiveTime=value, expirationTime=value)

    record, errors = parse_row(row)

    assert errors == []
    assert record is not None
    assert record.creation_seconds is None
    assert record.effective_seconds is None
    assert record.expiration_seconds is None


def test_several_bad_values_in_one_row_are_each_reported() -> None:
    row = row_with(used="x", createTime="bad", expirationTime="2025-02-30")

    record, errors = parse_row(row)

    assert record is not None
    assert record.quota_bytes == 1048576
    assert sorted(error.field for error in errors) == [
        "createTime",
        "expirationTime",
        "used",
    ]


def test_far_future_date_only_expiration_is_a_field_error_not_a_crash() -> None:
    row = row_with(used=1, expirationTime="9999-12-31")

    record, errors = parse_row(row)

    assert record is not None
    assert record.used_bytes == 1
    assert record.expiration_seconds is None
    assert [(error.field, error.user_id) for error in errors] == [
        ("expirationTime", USER)
    ]


# User IDs and rows


@pytest.mark.parametrize(
    "user_id",
    [
        USER,
        "0042",
        'quote"inside',
        "back\\slash",
        "用户-é",
        " padded ",
        "9223372036854775808",
    ],
)
def test_string_user_ids_are_kept_exactly(user_id: str) -> None:
    record, errors = parse_row(row_with(userId=user_id))

    assert errors == []
    assert record is not None
    assert record.user_id == user_id


@pytest.mark.parametrize(
    ("user_id", "text"),
    [
        (1505084218764547200, "1505084218764547200"),
        (2**53 + 1, "9007199254740993"),
        (42, "42"),
    ],
)
def test_integer_user_ids_are_kept_digit_for_digit(user_id: int, text: str) -> None:
    record, errors = parse_row(row_with(userId=user_id))

    assert errors == []
    assert record is not None
    assert record.user_id == text


def test_nineteen_digit_json_number_id_survives_decoding() -> None:
    row = json.loads('{"userId": 1505084218764547201, "used": 1}')

    record, _ = parse_row(row)

    assert record is not None
    assert record.user_id == "1505084218764547201"


@pytest.mark.parametrize("user_id", [1.5e18, 42.0, None, "", True, [], {}])
def test_unusable_user_id_drops_the_row(user_id: object) -> None:
    record, errors = parse_row(row_with(userId=user_id))

    assert record is None
    assert [(error.field, error.user_id) for error in errors] == [("userId", None)]


def test_missing_user_id_drops_the_row() -> None:
    record, errors = parse_row({"quota": "1", "used": 1})

    assert record is None
    assert [error.field for error in errors] == ["userId"]


@pytest.mark.parametrize("row", [None, "row", 5, [USER, 1], (USER,)])
def test_row_that_is_not_an_object_is_reported(row: object) -> None:
    record, errors = parse_row(row)

    assert record is None
    assert len(errors) == 1
    assert errors[0].field == "row"
    assert type(row).__name__ in errors[0].reason


def test_converted_sizes_are_whole_bytes_without_float_noise() -> None:
    record, _ = RecordParser(1000, 1000, timezone.utc).parse(
        {"userId": "u", "quota": "2118997.05", "used": 2118997.05}
    )

    assert record is not None
    assert record.used_bytes == 2118997050.0
    assert record.quota_bytes == record.used_bytes
