"""The user listing the API pages over, and the validation of a page request."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_LIMIT = 10
MAX_USER_IDS = 50


class PageRequestError(ValueError):
    """The request body breaks the API's parameter rules; the message says how."""


@dataclass(frozen=True)
class PageRequest:
    """A validated request body: optional user filter, page size and offset."""

    user_ids: tuple[str, ...] | None
    limit: int
    offset: int


def parse_page_request(body: bytes, max_page_size: int) -> PageRequest:
    """Read and check `{"userIds": [...], "limit": N, "offset": N}`, all optional."""
    if not body.strip():
        raw: Any = {}
    else:
        try:
            raw = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise PageRequestError(f"body is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise PageRequestError("body must be a JSON object")

    limit = raw.get("limit")
    if limit is None:
        limit = DEFAULT_LIMIT
    elif not _is_int(limit) or not 1 <= limit <= max_page_size:
        raise PageRequestError(f"limit must be an integer from 1 to {max_page_size}")

    offset = raw.get("offset")
    if offset is None:
        offset = 0
    elif not _is_int(offset) or offset < 0:
        raise PageRequestError("offset must be an integer >= 0")

    user_ids = raw.get("userIds")
    if user_ids is not None:
        if not isinstance(user_ids, list) or not all(
            isinstance(user_id, str) for user_id in user_ids
        ):
            raise PageRequestError("userIds must be a list of strings")
        if not 1 <= len(user_ids) <= MAX_USER_IDS:
            raise PageRequestError(f"userIds must hold 1 to {MAX_USER_IDS} entries")
        user_ids = tuple(user_ids)

    return PageRequest(user_ids=user_ids, limit=limit, offset=offset)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class UserDirectory:
    """An immutable listing of users with a lookup by user ID.

    Built once per set of users, so serving a page is a slice and a filter
    is a few dictionary lookups, whatever the number of users.
    """

    def __init__(self, users: Sequence[dict[str, Any]]) -> None:
        self.users: tuple[dict[str, Any], ...] = tuple(users)
        self._positions: dict[str, list[int]] = {}
        for position, user in enumerate(self.users):
            if not isinstance(user, dict):
                raise TypeError(f"user {position} is not a dict: {user!r}")
            key = _id_key(user.get("userId"))
            self._positions.setdefault(key, []).append(position)

    def __len__(self) -> int:
        return len(self.users)

    def select(self, user_ids: Sequence[str] | None) -> Sequence[dict[str, Any]]:
        """All users, or those with the given IDs, in listing order."""
        if user_ids is None:
            return self.users
        positions = sorted(
            position
            for user_id in set(user_ids)
            for position in self._positions.get(user_id, ())
        )
        return [self.users[position] for position in positions]


def _id_key(user_id: Any) -> str:
    # Files may hold numeric or odd IDs; they match the request by their text.
    return user_id if isinstance(user_id, str) else json.dumps(user_id, default=str)
