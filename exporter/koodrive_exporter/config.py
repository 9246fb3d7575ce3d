"""Configuration: YAML loading, defaults and validation into typed settings.

Every problem is collected with the path of its key (`koodrive.auth.token_file`)
so that one run of `--config.check` reports them all.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from .errors import ConfigError
from .selection import UserSelection

# Multipliers from the unit KooDrive may send to bytes. The API does not
# document its units, so the operator chooses and the exporter publishes bytes.
UNIT_FACTORS: dict[str, int] = {
    "bytes": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
UNIT_NAMES = "bytes, KB, MB, GB, TB, KiB, MiB, GiB, TiB"

# Units of the neighbouring space APIs. Where KooDrive documents a unit it is
# the default (overview: totals in KB, quota in GB); the departments' and team
# spaces' follow the only worked example: usage in KB against capacity in GB.
SPACE_UNIT_DEFAULTS: dict[str, dict[str, str]] = {
    "overview": {
        "totalCapacity": "KB",
        "totalAllocation": "KB",
        "totalUsed": "KB",
        "quota": "GB",
    },
    "departments": {"capacity": "GB", "spaceUsed": "KB"},
    "groups": {"capacity": "GB", "spaceUsed": "KB"},
}

COLLECTORS = ("users", "overview", "departments", "groups")
# No duration setting needs more than a week; larger ones overflow timers.
MAX_SECONDS = 7 * 24 * 3600.0
REFRESH_MODES = ("on_scrape", "background")
MAX_PAGE_SIZE = 100
MAX_USER_IDS_PER_REQUEST = 50
DEFAULT_TOKEN_PREFIX = "Bearer "  # noqa: S105 - a header prefix, not a secret

_TENANT_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_OFFSET = re.compile(r"^(?:UTC|GMT)?\s*([+-])(\d{1,2})(?::?(\d{2}))?$")


@dataclass(frozen=True)
class AuthSettings:
    """How the exporter proves itself to KooDrive: a token or an app signature."""

    token_file: Path | None = None
    token_env: str | None = None
    token_prefix: str = DEFAULT_TOKEN_PREFIX
    app_id: str | None = None
    app_secret_file: Path | None = None
    app_secret_env: str | None = None

    @property
    def kind(self) -> str:
        """`token` or `app`."""
        return "app" if self.app_id else "token"


@dataclass(frozen=True)
class RetrySettings:
    """Retries of one API request, all bounded by the refresh deadline."""

    max_attempts: int = 4
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 10.0


@dataclass(frozen=True)
class KooDriveSettings:
    """Where the API is, how to call it and how to read what it sends."""

    url: str
    user_id: str
    auth: AuthSettings
    page_size: int = MAX_PAGE_SIZE
    timeout_seconds: float = 10.0
    user_ids: tuple[str, ...] = ()
    quota_unit: str = "bytes"
    used_unit: str = "bytes"
    timezone_name: str = "UTC"
    tz: tzinfo = timezone.utc
    ca_file: Path | None = None
    tls_verify: bool = True
    allow_insecure_http: bool = False
    max_pages: int = 10_000
    concurrency: int = 4
    retries: RetrySettings = field(default_factory=RetrySettings)
    space_units: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: SPACE_UNIT_DEFAULTS
    )

    def factor(self, collector: str, api_field: str) -> int:
        """Bytes per unit of one size field of the overview, departments or groups."""
        return UNIT_FACTORS[self.space_units[collector][api_field].lower()]

    @property
    def quota_factor(self) -> int:
        """Bytes per unit of the `quota` field."""
        return UNIT_FACTORS[self.quota_unit.lower()]

    @property
    def used_factor(self) -> int:
        """Bytes per unit of the `used` field."""
        return UNIT_FACTORS[self.used_unit.lower()]


@dataclass(frozen=True)
class RefreshSettings:
    """When the user listing is fetched and how long it may take."""

    mode: str = "on_scrape"
    min_interval_seconds: float = 60.0
    stale_after_seconds: float = 600.0
    timeout_seconds: float = 30.0
    scrape_timeout_seconds: float = 10.0
    scrape_timeout_margin_seconds: float = 0.5


@dataclass(frozen=True)
class Settings:
    """The whole validated configuration.

    Either one tenant in `koodrive`, served on /metrics, or several in
    `tenants`, each served on /probe?tenant=NAME.
    """

    koodrive: KooDriveSettings | None
    refresh: RefreshSettings = field(default_factory=RefreshSettings)
    users: UserSelection = field(default_factory=UserSelection)
    collectors: tuple[str, ...] = ("users",)
    tenants: Mapping[str, KooDriveSettings] = field(default_factory=dict)

    @property
    def multi_tenant(self) -> bool:
        """True when tenants are served by name on /probe."""
        return bool(self.tenants)

    def with_collectors(self, overrides: Mapping[str, bool]) -> Settings:
        """These settings with collectors switched on or off (command-line flags)."""
        enabled = [
            name for name in COLLECTORS if overrides.get(name, name in self.collectors)
        ]
        if not enabled:
            raise ConfigError(
                [
                    (
                        "collectors",
                        "enable at least one (in the file or --collector.NAME)",
                    )
                ]
            )
        return replace(self, collectors=tuple(enabled))


def load_file(path: str | Path) -> Settings:
    """Read and validate a YAML configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError([("config.file", f"{path} is not UTF-8 text")]) from None
    except OSError as exc:
        raise ConfigError(
            [("config.file", f"cannot read {path}: {exc.strerror}")]
        ) from exc
    return load_text(text)


class _SourceInt(int):
    """A YAML integer that remembers how it was written."""

    source: str


class _Loader(yaml.SafeLoader):
    """A safe loader whose integers keep their source text.

    YAML 1.1 reads an unquoted `0123` as octal 83; an ID written that way
    must be refused, not silently changed, so the text is kept to compare.
    """


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    value = _SourceInt(loader.construct_yaml_int(node))
    value.source = str(node.value)
    return value


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_text(text: str) -> Settings:
    """Parse YAML text and validate it."""
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except RecursionError:
        raise ConfigError([("config.file", "nested too deeply")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([("config.file", f"not valid YAML{where}")]) from exc
    return parse(document if document is not None else {})


def parse(document: object) -> Settings:
    """Validate a configuration mapping; raise ConfigError listing every problem."""
    reader = _Reader()
    root = reader.mapping(
        document, "", ("koodrive", "tenants", "refresh", "users", "collectors")
    )
    koodrive = None
    tenants: dict[str, KooDriveSettings] = {}
    if root.get("tenants") is not None:
        tenants = _parse_tenants(reader, root["tenants"])
        if root.get("koodrive") is not None:
            reader.problem("koodrive", "set koodrive (one tenant) or tenants, not both")
    else:
        section = reader.section(root, "koodrive", required=True)
        if "koodrive" not in reader.missing_sections:
            koodrive = _parse_koodrive(reader, section)
    refresh = _parse_refresh(reader, reader.section(root, "refresh"))
    users = _parse_users(reader, reader.section(root, "users"))
    collectors = _parse_collectors(reader, reader.section(root, "collectors"))
    if reader.problems:
        raise ConfigError(reader.problems)
    return Settings(
        koodrive=koodrive,
        refresh=refresh,
        users=users,
        collectors=collectors,
        tenants=tenants,
    )


def _parse_tenants(reader: _Reader, value: object) -> dict[str, KooDriveSettings]:
    if not isinstance(value, Mapping) or not value:
        reader.problem("tenants", "must map tenant names to their settings")
        return {}
    tenants = {}
    for name, section in value.items():
        if not isinstance(name, str) or not _TENANT_NAME.fullmatch(name):
            reader.problem(
                f"tenants.{name}", "names use letters, digits, '.', '_', '-'"
            )
            continue
        settings = _parse_koodrive(reader, section, f"tenants.{name}")
        if settings is not None:
            tenants[name] = settings
    return tenants


def _parse_collectors(reader: _Reader, section: Mapping[str, Any]) -> tuple[str, ...]:
    section = reader.mapping(section, "collectors", COLLECTORS)
    enabled = tuple(
        name
        for name in COLLECTORS
        if reader.boolean(section, f"collectors.{name}", name == "users")
    )
    return enabled


def parse_timezone(name: str) -> tzinfo:
    """An IANA zone name, `UTC`, or a fixed offset such as `+08:00` or `UTC-5`."""
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    match = _OFFSET.match(text)
    if match:
        sign, hours, minutes = match.groups()
        if int(minutes or 0) > 59:
            raise ValueError(f"offset {name!r} has more than 59 minutes")
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if delta > timedelta(hours=14):
            raise ValueError(f"offset {name!r} is beyond +/-14:00")
        return timezone(-delta if sign == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback IP addresses."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _parse_koodrive(
    reader: _Reader, section: Mapping[str, Any], prefix: str = "koodrive"
) -> KooDriveSettings | None:
    known = (
        "url",
        "user_id",
        "auth",
        "page_size",
        "timeout_seconds",
        "user_ids",
        "units",
        "timezone",
        "tls",
        "allow_insecure_http",
        "max_pages",
        "concurrency",
        "retries",
    )
    section = reader.mapping(section, prefix, known)
    allow_http = reader.boolean(section, f"{prefix}.allow_insecure_http", False)
    url = reader.url(section, f"{prefix}.url", allow_http=allow_http)
    user_id = reader.identifier(section, f"{prefix}.user_id", required=True)
    auth_section = reader.section(section, "auth", prefix, required=True)
    auth = _parse_auth(reader, auth_section, prefix)
    page_size = reader.integer(
        section, f"{prefix}.page_size", MAX_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE
    )
    timeout = reader.number(section, f"{prefix}.timeout_seconds", 10.0, low=0.1)
    user_ids = reader.identifiers(section, f"{prefix}.user_ids")
    units = reader.mapping(
        reader.section(section, "units", prefix),
        f"{prefix}.units",
        ("quota", "used", *SPACE_UNIT_DEFAULTS),
    )
    quota_unit = reader.unit(units, f"{prefix}.units.quota", "bytes")
    used_unit = reader.unit(units, f"{prefix}.units.used", "bytes")
    space_units = {
        collector: _parse_space_units(reader, units, f"{prefix}.units", collector)
        for collector in SPACE_UNIT_DEFAULTS
    }
    zone_name = reader.string(section, f"{prefix}.timezone", "UTC") or "UTC"
    zone = reader.check(
        f"{prefix}.timezone", lambda: parse_timezone(zone_name), timezone.utc
    )
    tls = reader.mapping(
        reader.section(section, "tls", prefix),
        f"{prefix}.tls",
        ("ca_file", "insecure_skip_verify"),
    )
    ca_file = reader.path(tls, f"{prefix}.tls.ca_file", must_exist=True)
    skip_verify = reader.boolean(tls, f"{prefix}.tls.insecure_skip_verify", False)
    max_pages = reader.integer(section, f"{prefix}.max_pages", 10_000, low=1)
    concurrency = reader.integer(section, f"{prefix}.concurrency", 4, low=1, high=32)
    retries = _parse_retries(reader, reader.section(section, "retries", prefix), prefix)
    if url is None or user_id is None or auth is None:
        return None
    return KooDriveSettings(
        url=url,
        user_id=user_id,
        auth=auth,
        page_size=page_size,
        timeout_seconds=timeout,
        user_ids=user_ids,
        quota_unit=quota_unit,
        used_unit=used_unit,
        timezone_name=zone_name,
        tz=zone,
        ca_file=ca_file,
        tls_verify=not skip_verify,
        allow_insecure_http=allow_http,
        max_pages=max_pages,
        concurrency=concurrency,
        retries=retries,
        space_units=space_units,
    )


def _parse_space_units(
    reader: _Reader, units: Mapping[str, Any], prefix: str, collector: str
) -> dict[str, str]:
    defaults = SPACE_UNIT_DEFAULTS[collector]
    key = f"{prefix}.{collector}"
    section = reader.mapping(
        reader.section(units, collector, prefix), key, tuple(defaults)
    )
    return {
        name: reader.unit(section, f"{key}.{name}", default)
        for name, default in defaults.items()
    }


def _parse_auth(
    reader: _Reader, section: Mapping[str, Any], parent: str = "koodrive"
) -> AuthSettings | None:
    known = (
        "token_file",
        "token_env",
        "token_prefix",
        "app_id",
        "app_secret_file",
        "app_secret_env",
    )
    prefix = f"{parent}.auth"
    section = reader.mapping(section, prefix, known)
    token_file = reader.path(section, f"{prefix}.token_file")
    token_env = reader.env_name(section, f"{prefix}.token_env")
    token_prefix = reader.string(
        section, f"{prefix}.token_prefix", DEFAULT_TOKEN_PREFIX
    )
    app_id = reader.string(section, f"{prefix}.app_id", None)
    secret_file = reader.path(section, f"{prefix}.app_secret_file")
    secret_env = reader.env_name(section, f"{prefix}.app_secret_env")

    token_given = token_file is not None or token_env is not None
    app_given = app_id is not None or secret_file is not None or secret_env is not None
    if token_file is not None and token_env is not None:
        reader.problem(f"{prefix}.token_env", "set token_file or token_env, not both")
    if secret_file is not None and secret_env is not None:
        reader.problem(
            f"{prefix}.app_secret_env",
            "set app_secret_file or app_secret_env, not both",
        )
    if token_given and app_given:
        reader.problem(prefix, "choose token or app authentication, not both")
    elif app_given:
        if not app_id:
            reader.problem(f"{prefix}.app_id", "required for app authentication")
        if secret_file is None and secret_env is None:
            reader.problem(
                f"{prefix}.app_secret_file",
                "app authentication needs app_secret_file or app_secret_env",
            )
    elif not token_given and prefix not in reader.missing_sections:
        reader.problem(
            prefix, "set token_file or token_env, or app_id with an app secret"
        )
    return AuthSettings(
        token_file=token_file,
        token_env=token_env,
        token_prefix=token_prefix if token_prefix is not None else DEFAULT_TOKEN_PREFIX,
        app_id=app_id,
        app_secret_file=secret_file,
        app_secret_env=secret_env,
    )


def _parse_retries(
    reader: _Reader, section: Mapping[str, Any], parent: str = "koodrive"
) -> RetrySettings:
    prefix = f"{parent}.retries"
    section = reader.mapping(
        section, prefix, ("max_attempts", "backoff_seconds", "max_backoff_seconds")
    )
    return RetrySettings(
        max_attempts=reader.integer(
            section, f"{prefix}.max_attempts", 4, low=1, high=20
        ),
        backoff_seconds=reader.number(section, f"{prefix}.backoff_seconds", 0.5, low=0),
        max_backoff_seconds=reader.number(
            section, f"{prefix}.max_backoff_seconds", 10.0, low=0
        ),
    )


def _parse_refresh(reader: _Reader, section: Mapping[str, Any]) -> RefreshSettings:
    known = (
        "mode",
        "min_interval_seconds",
        "stale_after_seconds",
        "timeout_seconds",
        "scrape_timeout_seconds",
        "scrape_timeout_margin_seconds",
    )
    section = reader.mapping(section, "refresh", known)
    mode = reader.choice(section, "refresh.mode", "on_scrape", REFRESH_MODES)
    interval = reader.number(section, "refresh.min_interval_seconds", 60.0, low=0)
    stale = reader.number(section, "refresh.stale_after_seconds", 600.0, low=0)
    timeout = reader.number(section, "refresh.timeout_seconds", 30.0, low=0.1)
    scrape = reader.number(section, "refresh.scrape_timeout_seconds", 10.0, low=0.1)
    margin = reader.number(section, "refresh.scrape_timeout_margin_seconds", 0.5, low=0)
    if margin >= scrape:
        reader.problem(
            "refresh.scrape_timeout_margin_seconds",
            "must be below refresh.scrape_timeout_seconds",
        )
    if mode == "background" and interval <= 0:
        reader.problem(
            "refresh.min_interval_seconds", "must be above 0 in background mode"
        )
    if stale and stale < interval:
        reader.problem(
            "refresh.stale_after_seconds",
            "must be at least refresh.min_interval_seconds, or every snapshot is stale",
        )
    return RefreshSettings(
        mode=mode,
        min_interval_seconds=interval,
        stale_after_seconds=stale,
        timeout_seconds=timeout,
        scrape_timeout_seconds=scrape,
        scrape_timeout_margin_seconds=margin,
    )


def _parse_users(reader: _Reader, section: Mapping[str, Any]) -> UserSelection:
    known = (
        "include_ids",
        "exclude_ids",
        "include_pattern",
        "exclude_pattern",
        "max_users",
    )
    section = reader.mapping(section, "users", known)
    return UserSelection(
        include_ids=frozenset(reader.identifiers(section, "users.include_ids")),
        exclude_ids=frozenset(reader.identifiers(section, "users.exclude_ids")),
        include_pattern=reader.pattern(section, "users.include_pattern"),
        exclude_pattern=reader.pattern(section, "users.exclude_pattern"),
        max_users=reader.integer(section, "users.max_users", 0, low=0),
    )


def _url_problem(value: str, *, allow_http: bool) -> str | None:
    """What is wrong with the API URL, or None."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - reading it validates the port
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "must not carry credentials; use koodrive.auth"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    if (
        parts.scheme == "http"
        and not allow_http
        and not is_loopback_host(parts.hostname)
    ):
        return (
            "plain http:// would send credentials unencrypted to a remote host; "
            "use https:// or set koodrive.allow_insecure_http: true"
        )
    return None


def _kind(value: object) -> str:
    """A YAML-level name for a value's type, for error messages."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return "text" if isinstance(value, str) else type(value).__name__


class _Reader:
    """Reads typed values out of nested mappings, collecting problems by key path."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.missing_sections: set[str] = set()

    def problem(self, key: str, message: str) -> None:
        self.problems.append((key, message))

    def check(self, key: str, make: Callable[[], Any], fallback: Any) -> Any:
        try:
            return make()
        except ValueError as exc:
            self.problem(key, str(exc))
            return fallback

    def mapping(
        self, value: object, key: str, known: tuple[str, ...]
    ) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.problem(key or "(top level)", "must be a mapping of keys to values")
            return {}
        for name in value:
            if name not in known:
                path = f"{key}.{name}" if key else str(name)
                self.problem(path, f"unknown key; known keys: {', '.join(known)}")
        return value

    def section(
        self,
        parent: Mapping[str, Any],
        name: str,
        parent_key: str = "",
        *,
        required: bool = False,
    ) -> Any:
        key = f"{parent_key}.{name}" if parent_key else name
        if name not in parent or parent[name] is None:
            if required:
                self.problem(key, "required section is missing")
                self.missing_sections.add(key)
            return {}
        return parent[name]

    def _raw(self, section: Mapping[str, Any], key: str) -> Any:
        return section.get(key.rsplit(".", 1)[-1])

    def string(self, section: Mapping[str, Any], key: str, default: str | None) -> Any:
        value = self._raw(section, key)
        if value is None:
            return default
        if not isinstance(value, str):
            self.problem(key, f"must be a string, got {_kind(value)}")
            return default
        return value

    def identifier(
        self, section: Mapping[str, Any], key: str, *, required: bool = False
    ) -> str | None:
        value = self._raw(section, key)
        if value is None:
            if required:
                self.problem(key, "required")
            return None
        return self._identifier_value(value, key)

    def _identifier_value(self, value: object, key: str) -> str | None:
        # YAML reads an unquoted 19-digit ID as an exact int; a float would
        # already have lost digits, so it is refused rather than rounded.
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.problem(key, "must be a string (quote long numeric IDs)")
            return None
        text = str(value).strip()
        source = getattr(value, "source", text).replace("_", "")
        if source.lstrip("+") != text:
            self.problem(key, f"YAML reads {source} as the number {text}; quote the ID")
            return None
        if not text:
            self.problem(key, "must not be empty")
            return None
        return text

    def identifiers(self, section: Mapping[str, Any], key: str) -> tuple[str, ...]:
        value = self._raw(section, key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem(key, "must be a list of user IDs")
            return ()
        ids = []
        for index, item in enumerate(value):
            text = self._identifier_value(item, f"{key}[{index}]")
            if text is not None:
                ids.append(text)
        return tuple(dict.fromkeys(ids))

    def number(
        self,
        section: Mapping[str, Any],
        key: str,
        default: float,
        *,
        low: float | None = None,
        high: float = MAX_SECONDS,
    ) -> float:
        value = self._raw(section, key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(key, f"must be a number, got {_kind(value)}")
            return default
        try:
            finite = math.isfinite(value)
        except OverflowError:
            finite = False
        if not finite or (low is not None and value < low) or value > high:
            self.problem(key, f"must be a number from {low} to {high:g}")
            return default
        return float(value)

    def integer(
        self,
        section: Mapping[str, Any],
        key: str,
        default: int,
        *,
        low: int | None = None,
        high: int | None = None,
    ) -> int:
        value = self._raw(section, key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"must be a whole number, got {_kind(value)}")
            return default
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            self.problem(key, f"must be {bounds}, got {value}")
            return default
        return value

    def boolean(self, section: Mapping[str, Any], key: str, default: bool) -> bool:
        value = self._raw(section, key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value

    def choice(
        self,
        section: Mapping[str, Any],
        key: str,
        default: str,
        allowed: tuple[str, ...],
    ) -> str:
        value = self.string(section, key, default)
        if value not in allowed:
            self.problem(key, f"must be one of {', '.join(allowed)}, got {value!r}")
            return default
        return value

    def unit(self, section: Mapping[str, Any], key: str, default: str) -> str:
        value = self.string(section, key, default)
        if value.lower() not in UNIT_FACTORS:
            self.problem(key, f"must be one of {UNIT_NAMES}, got {value!r}")
            return default
        return value

    def path(
        self, section: Mapping[str, Any], key: str, *, must_exist: bool = False
    ) -> Path | None:
        value = self.string(section, key, None)
        if value is None:
            return None
        if not value.strip():
            self.problem(key, "must not be empty")
            return None
        path = Path(value).expanduser()
        if must_exist and not path.is_file():
            self.problem(key, f"no such file: {value}")
        return path

    def pattern(self, section: Mapping[str, Any], key: str) -> re.Pattern[str] | None:
        value = self.string(section, key, None)
        if value is None:
            return None
        try:
            return re.compile(value)
        except re.error as exc:
            self.problem(key, f"not a valid regular expression: {exc}")
            return None

    def env_name(self, section: Mapping[str, Any], key: str) -> str | None:
        value = self.string(section, key, None)
        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            # The value is not echoed: a token pasted here by mistake would leak.
            self.problem(key, "not a valid environment variable name")
            return None
        return value

    def url(
        self, section: Mapping[str, Any], key: str, *, allow_http: bool
    ) -> str | None:
        value = self.string(section, key, None)
        if value is None:
            if self._raw(section, key) is None:
                self.problem(
                    key, "required, e.g. https://intl.myhuaweicloud-koodrive.com"
                )
            return None
        problem = _url_problem(value.strip(), allow_http=allow_http)
        if problem:
            self.problem(key, problem)
            return None
        return value.strip().rstrip("/")
