"""Faults the simulator can inject into its next API answers, in order."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from koodrive_exporter.simulator.wire import (
    CODE_GATEWAY_THROTTLED,
    CODE_GATEWAY_UNAUTHORIZED,
    CODE_INNER_FAILURE,
    CODE_INVALID_PARAMETER,
    CODE_NO_PERMISSION,
    Reply,
    error_reply,
    json_reply,
)

KINDS = (
    "status",
    "code",
    "unauthorized",
    "rate_limited",
    "unavailable",
    "slow",
    "hang",
    "truncated",
    "malformed",
    "wrong_shape",
)

# Kinds that delay the normal answer instead of replacing it.
DELAYING_KINDS = ("slow", "hang")

HANG_DEFAULT_SECONDS = 30.0

_STATUS_DEFAULTS: dict[int, tuple[int | str, str]] = {
    400: (CODE_INVALID_PARAMETER, "parameter validation failed"),
    401: (CODE_GATEWAY_UNAUTHORIZED, "incorrect authentication information"),
    403: (CODE_NO_PERMISSION, "no permission on the space"),
}

_GATEWAY_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><h1>502 Bad Gateway</h1><hr>gateway</body></html>\n"
)


@dataclass
class Fault:
    """One injected fault; `times` is how many API requests in a row it hits.

    Kinds: `status` (HTTP `status`, default 500, with a JSON error body),
    `code` (HTTP 200 with a non-zero `code`), `unauthorized` (401),
    `rate_limited` (429) and `unavailable` (503), both with `Retry-After`
    set to `retry_after` when given, `slow` and `hang` (wait `delay` seconds,
    30 for `hang` when no delay is given, then answer normally), `truncated`
    (the normal answer, its body cut in half and the connection closed),
    `malformed` (an HTML page) and `wrong_shape` (a successful JSON answer
    whose payload has the wrong type: by default `data` is an object where
    the user listing has a list; each endpoint may give its own).
    """

    kind: str
    status: int | None = None
    code: int | str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    times: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {KINDS}")
        if self.status is not None and not _is_int(self.status):
            raise ValueError(f"status must be an integer: {self.status!r}")
        if self.code is not None and not (
            _is_int(self.code) or isinstance(self.code, str)
        ):
            raise ValueError(f"code must be an integer or a string: {self.code!r}")
        if self.retry_after is not None and not _is_non_negative(self.retry_after):
            raise ValueError(f"retry_after must be a number >= 0: {self.retry_after!r}")
        if not _is_non_negative(self.delay):
            raise ValueError(f"delay must be a number >= 0: {self.delay!r}")
        if not _is_int(self.times) or self.times < 1:
            raise ValueError(f"times must be an integer >= 1: {self.times!r}")

    @classmethod
    def from_dict(cls, raw: Any) -> Fault:
        """Build a fault from a JSON object, rejecting unknown fields."""
        if not isinstance(raw, dict):
            raise ValueError(f"a fault must be a JSON object, not {raw!r}")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown fault fields {unknown}; known: {sorted(known)}")
        if "kind" not in raw:
            raise ValueError("a fault needs a kind")
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        """The fault as a JSON-ready dict."""
        return asdict(self)

    @property
    def wait_seconds(self) -> float:
        """How long a delaying fault holds the answer back."""
        if self.kind == "hang" and not self.delay:
            return HANG_DEFAULT_SECONDS
        return float(self.delay)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_non_negative(value: Any) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    )


class FaultQueue:
    """A thread-safe first-in first-out queue of faults for the next API requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Each entry is [fault, requests it still applies to].
        self._entries: deque[list[Any]] = deque()

    def push(self, fault: Fault) -> None:
        """Queue a fault behind those already waiting."""
        with self._lock:
            self._entries.append([fault, fault.times])

    def extend(self, faults: list[Fault]) -> None:
        """Queue several faults at once, in order."""
        with self._lock:
            self._entries.extend([fault, fault.times] for fault in faults)

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._entries.clear()

    def pop(self) -> Fault | None:
        """The fault for the request being served now, if any; uses one of its times."""
        with self._lock:
            if not self._entries:
                return None
            entry = self._entries[0]
            entry[1] -= 1
            if entry[1] <= 0:
                self._entries.popleft()
            return entry[0]

    def pending(self) -> list[tuple[Fault, int]]:
        """Each queued fault with the number of requests it still applies to."""
        with self._lock:
            return [(fault, remaining) for fault, remaining in self._entries]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


# The `wrong_shape` answer of the user listing: `data` should be a list.
WRONG_SHAPE_PAYLOAD: dict[str, Any] = {"code": 0, "msg": "success", "data": {"x": 1}}


def fault_reply(
    fault: Fault, *, wrong_shape: dict[str, Any] | None = None
) -> Reply | None:
    """The reply that replaces the normal answer, or None for kinds that do not.

    `wrong_shape` is the payload a `wrong_shape` fault sends, for endpoints
    whose answer has another shape than the user listing's.
    """
    if fault.kind == "wrong_shape":
        payload = WRONG_SHAPE_PAYLOAD if wrong_shape is None else wrong_shape
        return json_reply(_pick(fault.status, 200), payload)
    build = _REPLACEMENTS.get(fault.kind)
    return None if build is None else build(fault)


def _status_reply(fault: Fault) -> Reply:
    status = _pick(fault.status, 500)
    default_code, msg = _STATUS_DEFAULTS.get(
        status, (CODE_INNER_FAILURE, "inner server invoke failure")
    )
    return error_reply(status, _pick(fault.code, default_code), msg)


def _code_reply(fault: Fault) -> Reply:
    code = _pick(fault.code, CODE_INNER_FAILURE)
    return error_reply(_pick(fault.status, 200), code, "inner server invoke failure")


def _unauthorized_reply(fault: Fault) -> Reply:
    code = _pick(fault.code, CODE_GATEWAY_UNAUTHORIZED)
    return error_reply(401, code, "incorrect authentication information")


def _rate_limited_reply(fault: Fault) -> Reply:
    code = _pick(fault.code, CODE_GATEWAY_THROTTLED)
    msg = "the throttling threshold has been reached"
    return error_reply(429, code, msg, _retry_after(fault))


def _unavailable_reply(fault: Fault) -> Reply:
    code = _pick(fault.code, CODE_INNER_FAILURE)
    msg = "service temporarily unavailable"
    return error_reply(503, code, msg, _retry_after(fault))


def _malformed_reply(fault: Fault) -> Reply:
    return Reply(_pick(fault.status, 200), _GATEWAY_PAGE, content_type="text/html")


_REPLACEMENTS: dict[str, Callable[[Fault], Reply]] = {
    "status": _status_reply,
    "code": _code_reply,
    "unauthorized": _unauthorized_reply,
    "rate_limited": _rate_limited_reply,
    "unavailable": _unavailable_reply,
    "malformed": _malformed_reply,
}


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def _retry_after(fault: Fault) -> dict[str, str]:
    if fault.retry_after is None:
        return {}
    seconds = fault.retry_after
    text = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
    return {"Retry-After": text}
