"""Shared helpers for the tests of the monitoring assets (rules, dashboards, deploy).

Tests that need an outside program call `require_tool` or `require`: they skip
on a workstation that lacks it, and fail under CI=true, where a skip would hide
a missing install step.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules.yml"
KUBERNETES_DIR = REPO / "deploy" / "kubernetes"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"
OPERATIONS_DOC = REPO / "docs" / "operations.md"

# What koodrive-exporter publishes with only the default `users` collector.
USERS_COLLECTOR_METRICS = frozenset(
    {
        "koodrive_user_quota_bytes",
        "koodrive_user_used_bytes",
        "koodrive_user_quota_expiration_timestamp_seconds",
        "koodrive_user_quota_effective_timestamp_seconds",
        "koodrive_user_quota_creation_timestamp_seconds",
        "koodrive_up",
        "koodrive_collector_up",
        "koodrive_users",
        "koodrive_last_refresh_success_timestamp_seconds",
        "koodrive_refresh_duration_seconds",
        "koodrive_api_requests_total",
        "koodrive_record_errors_total",
        "koodrive_exporter_build_info",
    }
)

# What the optional collectors add, each only when enabled.
OPTIONAL_COLLECTOR_METRICS = {
    "overview": frozenset(
        {
            "koodrive_tenant_capacity_bytes",
            "koodrive_tenant_allocated_bytes",
            "koodrive_tenant_used_bytes",
            "koodrive_tenant_quota_bytes",
        }
    ),
    "departments": frozenset(
        {
            "koodrive_department_quota_bytes",
            "koodrive_department_used_bytes",
            "koodrive_department_users",
        }
    ),
    "groups": frozenset(
        {
            "koodrive_group_quota_bytes",
            "koodrive_group_used_bytes",
            "koodrive_group_members",
        }
    ),
}

# Only on /metrics, and only when the exporter serves several tenants.
MULTI_TENANT_METRICS = frozenset({"koodrive_exporter_tenants"})

# Every series koodrive-exporter can publish, by metric family name.
EXPORTER_METRICS = USERS_COLLECTOR_METRICS.union(
    *OPTIONAL_COLLECTOR_METRICS.values(), MULTI_TENANT_METRICS
)

# Series that Prometheus itself adds to every scrape target.
SCRAPE_METRICS = frozenset({"up"})

_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "inf",
        "nan",
    }
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)"
)
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_IDENTIFIER = re.compile(r"(?<![\w.:$])[A-Za-z_:][A-Za-z0-9_:]*")
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"label_values\((.+),\s*(\w+)\s*\)")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}


def running_in_ci() -> bool:
    """True when the suite runs in CI, where nothing it needs may be missing."""
    return os.environ.get("CI", "").lower() == "true"


def require(available: bool, what: str) -> None:
    """Skip the calling test when `what` is unavailable, or fail it in CI."""
    if available:
        return
    if running_in_ci():
        pytest.fail(f"{what} is not available, and CI=true requires it")
    pytest.skip(f"{what} is not available")


def require_tool(name: str) -> str:
    """The path of an outside program, skipping or failing the test without it."""
    path = shutil.which(name)
    require(path is not None, f"the program {name!r}")
    assert path is not None
    return path


def require_module(name: str) -> ModuleType:
    """Import a module, skipping or failing the test when it is not installed."""
    try:
        module = importlib.import_module(name)
    except ImportError:
        module = None
    require(module is not None, f"the Python module {name!r}")
    assert module is not None
    return module


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as `1h30m` or `45s`."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(number) * _DURATION_SECONDS[unit] for number, unit in parts)


def load_rule_groups(path: Path = RULES_FILE) -> list[dict[str, Any]]:
    """The rule groups of a Prometheus rules file."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list(document["groups"])


def iter_rules(path: Path = RULES_FILE) -> Iterator[dict[str, Any]]:
    """Every recording and alerting rule of a rules file, in file order."""
    for group in load_rule_groups(path):
        yield from group["rules"]


def recording_rule_names(path: Path = RULES_FILE) -> frozenset[str]:
    """The series names that the recording rules of a rules file produce."""
    return frozenset(rule["record"] for rule in iter_rules(path) if "record" in rule)


def known_metrics() -> frozenset[str]:
    """Every metric name a query may use: exporter, scrape and recorded series."""
    return EXPORTER_METRICS | SCRAPE_METRICS | recording_rule_names()


def metric_tokens(expr: str) -> list[str]:
    """The metric names a PromQL expression selects, in the order they appear."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    text = _OFFSET.sub(" ", text)

    names = []
    for match in _IDENTIFIER.finditer(text):
        following = text[match.end() :].lstrip()
        if following.startswith("("):
            continue
        if match.group().lower() in _KEYWORDS:
            continue
        names.append(match.group())
    return names


def metric_names(expr: str) -> set[str]:
    """The set of metric names a PromQL expression selects."""
    return set(metric_tokens(expr))


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard JSON file in grafana/dashboards, by file name."""
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def dashboard_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel query and query variable of a dashboard.

    A variable's `label_values(selector, label)` becomes the PromQL query that
    returns the same label values.
    """
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"{panel['title']} / {target['refId']}", target["expr"]))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            selector, label = label_values_query(variable["definition"])
            expr = f"group by ({label}) ({selector})"
            queries.append((f"variable {variable['name']}", expr))
    return queries


def substitute_variables(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana's `$name` and `${name}` variables with concrete values."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for the Grafana variable {name!r} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(value, expr)


def label_values_query(definition: str) -> tuple[str, str]:
    """The series selector and label name of a `label_values(selector, label)`."""
    match = _LABEL_VALUES.fullmatch(definition.strip())
    if match is None:
        raise ValueError(f"not a label_values() query: {definition!r}")
    return match.group(1).strip(), match.group(2)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def markdown_anchors(path: Path = OPERATIONS_DOC) -> set[str]:
    """The anchors of every heading in a markdown file."""
    anchors = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            anchors.add(github_anchor(line.lstrip("#")))
    return anchors


def generator_is_current(script: Path) -> subprocess.CompletedProcess[str]:
    """Run a generator script with `--check`, which fails if its output drifted."""
    return subprocess.run(
        [sys.executable, str(script), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
