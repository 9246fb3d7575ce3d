"""Structured logging: logfmt by default, JSON on request, context as key=value.

Code logs an event phrase and its context:
    log.warning("refresh failed", extra={"fields": {"reason": "http_429"}})
which renders as
    time=2026-01-02T03:04:05.678Z level=warn logger=koodrive_exporter.refresh
    msg="refresh failed" reason=http_429
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import datetime, timezone
from typing import IO, Any

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("logfmt", "json")
_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}


_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
REDACTED = "<redacted>"


def register_secret(value: str) -> None:
    """Remember a secret so that no log line can ever carry it.

    Code never logs secrets on purpose; this is the net under that rule, for
    text that comes from elsewhere (exception messages, server replies).
    """
    # Very short values would mask ordinary words and say nothing useful.
    if len(value) >= 6:
        with _SECRETS_LOCK:
            _SECRETS.add(value)


def redact(text: str) -> str:
    """Replace every registered secret in `text`."""
    for secret in tuple(_SECRETS):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _base_fields(record: logging.LogRecord) -> dict[str, Any]:
    moment = datetime.fromtimestamp(record.created, timezone.utc)
    fields: dict[str, Any] = {
        "time": moment.strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}Z",
        "level": _LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    extra = getattr(record, "fields", None)
    if isinstance(extra, dict):
        for key, value in extra.items():
            fields.setdefault(str(key), value)
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        fields["error"] = f"{type(error).__name__}: {error}"
    # Redact each value before it is encoded: escaping could otherwise hide a
    # secret's characters from the search.
    return {
        key: redact(value) if isinstance(value, str) else _redact_other(value)
        for key, value in fields.items()
    }


def _redact_other(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return redact(str(value))


class LogfmtFormatter(logging.Formatter):
    """One line of key=value pairs per record."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as logfmt."""
        return " ".join(
            f"{key}={_logfmt_value(value)}"
            for key, value in _base_fields(record).items()
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON object."""
        return json.dumps(_base_fields(record), default=str, ensure_ascii=False)


def configure(level: str, fmt: str, stream: IO[str] | None = None) -> None:
    """Send the package's logs to `stream` (stderr) at `level` in `fmt`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    # urllib3 logs every connection at debug, URLs included; keep it quieter.
    logging.getLogger("urllib3").setLevel(max(LEVELS[level], logging.INFO))


def _logfmt_value(value: object) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if text and text.isprintable() and not any(char in text for char in ' ="\\'):
        return text
    escaped = "".join(
        _ESCAPES.get(char) or (char if char.isprintable() else f"\\u{ord(char):04x}")
        for char in text
    )
    return f'"{escaped}"'


# Control characters are escaped so that no value can forge or overwrite a line.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
