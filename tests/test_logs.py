"""Tests of the log formats: logfmt quoting, JSON, context fields and levels."""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from koodrive_exporter import logs

CREATED = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc).timestamp()
LOGGER = "koodrive_exporter.refresh"


def make_record(
    msg: str = "refresh failed",
    level: int = logging.WARNING,
    fields: Any = None,
    exc: BaseException | None = None,
) -> logging.LogRecord:
    """A log record at a fixed time, with optional context fields."""
    exc_info = (type(exc), exc, None) if exc is not None else None
    record = logging.LogRecord(LOGGER, level, __file__, 1, msg, None, exc_info)
    record.created = CREATED
    if fields is not None:
        record.fields = fields
    return record


def logfmt(record: logging.LogRecord) -> str:
    """The record rendered as logfmt."""
    return logs.LogfmtFormatter().format(record)


def as_json(record: logging.LogRecord) -> dict[str, Any]:
    """The record rendered as JSON and decoded again."""
    return json.loads(logs.JsonFormatter().format(record))


def field_value(record: logging.LogRecord, name: str) -> str:
    """The rendered logfmt text of one context field."""
    return logfmt(record).split(f" {name}=", 1)[1]


# logfmt


def test_logfmt_line_has_base_keys_then_fields() -> None:
    record = make_record(fields={"reason": "http_429", "page": 3})

    assert logfmt(record) == (
        "time=2026-01-02T03:04:05.678Z level=warn logger=koodrive_exporter.refresh "
        'msg="refresh failed" reason=http_429 page=3'
    )


@pytest.mark.parametrize(
    ("value", "rendered"),
    [
        ("plain", "plain"),
        ("two words", '"two words"'),
        ('say "hi"', r'"say \"hi\""'),
        ("line\nbreak", r'"line\nbreak"'),
        ("back\\slash", r'"back\\slash"'),
        ('mix "a b"\\\n', r'"mix \"a b\"\\\n"'),
        ("a=b", '"a=b"'),
        ("tab\there", r'"tab\there"'),
        ("carriage\rreturn", r'"carriage\rreturn"'),
        ("\x1b[31mred", r'"\u001b[31mred"'),
        ("", '""'),
        (None, '""'),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (0.25, "0.25"),
        ("用户", "用户"),
    ],
)
def test_logfmt_quotes_and_escapes_values(value: object, rendered: str) -> None:
    record = make_record(fields={"value": value})

    assert field_value(record, "value") == rendered


def test_logfmt_record_with_newlines_stays_on_one_line() -> None:
    record = make_record(msg="first\nsecond", fields={"detail": "a\nb\n"})

    line = logfmt(record)

    assert "\n" not in line
    assert r'msg="first\nsecond"' in line


def test_logfmt_escapes_carriage_returns() -> None:
    record = make_record(fields={"detail": "fake\rlevel=error"})

    assert "\r" not in logfmt(record)


def test_context_fields_cannot_replace_base_keys() -> None:
    record = make_record(fields={"level": "error", "msg": "forged", "extra": 1})

    line = logfmt(record)

    assert line.count("level=") == 1
    assert "level=warn" in line
    assert "forged" not in line
    assert line.endswith(" extra=1")


def test_fields_that_are_not_a_mapping_are_ignored() -> None:
    line = logfmt(make_record(fields=["reason", "x"]))

    assert line.endswith('msg="refresh failed"')


def test_exception_is_rendered_as_error_field() -> None:
    record = make_record(exc=ValueError("bad total"))

    assert field_value(record, "error") == '"ValueError: bad total"'


def test_message_arguments_are_interpolated() -> None:
    record = logging.LogRecord(
        LOGGER, logging.INFO, __file__, 1, "loaded %d users", (25,), None
    )

    assert 'msg="loaded 25 users"' in logfmt(record)


# JSON


def test_json_record_parses_with_base_keys_and_fields() -> None:
    record = make_record(
        msg='quote " and\nnewline',
        fields={"reason": "timeout", "page": 2, "up": False, "path": Path("/x")},
    )

    document = as_json(record)

    assert document == {
        "time": "2026-01-02T03:04:05.678Z",
        "level": "warn",
        "logger": LOGGER,
        "msg": 'quote " and\nnewline',
        "reason": "timeout",
        "page": 2,
        "up": False,
        "path": "/x",
    }


def test_json_keeps_non_ascii_text_readable() -> None:
    record = make_record(fields={"user_id": "用户"})

    assert "用户" in logs.JsonFormatter().format(record)


def test_json_includes_exception() -> None:
    document = as_json(make_record(exc=RuntimeError("boom")))

    assert document["error"] == "RuntimeError: boom"


# Secrets


def fresh_secret(prefix: str = "logtest-") -> str:
    """A registered secret unique to one test."""
    value = prefix + secrets.token_hex(8)
    logs.register_secret(value)
    return value


def test_json_line_redacts_a_registered_secret() -> None:
    secret = fresh_secret()
    record = make_record(msg=f"server said {secret}", fields={"detail": secret})

    line = logs.JsonFormatter().format(record)

    assert secret not in line
    assert json.loads(line)["detail"] == logs.REDACTED


def test_values_shorter_than_six_characters_are_not_redacted() -> None:
    logs.register_secret("ab12c")

    assert as_json(make_record(msg="ab12c"))["msg"] == "ab12c"


def test_logfmt_line_redacts_a_registered_secret() -> None:
    secret = fresh_secret()
    record = make_record(msg=f"server said {secret}", fields={"detail": secret})

    assert secret not in logfmt(record)


def test_json_redacts_a_secret_that_json_escapes() -> None:
    secret = fresh_secret('logtest"')
    record = make_record(fields={"detail": secret})

    assert as_json(record)["detail"] == logs.REDACTED


# Levels


@pytest.mark.parametrize(
    ("level", "name"),
    [
        (logging.DEBUG, "debug"),
        (logging.INFO, "info"),
        (logging.WARNING, "warn"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "error"),
    ],
)
def test_level_names(level: int, name: str) -> None:
    assert as_json(make_record(level=level))["level"] == name


def test_unnamed_level_falls_back_to_lowercase_level_name() -> None:
    assert as_json(make_record(level=25))["level"] == "level 25"


def test_configurable_levels_map_to_logging_levels() -> None:
    assert logs.LEVELS == {
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warn": logging.WARNING,
        "error": logging.ERROR,
    }
    assert logs.FORMATS == ("logfmt", "json")


# configure


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root and urllib3 loggers back as they were."""
    root = logging.getLogger()
    urllib3 = logging.getLogger("urllib3")
    handlers, level, urllib3_level = list(root.handlers), root.level, urllib3.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    urllib3.setLevel(urllib3_level)


@pytest.mark.usefixtures("restore_logging")
def test_configure_writes_logfmt_at_the_chosen_level() -> None:
    stream = io.StringIO()
    logs.configure("warn", "logfmt", stream)
    log = logging.getLogger(LOGGER)

    log.info("refresh succeeded")
    log.warning("refresh failed", extra={"fields": {"reason": "http_5xx"}})

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("time=")
    assert lines[0].endswith('msg="refresh failed" reason=http_5xx')


@pytest.mark.usefixtures("restore_logging")
def test_configure_json_writes_one_object_per_line() -> None:
    stream = io.StringIO()
    logs.configure("debug", "json", stream)

    logging.getLogger(LOGGER).debug("api request", extra={"fields": {"page": 1}})

    [line] = stream.getvalue().splitlines()
    document = json.loads(line)
    assert (document["msg"], document["level"], document["page"]) == (
        "api request",
        "debug",
        1,
    )


@pytest.mark.usefixtures("restore_logging")
def test_configure_replaces_earlier_handlers() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure("info", "logfmt", first)
    logs.configure("info", "logfmt", second)

    logging.getLogger(LOGGER).info("started")

    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


@pytest.mark.usefixtures("restore_logging")
def test_configure_keeps_urllib3_debug_quiet() -> None:
    logs.configure("debug", "logfmt", io.StringIO())

    assert logging.getLogger("urllib3").level == logging.INFO
