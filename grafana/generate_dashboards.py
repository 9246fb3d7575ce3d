"""Write the koodrive-exporter Grafana dashboards as JSON into grafana/dashboards/.

The JSON files are what Grafana imports or provisions; this script is where they
are edited. Run it after a change, and `--check` to verify that the files on
disk match it:

    python grafana/generate_dashboards.py [--check]

Thresholds follow the alerts in deploy/prometheus/rules.yml.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"

OVERVIEW_UID = "koodrive-overview"
USER_UID = "koodrive-user"
EXPORTER_UID = "koodrive-exporter"
TENANTS_UID = "koodrive-tenants"
USER_SLUG = "koodrive-user-detail"

# Alert thresholds from deploy/prometheus/rules.yml, shown on the panels.
NEARLY_FULL_RATIO = 0.9
FULL_RATIO = 1
ALLOCATION_NEARLY_EXHAUSTED_RATIO = 0.9
TENANT_NEARLY_FULL_RATIO = 0.9
DEPARTMENT_NEARLY_FULL_RATIO = 0.9
WATCH_RATIO = 0.8
EXPIRING_SOON_SECONDS = 14 * 86400
STALE_SECONDS = 600
DAY = 86400
TOP_DEPARTMENTS = 10

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# A single-tenant exporter's series have no tenant label; the variable's "All"
# value `.*` matches them too.
JOB = 'job="$job", tenant=~"$tenant"'
USER = 'job="$job", tenant=~"$tenant", user_id="$user_id"'
# Series about the exporter itself: its own /metrics carries them without a
# tenant label, so they are filtered by job alone.
EXPORTER = 'job="$job"'

Json = dict[str, Any]


def steps(*pairs: tuple[str, float | None]) -> Json:
    """An absolute threshold set from (colour, lower bound) pairs."""
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for color, value in pairs],
    }


def ratio_steps(nearly_full: float) -> Json:
    """Colours of a share used: yellow from 80%, orange past an alert's threshold."""
    return steps(
        ("green", None),
        ("yellow", WATCH_RATIO),
        ("orange", nearly_full),
        ("red", FULL_RATIO),
    )


RATIO_STEPS = ratio_steps(NEARLY_FULL_RATIO)
ALLOCATION_STEPS = ratio_steps(ALLOCATION_NEARLY_EXHAUSTED_RATIO)
TENANT_SPACE_STEPS = ratio_steps(TENANT_NEARLY_FULL_RATIO)
DEPARTMENT_STEPS = ratio_steps(DEPARTMENT_NEARLY_FULL_RATIO)
EXPIRY_STEPS = steps(("red", None), ("orange", 0), ("green", EXPIRING_SOON_SECONDS))
AGE_STEPS = steps(("green", None), ("red", STALE_SECONDS))
COUNT_STEPS = steps(("green", None), ("orange", 1))
ALARM_COUNT_STEPS = steps(("green", None), ("red", 1))
NEUTRAL_STEPS = steps(("text", None))
UP_STEPS = steps(("red", None), ("green", 1))


def target(
    expr: str,
    ref: str = "A",
    legend: str = "",
    *,
    instant: bool = False,
    rows: bool = False,
) -> Json:
    """One Prometheus query of a panel; `rows` returns it as table rows."""
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "format": "table" if rows else "time_series",
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "refId": ref,
    }


def panel(
    kind: str,
    title: str,
    grid: tuple[int, int, int, int],
    targets: list[Json],
    *,
    description: str,
    unit: str = "none",
    thresholds: Json = NEUTRAL_STEPS,
    options: Json | None = None,
    custom: Json | None = None,
    overrides: Iterable[Json] = (),
    transformations: Iterable[Json] = (),
    no_value: str | None = None,
    mappings: Iterable[Json] = (),
    decimals: int | None = None,
) -> Json:
    """A panel of any kind; x, y, width and height on Grafana's 24-column grid."""
    x, y, width, height = grid
    defaults: Json = {
        "unit": unit,
        "thresholds": thresholds,
        "color": {"mode": "thresholds"},
        "mappings": list(mappings),
    }
    if custom is not None:
        defaults["custom"] = custom
    if no_value is not None:
        defaults["noValue"] = no_value
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": width, "h": height},
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "options": options or {},
        "targets": targets,
        "transformations": list(transformations),
    }


def stat(
    title: str,
    grid: tuple[int, int, int, int],
    expr: str,
    *,
    description: str,
    legend: str = "",
    text_mode: str = "value",
    **extra: Any,
) -> Json:
    """A single-number panel showing the latest value of one query."""
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "value",
        "graphMode": "none",
        "textMode": text_mode,
        "justifyMode": "auto",
        "orientation": "auto",
    }
    return panel(
        "stat",
        title,
        grid,
        [target(expr, legend=legend)],
        description=description,
        options=options,
        **extra,
    )


def gauge(
    title: str,
    grid: tuple[int, int, int, int],
    expr: str,
    *,
    description: str,
    legend: str,
    thresholds: Json,
) -> Json:
    """A dial per series from 0 to 100 %, coloured by the thresholds."""
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "auto",
        "showThresholdLabels": False,
        "showThresholdMarkers": True,
        "sizing": "auto",
        "minVizHeight": 75,
        "minVizWidth": 75,
    }
    dial = panel(
        "gauge",
        title,
        grid,
        [target(expr, legend=legend)],
        description=description,
        unit="percentunit",
        thresholds=thresholds,
        options=options,
    )
    dial["fieldConfig"]["defaults"] |= {"min": 0, "max": FULL_RATIO}
    return dial


def timeseries(
    title: str,
    grid: tuple[int, int, int, int],
    targets: list[Json],
    *,
    description: str,
    threshold_lines: bool = False,
    **extra: Any,
) -> Json:
    """A graph over the dashboard's time range."""
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10,
        "showPoints": "never",
        "spanNulls": False,
        "thresholdsStyle": {"mode": "line" if threshold_lines else "off"},
    }
    options = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    if not threshold_lines:
        extra.setdefault("thresholds", steps(("green", None)))
    return panel(
        "timeseries",
        title,
        grid,
        targets,
        description=description,
        custom=custom,
        options=options,
        **extra,
    )


def column(name: str, **properties: Any) -> Json:
    """An override that sets field properties of one table column."""
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [
            {"id": key, "value": value} for key, value in properties.items()
        ],
    }


def user_link_column() -> Json:
    """The user ID column, each cell linking to the user detail dashboard."""
    url = (
        f"/d/{USER_UID}/{USER_SLUG}?${{datasource:queryparam}}&${{job:queryparam}}"
        "&${tenant:queryparam}&var-user_id=${__value.raw}&${__url_time_range}"
    )
    return column(
        "user_id",
        displayName="User ID",
        links=[{"title": "Open the user detail dashboard", "url": url}],
    )


def table(
    title: str,
    grid: tuple[int, int, int, int],
    columns: list[tuple[str, str, Json]],
    *,
    description: str,
    sort_by: str,
    descending: bool = True,
    keys: Sequence[Json] = (),
) -> Json:
    """An instant table, one query per column merged on the rows' labels.

    `columns` holds (header, expr, override properties) for each value column;
    `keys` the overrides of the label columns that name a row, shown first
    after the tenant. Without keys the rows are users, linked to their detail.
    """
    key_columns = list(keys) or [user_link_column()]
    labels = ["tenant"] + [key["matcher"]["options"] for key in key_columns]
    refs = "ABCDEFGH"
    targets = [
        target(expr, ref=refs[index], instant=True, rows=True)
        for index, (_, expr, _) in enumerate(columns)
    ]
    # Grafana names the value column "Value" when a table has a single query.
    renames = {"Value": columns[0][0]}
    renames |= {f"Value #{refs[i]}": header for i, (header, _, _) in enumerate(columns)}
    hidden = {"Time": True, "__name__": True, "job": True, "instance": True}
    order = {name: i for i, name in enumerate(labels)}
    order |= {header: len(labels) + i for i, (header, _, _) in enumerate(columns)}
    transformations = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": hidden,
                "renameByName": renames,
                "indexByName": order,
            },
        },
    ]
    overrides = [column("tenant", displayName="Tenant"), *key_columns]
    overrides += [column(header, **props) for header, _, props in columns]
    options = {
        "showHeader": True,
        "cellHeight": "sm",
        "footer": {"show": False, "reducer": ["sum"], "fields": ""},
        "sortBy": [{"displayName": sort_by, "desc": descending}],
    }
    table_panel = panel(
        "table",
        title,
        grid,
        targets,
        description=description,
        options=options,
        overrides=overrides,
        transformations=transformations,
        custom={"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False},
    )
    table_panel["fieldConfig"]["defaults"]["color"] = {"mode": "fixed"}
    return table_panel


def share_column(thresholds: Json) -> Json:
    """Table column properties for a share used, coloured by the thresholds."""
    return {
        "unit": "percentunit",
        "thresholds": thresholds,
        "custom.cellOptions": {"type": "color-text"},
    }


def datasource_variable() -> Json:
    """The Prometheus data source picker every panel queries through."""
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {
            "selected": False,
            "text": "${DS_PROMETHEUS}",
            "value": "${DS_PROMETHEUS}",
        },
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }


def query_variable(name: str, label: str, definition: str) -> Json:
    """A single-value variable filled from label values."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {
            "qryType": 1,
            "query": definition,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
    }


def tenant_variable(series: str) -> Json:
    """The tenants to show, several or All; All also matches series without one."""
    variable = query_variable(
        "tenant", "Tenant", f'label_values({series}{{job="$job"}}, tenant)'
    )
    variable |= {
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }
    return variable


JOB_VARIABLE = query_variable("job", "Job", "label_values(koodrive_up, job)")
TENANT_VARIABLE = tenant_variable("koodrive_up")


def dashboard(
    uid: str, title: str, description: str, variables: list[Json], panels: list[Json]
) -> Json:
    """A whole dashboard in Grafana's export format, importable and provisionable."""
    used_kinds = sorted({p["type"] for p in panels})
    requires = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
        {
            "type": "datasource",
            "id": "prometheus",
            "name": "Prometheus",
            "version": "1.0.0",
        },
    ]
    requires += [
        {"type": "panel", "id": kind, "name": kind, "version": ""}
        for kind in used_kinds
    ]
    for number, each in enumerate(panels, start=1):
        each["id"] = number
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes koodrive-exporter",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": requires,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["koodrive"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-7d", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": []},
        "links": [
            {
                "title": "KooDrive dashboards",
                "type": "dashboards",
                "tags": ["koodrive"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": panels,
    }


def ratio_count(condition: str) -> str:
    """How many users have a used/quota ratio meeting a condition, 0 for none."""
    return f"count(koodrive:user_used_ratio{{{JOB}}} {condition}) or vector(0)"


def overview() -> Json:
    """Tenant-wide quota use, the fullest users and the quotas about to expire."""
    expiring = (
        f"((koodrive:user_quota_seconds_until_expiration{{{JOB}}} > 0)"
        f" < 30 * {DAY}) and (koodrive_user_quota_bytes{{{JOB}}} > 0)"
    )
    expired = (
        f"(koodrive:user_quota_seconds_until_expiration{{{JOB}}} <= 0)"
        f" and (koodrive_user_quota_bytes{{{JOB}}} > 0)"
    )
    lapsing = (
        f"(koodrive:user_quota_seconds_until_expiration{{{JOB}}} < 30 * {DAY})"
        f" and (koodrive_user_quota_bytes{{{JOB}}} > 0)"
    )
    predicted = (
        f"(koodrive:user_used_bytes:predict_linear7d{{{JOB}}}"
        f" >= (koodrive_user_quota_bytes{{{JOB}}} > 0))"
        f" and koodrive:user_used_ratio{{{JOB}}} < 1"
    )
    top_used = f"topk(10, koodrive_user_used_bytes{{{JOB}}})"
    top_ratio = f"topk(10, koodrive:user_used_ratio{{{JOB}}})"
    unlimited = (
        f"koodrive_user_used_bytes{{{JOB}}} unless koodrive_user_quota_bytes{{{JOB}}}"
    )
    bytes_column = {"unit": "bytes"}
    ratio_column = {
        "unit": "percentunit",
        "thresholds": RATIO_STEPS,
        "custom.cellOptions": {"type": "color-text"},
    }
    panels = [
        stat(
            "Users",
            (0, 0, 4, 4),
            f"sum(koodrive_users{{{JOB}}})",
            description="Users in the exporter's latest snapshot of the tenant.",
        ),
        stat(
            "Used",
            (4, 0, 4, 4),
            f"sum(koodrive_user_used_bytes{{{JOB}}})",
            description="Storage used by all users, with or without a quota.",
            unit="bytes",
        ),
        stat(
            "Allocated",
            (8, 0, 4, 4),
            f"sum(koodrive_user_quota_bytes{{{JOB}}})",
            description="Sum of all quotas; users without a quota add nothing.",
            unit="bytes",
        ),
        stat(
            "Used of allocated",
            (12, 0, 4, 4),
            f"sum(koodrive_user_used_bytes{{{JOB}}}"
            f" and (koodrive_user_quota_bytes{{{JOB}}} > 0))"
            f" / sum(koodrive_user_quota_bytes{{{JOB}}} > 0)",
            description="Storage used by users with a quota, over their quotas.",
            unit="percentunit",
            thresholds=RATIO_STEPS,
        ),
        stat(
            "Users without a quota",
            (16, 0, 4, 4),
            f"count({unlimited}) or vector(0)",
            description="Users whose storage is not limited by a quota.",
        ),
        stat(
            "Data age",
            (20, 0, 4, 4),
            f"time() - max(koodrive_last_refresh_success_timestamp_seconds{{{JOB}}})",
            description=(
                "Time since the last successful refresh from the KooDrive API. "
                "KooDriveDataStale fires above 10 minutes."
            ),
            unit="s",
            thresholds=AGE_STEPS,
        ),
        stat(
            "Users at 80% or more",
            (0, 4, 4, 4),
            ratio_count(f">= {WATCH_RATIO}"),
            description="Users who have used at least 80% of their quota.",
            thresholds=COUNT_STEPS,
        ),
        stat(
            "Users above 90%",
            (4, 4, 4, 4),
            ratio_count(f"> {NEARLY_FULL_RATIO}"),
            description=(
                "Users above the KooDriveUserNearlyFull threshold, full users included."
            ),
            thresholds=COUNT_STEPS,
        ),
        stat(
            "Users at 100%",
            (8, 4, 4, 4),
            ratio_count(f">= {FULL_RATIO}"),
            description="Users who have reached their quota (KooDriveUserFull).",
            thresholds=ALARM_COUNT_STEPS,
        ),
        stat(
            "Predicted full within 7 days",
            (12, 4, 4, 4),
            f"count({predicted}) or vector(0)",
            description=(
                "Users not yet full whose growth over the last 6 hours reaches "
                "the quota within 7 days (KooDriveUserPredictedFull, before its "
                "1h wait)."
            ),
            thresholds=COUNT_STEPS,
        ),
        stat(
            "Quotas expiring within 30 days",
            (16, 4, 4, 4),
            f"count({expiring}) or vector(0)",
            description=(
                "Quotas that expire within 30 days; KooDriveQuotaExpiringSoon "
                "fires at 14 days."
            ),
            thresholds=COUNT_STEPS,
        ),
        stat(
            "Expired quotas",
            (20, 4, 4, 4),
            f"count({expired}) or vector(0)",
            description="Quotas whose expiration time has passed.",
            thresholds=ALARM_COUNT_STEPS,
        ),
        panel(
            "bargauge",
            "Users by share of quota used",
            (0, 8, 12, 8),
            [
                target(ratio_count("< 0.5"), "A", "below 50%", instant=True),
                target(ratio_count(">= 0.5 < 0.8"), "B", "50% to 80%", instant=True),
                target(
                    ratio_count(f">= {WATCH_RATIO} <= {NEARLY_FULL_RATIO}"),
                    "C",
                    "80% to 90%",
                    instant=True,
                ),
                target(
                    ratio_count(f"> {NEARLY_FULL_RATIO} < {FULL_RATIO}"),
                    "D",
                    "90% to 100%",
                    instant=True,
                ),
                target(
                    ratio_count(f">= {FULL_RATIO}"), "E", "100% or more", instant=True
                ),
            ],
            description="How many users with a quota fall in each band of use.",
            options={
                "reduceOptions": {
                    "calcs": ["lastNotNull"],
                    "fields": "",
                    "values": False,
                },
                "displayMode": "gradient",
                "orientation": "horizontal",
                "showUnfilled": True,
                "valueMode": "color",
                "namePlacement": "left",
                "sizing": "auto",
            },
            thresholds=steps(("blue", None)),
        ),
        timeseries(
            "Used and allocated storage",
            (12, 8, 12, 8),
            [
                target(f"sum(koodrive_user_used_bytes{{{JOB}}})", "A", "used"),
                target(f"sum(koodrive_user_quota_bytes{{{JOB}}})", "B", "allocated"),
            ],
            description="Tenant totals over time.",
            unit="bytes",
        ),
        table(
            "Top 10 users by storage used",
            (0, 16, 12, 10),
            [
                ("Used", top_used, bytes_column),
                (
                    "Quota",
                    f"koodrive_user_quota_bytes{{{JOB}}} and {top_used}",
                    bytes_column,
                ),
                (
                    "Used of quota",
                    f"koodrive:user_used_ratio{{{JOB}}} and {top_used}",
                    ratio_column,
                ),
            ],
            description="The users storing the most; a blank quota means none is set.",
            sort_by="Used",
        ),
        table(
            "Top 10 users by share of quota used",
            (12, 16, 12, 10),
            [
                ("Used of quota", top_ratio, ratio_column),
                (
                    "Used",
                    f"koodrive_user_used_bytes{{{JOB}}} and {top_ratio}",
                    bytes_column,
                ),
                (
                    "Quota",
                    f"koodrive_user_quota_bytes{{{JOB}}} and {top_ratio}",
                    bytes_column,
                ),
            ],
            description="The users closest to, or past, their quota.",
            sort_by="Used of quota",
        ),
        table(
            "Quotas expired or expiring within 30 days",
            (0, 26, 12, 10),
            [
                (
                    "Expires",
                    "koodrive_user_quota_expiration_timestamp_seconds"
                    f"{{{JOB}}} * 1000 and {lapsing}",
                    {"unit": "dateTimeAsIso"},
                ),
                (
                    "Time left",
                    f"koodrive:user_quota_seconds_until_expiration{{{JOB}}}"
                    f" and {lapsing}",
                    {
                        "unit": "s",
                        "thresholds": EXPIRY_STEPS,
                        "custom.cellOptions": {"type": "color-text"},
                    },
                ),
            ],
            description=(
                "Users with a quota whose expiration is less than 30 days away "
                "or past; orange within 14 days, red when expired."
            ),
            sort_by="Time left",
            descending=False,
        ),
        table(
            "Largest users without a quota",
            (12, 26, 12, 10),
            [("Used", f"topk(20, {unlimited})", bytes_column)],
            description="Users with no storage limit; no quota alert covers them.",
            sort_by="Used",
        ),
    ]
    return dashboard(
        OVERVIEW_UID,
        "KooDrive / Storage quotas",
        "Quota use of every KooDrive user, from koodrive-exporter.",
        [JOB_VARIABLE, TENANT_VARIABLE],
        panels,
    )


def user_detail() -> Json:
    """One user's use against the quota, its trend and the quota's validity."""
    user_variable = query_variable(
        "user_id",
        "User ID",
        f"label_values(koodrive_user_used_bytes{{{JOB}}}, user_id)",
    )
    panels = [
        stat(
            "Used",
            (0, 0, 4, 4),
            f"koodrive_user_used_bytes{{{USER}}}",
            description="Storage this user uses now.",
            unit="bytes",
        ),
        stat(
            "Quota",
            (4, 0, 4, 4),
            f"koodrive_user_quota_bytes{{{USER}}}",
            description="This user's quota; users without one show as unlimited.",
            unit="bytes",
            no_value="Unlimited",
        ),
        stat(
            "Used of quota",
            (8, 0, 4, 4),
            f"koodrive:user_used_ratio{{{USER}}}",
            description="Used over quota; orange above 90%, red at 100%.",
            unit="percentunit",
            thresholds=RATIO_STEPS,
            no_value="No quota",
        ),
        stat(
            "Projected time until full",
            (12, 0, 4, 4),
            f"koodrive:user_seconds_until_full{{{USER}}}",
            description=(
                "Time until the quota is reached at the growth rate of the last "
                "6 hours; empty while use is not growing or no quota is set."
            ),
            unit="s",
            thresholds=steps(("red", None), ("orange", DAY), ("green", 7 * DAY)),
            no_value="Not growing",
        ),
        stat(
            "Predicted use in 7 days",
            (16, 0, 4, 4),
            f"koodrive:user_used_bytes:predict_linear7d{{{USER}}}",
            description="Storage this user will use in 7 days at the recent rate.",
            unit="bytes",
        ),
        stat(
            "Quota expires in",
            (20, 0, 4, 4),
            f"koodrive:user_quota_seconds_until_expiration{{{USER}}}"
            f" and (koodrive_user_quota_bytes{{{USER}}} > 0)",
            description=(
                "Time left before the quota expires; orange within 14 days, red "
                "once expired."
            ),
            unit="s",
            thresholds=EXPIRY_STEPS,
            no_value="No quota",
        ),
        timeseries(
            "Used and quota",
            (0, 4, 16, 9),
            [
                target(f"koodrive_user_used_bytes{{{USER}}}", "A", "used"),
                target(f"koodrive_user_quota_bytes{{{USER}}}", "B", "quota"),
                target(
                    f"koodrive:user_used_bytes:predict_linear7d{{{USER}}}",
                    "C",
                    "predicted in 7 days",
                ),
            ],
            description="Storage used against the quota over time.",
            unit="bytes",
        ),
        timeseries(
            "Share of quota used",
            (16, 4, 8, 9),
            [target(f"koodrive:user_used_ratio{{{USER}}}", "A", "used of quota")],
            description="Lines mark the nearly-full (90%) and full (100%) alerts.",
            unit="percentunit",
            thresholds=RATIO_STEPS,
            threshold_lines=True,
        ),
        stat(
            "Quota created",
            (0, 13, 8, 4),
            f"koodrive_user_quota_creation_timestamp_seconds{{{USER}}} * 1000",
            description="When the quota was created (createTime).",
            unit="dateTimeAsIso",
        ),
        stat(
            "Quota effective from",
            (8, 13, 8, 4),
            f"koodrive_user_quota_effective_timestamp_seconds{{{USER}}} * 1000",
            description="When the quota took effect (effectiveTime).",
            unit="dateTimeAsIso",
        ),
        stat(
            "Quota expires",
            (16, 13, 8, 4),
            f"koodrive_user_quota_expiration_timestamp_seconds{{{USER}}} * 1000",
            description="When the quota expires (expirationTime).",
            unit="dateTimeAsIso",
        ),
    ]
    return dashboard(
        USER_UID,
        "KooDrive / User detail",
        "One KooDrive user's storage use, quota and quota validity.",
        [JOB_VARIABLE, TENANT_VARIABLE, user_variable],
        panels,
    )


def exporter_health() -> Json:
    """Whether koodrive-exporter is scraped, refreshes and reads records cleanly."""
    up_mappings = [
        {
            "type": "value",
            "options": {
                "0": {"text": "Failing", "color": "red", "index": 0},
                "1": {"text": "OK", "color": "green", "index": 1},
            },
        }
    ]
    panels = [
        stat(
            "Scrape target",
            (0, 0, 4, 4),
            f"min(up{{{JOB}}})",
            description="Whether Prometheus reaches every exporter instance.",
            thresholds=UP_STEPS,
            mappings=up_mappings,
        ),
        stat(
            "KooDrive API refresh",
            (4, 0, 4, 4),
            f"min(koodrive_up{{{JOB}}})",
            description="Whether the last refresh from the KooDrive API succeeded.",
            thresholds=UP_STEPS,
            mappings=up_mappings,
        ),
        stat(
            "Users in snapshot",
            (8, 0, 4, 4),
            f"sum(koodrive_users{{{JOB}}})",
            description="Users in the latest snapshot.",
        ),
        stat(
            "Data age",
            (12, 0, 4, 4),
            f"time() - min(koodrive_last_refresh_success_timestamp_seconds{{{JOB}}})",
            description="Since the last successful refresh; red from 10 minutes.",
            unit="s",
            thresholds=AGE_STEPS,
        ),
        stat(
            "Last refresh took",
            (16, 0, 4, 4),
            f"max(koodrive_refresh_duration_seconds{{{JOB}}})",
            description="Duration of the latest refresh, successful or not.",
            unit="s",
            decimals=2,
        ),
        stat(
            "Exporter version",
            (20, 0, 4, 4),
            f"count by (version) (koodrive_exporter_build_info{{{EXPORTER}}})",
            description="Versions of koodrive-exporter being scraped.",
            legend="{{version}}",
            text_mode="name",
        ),
        timeseries(
            "KooDrive API requests by outcome",
            (0, 4, 12, 8),
            [
                target(
                    "sum by (outcome) (rate(koodrive_api_requests_total"
                    f"{{{JOB}}}[$__rate_interval]))",
                    "A",
                    "{{outcome}}",
                )
            ],
            description=(
                "Requests to the KooDrive API per second, by outcome: success, "
                "HTTP 429 or 5xx, timeouts, connection and API errors."
            ),
            unit="reqps",
        ),
        timeseries(
            "Refresh duration",
            (12, 4, 12, 8),
            [
                target(
                    f"koodrive_refresh_duration_seconds{{{JOB}}}", "A", "{{instance}}"
                )
            ],
            description="How long each refresh took; compare with the scrape timeout.",
            unit="s",
        ),
        timeseries(
            "Records rejected by field",
            (0, 12, 12, 8),
            [
                target(
                    "sum by (field) (increase(koodrive_record_errors_total"
                    f"{{{JOB}}}[$__rate_interval]))",
                    "A",
                    "{{field}}",
                )
            ],
            description=(
                "API records whose field could not be read, such as an unknown "
                "time format or a non-numeric quota."
            ),
            unit="short",
        ),
        timeseries(
            "Data age",
            (12, 12, 12, 8),
            [
                target(
                    "time() - koodrive_last_refresh_success_timestamp_seconds"
                    f"{{{JOB}}}",
                    "A",
                    "{{instance}}",
                )
            ],
            description="The line marks the KooDriveDataStale threshold.",
            unit="s",
            thresholds=AGE_STEPS,
            threshold_lines=True,
        ),
        timeseries(
            "Target and refresh status",
            (0, 20, 24, 7),
            [
                target(f"up{{{JOB}}}", "A", "scrape {{instance}}"),
                target(f"koodrive_up{{{JOB}}}", "B", "refresh {{instance}}"),
            ],
            description="1 when scraping or refreshing works, 0 when it fails.",
            decimals=0,
        ),
    ]
    return dashboard(
        EXPORTER_UID,
        "KooDrive / Exporter health",
        "Scrapes, KooDrive API refreshes and record errors of koodrive-exporter.",
        [JOB_VARIABLE, TENANT_VARIABLE],
        panels,
    )


def tenants() -> Json:
    """Each tenant's capacity, allocation and use, its departments and team spaces."""
    department_used = f"koodrive_department_used_bytes{{{JOB}}}"
    top_departments = (
        f"{department_used} and topk({TOP_DEPARTMENTS}, {department_used} @ end())"
    )
    bytes_column = {"unit": "bytes"}
    count_column = {"unit": "none"}
    up_mappings = [
        {
            "type": "value",
            "options": {
                "0": {"text": "Failing", "color": "red", "index": 0},
                "1": {"text": "OK", "color": "green", "index": 1},
            },
        }
    ]
    panels = [
        stat(
            "Capacity",
            (0, 0, 4, 4),
            f"sum(koodrive_tenant_capacity_bytes{{{JOB}}})",
            description="Storage capacity of the selected tenants (totalCapacity).",
            unit="bytes",
        ),
        stat(
            "Allocated",
            (4, 0, 4, 4),
            f"sum(koodrive_tenant_allocated_bytes{{{JOB}}})",
            description="Capacity granted as quotas (totalAllocation).",
            unit="bytes",
        ),
        stat(
            "Used",
            (8, 0, 4, 4),
            f"sum(koodrive_tenant_used_bytes{{{JOB}}})",
            description="Storage in use in the selected tenants (totalUsed).",
            unit="bytes",
        ),
        stat(
            "Departments",
            (12, 0, 4, 4),
            f"count(koodrive_department_used_bytes{{{JOB}}})",
            description="Departments the exporter reads; empty without that collector.",
        ),
        stat(
            "Departments above 90%",
            (16, 0, 4, 4),
            f"count(koodrive:department_used_ratio{{{JOB}}}"
            f" > {DEPARTMENT_NEARLY_FULL_RATIO}) or vector(0)",
            description=(
                "Departments above the KooDriveDepartmentNearlyFull threshold."
            ),
            thresholds=COUNT_STEPS,
        ),
        stat(
            "Team spaces",
            (20, 0, 4, 4),
            f"count(koodrive_group_used_bytes{{{JOB}}})",
            description="Team spaces the exporter reads; empty without that collector.",
        ),
        gauge(
            "Allocated of capacity",
            (0, 4, 6, 8),
            f"koodrive:tenant_allocated_ratio{{{JOB}}}",
            description=(
                "Share of each tenant's capacity granted as quotas; orange where "
                "KooDriveTenantAllocationNearlyExhausted fires, red when all of "
                "it is granted."
            ),
            legend="{{tenant}}",
            thresholds=ALLOCATION_STEPS,
        ),
        gauge(
            "Used of capacity",
            (6, 4, 6, 8),
            f"koodrive:tenant_used_ratio{{{JOB}}}",
            description=(
                "Share of each tenant's capacity in use; orange where "
                "KooDriveTenantSpaceNearlyFull fires."
            ),
            legend="{{tenant}}",
            thresholds=TENANT_SPACE_STEPS,
        ),
        timeseries(
            "Capacity, allocation and use",
            (12, 4, 12, 8),
            [
                target(
                    f"koodrive_tenant_capacity_bytes{{{JOB}}}",
                    "A",
                    "capacity {{tenant}}",
                ),
                target(
                    f"koodrive_tenant_allocated_bytes{{{JOB}}}",
                    "B",
                    "allocated {{tenant}}",
                ),
                target(f"koodrive_tenant_used_bytes{{{JOB}}}", "C", "used {{tenant}}"),
            ],
            description="Tenant totals over time, one line of each per tenant.",
            unit="bytes",
        ),
        table(
            "Departments by storage used",
            (0, 12, 12, 10),
            [
                ("Used", department_used, bytes_column),
                ("Quota", f"koodrive_department_quota_bytes{{{JOB}}}", bytes_column),
                (
                    "Used of quota",
                    f"koodrive:department_used_ratio{{{JOB}}}",
                    share_column(DEPARTMENT_STEPS),
                ),
                ("Users", f"koodrive_department_users{{{JOB}}}", count_column),
            ],
            description=(
                "Every department; a blank share means no quota above 0 is set. "
                "Orange where KooDriveDepartmentNearlyFull fires."
            ),
            sort_by="Used",
            keys=[
                column("department", displayName="Department"),
                column("department_id", displayName="Department ID"),
            ],
        ),
        timeseries(
            f"Top {TOP_DEPARTMENTS} departments by storage used",
            (12, 12, 12, 10),
            [target(top_departments, "A", "{{department}} {{tenant}}")],
            description=(
                f"Usage over time of the {TOP_DEPARTMENTS} departments that use "
                "the most at the end of the time range."
            ),
            unit="bytes",
        ),
        table(
            "Team spaces by storage used",
            (0, 22, 16, 10),
            [
                ("Used", f"koodrive_group_used_bytes{{{JOB}}}", bytes_column),
                ("Quota", f"koodrive_group_quota_bytes{{{JOB}}}", bytes_column),
                (
                    "Used of quota",
                    f"koodrive:group_used_ratio{{{JOB}}}",
                    share_column(RATIO_STEPS),
                ),
                ("Members", f"koodrive_group_members{{{JOB}}}", count_column),
            ],
            description="Every team space; a blank share means no quota above 0.",
            sort_by="Used",
            keys=[
                column("group", displayName="Team space"),
                column("group_id", displayName="Team space ID"),
            ],
        ),
        stat(
            "Collectors",
            (16, 22, 8, 10),
            f"koodrive_collector_up{{{JOB}}}",
            description=(
                "Whether each collector's last read of the KooDrive API succeeded; "
                "a failing one leaves its panels empty or out of date."
            ),
            legend="{{collector}} {{tenant}}",
            text_mode="value_and_name",
            thresholds=UP_STEPS,
            mappings=up_mappings,
        ),
    ]
    return dashboard(
        TENANTS_UID,
        "KooDrive / Tenants and departments",
        "Capacity, allocation and use of KooDrive tenants, departments and team "
        "spaces, from koodrive-exporter.",
        [JOB_VARIABLE, tenant_variable("koodrive_tenant_capacity_bytes")],
        panels,
    )


def render() -> dict[str, str]:
    """Every dashboard file's name and its JSON text."""
    boards = {
        "koodrive-overview.json": overview(),
        "koodrive-user-detail.json": user_detail(),
        "koodrive-exporter-health.json": exporter_health(),
        "koodrive-tenants.json": tenants(),
    }
    return {name: json.dumps(board, indent=2) + "\n" for name, board in boards.items()}


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or with --check report files that differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare instead of writing"
    )
    args = parser.parse_args(argv)

    stale = []
    for name, text in render().items():
        path = DASHBOARDS_DIR / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        sys.stderr.write(
            f"out of date: {', '.join(stale)}; run grafana/generate_dashboards.py\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
