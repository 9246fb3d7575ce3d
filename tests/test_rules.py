"""Tests of the Prometheus rules, their unit tests and the example scrape config."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from support_tools import (
    PROMETHEUS_DIR,
    RULES_FILE,
    iter_rules,
    known_metrics,
    load_rule_groups,
    markdown_anchors,
    metric_names,
    parse_duration,
    require_tool,
)

RULE_TESTS_FILE = PROMETHEUS_DIR / "rules.test.yml"
EXAMPLE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
MULTI_TENANT_CONFIG = PROMETHEUS_DIR / "prometheus-multi-tenant.yml"
SEVERITIES = {"warning", "critical"}
RUNBOOK_PREFIX = "docs/operations.md#"
EXPECTED_ALERTS = {
    "KooDriveUserNearlyFull",
    "KooDriveUserFull",
    "KooDriveUserPredictedFull",
    "KooDriveQuotaExpiringSoon",
    "KooDriveQuotaExpired",
    "KooDriveExporterDown",
    "KooDriveRefreshFailing",
    "KooDriveDataStale",
    "KooDriveTenantAllocationNearlyExhausted",
    "KooDriveTenantSpaceNearlyFull",
    "KooDriveDepartmentNearlyFull",
}
# A ratio divides only by a denominator filtered to values above 0.
GUARDED_DIVISION = re.compile(r"^\w+ / \(\w+ > 0\)$")
# The exporter refreshes at most this often by default; scraping faster only
# re-reads the same snapshot.
DEFAULT_MIN_REFRESH_SECONDS = 60


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool in the rules folder and return what it printed."""
    promtool = require_tool("promtool")
    return subprocess.run(
        [promtool, *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def alerts() -> dict[str, dict]:
    """The alerting rules of rules.yml by name."""
    return {rule["alert"]: rule for rule in iter_rules() if "alert" in rule}


def scrape_jobs(path: Path) -> dict[str, dict[str, Any]]:
    """The scrape configurations of a Prometheus configuration file, by job name."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {job["job_name"]: job for job in config["scrape_configs"]}


def job_label(job: dict[str, Any]) -> str:
    """The `job` label a scrape configuration's targets end up with."""
    for step in job.get("relabel_configs", []):
        if step.get("target_label") == "job" and "source_labels" not in step:
            return str(step["replacement"])
    return str(job["job_name"])


def test_rules_file_passes_promtool_check() -> None:
    result = run_promtool("check", "rules", RULES_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", RULE_TESTS_FILE.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_example_prometheus_config_passes_promtool_check() -> None:
    result = run_promtool("check", "config", EXAMPLE_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_tenant_example_config_passes_promtool_check() -> None:
    result = run_promtool("check", "config", MULTI_TENANT_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_evaluate_recording_rules_before_alerts() -> None:
    document = yaml.safe_load(RULE_TESTS_FILE.read_text(encoding="utf-8"))
    groups = [group["name"] for group in load_rule_groups()]

    assert document["group_eval_order"] == groups
    assert groups.index("koodrive-recording") < groups.index("koodrive-alerts")


def test_rules_define_exactly_the_documented_alerts() -> None:
    assert set(alerts()) == EXPECTED_ALERTS


def test_every_alert_is_unit_tested_both_firing_and_silent() -> None:
    document = yaml.safe_load(RULE_TESTS_FILE.read_text(encoding="utf-8"))
    firing: set[str] = set()
    silent: set[str] = set()
    for group in document["tests"]:
        for case in group.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])

    assert firing == EXPECTED_ALERTS
    assert silent == EXPECTED_ALERTS


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    anchors = markdown_anchors()
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        assert annotations["description"].strip(), name
        runbook = annotations["runbook_url"]
        assert runbook == RUNBOOK_PREFIX + name.lower(), name
        assert runbook.removeprefix(RUNBOOK_PREFIX) in anchors, name


def test_every_alert_waits_before_firing() -> None:
    for name, rule in alerts().items():
        assert parse_duration(rule["for"]) >= 300, name


def test_rule_expressions_name_only_known_metrics() -> None:
    known = known_metrics()
    for rule in iter_rules():
        name = rule.get("record") or rule["alert"]
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{name} uses unknown metrics {sorted(unknown)}"


def test_tenant_department_and_group_ratios_skip_a_zero_denominator() -> None:
    ratios = {
        rule["record"]: " ".join(rule["expr"].split())
        for rule in iter_rules()
        if rule.get("record", "").endswith("_ratio")
    }

    assert {
        "koodrive:tenant_allocated_ratio",
        "koodrive:tenant_used_ratio",
        "koodrive:department_used_ratio",
        "koodrive:group_used_ratio",
    } <= set(ratios)
    for name, expr in ratios.items():
        assert GUARDED_DIVISION.match(expr), f"{name}: {expr}"


def test_recording_rules_follow_the_naming_convention() -> None:
    for rule in iter_rules():
        if "record" in rule:
            assert rule["record"].startswith("koodrive:"), rule["record"]
            assert rule["record"].count(":") in (1, 2), rule["record"]


def test_example_scrape_config_respects_the_refresh_interval() -> None:
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    jobs = config["scrape_configs"]
    (job,) = (job for job in jobs if job["job_name"] == "koodrive-exporter")
    interval = parse_duration(job["scrape_interval"])
    timeout = parse_duration(job["scrape_timeout"])

    assert interval >= DEFAULT_MIN_REFRESH_SECONDS
    assert 30 <= timeout < interval


def test_example_config_loads_the_rules_and_matches_the_down_alert() -> None:
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    rule_files = [(PROMETHEUS_DIR / name).resolve() for name in config["rule_files"]]
    job_names = {job["job_name"] for job in config["scrape_configs"]}

    assert rule_files == [Path(RULES_FILE).resolve()]
    for job in job_names:
        assert f'up{{job="{job}"}}' in alerts()["KooDriveExporterDown"]["expr"]


def test_multi_tenant_example_scrapes_each_tenant_through_probe() -> None:
    jobs = scrape_jobs(MULTI_TENANT_CONFIG)
    probes = [job for job in jobs.values() if job["metrics_path"] == "/probe"]
    own = [job for job in jobs.values() if job["metrics_path"] == "/metrics"]
    (probe,) = probes
    (exporter,) = own
    (tenants,) = probe["static_configs"]
    relabel = probe["relabel_configs"]

    assert len(tenants["targets"]) >= 2
    assert {"source_labels": ["__address__"], "target_label": "__param_tenant"} in (
        relabel
    )
    assert {"source_labels": ["__param_tenant"], "target_label": "tenant"} in relabel
    (address,) = (step for step in relabel if step["target_label"] == "__address__")
    assert "source_labels" not in address
    assert [address["replacement"]] == exporter["static_configs"][0]["targets"]
    for job in (probe, exporter):
        assert parse_duration(job["scrape_interval"]) >= DEFAULT_MIN_REFRESH_SECONDS
    assert (
        30
        <= parse_duration(probe["scrape_timeout"])
        < parse_duration(probe["scrape_interval"])
    )


def test_multi_tenant_example_loads_the_rules_and_matches_the_down_alert() -> None:
    config = yaml.safe_load(MULTI_TENANT_CONFIG.read_text(encoding="utf-8"))
    rule_files = [(PROMETHEUS_DIR / name).resolve() for name in config["rule_files"]]
    labels = {job_label(job) for job in scrape_jobs(MULTI_TENANT_CONFIG).values()}

    assert rule_files == [Path(RULES_FILE).resolve()]
    assert labels == {"koodrive-exporter"}
    assert 'up{job="koodrive-exporter"}' in alerts()["KooDriveExporterDown"]["expr"]
