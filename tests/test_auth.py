"""Tests of the credentials: token and app authentication, secret sources."""

from __future__ import annotations

import hashlib
import hmac
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from helpers import StaticSecret
from koodrive_exporter import config, signing
from koodrive_exporter.auth import (
    AppAuth,
    EnvSecret,
    FileSecret,
    KooDriveAuth,
    TokenAuth,
    build_auth,
)
from koodrive_exporter.errors import CredentialError

CALLER = "1505084218764547200"
TOKEN = "tok-c69b5e0d4f2a"
SECRET = "app-secret-9f8e7d"
NOW = datetime(2024, 9, 9, 3, 33, 25, 123456, tzinfo=timezone.utc)
USAGE_URL = "https://koodrive.test/koodrive/ose/v1/space/usage/user"
BODY = b'{"offset":0,"limit":100}'


def fixed_clock() -> datetime:
    """The moment every test request is made."""
    return NOW


def prepared(url: str = USAGE_URL, body: bytes = BODY) -> requests.PreparedRequest:
    """A POST as the client prepares it, before authentication."""
    return requests.Request(
        "POST",
        url,
        data=body,
        headers={"Content-Type": "application/json", "X-Traceid": "ab" * 29},
    ).prepare()


def write_secret(path: Path, text: str) -> Path:
    """Write `text` and push the file's mtime forward so a change is seen."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    later = max(before, path.stat().st_mtime_ns) + 1_000_000_000
    os.utime(path, ns=(later, later))
    return path


def expected_app_signature(request: requests.PreparedRequest, secret: str) -> str:
    """Sign a prepared request again, outside the code under test."""
    parts = urlsplit(request.url or "")
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    canonical = signing.canonical_request(
        request.method or "",
        parts.path,
        parse_qsl(parts.query, keep_blank_values=True),
        request.headers,
        body,
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return hmac.new(
        secret.encode("utf-8"), f"HMAC-SHA256\n{digest}".encode(), hashlib.sha256
    ).hexdigest()


# Token authentication


@pytest.mark.parametrize("prefix", ["Bearer ", "Bearer+", ""])
def test_token_auth_sends_prefix_and_token(prefix: str) -> None:
    auth = TokenAuth(CALLER, StaticSecret(TOKEN), prefix, clock=fixed_clock)

    request = auth(prepared())

    assert request.headers["Authorization"] == prefix + TOKEN


def test_token_auth_sets_identity_headers_from_the_clock() -> None:
    auth = TokenAuth(CALLER, StaticSecret(TOKEN), "Bearer ", clock=fixed_clock)

    request = auth(prepared())

    assert request.headers["X-User-Id"] == CALLER
    assert request.headers["X-Date"] == "20240909T033325Z"
    assert request.headers["Host"] == "koodrive.test"
    assert request.headers["X-Traceid"] == "ab" * 29


def test_x_date_follows_the_clock_on_every_request() -> None:
    moments = iter([NOW, NOW + timedelta(minutes=16)])
    auth = TokenAuth(CALLER, StaticSecret(TOKEN), "", clock=lambda: next(moments))

    first = auth(prepared()).headers["X-Date"]
    second = auth(prepared()).headers["X-Date"]

    assert (first, second) == ("20240909T033325Z", "20240909T034925Z")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://koodrive.test/x", "koodrive.test"),
        ("https://koodrive.test:443/x", "koodrive.test"),
        ("http://127.0.0.1:80/x", "127.0.0.1"),
        ("https://koodrive.test:8443/x", "koodrive.test:8443"),
        ("http://127.0.0.1:8080/x", "127.0.0.1:8080"),
        ("http://127.0.0.1:443/x", "127.0.0.1:443"),
        ("https://koodrive.test:80/x", "koodrive.test:80"),
        ("https://[::1]:443/x", "[::1]"),
        ("http://[::1]:9000/x", "[::1]:9000"),
    ],
)
def test_host_header_drops_only_the_default_port(url: str, host: str) -> None:
    auth = TokenAuth(CALLER, StaticSecret(TOKEN), "", clock=fixed_clock)

    assert auth(prepared(url)).headers["Host"] == host


def test_token_auth_uses_the_rotated_token_file(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "token", "tok-first\n")
    auth = TokenAuth(CALLER, FileSecret(path), "Bearer ", clock=fixed_clock)
    first = auth(prepared()).headers["Authorization"]

    write_secret(path, "tok-second\n")
    second = auth(prepared()).headers["Authorization"]

    assert (first, second) == ("Bearer tok-first", "Bearer tok-second")


def test_token_auth_renew_reports_a_changed_token(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "token", "tok-first")
    auth = TokenAuth(CALLER, FileSecret(path), "", clock=fixed_clock)
    auth(prepared())

    unchanged = auth.renew()
    write_secret(path, "tok-second")
    changed = auth.renew()

    assert (unchanged, changed) == (False, True)
    assert auth(prepared()).headers["Authorization"] == "tok-second"


def test_base_auth_has_nothing_to_renew() -> None:
    assert KooDriveAuth(CALLER).renew() is False


# Secret sources


def test_file_secret_strips_surrounding_whitespace(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "token", f"\n  {TOKEN}\r\n\n")

    assert FileSecret(path).read() == TOKEN


def test_file_secret_rereads_after_the_file_changes(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "token", "tok-aaaa")
    source = FileSecret(path)
    first = source.read()

    write_secret(path, "tok-bbbb")

    assert (first, source.read()) == ("tok-aaaa", "tok-bbbb")


def test_file_secret_follows_an_atomic_replace(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "token", "tok-aaaa")
    source = FileSecret(path)
    source.read()

    staged = write_secret(tmp_path / "token.new", "tok-bbbb")
    staged.replace(path)

    assert source.read() == "tok-bbbb"


def test_file_secret_keeps_its_value_while_the_file_looks_unchanged(
    tmp_path: Path,
) -> None:
    path = write_secret(tmp_path / "token", "tok-aaaa")
    stamp = path.stat().st_mtime_ns
    source = FileSecret(path)
    source.read()

    path.write_text("tok-bbbb", encoding="utf-8")
    os.utime(path, ns=(stamp, stamp))

    assert source.read() == "tok-aaaa"
    assert source.reload() is True
    assert source.read() == "tok-bbbb"


@pytest.mark.parametrize("content", ["", "\n", "   \n\t"])
def test_empty_secret_file_is_a_credential_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "token"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(CredentialError) as caught:
        FileSecret(path).read()

    assert str(path) in str(caught.value)
    assert "empty" in caught.value.reason


def test_missing_secret_file_is_a_credential_error(tmp_path: Path) -> None:
    path = tmp_path / "absent"

    with pytest.raises(CredentialError) as caught:
        FileSecret(path).read()

    assert caught.value.source == f"file {path}"
    assert caught.value.reason


def test_secret_file_emptied_after_use_is_a_credential_error(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "token", TOKEN)
    source = FileSecret(path)
    source.read()

    write_secret(path, "")

    with pytest.raises(CredentialError) as caught:
        source.read()
    assert TOKEN not in str(caught.value)


def test_undecodable_secret_file_error_does_not_echo_its_content(
    tmp_path: Path,
) -> None:
    path = tmp_path / "token"
    path.write_bytes(TOKEN.encode() + b"\xff\xfe")

    with pytest.raises(CredentialError) as caught:
        FileSecret(path).read()

    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value.reason)


def test_env_secret_reads_the_variable_on_every_use() -> None:
    environ = {"KOODRIVE_TOKEN": " tok-one\n"}
    source = EnvSecret("KOODRIVE_TOKEN", environ)
    first = source.read()

    environ["KOODRIVE_TOKEN"] = "tok-two"

    assert (first, source.read()) == ("tok-one", "tok-two")
    assert source.reload() is False


def test_env_secret_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KOODRIVE_TEST_TOKEN", TOKEN)

    assert EnvSecret("KOODRIVE_TEST_TOKEN").read() == TOKEN


@pytest.mark.parametrize(
    "environ", [{}, {"KOODRIVE_TOKEN": ""}, {"KOODRIVE_TOKEN": " "}]
)
def test_unset_or_empty_variable_is_a_credential_error(
    environ: dict[str, str],
) -> None:
    with pytest.raises(CredentialError) as caught:
        EnvSecret("KOODRIVE_TOKEN", environ).read()

    assert caught.value.source == "environment variable KOODRIVE_TOKEN"


def test_missing_token_file_fails_the_request_without_leaking(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "token", TOKEN)
    auth = TokenAuth(CALLER, FileSecret(path), "Bearer ", clock=fixed_clock)
    auth(prepared())

    path.unlink()

    with pytest.raises(CredentialError) as caught:
        auth(prepared())
    assert TOKEN not in str(caught.value)


# App authentication


def test_app_auth_signature_verifies_when_recomputed() -> None:
    auth = AppAuth(CALLER, "app-1", StaticSecret(SECRET), clock=fixed_clock)

    request = auth(prepared())

    fields = signing.parse_authorization(request.headers["Authorization"])
    assert fields["AppId"] == "app-1"
    assert fields["SignedHeaders"] == "host;x-date;x-user-id"
    assert fields["Signature"] == expected_app_signature(request, SECRET)
    assert request.headers["X-Date"] == "20240909T033325Z"
    assert request.headers["X-User-Id"] == CALLER
    assert request.headers["Host"] == "koodrive.test"


def test_app_auth_signs_the_query_string() -> None:
    auth = AppAuth(CALLER, "app-1", StaticSecret(SECRET), clock=fixed_clock)

    request = auth(prepared(USAGE_URL + "?b=x%20y&a=1&c="))

    signature = signing.parse_authorization(request.headers["Authorization"])
    assert signature["Signature"] == expected_app_signature(request, SECRET)


def test_app_auth_signature_covers_the_body() -> None:
    auth = AppAuth(CALLER, "app-1", StaticSecret(SECRET), clock=fixed_clock)
    request = auth(prepared())
    sent = signing.parse_authorization(request.headers["Authorization"])

    request.body = b'{"offset":100,"limit":100}'

    assert sent["Signature"] != expected_app_signature(request, SECRET)


def test_app_auth_signature_depends_on_the_secret() -> None:
    request = AppAuth(CALLER, "app-1", StaticSecret(SECRET), clock=fixed_clock)(
        prepared()
    )
    sent = signing.parse_authorization(request.headers["Authorization"])

    assert sent["Signature"] != expected_app_signature(request, "other-secret")


def test_app_auth_reads_a_rotated_secret(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "secret", "secret-one\n")
    auth = AppAuth(CALLER, "app-1", FileSecret(path), clock=fixed_clock)
    auth(prepared())

    write_secret(path, "secret-two\n")
    request = auth(prepared())

    sent = signing.parse_authorization(request.headers["Authorization"])
    assert sent["Signature"] == expected_app_signature(request, "secret-two")


def test_app_auth_renew_reports_a_changed_secret(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "secret", "secret-one")
    auth = AppAuth(CALLER, "app-1", FileSecret(path), clock=fixed_clock)
    auth(prepared())

    write_secret(path, "secret-two")

    assert auth.renew() is True


def test_app_secret_never_appears_in_headers() -> None:
    request = AppAuth(CALLER, "app-1", StaticSecret(SECRET), clock=fixed_clock)(
        prepared()
    )

    assert all(SECRET not in value for value in request.headers.values())


# Building from settings


def settings_auth(auth: dict[str, str]) -> config.AuthSettings:
    """Validated auth settings through the real config parser."""
    document = {
        "koodrive": {"url": "https://koodrive.test", "user_id": CALLER, "auth": auth}
    }
    return config.parse(document).koodrive.auth


def test_build_auth_makes_token_auth_from_a_file(tmp_path: Path) -> None:
    path = write_secret(tmp_path / "token", TOKEN)
    settings = settings_auth({"token_file": str(path), "token_prefix": "Bearer+"})

    auth = build_auth(settings, CALLER, clock=fixed_clock)
    request = auth(prepared())

    assert auth.kind == "token"
    assert request.headers["Authorization"] == "Bearer+" + TOKEN
    assert request.headers["X-User-Id"] == CALLER


def test_build_auth_makes_token_auth_from_a_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KOODRIVE_TEST_TOKEN", TOKEN)
    settings = settings_auth({"token_env": "KOODRIVE_TEST_TOKEN"})

    request = build_auth(settings, CALLER, clock=fixed_clock)(prepared())

    assert request.headers["Authorization"] == "Bearer " + TOKEN


def test_build_auth_makes_app_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOODRIVE_TEST_SECRET", SECRET)
    settings = settings_auth(
        {"app_id": "app-1", "app_secret_env": "KOODRIVE_TEST_SECRET"}
    )

    auth = build_auth(settings, CALLER, clock=fixed_clock)
    request = auth(prepared())

    assert auth.kind == "app"
    sent = signing.parse_authorization(request.headers["Authorization"])
    assert sent["Signature"] == expected_app_signature(request, SECRET)


def test_build_auth_without_any_source_is_a_credential_error() -> None:
    with pytest.raises(CredentialError):
        build_auth(config.AuthSettings(), CALLER)
