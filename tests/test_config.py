"""Tests of configuration loading: typed settings, defaults, and located errors."""

from __future__ import annotations

import copy
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from koodrive_exporter import config
from koodrive_exporter.config import (
    AuthSettings,
    KooDriveSettings,
    RefreshSettings,
    RetrySettings,
    Settings,
)
from koodrive_exporter.errors import ConfigError

CALLER = "1505084218764547200"


def minimal() -> dict[str, Any]:
    """The smallest valid configuration document."""
    return {
        "koodrive": {
            "url": "https://koodrive.test",
            "user_id": CALLER,
            "auth": {"token_env": "KOODRIVE_TOKEN"},
        }
    }


def with_value(path: str, value: object) -> dict[str, Any]:
    """`minimal()` with the dotted `path` set to `value`, creating sections."""
    document = minimal()
    *parents, last = path.split(".")
    node = document
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = value
    return document


def problems_of(document: object) -> list[tuple[str, str]]:
    """The (key, message) problems that `parse` reports for `document`."""
    with pytest.raises(ConfigError) as caught:
        config.parse(document)
    return caught.value.problems


def problem_keys(document: object) -> list[str]:
    """The key paths of every problem reported for `document`."""
    return [key for key, _ in problems_of(document)]


def load_yaml(tmp_path: Path, text: str) -> Settings:
    """Write `text` to a file and load it as the exporter does."""
    path = tmp_path / "koodrive.yml"
    path.write_text(text, encoding="utf-8")
    return config.load_file(path)


# Valid configurations


def test_full_yaml_gives_every_typed_setting(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not checked here\n", encoding="utf-8")
    text = f"""
koodrive:
  url: https://koodrive.test/base/
  user_id: "{CALLER}"
  auth:
    token_file: {tmp_path / "token"}
    token_prefix: "Bearer+"
  page_size: 50
  timeout_seconds: 5
  user_ids: ["alice", 1505084218764547201, "alice"]
  units:
    quota: GiB
    used: KB
  timezone: Asia/Shanghai
  tls:
    ca_file: {ca_file}
    insecure_skip_verify: true
  allow_insecure_http: false
  max_pages: 7
  concurrency: 3
  retries:
    max_attempts: 3
    backoff_seconds: 0.25
    max_backoff_seconds: 2
refresh:
  mode: background
  min_interval_seconds: 30
  stale_after_seconds: 300
  timeout_seconds: 20
  scrape_timeout_seconds: 8
  scrape_timeout_margin_seconds: 1
"""

    settings = load_yaml(tmp_path, text)

    assert settings == Settings(
        koodrive=KooDriveSettings(
            url="https://koodrive.test/base",
            user_id=CALLER,
            auth=AuthSettings(token_file=tmp_path / "token", token_prefix="Bearer+"),
            page_size=50,
            timeout_seconds=5.0,
            user_ids=("alice", "1505084218764547201"),
            quota_unit="GiB",
            used_unit="KB",
            timezone_name="Asia/Shanghai",
            tz=ZoneInfo("Asia/Shanghai"),
            ca_file=ca_file,
            tls_verify=False,
            allow_insecure_http=False,
            max_pages=7,
            concurrency=3,
            retries=RetrySettings(
                max_attempts=3, backoff_seconds=0.25, max_backoff_seconds=2.0
            ),
        ),
        refresh=RefreshSettings(
            mode="background",
            min_interval_seconds=30.0,
            stale_after_seconds=300.0,
            timeout_seconds=20.0,
            scrape_timeout_seconds=8.0,
            scrape_timeout_margin_seconds=1.0,
        ),
    )
    assert settings.koodrive.quota_factor == 1024**3
    assert settings.koodrive.used_factor == 1000
    assert settings.koodrive.auth.kind == "token"
    assert isinstance(settings.koodrive.timeout_seconds, float)


def test_app_authentication_with_secret_file(tmp_path: Path) -> None:
    document = with_value(
        "koodrive.auth",
        {"app_id": "app-1", "app_secret_file": str(tmp_path / "secret")},
    )

    auth = config.parse(document).koodrive.auth

    assert auth == AuthSettings(app_id="app-1", app_secret_file=tmp_path / "secret")
    assert auth.kind == "app"


def test_app_authentication_with_secret_env() -> None:
    document = with_value(
        "koodrive.auth", {"app_id": "app-1", "app_secret_env": "APP_SECRET"}
    )

    auth = config.parse(document).koodrive.auth

    assert auth.app_secret_env == "APP_SECRET"
    assert auth.app_secret_file is None
    assert auth.kind == "app"


def test_token_env_and_empty_prefix_are_kept() -> None:
    document = with_value(
        "koodrive.auth", {"token_env": "KOODRIVE_TOKEN", "token_prefix": ""}
    )

    auth = config.parse(document).koodrive.auth

    assert auth.token_env == "KOODRIVE_TOKEN"
    assert auth.token_file is None
    assert auth.token_prefix == ""


def test_token_file_path_expands_home() -> None:
    document = with_value("koodrive.auth", {"token_file": "~/token"})

    auth = config.parse(document).koodrive.auth

    assert auth.token_file == Path("~/token").expanduser()
    assert "~" not in str(auth.token_file)


def test_defaults_fill_every_optional_key() -> None:
    settings = config.parse(minimal())

    koodrive = settings.koodrive
    assert koodrive.page_size == 100
    assert koodrive.timeout_seconds == 10.0
    assert koodrive.user_ids == ()
    assert (koodrive.quota_unit, koodrive.used_unit) == ("bytes", "bytes")
    assert (koodrive.quota_factor, koodrive.used_factor) == (1, 1)
    assert koodrive.timezone_name == "UTC"
    assert koodrive.tz == timezone.utc
    assert koodrive.ca_file is None
    assert koodrive.tls_verify is True
    assert koodrive.allow_insecure_http is False
    assert koodrive.max_pages == 10_000
    assert koodrive.concurrency == 4
    assert koodrive.retries == RetrySettings(4, 0.5, 10.0)
    assert koodrive.auth.token_prefix == "Bearer "
    assert settings.refresh == RefreshSettings(
        mode="on_scrape",
        min_interval_seconds=60.0,
        stale_after_seconds=600.0,
        timeout_seconds=30.0,
        scrape_timeout_seconds=10.0,
        scrape_timeout_margin_seconds=0.5,
    )


@pytest.mark.parametrize("unit", ["kib", "KiB", "KIB"])
def test_unit_names_are_case_insensitive(unit: str) -> None:
    settings = config.parse(with_value("koodrive.units", {"quota": unit}))

    assert settings.koodrive.quota_factor == 1024
    assert settings.koodrive.used_factor == 1


@pytest.mark.parametrize("page_size", [1, 100])
def test_page_size_bounds_are_inclusive(page_size: int) -> None:
    settings = config.parse(with_value("koodrive.page_size", page_size))

    assert settings.koodrive.page_size == page_size


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        ("UTC", timedelta(0)),
        ("utc", timedelta(0)),
        ("+08:00", timedelta(hours=8)),
        ("+0800", timedelta(hours=8)),
        ("UTC+8", timedelta(hours=8)),
        ("GMT-05:30", -timedelta(hours=5, minutes=30)),
        ("-5", -timedelta(hours=5)),
        ("+14:00", timedelta(hours=14)),
    ],
)
def test_fixed_offset_time_zones(name: str, offset: timedelta) -> None:
    settings = config.parse(with_value("koodrive.timezone", name))

    assert settings.koodrive.tz.utcoffset(None) == offset
    assert settings.koodrive.timezone_name == name


@pytest.mark.parametrize("name", ["Asia/Shanghai", "Europe/Berlin"])
def test_iana_time_zones(name: str) -> None:
    settings = config.parse(with_value("koodrive.timezone", name))

    assert settings.koodrive.tz == ZoneInfo(name)


def test_empty_time_zone_means_utc() -> None:
    settings = config.parse(with_value("koodrive.timezone", ""))

    assert settings.koodrive.tz == timezone.utc


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "http://127.0.0.2",
        "http://localhost:9000",
        "http://LOCALHOST",
        "http://[::1]:8080",
    ],
)
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    settings = config.parse(with_value("koodrive.url", url))

    assert settings.koodrive.url == url


def test_plain_http_to_remote_host_allowed_when_explicitly_enabled() -> None:
    document = with_value("koodrive.url", "http://koodrive.test")
    document["koodrive"]["allow_insecure_http"] = True

    settings = config.parse(document)

    assert settings.koodrive.url == "http://koodrive.test"
    assert settings.koodrive.allow_insecure_http is True


def test_url_whitespace_and_trailing_slashes_are_removed() -> None:
    settings = config.parse(with_value("koodrive.url", "  https://koodrive.test//  "))

    assert settings.koodrive.url == "https://koodrive.test"


def test_nineteen_digit_unquoted_yaml_user_id_is_kept_exactly(tmp_path: Path) -> None:
    text = """
koodrive:
  url: https://koodrive.test
  user_id: 1505084218764547201
  user_ids: [9007199254740993, "0042"]
  auth: {token_env: KOODRIVE_TOKEN}
"""

    settings = load_yaml(tmp_path, text)

    assert settings.koodrive.user_id == "1505084218764547201"
    assert settings.koodrive.user_ids == ("9007199254740993", "0042")


def test_user_ids_are_stripped_and_deduplicated_in_order() -> None:
    settings = config.parse(with_value("koodrive.user_ids", ["b", " a ", "b", "a"]))

    assert settings.koodrive.user_ids == ("b", "a")


def test_ca_file_that_exists_is_kept(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("x", encoding="utf-8")

    settings = config.parse(with_value("koodrive.tls", {"ca_file": str(ca_file)}))

    assert settings.koodrive.ca_file == ca_file
    assert settings.koodrive.tls_verify is True


def test_zero_stale_after_is_allowed_with_any_interval() -> None:
    document = minimal()
    document["refresh"] = {"min_interval_seconds": 120, "stale_after_seconds": 0}

    settings = config.parse(document)

    assert settings.refresh.stale_after_seconds == 0


def test_empty_refresh_section_gives_defaults() -> None:
    document = minimal()
    document["refresh"] = None

    assert config.parse(document).refresh == RefreshSettings()


# Problems, each located by its key path


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("extra", "extra"),
        ("koodrive.extra", "koodrive.extra"),
        ("koodrive.auth.extra", "koodrive.auth.extra"),
        ("koodrive.units.extra", "koodrive.units.extra"),
        ("koodrive.tls.extra", "koodrive.tls.extra"),
        ("koodrive.retries.extra", "koodrive.retries.extra"),
        ("refresh.extra", "refresh.extra"),
        ("users.extra", "users.extra"),
    ],
)
def test_unknown_key_is_named_at_every_level(path: str, key: str) -> None:
    problems = problems_of(with_value(path, 1))

    assert [k for k, _ in problems] == [key]
    assert "unknown key" in problems[0][1]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("koodrive.page_size", "10"),
        ("koodrive.page_size", 10.0),
        ("koodrive.page_size", True),
        ("koodrive.timeout_seconds", "5"),
        ("koodrive.timeout_seconds", False),
        ("koodrive.user_ids", "alice"),
        ("koodrive.units.quota", 1024),
        ("koodrive.units.used", ["KB"]),
        ("koodrive.timezone", 8),
        ("koodrive.tls.insecure_skip_verify", "yes"),
        ("koodrive.tls.ca_file", 5),
        ("koodrive.allow_insecure_http", "true"),
        ("koodrive.max_pages", 1.5),
        ("koodrive.concurrency", "4"),
        ("users.include_pattern", 5),
        ("users.include_ids", "alice"),
        ("koodrive.retries.max_attempts", True),
        ("koodrive.retries.backoff_seconds", "x"),
        ("koodrive.retries.max_backoff_seconds", [1]),
        ("koodrive.auth.token_prefix", 5),
        ("refresh.mode", 3),
        ("refresh.min_interval_seconds", "60"),
        ("refresh.stale_after_seconds", "600"),
        ("refresh.timeout_seconds", "30"),
        ("refresh.scrape_timeout_seconds", "10"),
        ("refresh.scrape_timeout_margin_seconds", "0.5"),
    ],
)
def test_wrong_type_is_reported_at_its_key(path: str, value: object) -> None:
    assert problem_keys(with_value(path, value)) == [path]


def test_url_of_wrong_type_is_reported_at_its_key() -> None:
    problems = problems_of(with_value("koodrive.url", 5))

    assert {key for key, _ in problems} == {"koodrive.url"}
    assert any("string" in message for _, message in problems)


def test_wrong_type_of_auth_credential_path_is_reported() -> None:
    document = with_value("koodrive.auth", {"token_file": 5})

    keys = problem_keys(document)

    assert "koodrive.auth.token_file" in keys


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("koodrive.page_size", 0),
        ("koodrive.page_size", 101),
        ("koodrive.page_size", -1),
        ("koodrive.timeout_seconds", 0),
        ("koodrive.timeout_seconds", 0.05),
        ("koodrive.timeout_seconds", float("nan")),
        ("koodrive.timeout_seconds", float("inf")),
        ("koodrive.max_pages", 0),
        ("koodrive.concurrency", 0),
        ("koodrive.concurrency", 33),
        ("users.max_users", -1),
        ("koodrive.retries.max_attempts", 0),
        ("koodrive.retries.max_attempts", 21),
        ("koodrive.retries.backoff_seconds", -0.1),
        ("koodrive.retries.max_backoff_seconds", -1),
        ("refresh.min_interval_seconds", -1),
        ("refresh.stale_after_seconds", -1),
        ("refresh.timeout_seconds", 0),
        ("refresh.scrape_timeout_seconds", 0),
        ("refresh.scrape_timeout_margin_seconds", -0.5),
    ],
)
def test_out_of_range_value_is_reported_at_its_key(path: str, value: object) -> None:
    assert problem_keys(with_value(path, value)) == [path]


def test_page_size_error_states_the_bounds() -> None:
    [(key, message)] = problems_of(with_value("koodrive.page_size", 101))

    assert key == "koodrive.page_size"
    assert "1" in message
    assert "100" in message
    assert "101" in message


@pytest.mark.parametrize("unit", ["kilobytes", "KBytes", "B", ""])
def test_unknown_unit_name_is_refused(unit: str) -> None:
    problems = problems_of(with_value("koodrive.units", {"used": unit}))

    assert [key for key, _ in problems] == ["koodrive.units.used"]
    assert "KiB" in problems[0][1]


def test_refresh_mode_must_be_a_known_mode() -> None:
    assert problem_keys(with_value("refresh.mode", "sometimes")) == ["refresh.mode"]


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "America", "+15:00", "UTC+99", "../etc/passwd"]
)
def test_unknown_time_zone_is_refused(name: str) -> None:
    assert problem_keys(with_value("koodrive.timezone", name)) == ["koodrive.timezone"]


def test_time_zone_offset_with_impossible_minutes_is_refused() -> None:
    assert problem_keys(with_value("koodrive.timezone", "+05:99")) == [
        "koodrive.timezone"
    ]


def test_token_and_app_together_are_refused() -> None:
    document = with_value(
        "koodrive.auth",
        {"token_env": "KOODRIVE_TOKEN", "app_id": "a", "app_secret_env": "S"},
    )

    assert problem_keys(document) == ["koodrive.auth"]


def test_token_file_and_token_env_together_are_refused() -> None:
    document = with_value(
        "koodrive.auth", {"token_file": "/run/token", "token_env": "KOODRIVE_TOKEN"}
    )

    assert problem_keys(document) == ["koodrive.auth.token_env"]


def test_app_secret_file_and_env_together_are_refused() -> None:
    document = with_value(
        "koodrive.auth",
        {"app_id": "a", "app_secret_file": "/run/secret", "app_secret_env": "S"},
    )

    assert problem_keys(document) == ["koodrive.auth.app_secret_env"]


def test_app_without_secret_is_refused() -> None:
    document = with_value("koodrive.auth", {"app_id": "a"})

    assert problem_keys(document) == ["koodrive.auth.app_secret_file"]


@pytest.mark.parametrize("app", [{}, {"app_id": ""}])
def test_app_secret_without_app_id_is_refused(app: dict[str, str]) -> None:
    document = with_value("koodrive.auth", {"app_secret_env": "S", **app})

    assert problem_keys(document) == ["koodrive.auth.app_id"]


def test_auth_without_any_credential_is_refused() -> None:
    assert problem_keys(with_value("koodrive.auth", {})) == ["koodrive.auth"]


def test_auth_that_is_not_a_mapping_is_refused() -> None:
    assert set(problem_keys(with_value("koodrive.auth", "token"))) == {"koodrive.auth"}


@pytest.mark.parametrize("name", ["1TOKEN", "MY-TOKEN", "MY TOKEN", ""])
def test_invalid_environment_variable_name_is_refused(name: str) -> None:
    document = with_value("koodrive.auth", {"token_env": name})

    assert "koodrive.auth.token_env" in problem_keys(document)


def test_empty_token_file_path_is_refused() -> None:
    document = with_value("koodrive.auth", {"token_file": "  "})

    assert "koodrive.auth.token_file" in problem_keys(document)


def test_missing_ca_file_is_refused(tmp_path: Path) -> None:
    document = with_value("koodrive.tls", {"ca_file": str(tmp_path / "absent.pem")})

    assert problem_keys(document) == ["koodrive.tls.ca_file"]


@pytest.mark.parametrize("key", ["url", "user_id", "auth"])
def test_missing_required_koodrive_key_is_named(key: str) -> None:
    document = minimal()
    del document["koodrive"][key]

    assert problem_keys(document) == [f"koodrive.{key}"]


def test_missing_koodrive_section_is_named() -> None:
    assert problem_keys({"refresh": {}}) == ["koodrive"]


def test_empty_yaml_document_reports_missing_koodrive() -> None:
    with pytest.raises(ConfigError) as caught:
        config.load_text("")

    assert [key for key, _ in caught.value.problems] == ["koodrive"]


@pytest.mark.parametrize("document", [["koodrive"], "koodrive", 5])
def test_top_level_that_is_not_a_mapping_is_refused(document: object) -> None:
    assert "(top level)" in problem_keys(document)


def test_koodrive_section_that_is_not_a_mapping_is_refused() -> None:
    keys = problem_keys({"koodrive": "https://koodrive.test"})

    assert "koodrive" in keys
    assert "koodrive.url" in keys


@pytest.mark.parametrize(
    "url",
    ["http://koodrive.test", "http://10.32.45.165", "http://[2001:db8::1]:8080"],
)
def test_plain_http_to_remote_host_is_refused(url: str) -> None:
    problems = problems_of(with_value("koodrive.url", url))

    assert [key for key, _ in problems] == ["koodrive.url"]
    assert "allow_insecure_http" in problems[0][1]


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:s3cret-pass@koodrive.test",
        "https://alice@koodrive.test",
    ],
)
def test_url_with_credentials_is_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(with_value("koodrive.url", url))

    assert [key for key, _ in caught.value.problems] == ["koodrive.url"]
    assert "s3cret-pass" not in str(caught.value)
    assert "alice" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://koodrive.test",
        "koodrive.test",
        "https://",
        "",
        "https://koodrive.test/?x=1",
        "https://koodrive.test/#top",
    ],
)
def test_url_that_is_not_a_plain_base_url_is_refused(url: str) -> None:
    assert problem_keys(with_value("koodrive.url", url)) == ["koodrive.url"]


def test_malformed_ipv6_url_is_reported_as_config_error() -> None:
    assert problem_keys(with_value("koodrive.url", "https://[::1")) == ["koodrive.url"]


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (1.5e18, "koodrive.user_id"),
        (True, "koodrive.user_id"),
        ("", "koodrive.user_id"),
        ("   ", "koodrive.user_id"),
        (["1"], "koodrive.user_id"),
    ],
)
def test_user_id_that_cannot_name_a_user_is_refused(value: object, key: str) -> None:
    assert problem_keys(with_value("koodrive.user_id", value)) == [key]


def test_float_user_id_in_yaml_is_refused(tmp_path: Path) -> None:
    text = """
koodrive:
  url: https://koodrive.test
  user_id: 1505084218764547200.0
  user_ids: ["a", 2.5]
  auth: {token_env: KOODRIVE_TOKEN}
"""

    with pytest.raises(ConfigError) as caught:
        load_yaml(tmp_path, text)

    assert [key for key, _ in caught.value.problems] == [
        "koodrive.user_id",
        "koodrive.user_ids[1]",
    ]


@pytest.mark.parametrize("value", ["0123", "0x1F", "0b101", "1:30"])
def test_unquoted_user_id_that_yaml_would_change_is_refused(
    tmp_path: Path, value: str
) -> None:
    text = f"""
koodrive:
  url: https://koodrive.test
  user_id: {value}
  auth: {{token_env: KOODRIVE_TOKEN}}
"""

    with pytest.raises(ConfigError) as caught:
        load_yaml(tmp_path, text)

    [(key, message)] = caught.value.problems
    assert key == "koodrive.user_id"
    assert "quote" in message


def test_huge_integer_number_is_reported_as_config_error() -> None:
    assert problem_keys(with_value("koodrive.timeout_seconds", 10**400)) == [
        "koodrive.timeout_seconds"
    ]


def test_background_refresh_needs_a_positive_interval() -> None:
    document = minimal()
    document["refresh"] = {"mode": "background", "min_interval_seconds": 0}

    assert problem_keys(document) == ["refresh.min_interval_seconds"]


def test_stale_after_below_interval_is_refused() -> None:
    document = minimal()
    document["refresh"] = {"min_interval_seconds": 120, "stale_after_seconds": 60}

    assert problem_keys(document) == ["refresh.stale_after_seconds"]


def test_several_problems_are_reported_together() -> None:
    document = copy.deepcopy(minimal())
    document["koodrive"]["page_size"] = 0
    document["koodrive"]["units"] = {"quota": "bogus"}
    document["koodrive"]["url"] = "http://koodrive.test"
    document["koodrive"]["auth"] = {}
    document["refresh"] = {"mode": "sometimes", "colour": "blue"}

    with pytest.raises(ConfigError) as caught:
        config.parse(document)

    keys = [key for key, _ in caught.value.problems]
    assert set(keys) == {
        "koodrive.url",
        "koodrive.auth",
        "koodrive.page_size",
        "koodrive.units.quota",
        "refresh.colour",
        "refresh.mode",
    }
    text = str(caught.value)
    for key in keys:
        assert f"{key}: " in text


def test_invalid_yaml_reports_its_line(tmp_path: Path) -> None:
    text = (
        "koodrive:\n"
        "  url: https://koodrive.test\n"
        "  user_id: '1'\n"
        "   auth: {token_env: T}\n"
    )

    with pytest.raises(ConfigError) as caught:
        load_yaml(tmp_path, text)

    [(key, message)] = caught.value.problems
    assert key == "config.file"
    assert "line 4" in message


def test_load_file_on_a_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yml"

    with pytest.raises(ConfigError) as caught:
        config.load_file(path)

    [(key, message)] = caught.value.problems
    assert key == "config.file"
    assert str(path) in message


def test_load_text_and_parse_agree() -> None:
    text = (
        "koodrive:\n"
        "  url: https://koodrive.test\n"
        f"  user_id: '{CALLER}'\n"
        "  auth: {token_env: KOODRIVE_TOKEN}\n"
    )

    assert config.load_text(text) == config.parse(minimal())
