"""Credentials for KooDrive: a bearer-style token or an HMAC-SHA256 app signature.

Both plug into a `requests` session as an `AuthBase`, and both add the headers
KooDrive requires on every call (`X-User-Id`, `X-Date`, `Host`). Secrets are
read from a file, re-read when the file changes so that a rotated token is
used without a restart, or from an environment variable.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import requests
from requests.auth import AuthBase

from . import signing
from .config import AuthSettings
from .errors import CredentialError
from .logs import register_secret

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(timezone.utc)


class SecretSource:
    """Where a secret comes from; `read()` returns it without surrounding spaces."""

    description = "secret"

    def read(self) -> str:
        """Return the current secret or raise CredentialError."""
        raise NotImplementedError

    def reload(self) -> bool:
        """Read again even if nothing seems changed; True when the value changed."""
        return False


class FileSecret(SecretSource):
    """A secret in a file, re-read whenever the file's identity or mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"file {path}"
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._value: str | None = None

    def read(self) -> str:
        """Return the file's secret, reading it again only when the file changed."""
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise CredentialError(
                self.description, exc.strerror or "unreadable"
            ) from None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp or self._value is None:
                self._value = self._load()
                self._stamp = stamp
            return self._value

    def reload(self) -> bool:
        """Re-read the file now; report whether the secret changed."""
        with self._lock:
            before = self._value
            self._value = self._load()
            return self._value != before

    def _load(self) -> str:
        try:
            value = self.path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise CredentialError(self.description, reason) from None
        if not value:
            raise CredentialError(self.description, "the file is empty")
        _check_printable(value, self.description)
        register_secret(value)
        return value


class EnvSecret(SecretSource):
    """A secret in an environment variable, read on every use."""

    def __init__(self, name: str, environ: dict[str, str] | None = None) -> None:
        self.name = name
        self.description = f"environment variable {name}"
        self._environ = environ if environ is not None else os.environ

    def read(self) -> str:
        """Return the variable's value, or raise when it is unset or empty."""
        value = self._environ.get(self.name, "").strip()
        if not value:
            raise CredentialError(self.description, "unset or empty")
        _check_printable(value, self.description)
        register_secret(value)
        return value


class KooDriveAuth(AuthBase):
    """Adds the identity headers every KooDrive call carries; subclasses sign."""

    kind = "none"

    def __init__(self, user_id: str, clock: Clock = utc_now) -> None:
        self.user_id = user_id
        self._clock = clock

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Set `X-User-Id`, `X-Date`, `Host`, then `Authorization`."""
        parts = urlsplit(request.url or "")
        request.headers["Host"] = _host_header(parts.scheme, parts.netloc)
        request.headers["X-User-Id"] = self.user_id
        request.headers["X-Date"] = signing.format_x_date(self._clock())
        request.headers["Authorization"] = self.authorization(request)
        return request

    def authorization(self, request: requests.PreparedRequest) -> str:
        """The `Authorization` header value for this request."""
        raise NotImplementedError

    def renew(self) -> bool:
        """Re-read the credential after a 401; True when it changed."""
        return False

    def check(self) -> None:
        """Read the credential once; raise CredentialError if it cannot be read."""


class TokenAuth(KooDriveAuth):
    """`Authorization: <prefix><token>`; the prefix varies between KooDrive pages."""

    kind = "token"

    def __init__(
        self, user_id: str, token: SecretSource, prefix: str, clock: Clock = utc_now
    ) -> None:
        super().__init__(user_id, clock)
        self._token = token
        self._prefix = prefix

    def authorization(self, request: requests.PreparedRequest) -> str:
        """The configured prefix followed by the current token."""
        return self._prefix + self._token.read()

    def renew(self) -> bool:
        """Re-read the token source."""
        return self._token.reload()

    def check(self) -> None:
        """Read the token once."""
        self._token.read()


class AppAuth(KooDriveAuth):
    """HMAC-SHA256 app authentication over method, path, query, headers and body."""

    kind = "app"

    def __init__(
        self, user_id: str, app_id: str, secret: SecretSource, clock: Clock = utc_now
    ) -> None:
        super().__init__(user_id, clock)
        self.app_id = app_id
        self._secret = secret

    def authorization(self, request: requests.PreparedRequest) -> str:
        """Sign the prepared request as KooDrive's app authentication describes."""
        parts = urlsplit(request.url or "")
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        canonical = signing.canonical_request(
            request.method or "POST",
            # requests has already percent-encoded the path; canonicalisation
            # encodes it once, so it gets the decoded form.
            unquote(parts.path),
            parse_qsl(parts.query, keep_blank_values=True),
            request.headers,
            body,
        )
        return signing.authorization_header(self.app_id, self._secret.read(), canonical)

    def renew(self) -> bool:
        """Re-read the app secret."""
        return self._secret.reload()

    def check(self) -> None:
        """Read the app secret once."""
        self._secret.read()


def build_auth(
    settings: AuthSettings, user_id: str, clock: Clock = utc_now
) -> KooDriveAuth:
    """Make the authenticator the settings describe."""
    if settings.app_id:
        secret = _source(settings.app_secret_file, settings.app_secret_env)
        return AppAuth(user_id, settings.app_id, secret, clock)
    token = _source(settings.token_file, settings.token_env)
    return TokenAuth(user_id, token, settings.token_prefix, clock)


def _check_printable(value: str, source: str) -> None:
    # A line break or control character cannot go into a header, and the
    # error that would raise later quotes the header, secret included.
    if not value.isprintable() or not value.isascii():
        raise CredentialError(source, "holds line breaks or other non-printable text")


def _source(path: Path | None, env: str | None) -> SecretSource:
    if path is not None:
        return FileSecret(path)
    if env is not None:
        return EnvSecret(env)
    raise CredentialError("configuration", "no secret file or variable is set")


def _host_header(scheme: str, netloc: str) -> str:
    # Default ports are left out, as HTTP clients do, so the signed Host
    # header equals the one the server sees.
    host = netloc.rsplit("@", 1)[-1]
    for default in ((":443", "https"), (":80", "http")):
        if host.endswith(default[0]) and scheme == default[1]:
            return host[: -len(default[0])]
    return host
