"""Which users are exported: include and exclude rules, and a cap on their number.

Every user is a handful of series, so a large tenant may need a smaller view.
Rules apply while pages are merged, so users left out are never kept in memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class UserSelection:
    """Include/exclude by ID list and by fully anchored regular expression.

    A user is exported when it passes the includes (any list or pattern given
    must match) and matches no exclude. `max_users` (0: none) then caps how
    many are kept, in listing order.
    """

    include_ids: frozenset[str] = field(default_factory=frozenset)
    exclude_ids: frozenset[str] = field(default_factory=frozenset)
    include_pattern: re.Pattern[str] | None = None
    exclude_pattern: re.Pattern[str] | None = None
    max_users: int = 0

    @property
    def filters(self) -> bool:
        """True when any include or exclude rule is set."""
        return bool(
            self.include_ids
            or self.exclude_ids
            or self.include_pattern
            or self.exclude_pattern
        )

    def wanted(self, user_id: str) -> bool:
        """Whether the rules let this user through (the cap is applied apart)."""
        if self.include_ids and user_id not in self.include_ids:
            return False
        if self.include_pattern and not self.include_pattern.fullmatch(user_id):
            return False
        if user_id in self.exclude_ids:
            return False
        return not (self.exclude_pattern and self.exclude_pattern.fullmatch(user_id))
