"""One row of the space-usage API -> one typed `UserQuota`, tolerant of every form.

KooDrive documents `quota` as a string and `used` as a double, but not their
units, nor how an unlimited quota or the times are written. This module reads
every form seen or plausible, converts sizes to bytes with the configured
units, and reports each value it cannot read instead of failing the row.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo

# Epoch values at or above this are taken as milliseconds: 1e11 seconds lies
# in the year 5138, while 1e11 milliseconds is 1973, so no real date is
# ambiguous between the two readings.
EPOCH_MILLISECONDS_THRESHOLD = 1e11

TIME_FIELDS = ("createTime", "effectiveTime", "expirationTime")

_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


@dataclass(frozen=True, slots=True)
class UserQuota:
    """One user's space: sizes in bytes, times in Unix seconds, None when absent."""

    user_id: str
    quota_bytes: float | None
    used_bytes: float | None
    creation_seconds: float | None
    effective_seconds: float | None
    expiration_seconds: float | None


@dataclass(frozen=True, slots=True)
class FieldError:
    """A value that could not be read; its sample is dropped, the row is kept."""

    field: str
    user_id: str | None
    reason: str


class RecordParser:
    """Reads API rows with the configured units and time zone."""

    def __init__(self, quota_factor: float, used_factor: float, tz: tzinfo) -> None:
        self._quota_factor = quota_factor
        self._used_factor = used_factor
        self._tz = tz

    def parse(self, row: object) -> tuple[UserQuota | None, list[FieldError]]:
        """Read one row; a row without a readable user ID yields no record."""
        if not isinstance(row, dict):
            return None, [
                FieldError("row", None, f"not an object: {type(row).__name__}")
            ]

        errors: list[FieldError] = []
        try:
            user_id = read_user_id(row.get("userId"))
        except ValueError as exc:
            return None, [FieldError("userId", None, str(exc))]

        raw_quota = row.get("quota")
        quota = read_quota(raw_quota, self._quota_factor)
        if quota is None and _is_unexpected_quota(raw_quota):
            # Still "no limit", but an odd form is counted and logged, so an
            # operator can tell a garbled quota from a deliberate one.
            reason = f"not a number, read as no limit: {_preview(raw_quota)}"
            errors.append(FieldError("quota", user_id, reason))
        used = self._used(row, user_id, errors)
        times = [self._time(row, name, user_id, errors) for name in TIME_FIELDS]
        record = UserQuota(user_id, quota, used, *times)
        return record, errors

    def _used(self, row: dict, user_id: str, errors: list[FieldError]) -> float | None:
        try:
            value = read_number(row.get("used"))
        except ValueError as exc:
            errors.append(FieldError("used", user_id, str(exc)))
            return None
        if value < 0:
            errors.append(FieldError("used", user_id, "negative size"))
            return None
        try:
            return scaled(value, self._used_factor)
        except ValueError as exc:
            errors.append(FieldError("used", user_id, str(exc)))
            return None

    def _time(
        self, row: dict, name: str, user_id: str, errors: list[FieldError]
    ) -> float | None:
        value = row.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            seconds = read_time(value, self._tz, end_of_day=name == "expirationTime")
        except ValueError as exc:
            errors.append(FieldError(name, user_id, str(exc)))
            return None
        # Epoch 0 is how many systems write "not set"; as a date it would make
        # every such quota look expired since 1970.
        return seconds if seconds > 0 else None


def read_user_id(value: object) -> str:
    """A user ID exactly as sent; integers are kept digit for digit."""
    if isinstance(value, str):
        if not value:
            raise ValueError("empty user ID")
        if not _encodable(value):
            raise ValueError("user ID is not valid Unicode text")
        return value
    # json.loads keeps integers exact, so a 19-digit ID sent as a number is
    # safe; a float has already lost digits and cannot name a user reliably.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None:
        raise ValueError("missing user ID")
    raise ValueError(f"user ID of type {type(value).__name__}")


def read_number(value: object) -> float:
    """A finite number from a JSON number or a numeric string."""
    if isinstance(value, bool):
        raise ValueError("boolean where a number was expected")
    if value is None or value == "":
        raise ValueError("missing value")
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        value = value.strip()
    elif not isinstance(value, (int, float)):
        raise ValueError(f"not a number: {_preview(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("number beyond the range of a float") from None
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def scaled(number: float, factor: float) -> float:
    """`number` units of `factor` bytes; raises ValueError if that overflows."""
    product = number * factor
    if not math.isfinite(product):
        raise ValueError("size beyond the range of a float once in bytes")
    # Converted sizes are whole bytes; rounding removes float noise such as
    # 2118997.05 KB -> 2118997049.9999998, which could keep a user exactly at
    # quota just below a ratio of 1.
    return float(round(product)) if factor != 1 else product


def read_quota(value: object, factor: float) -> float | None:
    """Bytes of quota, or None when the value means no limit is set.

    Empty, null, non-numeric, zero and negative quotas all mean "no limit":
    publishing them as a size would raise false alerts or hide real ones.
    """
    try:
        number = read_number(value)
        return scaled(number, factor) if number > 0 else None
    except ValueError:
        return None


def _is_unexpected_quota(value: object) -> bool:
    """True for quota values other than the usual empty, null or numeric forms."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return False
    try:
        read_number(value)
    except ValueError:
        return True
    return False


def read_time(value: object, tz: tzinfo, *, end_of_day: bool = False) -> float:
    """Unix seconds from every time form KooDrive may send.

    Epoch seconds or milliseconds (numbers or numeric strings), ISO 8601 with
    `Z`, an offset or none (then in `tz`), `YYYY-MM-DD HH:MM:SS`, and a bare
    date, which means the start of that day, or its end when `end_of_day`.
    """
    if isinstance(value, bool):
        raise ValueError("boolean where a time was expected")
    if isinstance(value, (int, float)):
        return _epoch(read_number(value))
    if not isinstance(value, str):
        raise ValueError(f"time of type {type(value).__name__}")

    text = value.strip()
    fast = _utc_iso_seconds(text)
    if fast is not None:
        return fast
    if _NUMBER.match(text):
        return _epoch(float(text))
    match = _ISO.match(text)
    if not match:
        raise ValueError(f"unrecognised time: {_preview(text)}")
    return _iso_seconds(match, tz, end_of_day=end_of_day)


def _utc_iso_seconds(text: str) -> float | None:
    """The common `2025-11-12T08:37:14.613Z` form through the C parser, or None."""
    if len(text) < 20 or text[-1] not in "Zz" or text[10] not in "Tt":
        return None
    try:
        moment = datetime.fromisoformat(text[:-1])
    except ValueError:
        return None
    if moment.tzinfo is not None:
        return None
    return moment.replace(tzinfo=timezone.utc).timestamp()


def _epoch(number: float) -> float:
    if not math.isfinite(number) or number < 0:
        raise ValueError("epoch time out of range")
    if number >= EPOCH_MILLISECONDS_THRESHOLD:
        number /= 1000.0
    return number


def _iso_seconds(match: re.Match[str], tz: tzinfo, *, end_of_day: bool) -> float:
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        if hour is None:
            start = datetime.combine(
                date(int(year), int(month), int(day)), datetime.min.time()
            )
            moment = start + timedelta(days=1) if end_of_day else start
        else:
            moment = datetime(
                int(year),
                int(month),
                int(day),
                int(hour),
                int(minute),
                int(second or 0),
            )
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"impossible date: {match.group(0)}") from exc

    zone = _offset_zone(offset) if offset else tz
    seconds = moment.replace(tzinfo=zone).timestamp()
    if fraction:
        seconds += int(fraction) / 10 ** len(fraction)
    return seconds


def _offset_zone(offset: str) -> tzinfo:
    if offset.upper() == "Z":
        return timezone.utc
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"impossible offset: {offset}")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _encodable(text: str) -> bool:
    # JSON may carry lone surrogates, which no label value can hold.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True, slots=True)
class TenantOverview:
    """Tenant totals in bytes; None where the API sent nothing readable."""

    capacity_bytes: float | None
    allocated_bytes: float | None
    used_bytes: float | None
    quota_bytes: float | None


@dataclass(frozen=True, slots=True)
class SpaceUsage:
    """A department's or team space's quota, use and member count."""

    space_id: str
    name: str
    quota_bytes: float | None
    used_bytes: float | None
    members: float | None


# API field -> TenantOverview attribute.
OVERVIEW_FIELDS = {
    "totalCapacity": "capacity_bytes",
    "totalAllocation": "allocated_bytes",
    "totalUsed": "used_bytes",
    "quota": "quota_bytes",
}


def read_overview(
    document: object, factors: dict[str, float]
) -> tuple[TenantOverview, list[FieldError]]:
    """Tenant totals from the overview body (fields at the top or under `data`)."""
    if isinstance(document, dict) and isinstance(document.get("data"), dict):
        document = document["data"]
    if not isinstance(document, dict):
        return TenantOverview(None, None, None, None), [
            FieldError("overview", None, "no overview object")
        ]
    errors: list[FieldError] = []
    values: dict[str, float | None] = {}
    for api_field, attribute in OVERVIEW_FIELDS.items():
        values[attribute] = _size(document.get(api_field), factors[api_field])
        if values[attribute] is None and api_field in document:
            errors.append(
                FieldError(f"overview.{api_field}", None, "not a non-negative number")
            )
    return TenantOverview(**values), errors


class SpaceParser:
    """Reads department or team-space rows with the configured units."""

    def __init__(
        self, kind: str, factors: dict[str, float], members_field: str
    ) -> None:
        self._kind = kind
        self._factors = factors
        self._members_field = members_field

    def parse(self, row: object) -> tuple[SpaceUsage | None, list[FieldError]]:
        """Read one row; a row without a readable ID yields no record."""
        if not isinstance(row, dict):
            return None, [FieldError(f"{self._kind}.row", None, "not an object")]
        try:
            space_id = read_user_id(row.get("id"))
        except ValueError as exc:
            return None, [FieldError(f"{self._kind}.id", None, str(exc))]
        name = row.get("name")
        name = name if isinstance(name, str) and _encodable(name) else ""

        errors: list[FieldError] = []
        quota = read_quota(row.get("capacity"), self._factors["capacity"])
        used = _size(row.get("spaceUsed"), self._factors["spaceUsed"])
        members = _size(row.get(self._members_field), 1)
        for api_field, value in (("spaceUsed", used), (self._members_field, members)):
            if value is None and row.get(api_field) is not None:
                errors.append(
                    FieldError(f"{self._kind}.{api_field}", space_id, "not a number")
                )
        return SpaceUsage(space_id, name, quota, used, members), errors


def _size(value: object, factor: float) -> float | None:
    """A non-negative size times `factor`, or None when absent or unreadable."""
    try:
        number = read_number(value)
        return scaled(number, factor) if number >= 0 else None
    except ValueError:
        return None
