"""Endpoint protection from a web configuration file, as Prometheus exporters share.

The file holds `tls_server_config` (certificate, key, client CA, minimum TLS
version) and `basic_auth_users` (user name -> bcrypt hash). It is read again
whenever it changes; a new file that does not validate is refused and the last
good one stays in force.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import re
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml

from .errors import ConfigError

log = logging.getLogger(__name__)

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
_BCRYPT = re.compile(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}")
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
)


@dataclass(frozen=True)
class WebConfig:
    """A validated web configuration: an optional TLS context and users."""

    tls: ssl.SSLContext | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)


def parse_web_config(text: str, base: Path) -> WebConfig:
    """Validate a web configuration document; relative paths are from `base`."""
    problems: list[tuple[str, str]] = []
    try:
        document = yaml.safe_load(text) or {}
    except (yaml.YAMLError, RecursionError):
        raise ConfigError([("web.config.file", "not valid YAML")]) from None
    if not isinstance(document, dict):
        raise ConfigError([("web.config.file", "must be a mapping")])
    for key in document:
        if key not in ("tls_server_config", "basic_auth_users"):
            problems.append((str(key), "unknown key"))

    users = _parse_users(document.get("basic_auth_users"), problems)
    tls = _parse_tls(document.get("tls_server_config"), base, problems)
    if problems:
        raise ConfigError(problems)
    return WebConfig(tls=tls, users=users)


def _parse_users(value: object, problems: list[tuple[str, str]]) -> dict[str, bytes]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(("basic_auth_users", "must map user names to bcrypt hashes"))
        return {}
    users = {}
    for name, hashed in value.items():
        key = f"basic_auth_users.{name}"
        if not isinstance(hashed, str) or not _BCRYPT.fullmatch(hashed):
            problems.append((key, "must be a whole bcrypt hash ($2a$, $2b$ or $2y$)"))
            continue
        users[str(name)] = hashed.encode("ascii", "replace")
    return users


def _parse_tls(
    value: object, base: Path, problems: list[tuple[str, str]]
) -> ssl.SSLContext | None:
    if value is None:
        return None
    settings = _tls_settings(value, problems)
    if problems:
        return None
    try:
        return _tls_context(settings, base)
    except (OSError, ssl.SSLError) as exc:
        problems.append(("tls_server_config", f"cannot load certificates: {exc}"))
        return None


def _tls_settings(value: object, problems: list[tuple[str, str]]) -> dict[str, str]:
    prefix = "tls_server_config"
    if not isinstance(value, dict):
        problems.append((prefix, "must be a mapping"))
        return {}
    settings: dict[str, str] = {}
    for key, item in value.items():
        if key not in _TLS_KEYS:
            known = ", ".join(_TLS_KEYS)
            problems.append((f"{prefix}.{key}", f"unknown key; known: {known}"))
        elif not isinstance(item, str):
            problems.append((f"{prefix}.{key}", "must be a string"))
        else:
            settings[key] = item
    for required in ("cert_file", "key_file"):
        if required not in settings:
            problems.append((f"{prefix}.{required}", "required when TLS is configured"))
    auth_type = settings.setdefault("client_auth_type", "NoClientCert")
    if auth_type not in CLIENT_AUTH_TYPES:
        choices = ", ".join(CLIENT_AUTH_TYPES)
        problems.append((f"{prefix}.client_auth_type", f"must be one of {choices}"))
    if settings.setdefault("min_version", "TLS12") not in TLS_VERSIONS:
        choices = ", ".join(TLS_VERSIONS)
        problems.append((f"{prefix}.min_version", f"must be one of {choices}"))
    if "VerifyClientCert" in auth_type and "client_ca_file" not in settings:
        problems.append((f"{prefix}.client_ca_file", f"required by {auth_type}"))
    return settings


def _tls_context(settings: dict[str, str], base: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[settings["min_version"]]
    context.load_cert_chain(base / settings["cert_file"], base / settings["key_file"])
    if "client_ca_file" in settings:
        context.load_verify_locations(base / settings["client_ca_file"])
    # Python offers "verify if given" and "require and verify"; the kinds
    # that ask for a certificate without requiring one are served as "if given".
    auth_type = settings["client_auth_type"]
    if auth_type == "RequireAndVerifyClientCert":
        context.verify_mode = ssl.CERT_REQUIRED
    elif auth_type != "NoClientCert" and "client_ca_file" in settings:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class WebGuard:
    """The web configuration in force, reloaded when its file changes."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._config = WebConfig()
        self._verified: dict[tuple[str, bytes], bytes] = {}
        if path is not None:
            self._config = self._load()

    @property
    def config(self) -> WebConfig:
        """The configuration in force, re-read first if the file changed."""
        if self._path is None:
            return self._config
        try:
            stat = self._path.stat()
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            return self._config
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._reload(stamp)
        return self._config

    @property
    def tls(self) -> bool:
        """True when the file asked for TLS at start-up."""
        return self._config.tls is not None

    def authorized(self, header: str | None) -> bool:
        """Check a request's `Authorization` header against `basic_auth_users`."""
        users = self.config.users
        if not users:
            return True
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return False
        name, sep, password = decoded.partition(":")
        hashed = users.get(name)
        if not sep or hashed is None:
            # Spend the same effort as a real check, so timing does not tell
            # which user names exist.
            bcrypt.checkpw(b"x", _dummy_hash())
            return False
        return self._check(name, password.encode("utf-8"), hashed)

    def _check(self, name: str, password: bytes, hashed: bytes) -> bool:
        # bcrypt is slow on purpose; remember a verified password by digest so
        # each scrape does not pay for it again.
        digest = hashlib.sha256(password).digest()
        key = (name, hashed)
        remembered = self._verified.get(key)
        if remembered is not None and hmac.compare_digest(remembered, digest):
            return True
        try:
            ok = bcrypt.checkpw(password, hashed)
        except ValueError:
            return False
        if ok:
            self._verified[key] = digest
        return ok

    def _load(self) -> WebConfig:
        assert self._path is not None
        try:
            text = self._path.read_text(encoding="utf-8")
            stat = self._path.stat()
        except OSError as exc:
            reason = f"cannot read {self._path}: {exc.strerror}"
            raise ConfigError([("web.config.file", reason)]) from None
        except UnicodeDecodeError:
            reason = f"{self._path} is not UTF-8 text"
            raise ConfigError([("web.config.file", reason)]) from None
        config = parse_web_config(text, self._path.parent)
        self._stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        return config

    def _reload(self, stamp: tuple[int, int, int]) -> None:
        # Called on every accepted connection: it must never raise, or the
        # server's accept loop would stop.
        try:
            config = self._load()
        except Exception as exc:
            if not isinstance(exc, ConfigError):
                exc = ConfigError([("web.config.file", type(exc).__name__)])
            self._stamp = stamp
            log.error(
                "web config rejected, keeping the previous one",
                extra={
                    "fields": {
                        "problems": "; ".join(f"{k}: {m}" for k, m in exc.problems)
                    }
                },
            )
            return
        if (config.tls is None) != (self._config.tls is None):
            log.error("web config cannot switch TLS on or off without a restart")
            return
        self._config = config
        self._verified = {}
        log.info("web config reloaded")


@functools.cache
def _dummy_hash() -> bytes:
    return bcrypt.hashpw(b"not-a-user", bcrypt.gensalt(rounds=10))
