"""The collectors: what each fetches from KooDrive and how it is rendered.

`users` lists every user's quota (on by default); `overview`, `departments`
and `groups` read the tenant's totals, its departments and its team spaces.
Each collector fetches and renders on its own, so one failing API does not
stop the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .client import KooDriveClient
from .exposition import (
    Block,
    OverviewCollector,
    SpacesCollector,
    render,
    render_users,
)
from .snapshot import Listing


@dataclass(frozen=True)
class Collected:
    """One collector's fresh result: rendered, with what to count and log."""

    block: Block
    users: int | None = None
    record_errors: dict[str, int] = field(default_factory=dict)
    error_examples: dict[str, str] = field(default_factory=dict)
    over_limit: int = 0
    details: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """A named collector: `collect(deadline)` returns Collected or raises."""

    name: str
    collect: Callable[[float], Collected]


def users_source(list_users: Callable[[float], Listing]) -> Source:
    """Per-user quota, usage and validity."""

    def collect(deadline: float) -> Collected:
        listing = list_users(deadline)
        return Collected(
            block=render_users(listing.items),
            users=len(listing.items),
            record_errors=listing.record_errors,
            error_examples=listing.error_examples,
            over_limit=listing.over_limit,
            details=_details(listing),
        )

    return Source("users", collect)


def build_sources(client: KooDriveClient, names: Sequence[str]) -> list[Source]:
    """The enabled collectors over one client, in a fixed order."""
    factories: dict[str, Callable[[], Source]] = {
        "users": lambda: users_source(client.list_users),
        "overview": lambda: _overview_source(client),
        "departments": lambda: _spaces_source(
            "departments",
            client.list_departments,
            "department",
            "koodrive_department_users",
        ),
        "groups": lambda: _spaces_source(
            "groups", client.list_groups, "group", "koodrive_group_members"
        ),
    }
    return [factories[name]() for name in factories if name in names]


def _overview_source(client: KooDriveClient) -> Source:
    def collect(deadline: float) -> Collected:
        overview, errors = client.get_overview(deadline)
        counts: dict[str, int] = {}
        for error in errors:
            counts[error.field] = counts.get(error.field, 0) + 1
        examples = {error.field: error.reason for error in errors}
        block = render(OverviewCollector(overview))
        return Collected(block=block, record_errors=counts, error_examples=examples)

    return Source("overview", collect)


def _spaces_source(
    name: str,
    fetch: Callable[[float], Listing],
    kind: str,
    members_metric: str,
) -> Source:
    def collect(deadline: float) -> Collected:
        listing = fetch(deadline)
        block = render(SpacesCollector(kind, members_metric, listing.items))
        return Collected(
            block=block,
            record_errors=listing.record_errors,
            error_examples=listing.error_examples,
            details=_details(listing),
        )

    return Source(name, collect)


def _details(listing: Listing) -> dict[str, int]:
    return {
        "pages": listing.pages,
        "duplicates": listing.duplicates,
        "filtered": listing.filtered,
    }
