"""Cardinality control: include/exclude rules and the cap on exported users."""

from __future__ import annotations

import pytest

from helpers import make_settings, numbered_users, parse_samples
from koodrive_exporter import config
from koodrive_exporter.errors import ConfigError
from koodrive_exporter.simulator.app import Simulator

BASE = 1_000_000_000_000_000_000


def exported_ids(text: str) -> set[str]:
    prefix = 'koodrive_user_used_bytes{user_id="'
    return {
        key[len(prefix) : -2] for key in parse_samples(text) if key.startswith(prefix)
    }


def with_users(settings: config.Settings, **rules: object) -> config.Settings:
    document = {
        "koodrive": {
            "url": settings.koodrive.url,
            "user_id": settings.koodrive.user_id,
            "auth": {"token_file": str(settings.koodrive.auth.token_file)},
        },
        "refresh": {"min_interval_seconds": 0, "stale_after_seconds": 0},
        "users": rules,
    }
    return config.parse(document)


def test_include_and_exclude_rules_choose_the_exported_users(
    simulator: Simulator, token_file, live_exporter
) -> None:
    simulator.set_users(numbered_users(30))
    settings = with_users(
        make_settings(simulator.url, token_file),
        include_pattern=r"10{16}[0-2]\d",
        exclude_ids=[str(BASE + 5)],
        exclude_pattern=r".*7",
    )
    live = live_exporter(settings)

    ids = exported_ids(live.get().text)

    expected = {str(BASE + i) for i in range(30) if i != 5 and not str(i).endswith("7")}
    assert ids == expected


def test_include_ids_alone_keep_only_those_users(
    simulator: Simulator, token_file, live_exporter
) -> None:
    wanted = [str(BASE + 3), str(BASE + 9)]
    settings = with_users(make_settings(simulator.url, token_file), include_ids=wanted)
    live = live_exporter(settings)

    assert exported_ids(live.get().text) == set(wanted)


def test_the_user_cap_cuts_with_a_warning_and_a_counter(
    simulator: Simulator, token_file, live_exporter, caplog
) -> None:
    settings = with_users(make_settings(simulator.url, token_file), max_users=10)
    live = live_exporter(settings)

    text = live.get().text
    samples = parse_samples(text)

    assert exported_ids(text) == {str(BASE + i) for i in range(10)}
    assert samples["koodrive_users"] == 10.0
    assert samples['koodrive_users_dropped_total{reason="limit"}'] >= 15.0
    assert "users over users.max_users not exported" in caplog.text


def test_an_invalid_pattern_is_a_config_error_naming_the_key(token_file) -> None:
    settings = make_settings("http://127.0.0.1:1", token_file)

    with pytest.raises(ConfigError) as raised:
        with_users(settings, include_pattern="(unclosed", max_users=-1)

    keys = {key for key, _ in raised.value.problems}
    assert keys == {"users.include_pattern", "users.max_users"}
