"""Tenant data for the simulator: generated users, users read from a file, units.

A user is a plain dict of the raw fields KooDrive sends for one row of the
per-user space usage listing: `userId`, `quota`, `used`, `createTime`,
`effectiveTime` and `expirationTime`. Values are served exactly as stored,
so a file can hold odd values on purpose to see how a client copes.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

UNITS: dict[str, int] = {
    "bytes": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}

# No public page says how an unlimited quota is sent, so the generator mixes
# the forms a client is most likely to meet.
UNLIMITED_QUOTAS: tuple[str | None, ...] = ("", None, "0", "-1")

EXPIRING_WINDOW_DAYS = 14

_GIB = 2**30
_SECOND_MS = 1000
_DAY_MS = 86_400 * _SECOND_MS
_YEAR_MS = 365 * _DAY_MS

# Quotas an administrator would hand out, repeated to weight the common ones.
_QUOTAS_GIB = (10, 20, 20, 50, 50, 50, 100, 100, 100, 200, 500, 1024)

# Share of each profile; every user left over is "normal": well below quota,
# valid for a long time yet.
_PROFILE_SHARES = (
    ("over_90", 0.08),
    ("full", 0.03),
    ("unlimited", 0.07),
    ("expiring", 0.05),
    ("expired", 0.03),
)

# From this many users on, every profile appears at least once.
_ALL_PROFILES_FROM = 20


def format_time(epoch_ms: int) -> str:
    """Render epoch milliseconds as ISO 8601 UTC with milliseconds and `Z`."""
    seconds, millis = divmod(epoch_ms, _SECOND_MS)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{millis:03d}Z"


def generate_users(
    count: int, *, seed: int = 0, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Make `count` realistic users; the same seed and `now` give the same users.

    `now` defaults to the start of the current UTC day, so two calls on the
    same day agree, and users "expiring soon" expire between one and fourteen
    days after that.
    """
    if count < 0:
        raise ValueError(f"count must not be negative: {count}")
    if now is None:
        today = datetime.now(timezone.utc).date()
        now = datetime(today.year, today.month, today.day, tzinfo=timezone.utc)
    now_ms = int(now.timestamp() * _SECOND_MS)
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)

    profiles = _profiles(count, rng)
    user_ids = rng.sample(range(10**18, 10**19), count)

    users = []
    for user_id, profile in zip(user_ids, profiles, strict=True):
        quota, used = _quota_and_used(profile, rng)
        create_ms, effective_ms, expiration_ms = _validity(profile, now_ms, rng)
        users.append(
            {
                "userId": str(user_id),
                "quota": quota,
                "used": used,
                "createTime": format_time(create_ms),
                "effectiveTime": format_time(effective_ms),
                "expirationTime": format_time(expiration_ms),
            }
        )
    return users


def _profiles(count: int, rng: random.Random) -> list[str]:
    """Exact shares of each profile, in a seeded random order."""
    profiles: list[str] = []
    for name, share in _PROFILE_SHARES:
        wanted = int(count * share)
        if count >= _ALL_PROFILES_FROM:
            wanted = max(wanted, 1)
        profiles.extend([name] * wanted)
    profiles.extend(["normal"] * (count - len(profiles)))
    rng.shuffle(profiles)
    return profiles


def _quota_and_used(profile: str, rng: random.Random) -> tuple[str | None, int]:
    """A quota string in bytes and a used byte count that fit the profile."""
    if profile == "unlimited":
        return rng.choice(UNLIMITED_QUOTAS), int(rng.random() * 500 * _GIB)

    quota = rng.choice(_QUOTAS_GIB) * _GIB
    if profile == "full":
        used = quota
    elif profile == "over_90":
        used = int(quota * rng.uniform(0.905, 0.995))
    else:
        draw = rng.random()
        # A few accounts were never used; the rest lean towards light use.
        used = 0 if draw < 0.05 else int(quota * 0.8 * draw * draw)
    return str(quota), used


def _validity(profile: str, now_ms: int, rng: random.Random) -> tuple[int, int, int]:
    """Creation, effective and expiration times, strictly increasing."""
    if profile == "expired":
        expiration = now_ms - _between(rng, _DAY_MS, _YEAR_MS)
        create = expiration - _between(rng, 60 * _DAY_MS, 3 * _YEAR_MS)
    else:
        create = now_ms - _between(rng, 30 * _DAY_MS, 3 * _YEAR_MS)
        if profile == "expiring":
            window = EXPIRING_WINDOW_DAYS * _DAY_MS
            expiration = now_ms + _between(rng, _DAY_MS, window)
        else:
            expiration = now_ms + _between(rng, 30 * _DAY_MS, 3 * _YEAR_MS)
    effective = create + _between(rng, _SECOND_MS, 2 * _DAY_MS)
    return create, effective, expiration


def _between(rng: random.Random, low: int, high: int) -> int:
    """A random integer in [low, high); much quicker than `randint` in a hot loop."""
    return low + int(rng.random() * (high - low))


class _KeepTimesAsText(yaml.SafeLoader):
    """A safe YAML loader that leaves timestamps as the strings written."""


_KeepTimesAsText.yaml_implicit_resolvers = {
    first: [
        (tag, regexp) for tag, regexp in resolvers if not tag.endswith(":timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_users(path: str | Path) -> list[dict[str, Any]]:
    """Read users from a JSON or YAML file: a list, or `{"users": [...]}`."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        loaded = yaml.load(text, Loader=_KeepTimesAsText)  # noqa: S506 (a safe loader)
    else:
        loaded = json.loads(text)

    if isinstance(loaded, dict) and "users" in loaded:
        loaded = loaded["users"]
    if not isinstance(loaded, list):
        raise ValueError(f"{path}: expected a list of users or {{'users': [...]}}")
    for position, user in enumerate(loaded):
        if not isinstance(user, dict):
            raise ValueError(f"{path}: user {position} is not a mapping")
    return loaded


def scale_units(
    users: Iterable[dict[str, Any]], quota_divisor: int = 1, used_divisor: int = 1
) -> list[dict[str, Any]]:
    """Copy users with `quota` and `used` divided from bytes into larger units.

    Only positive numbers are scaled: unlimited markers and odd values are
    copied unchanged. Quotas stay strings, `used` stays a JSON number.
    """
    if quota_divisor < 1 or used_divisor < 1:
        raise ValueError("unit divisors must be at least 1")
    scaled = []
    for user in users:
        copy = dict(user)
        if quota_divisor != 1 and "quota" in copy:
            copy["quota"] = _scaled_quota(copy["quota"], quota_divisor)
        if used_divisor != 1 and "used" in copy:
            copy["used"] = _scaled_used(copy["used"], used_divisor)
        scaled.append(copy)
    return scaled


def _scaled_quota(quota: Any, divisor: int) -> Any:
    if isinstance(quota, bool) or not isinstance(quota, (str, int, float)):
        return quota
    try:
        amount = Decimal(str(quota))
    except InvalidOperation:
        return quota
    if not amount.is_finite() or amount <= 0:
        return quota
    return format((amount / divisor).normalize(), "f")


def _scaled_used(used: Any, divisor: int) -> Any:
    if isinstance(used, bool) or not isinstance(used, (int, float)):
        return used
    if not math.isfinite(used) or used <= 0:
        return used
    amount = Decimal(str(used)) / divisor
    return int(amount) if amount == amount.to_integral_value() else float(amount)
