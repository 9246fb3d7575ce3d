"""Departments, team spaces and tenant totals, derived from the simulated users.

Beside the per-user listing, KooDrive reports space per department, per group
(team space) and for the whole tenant, each in the unit its reference page
gives: department and team-space capacities in GB (10^9 bytes), their usage in
KB (10^3 bytes), and the tenant's totals in KB with its quota in GB.
The simulator derives all three from the users it serves, so they agree the
way a real tenant's numbers do:

- every user belongs to one department, picked from a CRC-32 of its user ID,
  so the same user lands in the same department in every run;
- a department's `capacity` is its members' positive quotas in GB, its
  `spaceUsed` their usage in KB, its `userNum` the number of members;
- the tenant's `totalUsed` is the departments' `spaceUsed` added in listing
  order, and its `totalAllocation` (in KB) the departments' `capacity` added
  in listing order plus the groups' `capacity` added in listing order, times
  10^6, so a client adding the served numbers up the same way gets the very
  same floats.

Groups do not depend on the users: they come from a seed alone.
"""

from __future__ import annotations

import math
import random
import re
import zlib
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

DEFAULT_DEPARTMENTS = 8
DEFAULT_GROUPS = 5

BYTES_PER_KB = 10**3
BYTES_PER_GB = 10**9
KB_PER_GB = BYTES_PER_GB // BYTES_PER_KB

# Without a configured tenant capacity, the tenant holds this much more than
# it has handed out, rounded up to a whole step.
CAPACITY_HEADROOM = Fraction(5, 4)
CAPACITY_STEP_GB = 1000

DEPARTMENT_STATUS_ACTIVE = 1

# Two names carry a quote, a backslash and non-ASCII letters on purpose, so a
# client's JSON decoding and label escaping are exercised by the defaults.
DEPARTMENT_NAMES = (
    "Engineering",
    "Sales",
    "Finance",
    'R&D "Labs" \\ Zürich',
    "Marketing",
    "Customer Support",
    "Operations",
    'Légal "Conformité" \\ Genève',
    "Human Resources",
    "Product",
    "Facilities",
    "海外销售 Overseas Sales",
)

GROUP_NAMES = (
    "Project Apollo",
    "Quarterly Close",
    "Brand Assets",
    'Design "Review" \\ Köln',
    "Board Papers",
    "Field Photos",
    "Data Platform",
    "Onboarding",
)

_GROUP_CAPACITIES_GB = (200, 500, 500, 1000, 1000, 2000, 5000)
_GROUP_MEMBERS = (2, 150)

# The shape of a number written as text: sign, digits, optional exponent.
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

# Numbers beyond this many decimal digits would not fit a double either.
_LARGEST_EXPONENT = 308


def department_index(user_id: Any, count: int) -> int:
    """The position, from 0, of the department a user belongs to among `count`."""
    if count < 1:
        raise ValueError(f"there must be at least one department: {count}")
    key = user_id if isinstance(user_id, str) else repr(user_id)
    return zlib.crc32(key.encode("utf-8", errors="surrogatepass")) % count


def department_name(index: int) -> str:
    """The name of the department at `index`; names repeat with a number after."""
    base = DEPARTMENT_NAMES[index % len(DEPARTMENT_NAMES)]
    round_number = index // len(DEPARTMENT_NAMES)
    return base if round_number == 0 else f"{base} {round_number + 1}"


def size_in_bytes(value: Any, unit: int = 1) -> int | Fraction | None:
    """Bytes in a positive size given as a number or numeric text, else None.

    `unit` is the number of bytes in one unit of `value`. Zero, negative,
    non-numeric and non-finite values give None: they hold no space.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        amount: int | Fraction = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        amount = int(value)
    elif isinstance(value, (str, float)):
        text = value.strip() if isinstance(value, str) else repr(value)
        if not _NUMBER_TEXT.fullmatch(text):
            return None
        try:
            decimal = Decimal(text)
        except InvalidOperation:
            return None
        if decimal.adjusted() > _LARGEST_EXPONENT:
            return None
        amount = Fraction(decimal)
    else:
        return None
    return amount * unit if amount > 0 else None


def generate_groups(count: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """Make `count` team spaces; the same seed gives the same groups.

    Most groups are well below capacity; when there are at least two, one is
    over 90% full and one is full to the kilobyte.
    """
    if count < 0:
        raise ValueError(f"count must not be negative: {count}")
    rng = random.Random(f"koodrive-simulator-groups:{seed}")  # noqa: S311 (test data)

    profiles = (["over_90", "full"] + ["normal"] * count)[:count]
    rng.shuffle(profiles)

    groups = []
    for index, profile in enumerate(profiles):
        capacity_gb = rng.choice(_GROUP_CAPACITIES_GB)
        capacity_kb = capacity_gb * KB_PER_GB
        if profile == "full":
            used_kb = capacity_kb
        elif profile == "over_90":
            used_kb = int(capacity_kb * rng.uniform(0.905, 0.995))
        else:
            used_kb = int(capacity_kb * rng.uniform(0.02, 0.85))
        base = GROUP_NAMES[index % len(GROUP_NAMES)]
        round_number = index // len(GROUP_NAMES)
        groups.append(
            {
                "id": f"group-{index + 1:03d}",
                "name": base if round_number == 0 else f"{base} {round_number + 1}",
                "capacity": float(capacity_gb),
                "spaceUsed": float(used_kb),
                "memberNum": rng.randint(*_GROUP_MEMBERS),
            }
        )
    return groups


def default_tenant_capacity_gb(allocation_gb: float) -> float:
    """A quarter more than what is handed out, rounded up to a whole 1000 GB."""
    steps = math.ceil(Fraction(allocation_gb) * CAPACITY_HEADROOM / CAPACITY_STEP_GB)
    return float(steps * CAPACITY_STEP_GB)


class TenantSpaces:
    """Departments, groups and tenant totals for one set of users, computed once.

    Serving a page is then a filter over the departments at most and a slice,
    whatever the number of users. Without `tenant_capacity_gb`, the capacity
    is `default_tenant_capacity_gb` of the allocation.
    """

    def __init__(
        self,
        users: Iterable[dict[str, Any]],
        *,
        departments: int = DEFAULT_DEPARTMENTS,
        groups: Sequence[dict[str, Any]] = (),
        tenant_capacity_gb: float | None = None,
        quota_unit: int = 1,
        used_unit: int = 1,
    ) -> None:
        if departments < 1:
            raise ValueError(f"there must be at least one department: {departments}")
        if quota_unit < 1 or used_unit < 1:
            raise ValueError("units must be at least one byte")
        if tenant_capacity_gb is not None and not (
            math.isfinite(tenant_capacity_gb) and tenant_capacity_gb > 0
        ):
            raise ValueError(
                f"the tenant capacity must be a positive number of GB: "
                f"{tenant_capacity_gb}"
            )

        quota_bytes: list[int | Fraction] = [0] * departments
        used_bytes: list[int | Fraction] = [0] * departments
        members = [0] * departments
        for user in users:
            index = department_index(user.get("userId"), departments)
            members[index] += 1
            quota = size_in_bytes(user.get("quota"), quota_unit)
            if quota is not None:
                quota_bytes[index] += quota
            used = size_in_bytes(user.get("used"), used_unit)
            if used is not None:
                used_bytes[index] += used

        self.departments: tuple[dict[str, Any], ...] = tuple(
            {
                "id": f"dept-{index + 1:03d}",
                "name": department_name(index),
                "status": DEPARTMENT_STATUS_ACTIVE,
                "capacity": _in_unit(quota_bytes[index], BYTES_PER_GB),
                "spaceUsed": _in_unit(used_bytes[index], BYTES_PER_KB),
                "userNum": members[index],
            }
            for index in range(departments)
        )
        self.groups: tuple[dict[str, Any], ...] = tuple(dict(row) for row in groups)

        allocation_gb = sum(row["capacity"] for row in self.departments) + sum(
            row["capacity"] for row in self.groups
        )
        if tenant_capacity_gb is None:
            tenant_capacity_gb = default_tenant_capacity_gb(allocation_gb)
        self.tenant_capacity_gb = float(tenant_capacity_gb)
        # The overview reports its totals in KB, only its quota in GB.
        self.overview: dict[str, float] = {
            "totalAllocation": float(allocation_gb) * KB_PER_GB,
            "totalCapacity": self.tenant_capacity_gb * KB_PER_GB,
            "totalUsed": float(sum(row["spaceUsed"] for row in self.departments)),
            "quota": self.tenant_capacity_gb,
        }

    def find_departments(self, key_word: str | None) -> Sequence[dict[str, Any]]:
        """All departments, or those whose name contains `key_word`, in id order."""
        if not key_word:
            return self.departments
        return [row for row in self.departments if key_word in row["name"]]


def _in_unit(size_bytes: int | Fraction, unit_bytes: int) -> float:
    """A byte count in a larger unit, rounded once to the nearest float."""
    return float(Fraction(size_bytes, unit_bytes))
