"""Tests of the Grafana dashboards and their provisioning files."""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support_tools import (
    DASHBOARDS_DIR,
    PROMETHEUS_DIR,
    REPO,
    dashboard_queries,
    generator_is_current,
    iter_rules,
    known_metrics,
    label_values_query,
    load_dashboards,
    metric_tokens,
    parse_duration,
    require_tool,
    substitute_variables,
)

GENERATOR = REPO / "grafana" / "generate_dashboards.py"
PROVISIONING_DIR = REPO / "grafana" / "provisioning"
USER_DETAIL_UID = "koodrive-user"
TENANTS_UID = "koodrive-tenants"
GRID_COLUMNS = 24
# Stand-ins for Grafana's variables, enough for the queries to parse.
VARIABLE_VALUES = {
    "job": "koodrive-exporter",
    "tenant": ".*",
    "user_id": "1505084218764547200",
    "__rate_interval": "4m",
    "__interval": "1m",
    "__range": "7d",
}
COUNT_UNITS = {"none", "short"}
# The alerts on a share used, with the pattern of their threshold, by the
# recorded series they judge. Any other share follows the user quota alerts.
RATIO_ALERTS = {
    "koodrive:tenant_allocated_ratio": [
        ("KooDriveTenantAllocationNearlyExhausted", r"> ([0-9.]+)")
    ],
    "koodrive:tenant_used_ratio": [("KooDriveTenantSpaceNearlyFull", r"> ([0-9.]+)")],
    "koodrive:department_used_ratio": [
        ("KooDriveDepartmentNearlyFull", r"> ([0-9.]+)")
    ],
}
USER_RATIO_ALERTS = [
    ("KooDriveUserNearlyFull", r"> ([0-9.]+)\)"),
    ("KooDriveUserFull", r">= ([0-9.]+)"),
]
# Series about the exporter itself, which its own /metrics carries without a
# tenant label; queries filter them by job alone.
EXPORTER_OWN_METRICS = {"koodrive_exporter_build_info"}
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^{}]*)\}")


def panels() -> Iterator[tuple[str, dict[str, Any]]]:
    """(dashboard file, panel) for every panel of every dashboard."""
    for name, board in load_dashboards().items():
        for panel in board["panels"]:
            yield name, panel


def target_fields(panel: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """The unit and thresholds each query of a panel is shown with, by refId."""
    defaults = panel["fieldConfig"]["defaults"]
    shown = (defaults.get("unit", "none"), defaults.get("thresholds", {}))
    fields = {target["refId"]: shown for target in panel["targets"]}
    if panel["type"] != "table":
        return fields

    renames = {}
    for step in panel["transformations"]:
        if step["id"] == "organize":
            renames = step["options"]["renameByName"]
    header_of = {
        target["refId"]: renames.get(f"Value #{target['refId']}")
        for target in panel["targets"]
    }
    for override in panel["fieldConfig"]["overrides"]:
        header = override["matcher"]["options"]
        props = {prop["id"]: prop["value"] for prop in override["properties"]}
        for ref, ref_header in header_of.items():
            if ref_header == header and "unit" in props:
                fields[ref] = (props["unit"], props.get("thresholds", shown[1]))
    return fields


def column_units(panel: dict[str, Any]) -> dict[str, str]:
    """The unit each query of a panel is shown in, by refId."""
    return {ref: unit for ref, (unit, _) in target_fields(panel).items()}


def board(uid: str) -> dict[str, Any]:
    """The dashboard with a given uid."""
    (found,) = (b for b in load_dashboards().values() if b["uid"] == uid)
    return found


def field_configs(panel: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(unit, thresholds) of a panel's defaults and of each table column."""
    defaults = panel["fieldConfig"]["defaults"]
    yield defaults.get("unit", "none"), defaults.get("thresholds", {})
    for override in panel["fieldConfig"]["overrides"]:
        props = {prop["id"]: prop["value"] for prop in override["properties"]}
        if "unit" in props:
            yield props["unit"], props.get("thresholds", {})


def threshold_values(thresholds: dict[str, Any]) -> set[float]:
    """The lower bounds of a threshold set, the base step excluded."""
    return {s["value"] for s in thresholds.get("steps", []) if s["value"] is not None}


def expected_units(expr: str) -> set[str]:
    """The units that suit what a query returns, judged from its leading metric."""
    leading = metric_tokens(expr)[0]
    choices = [
        (expr.startswith("count"), COUNT_UNITS),
        ("_timestamp_seconds" in leading and "* 1000" in expr, {"dateTimeAsIso"}),
        (" / " in expr or leading.endswith("_ratio"), {"percentunit"}),
        (leading.endswith(("_bytes", ":predict_linear7d")), {"bytes"}),
        ("seconds" in leading, {"s"}),
        (leading.endswith("_total") and "rate(" in expr, {"reqps"}),
    ]
    return next((units for matches, units in choices if matches), COUNT_UNITS)


def alert_threshold(alert: str, pattern: str) -> float:
    """A number, or a product such as `14 * 86400`, from an alert's expression."""
    (rule,) = (rule for rule in iter_rules() if rule.get("alert") == alert)
    match = re.search(pattern, " ".join(rule["expr"].split()))
    assert match, f"{alert}: {pattern!r} not in {rule['expr']!r}"
    return math.prod(float(factor) for factor in match.group(1).split("*"))


def test_dashboards_match_their_generator() -> None:
    result = generator_is_current(GENERATOR)
    assert result.returncode == 0, result.stderr


def test_there_are_overview_user_detail_exporter_and_tenant_dashboards() -> None:
    uids = [board["uid"] for board in load_dashboards().values()]

    assert len(uids) == len(set(uids))
    assert set(uids) == {
        "koodrive-overview",
        USER_DETAIL_UID,
        "koodrive-exporter",
        TENANTS_UID,
    }


def test_dashboards_are_importable_and_provisionable() -> None:
    for name, board in load_dashboards().items():
        assert 36 <= board["schemaVersion"] <= 41, name
        (ds_input,) = board["__inputs"]
        assert ds_input["name"] == "DS_PROMETHEUS", name
        assert ds_input["pluginId"] == "prometheus", name
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", name
        assert variables["datasource"]["query"] == "prometheus", name
        assert variables["datasource"]["current"]["value"] == "${DS_PROMETHEUS}"
        assert "id" not in board or board["id"] is None, name


def test_every_panel_and_variable_queries_through_the_datasource_variable() -> None:
    for name, board in load_dashboards().items():
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == "${datasource}", name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panel_ids_are_unique_and_panels_fit_the_grid_without_overlap() -> None:
    for name, board in load_dashboards().items():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name

        taken: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
            cells = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & taken, f"{name}: {panel['title']} overlaps"
            taken |= cells


def test_every_query_names_only_metrics_the_exporter_or_rules_produce() -> None:
    known = known_metrics()
    for name, board in load_dashboards().items():
        for where, expr in dashboard_queries(board):
            unknown = set(metric_tokens(expr)) - known
            assert not unknown, f"{name}: {where} uses {sorted(unknown)}"


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    rules = []
    for board in load_dashboards().values():
        for index, (_, expr) in enumerate(dashboard_queries(board)):
            concrete = substitute_variables(expr, VARIABLE_VALUES)
            record = f"dashboard:query_{len(rules)}_{index}"
            rules.append({"record": record, "expr": concrete})
    rules_file = tmp_path / "dashboard-queries.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]}))

    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_query_is_shown_in_a_unit_that_fits_its_values() -> None:
    for name, panel in panels():
        units = column_units(panel)
        for target in panel["targets"]:
            expected = expected_units(target["expr"])
            unit = units[target["refId"]]
            assert unit in expected, (
                f"{name}: {panel['title']} / {target['refId']} is shown in "
                f"{unit!r}, expected one of {sorted(expected)}"
            )


def test_required_units_are_used() -> None:
    used = {unit for _, panel in panels() for unit, _ in field_configs(panel)}

    assert {"bytes", "percentunit", "dateTimeAsIso"} <= used


def test_timestamps_are_converted_to_milliseconds_for_date_units() -> None:
    for name, panel in panels():
        units = column_units(panel)
        for target in panel["targets"]:
            if units[target["refId"]] == "dateTimeAsIso":
                assert re.search(r"_timestamp_seconds\{[^}]*\} \* 1000", target["expr"])
            elif "_timestamp_seconds" in target["expr"]:
                assert "* 1000" not in target["expr"], f"{name}: {panel['title']}"


def test_ratio_thresholds_match_the_alerts_on_each_ratio() -> None:
    checked: list[str] = []
    for name, panel in panels():
        fields = target_fields(panel)
        for target in panel["targets"]:
            unit, thresholds = fields[target["refId"]]
            if unit != "percentunit":
                continue
            leading = metric_tokens(target["expr"])[0]
            rules = RATIO_ALERTS.get(leading, USER_RATIO_ALERTS)
            wanted = {alert_threshold(alert, pattern) for alert, pattern in rules}
            assert wanted <= threshold_values(thresholds), (
                f"{name}: {panel['title']} / {target['refId']}"
            )
            checked.append(leading)

    assert len(checked) >= 8
    assert set(RATIO_ALERTS) <= set(checked)


def test_ratio_comparisons_in_queries_match_the_alerts() -> None:
    compared = 0
    for name, board_json in load_dashboards().items():
        for where, expr in dashboard_queries(board_json):
            for ratio, rules in RATIO_ALERTS.items():
                pattern = re.escape(ratio) + r"\{[^}]*\} > ([0-9.]+)"
                for match in re.finditer(pattern, expr):
                    (alert, alert_pattern), *_ = rules
                    wanted = alert_threshold(alert, alert_pattern)
                    assert float(match.group(1)) == wanted, f"{name}: {where}"
                    compared += 1
    assert compared >= 1


def test_expiry_thresholds_match_the_expiry_alerts() -> None:
    soon = alert_threshold("KooDriveQuotaExpiringSoon", r"< ([0-9 *]+)\)")
    checked = 0
    for name, panel in panels():
        units = column_units(panel)
        for target in panel["targets"]:
            if "seconds_until_expiration" not in target["expr"]:
                continue
            if units[target["refId"]] != "s":
                continue
            values = set().union(
                *(threshold_values(t) for u, t in field_configs(panel) if u == "s")
            )
            assert {0, soon} <= values, f"{name}: {panel['title']}"
            checked += 1
    assert checked >= 2


def test_data_age_thresholds_match_the_stale_alert() -> None:
    stale = alert_threshold("KooDriveDataStale", r"> ([0-9]+)")
    checked = 0
    for name, panel in panels():
        exprs = " ".join(target["expr"] for target in panel["targets"])
        if exprs.startswith("time() - "):
            (values,) = (threshold_values(t) for u, t in field_configs(panel))
            assert stale in values, f"{name}: {panel['title']}"
            checked += 1
    assert checked >= 3


def test_user_tables_link_to_the_user_detail_dashboard() -> None:
    boards = load_dashboards()
    (overview,) = (b for b in boards.values() if b["uid"] == "koodrive-overview")
    tables = [panel for panel in overview["panels"] if panel["type"] == "table"]

    assert len(tables) >= 4
    for panel in tables:
        (user_column,) = (
            override
            for override in panel["fieldConfig"]["overrides"]
            if override["matcher"]["options"] == "user_id"
        )
        props = {prop["id"]: prop["value"] for prop in user_column["properties"]}
        (link,) = props["links"]
        assert link["url"].startswith(f"/d/{USER_DETAIL_UID}/"), panel["title"]
        assert "var-user_id=${__value.raw}" in link["url"], panel["title"]
        assert "${datasource:queryparam}" in link["url"], panel["title"]
        assert "${tenant:queryparam}" in link["url"], panel["title"]


def test_user_detail_selects_the_user_from_the_exporter_series() -> None:
    (board,) = (b for b in load_dashboards().values() if b["uid"] == USER_DETAIL_UID)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    definition = variables["user_id"]["definition"]

    assert re.fullmatch(
        r"label_values\(koodrive_user_used_bytes(\{[^}]*\})?, user_id\)", definition
    )
    for panel in board["panels"]:
        for target in panel["targets"]:
            assert 'user_id="$user_id"' in target["expr"], panel["title"]


@pytest.mark.parametrize("name", ["dashboards", "datasources"])
def test_provisioning_files_are_valid(name: str) -> None:
    (path,) = (PROVISIONING_DIR / name).glob("*.yml")
    document = yaml.safe_load(path.read_text(encoding="utf-8"))

    assert document["apiVersion"] == 1
    if name == "dashboards":
        (provider,) = document["providers"]
        assert provider["type"] == "file"
        assert provider["options"]["path"]
    else:
        (source,) = document["datasources"]
        assert source["type"] == "prometheus"
        scrape = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        (job,) = scrape["scrape_configs"]
        assert parse_duration(source["jsonData"]["timeInterval"]) == parse_duration(
            job["scrape_interval"]
        )


def test_dashboard_files_are_the_only_json_in_the_folder() -> None:
    names = {path.name for path in DASHBOARDS_DIR.iterdir()}

    assert names == set(load_dashboards())


def test_every_tenant_query_filters_by_job_and_tenant() -> None:
    checked = 0
    for name, board_json in load_dashboards().items():
        variables = {v["name"] for v in board_json["templating"]["list"]}
        assert {"job", "tenant"} <= variables, name
        for where, expr in dashboard_queries(board_json):
            if where.startswith("variable"):
                continue
            for metric, matchers in SELECTOR.findall(expr):
                assert 'job="$job"' in matchers, f"{name}: {where}: {metric}"
                if metric not in EXPORTER_OWN_METRICS:
                    assert 'tenant=~"$tenant"' in matchers, f"{name}: {where}"
                    checked += 1
    assert checked >= 50


def test_tenant_variable_offers_all_which_also_matches_no_tenant_label() -> None:
    for name, board_json in load_dashboards().items():
        variables = {v["name"]: v for v in board_json["templating"]["list"]}
        tenant = variables["tenant"]
        selector, label = label_values_query(tenant["definition"])

        assert label == "tenant", name
        assert selector.endswith('{job="$job"}'), name
        assert tenant["includeAll"] is True, name
        assert tenant["multi"] is True, name
        # A regular expression that matches the empty string also selects
        # series that have no tenant label at all.
        assert re.fullmatch(tenant["allValue"], ""), name
        assert tenant["current"]["value"] == ["$__all"], name
    variables = {v["name"]: v for v in board(TENANTS_UID)["templating"]["list"]}
    selector, _ = label_values_query(variables["tenant"]["definition"])
    assert selector.startswith("koodrive_tenant_capacity_bytes{"), selector


def test_tenant_dashboard_shows_totals_allocation_departments_and_groups() -> None:
    tenants = board(TENANTS_UID)
    by_title = {panel["title"]: panel for panel in tenants["panels"]}
    exprs = " ".join(
        target["expr"] for panel in tenants["panels"] for target in panel["targets"]
    )

    (allocation,) = (
        panel
        for panel in tenants["panels"]
        if panel["type"] == "gauge"
        and "koodrive:tenant_allocated_ratio" in panel["targets"][0]["expr"]
    )
    assert allocation["fieldConfig"]["defaults"]["max"] == 1
    over_time = {
        metric_tokens(target["expr"])[0]
        for panel in tenants["panels"]
        if panel["type"] == "timeseries"
        for target in panel["targets"]
    }
    assert {
        "koodrive_tenant_capacity_bytes",
        "koodrive_tenant_allocated_bytes",
        "koodrive_tenant_used_bytes",
        "koodrive_department_used_bytes",
    } <= over_time
    tables = {
        panel["title"]: panel for panel in tenants["panels"] if panel["type"] == "table"
    }
    assert len(tables) == 2
    departments, groups = tables.values()
    for table, key in ((departments, "department_id"), (groups, "group_id")):
        metrics = {metric_tokens(t["expr"])[0] for t in table["targets"]}
        keys = {o["matcher"]["options"] for o in table["fieldConfig"]["overrides"]}
        assert key in keys, table["title"]
        assert len(metrics) == 4, table["title"]
        assert table["options"]["sortBy"] == [{"displayName": "Used", "desc": True}]
    assert "koodrive_department_users" in exprs
    assert "koodrive_group_members" in exprs
    # Top-k over time keeps the same departments across the whole range.
    assert "@ end()" in exprs
    assert "Collectors" in by_title
