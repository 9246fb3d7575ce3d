"""What the simulator sends back: a reply value and KooDrive-style error bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json;charset=UTF-8"

# Error codes of the KooDrive API and of the API gateway in front of it.
CODE_INVALID_PARAMETER = 13000102
CODE_INNER_FAILURE = 13000201
CODE_NO_PERMISSION = 13000410
CODE_GATEWAY_UNAUTHORIZED = "APIGW.0301"
CODE_GATEWAY_NOT_FOUND = "APIGW.0101"
CODE_GATEWAY_THROTTLED = "APIGW.0308"


@dataclass
class Reply:
    """One HTTP answer; `truncate` sends only the first half of the body."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    truncate: bool = False


def json_reply(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> Reply:
    """A JSON reply; values JSON cannot hold are sent as their string form."""
    body = json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")
    return Reply(status, body, headers=dict(headers or {}))


def error_reply(
    status: int, code: int | str, msg: str, headers: dict[str, str] | None = None
) -> Reply:
    """A KooDrive error body `{"code": ..., "msg": ...}` with an HTTP status."""
    return json_reply(status, {"code": code, "msg": msg}, headers)
