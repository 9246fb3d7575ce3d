"""The user listing the API pages over, and the validation of page requests.

The per-user listing takes its page in a JSON body; the department and group
listings take theirs in the query string. Both follow the same rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
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


@dataclass(frozen=True)
class QueryPageRequest:
    """A validated query string: page size, offset and optional name filter."""

    limit: int
    offset: int
    key_word: str | None


def parse_page_query(
    pairs: Iterable[tuple[str, str]], max_page_size: int
) -> QueryPageRequest:
    """Read and check `offset`, `limit` and `keyWord`, all optional.

    Each may appear once; other parameters are ignored.
    """
    seen: dict[str, str] = {}
    for name, value in pairs:
        if name in ("offset", "limit", "keyWord"):
            if name in seen:
                raise PageRequestError(f"{name} must be given at most once")
            seen[name] = value

    limit_rule = f"limit must be an integer from 1 to {max_page_size}"
    limit = _query_int(seen.get("limit"), limit_rule)
    if limit is None:
        limit = DEFAULT_LIMIT
    elif not 1 <= limit <= max_page_size:
        raise PageRequestError(limit_rule)

    offset = _query_int(seen.get("offset"), "offset must be an integer >= 0")
    if offset is None:
        offset = 0

    return QueryPageRequest(limit=limit, offset=offset, key_word=seen.get("keyWord"))


_DIGITS = re.compile(r"[0-9]+")


def _query_int(text: str | None, rule: str) -> int | None:
    """A non-negative integer written in ASCII digits, or None when absent."""
    if text is None:
        return None
    if not _DIGITS.fullmatch(text):
        raise PageRequestError(rule)
    try:
        return int(text)
    except ValueError:
        # Python refuses to read integers of thousands of digits.
        raise PageRequestError(rule) from None


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
