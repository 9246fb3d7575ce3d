"""Tenant, department and team-space collectors, and several tenants, over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from helpers import CALLER_ID, numbered_users, parse_samples
from koodrive_exporter import config
from koodrive_exporter.cli import build_exporter
from koodrive_exporter.errors import ConfigError
from koodrive_exporter.simulator.app import Simulator
from koodrive_exporter.simulator.faults import Fault


def document(url: str, token_file: Path, **extra: object) -> dict:
    """A configuration document for one tenant at `url`."""
    return {
        "koodrive": {
            "url": url,
            "user_id": CALLER_ID,
            "auth": {"token_file": str(token_file)},
            "retries": {"max_attempts": 1},
        },
        "refresh": {"min_interval_seconds": 0, "stale_after_seconds": 0},
        **extra,
    }


@pytest.fixture
def serve(token_file):
    """Start an exporter for a configuration document; stop it after the test."""
    started = []

    def start(doc: dict, **options: object) -> str:
        exporter = build_exporter(config.parse(doc), "127.0.0.1", 0, **options)
        exporter.start()
        started.append(exporter)
        return f"http://127.0.0.1:{exporter.server.port}"

    yield start
    for exporter in started:
        exporter.stop()


def scrape(url: str) -> dict[str, float]:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return parse_samples(response.text)


def label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def test_every_collector_publishes_what_the_simulator_serves(
    simulator: Simulator, token_file: Path, serve
) -> None:
    simulator.set_users(numbered_users(120))
    collectors = {"users": True, "overview": True, "departments": True, "groups": True}
    base = serve(document(simulator.url, token_file, collectors=collectors))

    samples = scrape(base + "/metrics")

    overview = simulator.overview()
    assert samples["koodrive_tenant_used_bytes"] == pytest.approx(
        overview["totalUsed"] * 1e3
    )
    assert samples["koodrive_tenant_capacity_bytes"] == pytest.approx(
        overview["totalCapacity"] * 1e3
    )
    assert samples["koodrive_tenant_allocated_bytes"] == pytest.approx(
        overview["totalAllocation"] * 1e3
    )
    department_used = 0.0
    for department in simulator.departments():
        labels = (
            f'department="{label_value(department["name"])}",'
            f'department_id="{label_value(department["id"])}"'
        )
        used = samples[f"koodrive_department_used_bytes{{{labels}}}"]
        assert used == pytest.approx(department["spaceUsed"] * 1e3)
        assert (
            samples[f"koodrive_department_users{{{labels}}}"] == department["userNum"]
        )
        department_used += used
    assert department_used == pytest.approx(samples["koodrive_tenant_used_bytes"])
    for group in simulator.groups():
        labels = f'group="{label_value(group["name"])}",group_id="{group["id"]}"'
        assert samples[f"koodrive_group_members{{{labels}}}"] == group["memberNum"]
    for name in collectors:
        assert samples[f'koodrive_collector_up{{collector="{name}"}}'] == 1.0
    assert samples["koodrive_up"] == 1.0


def test_collector_flags_override_the_config(
    simulator: Simulator, token_file: Path, serve
) -> None:
    base = serve(
        document(simulator.url, token_file),
        collector_flags={"users": False, "overview": True},
    )

    samples = scrape(base + "/metrics")

    assert "koodrive_tenant_used_bytes" in samples
    assert not any(key.startswith("koodrive_user_used_bytes") for key in samples)
    assert 'koodrive_collector_up{collector="users"}' not in samples


def test_one_failing_collector_keeps_the_others_and_its_last_data(
    simulator: Simulator, token_file: Path, serve
) -> None:
    base = serve(document(simulator.url, token_file, collectors={"overview": True}))
    assert scrape(base + "/metrics")["koodrive_up"] == 1.0

    # Collectors run users first, so a one-off fault hits the users listing.
    simulator.faults.push(Fault(kind="code", code=13000201))
    samples = scrape(base + "/metrics")

    assert samples["koodrive_up"] == 0.0
    assert samples['koodrive_collector_up{collector="users"}'] == 0.0
    assert samples['koodrive_collector_up{collector="overview"}'] == 1.0
    assert samples['koodrive_user_used_bytes{user_id="1000000000000000007"}'] == 7.0
    assert "koodrive_tenant_used_bytes" in samples


def test_space_units_are_configurable_per_field(
    simulator: Simulator, token_file: Path, serve
) -> None:
    units = {"departments": {"spaceUsed": "KiB"}, "overview": {"totalUsed": "KiB"}}
    doc = document(simulator.url, token_file, collectors={"departments": True})
    doc["koodrive"]["units"] = units
    doc["collectors"]["overview"] = True
    base = serve(doc)

    samples = scrape(base + "/metrics")

    assert samples["koodrive_tenant_used_bytes"] == pytest.approx(
        simulator.overview()["totalUsed"] * 1024, abs=0.5
    )


def test_several_tenants_are_served_apart_on_probe(token: str, token_file: Path, serve):
    with (
        Simulator(numbered_users(3), token=token) as first,
        Simulator(numbered_users(5, start=100), token=token) as second,
    ):
        tenant = document(first.url, token_file)["koodrive"]
        doc = {
            "tenants": {
                "alpha": tenant,
                "beta": {**tenant, "url": second.url},
            },
            "refresh": {"min_interval_seconds": 0, "stale_after_seconds": 0},
        }
        base = serve(doc)

        alpha = scrape(base + "/probe?tenant=alpha")
        beta = scrape(base + "/probe?tenant=beta")
        own = scrape(base + "/metrics")

        assert alpha["koodrive_users"] == 3.0
        assert beta["koodrive_users"] == 5.0
        assert 'koodrive_user_used_bytes{user_id="1000000000000000102"}' in beta
        assert own["koodrive_exporter_tenants"] == 2.0
        assert not any(key.startswith("koodrive_user") for key in own)
        assert requests.get(base + "/probe?tenant=gamma", timeout=10).status_code == 404
        assert requests.get(base + "/probe", timeout=10).status_code == 400

        second.stop()
        beta_down = scrape(base + "/probe?tenant=beta")
        alpha_again = scrape(base + "/probe?tenant=alpha")

        assert beta_down["koodrive_up"] == 0.0
        assert alpha_again["koodrive_up"] == 1.0
        assert "alpha" in requests.get(base + "/", timeout=10).text


def test_tenant_configuration_errors_name_their_keys(token_file: Path) -> None:
    tenant = document("https://a.example", token_file)["koodrive"]
    bad = {
        "koodrive": tenant,
        "tenants": {"ok": tenant, "bad name!": tenant, "broken": {"url": "ftp://x"}},
        "collectors": {"users": False, "overview": "yes"},
    }

    with pytest.raises(ConfigError) as raised:
        config.parse(bad)

    keys = {key for key, _ in raised.value.problems}
    assert "koodrive" in keys
    assert "tenants.bad name!" in keys
    assert "tenants.broken.url" in keys
    assert "tenants.broken.auth" in keys
    assert "collectors.overview" in keys
