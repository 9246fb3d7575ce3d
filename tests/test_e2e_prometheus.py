"""End to end: simulator -> koodrive-exporter -> a real Prometheus with our rules.

Prometheus scrapes the exporter every second and evaluates rules.yml with every
`for:` shortened, so each alert shows within seconds. The tests then read
targets, alerts and every dashboard query back through Prometheus's HTTP API:
once for an exporter serving one tenant on /metrics, once for two tenants
scraped through /probe with the relabelling of prometheus-multi-tenant.yml.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import yaml

from support_tools import (
    MULTI_TENANT_METRICS,
    OPTIONAL_COLLECTOR_METRICS,
    PROMETHEUS_DIR,
    RULES_FILE,
    USERS_COLLECTOR_METRICS,
    dashboard_queries,
    free_port,
    load_dashboards,
    load_rule_groups,
    metric_tokens,
    require,
    require_module,
    require_tool,
    substitute_variables,
)

pytestmark = pytest.mark.e2e

T = TypeVar("T")

JOB = "koodrive-exporter"
MULTI_TENANT_EXAMPLE = PROMETHEUS_DIR / "prometheus-multi-tenant.yml"
TOKEN = "e2e-secret-token"
SHORT_FOR = "1s"
START_TIMEOUT = 30.0
ALERT_TIMEOUT = 45.0
POLL_SECONDS = 0.25

NEARLY_FULL = "1000000000000000001"
FULL = "1000000000000000002"
EXPIRING = "1000000000000000003"
EXPIRED = "1000000000000000004"
UNLIMITED_EMPTY = "1000000000000000005"
UNLIMITED_NULL = "1000000000000000006"
UNLIMITED_ZERO = "1000000000000000007"
HEALTHY = "1000000000000000008"
GROWING = "1000000000000000009"
BAD_EXPIRY = "1000000000000000010"
USERS_WITH_QUOTA = {NEARLY_FULL, FULL, EXPIRING, EXPIRED, HEALTHY, GROWING, BAD_EXPIRY}

# The growing user gains this many bytes a second: far below its quota during
# the test, far above it within 7 days.
GROWTH_BYTES_PER_SECOND = 2_000_000
GROWING_QUOTA = 10**9

USER_ALERTS = {
    ("KooDriveUserNearlyFull", NEARLY_FULL),
    ("KooDriveUserFull", FULL),
    ("KooDriveQuotaExpiringSoon", EXPIRING),
    ("KooDriveQuotaExpired", EXPIRED),
    ("KooDriveUserPredictedFull", GROWING),
}

# Far more than the single tenant allocates or stores, so that no tenant
# alert fires there.
ROOMY_CAPACITY_GB = 1e6
ALL_COLLECTORS = ("users", "overview", "departments", "groups")
SINGLE_TENANT_METRICS = USERS_COLLECTOR_METRICS.union(
    *OPTIONAL_COLLECTOR_METRICS.values()
)
# The wire units the exporter assumes by default.
BYTES_PER_GB = 1e9
BYTES_PER_KB = 1e3
NEARLY_FULL_RATIO = 0.9

# Two tenants behind one exporter: the crowded one has granted 95% of its
# capacity as quotas, the calm one has room to spare.
CALM = "calm"
CROWDED = "crowded"
CROWDED_ALLOCATION = 0.95
TENANT_SEEDS = {CALM: 1, CROWDED: 2}
TENANT_DEPARTMENTS = {CALM: 4, CROWDED: 3}
TENANT_USERS = 12
TENANT_USER_QUOTA = 10**10
MULTI_TENANT_DASHBOARDS = frozenset({"koodrive-tenants", "koodrive-exporter"})

# Stand-ins for Grafana's variables when a dashboard query is sent as is; the
# "All" value of the tenant variable is `.*`.
GRAFANA_VALUES = {
    "job": JOB,
    "tenant": ".*",
    "user_id": GROWING,
    "__rate_interval": "1m",
    "__interval": "2s",
    "__range": "5m",
}


def iso(moment: datetime) -> str:
    """A time as KooDrive writes it: ISO 8601, UTC, milliseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def wire_users(started: float) -> list[dict[str, Any]]:
    """The tenant as the KooDrive API sends it, `started` seconds into growth."""
    now = datetime.now(timezone.utc)
    created = iso(now - timedelta(days=400))
    effective = iso(now - timedelta(days=300))
    next_year = iso(now + timedelta(days=365))

    def user(user_id: str, quota: str | None, used: float, expires: str) -> dict:
        return {
            "userId": user_id,
            "quota": quota,
            "used": used,
            "createTime": created,
            "effectiveTime": effective,
            "expirationTime": expires,
        }

    growth = GROWTH_BYTES_PER_SECOND * (time.monotonic() - started)
    return [
        user(NEARLY_FULL, "1000000", 950_000.0, next_year),
        user(FULL, "1000000", 1_000_000.0, next_year),
        user(EXPIRING, "1000000", 100_000.0, iso(now + timedelta(days=7))),
        user(EXPIRED, "1000000", 100_000.0, iso(now - timedelta(days=3))),
        user(UNLIMITED_EMPTY, "", 5e12, iso(now - timedelta(days=3))),
        user(UNLIMITED_NULL, None, 5e12, iso(now + timedelta(days=2))),
        user(UNLIMITED_ZERO, "0", 5e12, iso(now + timedelta(days=2))),
        user(HEALTHY, "1000000", 200_000.0, next_year),
        user(GROWING, str(GROWING_QUOTA), 100_000_000.0 + growth, next_year),
        user(BAD_EXPIRY, "1000000", 100_000.0, "not a time"),
    ]


def wait_for(
    check: Callable[[], T | None], timeout: float, what: str | Callable[[], str]
) -> T:
    """Poll `check` until it returns something other than None, or fail.

    `what` describes the wait; a callable is asked only on failure, so that it
    can report the state at that moment.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {described}")
        time.sleep(POLL_SECONDS)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for failure messages."""
    if not path.exists():
        return f"({path.name} does not exist)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return f"last lines of {path.name}:\n" + "\n".join(text[-lines:])


@contextmanager
def running(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a program with its output in a log file; stop it, or kill it, after."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process, killing it if it does not exit within 5 seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class LiveTenant:
    """Feeds the simulator a few times a second: usage grows, removed users go."""

    def __init__(self, simulator: Any) -> None:
        self._simulator = simulator
        self._started = time.monotonic()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.removed: set[str] = set()

    def users(self) -> list[dict[str, Any]]:
        """The current wire users, without those removed."""
        return [u for u in wire_users(self._started) if u["userId"] not in self.removed]

    def _run(self) -> None:
        while not self._stopping.wait(POLL_SECONDS):
            self._simulator.set_users(self.users())

    def __enter__(self) -> LiveTenant:
        self._simulator.set_users(self.users())
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop changing the simulator's users; safe to call twice."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def alert_key(alert: dict[str, Any]) -> tuple[str, str]:
    """An alert's name and whom it is about: user, department, tenant or instance."""
    labels = alert["labels"]
    for subject in ("user_id", "department_id", "tenant", "instance"):
        if subject in labels:
            return labels["alertname"], labels[subject]
    return labels["alertname"], ""


class PrometheusAPI:
    """The few endpoints of Prometheus's HTTP API the test reads."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        # Loopback only: no proxy from the environment may intercept.
        self.session.trust_env = False

    def get(self, path: str, **params: str) -> Any:
        """The `data` of a successful API answer."""
        reply = self.session.get(self.base_url + path, params=params, timeout=10)
        reply.raise_for_status()
        body = reply.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (a scalar becomes one sample)."""
        data = self.get("/api/v1/query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def alerts(self) -> list[dict[str, Any]]:
        """Every active alert, pending or firing."""
        return self.get("/api/v1/alerts")["alerts"]

    def firing(self) -> set[tuple[str, str]]:
        """(alertname, whom it is about) of the firing alerts."""
        return {alert_key(a) for a in self.alerts() if a["state"] == "firing"}

    def await_firing(
        self, wanted: Callable[[set[tuple[str, str]]], bool], what: str
    ) -> None:
        """Wait until the set of firing alerts satisfies `wanted`."""
        wait_for(
            lambda: True if wanted(self.firing()) else None,
            ALERT_TIMEOUT,
            lambda: f"{what}; active alerts: {self.describe_alerts()}",
        )

    def describe_alerts(self) -> str:
        """The active alerts, briefly, for failure messages."""
        described = [
            f"{name}({subject})={alert['state']}"
            for alert in self.alerts()
            for name, subject in [alert_key(alert)]
        ]
        return ", ".join(sorted(described))

    def values(self, expr: str, label: str) -> dict[str, float]:
        """An instant query's values, keyed by one label of each sample."""
        return {
            sample["metric"].get(label, ""): float(sample["value"][1])
            for sample in self.query(expr)
        }

    def ready(self) -> bool | None:
        """True once Prometheus answers its readiness endpoint."""
        try:
            reply = self.session.get(self.base_url + "/-/ready", timeout=2)
        except requests.ConnectionError:
            return None
        return True if reply.status_code == 200 else None


def http_ok(url: str) -> bool | None:
    """True when a GET of the URL answers 200."""
    try:
        with requests.Session() as session:
            session.trust_env = False
            reply = session.get(url, timeout=2)
    except requests.ConnectionError:
        return None
    return True if reply.status_code == 200 else None


def exporter_command() -> str:
    """The koodrive-exporter program of this Python environment."""
    program = Path(sys.executable).parent / "koodrive-exporter"
    require(program.exists(), "the koodrive-exporter program")
    return str(program)


def write_test_rules(path: Path) -> None:
    """Copy rules.yml with every alert's wait shortened for the test."""
    groups = load_rule_groups(RULES_FILE)
    for group in groups:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = SHORT_FOR
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))


def write_prometheus_config(path: Path, exporter_port: int, rules: Path) -> None:
    """A Prometheus configuration scraping the exporter every second."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": JOB,
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def write_multi_tenant_prometheus_config(
    path: Path, exporter_address: str, tenants: list[str], rules: Path
) -> None:
    """prometheus-multi-tenant.yml, aimed at the test's exporter and tenants.

    Only addresses, tenant names, intervals and the rules file change: the
    relabelling is the example's own.
    """
    config = yaml.safe_load(MULTI_TENANT_EXAMPLE.read_text(encoding="utf-8"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules)]
    for job in config["scrape_configs"]:
        job["scrape_interval"] = "1s"
        job["scrape_timeout"] = "1s"
        if job["metrics_path"] == "/probe":
            job["static_configs"] = [{"targets": tenants}]
            for step in job["relabel_configs"]:
                if step["target_label"] == "__address__":
                    step["replacement"] = exporter_address
        else:
            job["static_configs"] = [{"targets": [exporter_address]}]
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def koodrive_settings(api_url: str, token_file: Path) -> dict[str, Any]:
    """The settings of one KooDrive tenant, failing fast."""
    return {
        "url": api_url,
        "user_id": "1505084218764547200",
        "auth": {"token_file": str(token_file), "token_prefix": "Bearer "},
        "timeout_seconds": 2,
        "retries": {"max_attempts": 1},
    }


def write_exporter_config(path: Path, api_url: str, token_file: Path) -> None:
    """An exporter configuration that refreshes at every scrape, failing fast."""
    config = {
        "koodrive": koodrive_settings(api_url, token_file),
        "refresh": {"min_interval_seconds": 1, "stale_after_seconds": 600},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def write_multi_tenant_exporter_config(
    path: Path, api_urls: dict[str, str], token_file: Path
) -> None:
    """An exporter serving each tenant on /probe, with every collector on."""
    config = {
        "tenants": {
            name: koodrive_settings(url, token_file) for name, url in api_urls.items()
        },
        "collectors": dict.fromkeys(ALL_COLLECTORS, True),
        "refresh": {"min_interval_seconds": 1, "stale_after_seconds": 600},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def users_of(result: list[dict[str, Any]]) -> set[str]:
    """The user IDs of a query result."""
    return {sample["metric"]["user_id"] for sample in result}


def departments_over_quota(simulator: Any) -> set[tuple[str, str]]:
    """The department alerts the simulator's served figures call for."""
    return {
        ("KooDriveDepartmentNearlyFull", row["id"])
        for row in simulator.departments()
        if row["capacity"] > 0
        and row["spaceUsed"] * BYTES_PER_KB
        > NEARLY_FULL_RATIO * row["capacity"] * BYTES_PER_GB
    }


def check_dashboard_queries(
    prometheus: PrometheusAPI,
    expected_metrics: frozenset[str],
    values: dict[str, str] = GRAFANA_VALUES,
    with_data: Collection[str] | None = None,
) -> None:
    """Every dashboard query returns data and names only series that exist.

    With `with_data`, only the dashboards of those uids must show data; the
    other dashboards' queries must still be accepted by Prometheus.
    """
    present = set(prometheus.get("/api/v1/label/__name__/values"))
    assert present >= expected_metrics, sorted(expected_metrics - present)

    empty = []
    for name, board in load_dashboards().items():
        for where, expr in dashboard_queries(board):
            concrete = substitute_variables(expr, values)
            if with_data is not None and board["uid"] not in with_data:
                prometheus.query(concrete)
                continue
            missing = set(metric_tokens(concrete)) - present
            assert not missing, f"{name}: {where} names {sorted(missing)}"
            if not prometheus.query(concrete):
                empty.append(f"{name}: {where}: {concrete}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


def steady_users(seed: int) -> list[dict[str, Any]]:
    """A tenant's users, each well below a 10 GB quota, valid for a year.

    The last one's expiration time is unreadable, so that the exporter counts
    a record error for every tenant.
    """
    now = datetime.now(timezone.utc)
    users = [
        {
            "userId": f"{seed}{index:018d}",
            "quota": str(TENANT_USER_QUOTA),
            "used": float((index + 1) * 10**8 + seed * 10**6),
            "createTime": iso(now - timedelta(days=400)),
            "effectiveTime": iso(now - timedelta(days=300)),
            "expirationTime": iso(now + timedelta(days=365)),
        }
        for index in range(TENANT_USERS)
    ]
    users[-1]["expirationTime"] = "not a time"
    return users


def tenant_simulators(simulator_app: Any) -> dict[str, Any]:
    """The calm and the crowded tenant's simulators, not yet started.

    The crowded tenant's capacity is set so that its allocation, which the
    simulator derives from the users' and team spaces' quotas, takes 95% of it.
    """

    def simulator(name: str, capacity_gb: float | None = None) -> Any:
        return simulator_app.Simulator(
            steady_users(TENANT_SEEDS[name]),
            host="127.0.0.1",
            port=0,
            token=TOKEN,
            departments=TENANT_DEPARTMENTS[name],
            seed=TENANT_SEEDS[name],
            tenant_capacity_gb=capacity_gb,
        )

    # The overview reports its totals in KB; the simulator takes GB.
    allocation_gb = simulator(CROWDED).overview()["totalAllocation"] / 10**6
    return {
        CALM: simulator(CALM),
        CROWDED: simulator(CROWDED, allocation_gb / CROWDED_ALLOCATION),
    }


def tenant_targets(prometheus: PrometheusAPI) -> dict[str, dict[str, Any]]:
    """The active targets of the exporter's job, by tenant ("" for /metrics)."""
    targets = prometheus.get("/api/v1/targets")["activeTargets"]
    return {
        target["labels"].get("tenant", ""): target
        for target in targets
        if target["labels"]["job"] == JOB
    }


def start_prometheus(
    stack: ExitStack, program: str, config: Path, port: int, tmp_path: Path
) -> PrometheusAPI:
    """Run Prometheus on a loopback port until the stack closes; wait until ready."""
    prometheus = PrometheusAPI(f"http://127.0.0.1:{port}")
    stack.enter_context(
        running(
            [
                program,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            tmp_path / "prometheus.log",
        )
    )
    wait_for(
        prometheus.ready,
        START_TIMEOUT,
        lambda: "Prometheus to be ready; " + tail(tmp_path / "prometheus.log"),
    )
    return prometheus


def prepare(tmp_path: Path) -> tuple[str, Any, str, Path, Path]:
    """The programs an end-to-end test needs, a token file and the test rules."""
    prometheus_program = require_tool("prometheus")
    simulator_app = require_module("koodrive_exporter.simulator.app")
    exporter = exporter_command()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    rules = tmp_path / "rules.yml"
    write_test_rules(rules)
    return prometheus_program, simulator_app, exporter, token_file, rules


def test_alerts_and_dashboards_against_a_real_prometheus(tmp_path: Path) -> None:
    prometheus_program, simulator_app, exporter, token_file, rules = prepare(tmp_path)
    exporter_port = free_port()
    prometheus_port = free_port()
    prometheus_config = tmp_path / "prometheus.yml"
    write_prometheus_config(prometheus_config, exporter_port, rules)
    exporter_url = f"http://127.0.0.1:{exporter_port}"
    exporter_instance = f"127.0.0.1:{exporter_port}"

    simulator = simulator_app.Simulator(
        [], host="127.0.0.1", port=0, token=TOKEN, tenant_capacity_gb=ROOMY_CAPACITY_GB
    )
    with ExitStack() as stack:
        simulator.start()
        stack.callback(simulator.stop)
        tenant = stack.enter_context(LiveTenant(simulator))
        exporter_config = tmp_path / "exporter.yml"
        write_exporter_config(exporter_config, simulator.url, token_file)

        exporter_process = stack.enter_context(
            running(
                [
                    exporter,
                    f"--config.file={exporter_config}",
                    f"--web.listen-address=127.0.0.1:{exporter_port}",
                    # The optional collectors, switched on by flag; their
                    # series carry no tenant label here.
                    "--collector.overview",
                    "--collector.departments",
                    "--collector.groups",
                ],
                tmp_path / "exporter.log",
            )
        )
        wait_for(
            lambda: http_ok(exporter_url + "/-/ready"),
            START_TIMEOUT,
            lambda: "the exporter to be ready; " + tail(tmp_path / "exporter.log"),
        )
        prometheus = start_prometheus(
            stack, prometheus_program, prometheus_config, prometheus_port, tmp_path
        )

        # The target is scraped successfully.
        def target_up() -> dict[str, Any] | None:
            targets = prometheus.get("/api/v1/targets")["activeTargets"]
            ours = [t for t in targets if t["labels"]["job"] == JOB]
            return ours[0] if ours and ours[0]["health"] == "up" else None

        target = wait_for(
            target_up,
            START_TIMEOUT,
            lambda: "the exporter target to be up; " + tail(tmp_path / "exporter.log"),
        )
        assert target["labels"]["instance"] == exporter_instance

        # Exactly the expected alerts fire, for exactly the expected users and
        # departments, and nothing else is even pending an evaluation later.
        # Unlimited users' usage counts towards their department but not its
        # quota, so some departments are far over it; which ones depends on
        # how the simulator spreads the users, hence read from it.
        expected_alerts = USER_ALERTS | departments_over_quota(simulator)
        assert any(name.startswith("KooDriveDepartment") for name, _ in expected_alerts)
        prometheus.await_firing(
            lambda firing: firing == expected_alerts,
            f"exactly {sorted(expected_alerts)}",
        )
        time.sleep(2)
        active = {(*alert_key(a), a["state"]) for a in prometheus.alerts()}
        assert active == {(name, whom, "firing") for name, whom in expected_alerts}

        # Ratios exist only for users with a quota; unlimited users have none.
        ratios = prometheus.query("koodrive:user_used_ratio")
        assert users_of(ratios) == USERS_WITH_QUOTA
        by_user = {s["metric"]["user_id"]: float(s["value"][1]) for s in ratios}
        assert by_user[NEARLY_FULL] == pytest.approx(0.95)
        assert by_user[FULL] == pytest.approx(1.0)
        unlimited = prometheus.query(
            "koodrive_user_used_bytes unless koodrive_user_quota_bytes"
        )
        assert users_of(unlimited) == {UNLIMITED_EMPTY, UNLIMITED_NULL, UNLIMITED_ZERO}

        # No series of a single tenant carries a tenant label, so this also
        # proves that the dashboards' "All" tenants match series without one.
        assert not prometheus.query('{__name__=~"koodrive.+", tenant!=""}')
        check_dashboard_queries(prometheus, SINGLE_TENANT_METRICS)

        # A user whose series disappear stops alerting. Its department loses
        # its quota and usage too, which may settle that department's alert.
        tenant.removed.add(FULL)
        prometheus.await_firing(
            lambda firing: (
                firing
                == (USER_ALERTS - {("KooDriveUserFull", FULL)})
                | departments_over_quota(simulator)
            ),
            "the removed full user's alert to resolve",
        )

        # With the KooDrive API gone, refreshes fail and the exporter says so.
        tenant.stop()
        simulator.stop()
        prometheus.await_firing(
            lambda firing: ("KooDriveRefreshFailing", exporter_instance) in firing,
            "KooDriveRefreshFailing",
        )

        # With the exporter gone, its target is down.
        stop(exporter_process)
        prometheus.await_firing(
            lambda firing: ("KooDriveExporterDown", exporter_instance) in firing,
            "KooDriveExporterDown",
        )


def test_two_tenants_scraped_through_probe(tmp_path: Path) -> None:
    prometheus_program, simulator_app, exporter, token_file, rules = prepare(tmp_path)
    exporter_port = free_port()
    exporter_address = f"127.0.0.1:{exporter_port}"
    simulators = tenant_simulators(simulator_app)
    prometheus_config = tmp_path / "prometheus.yml"
    write_multi_tenant_prometheus_config(
        prometheus_config, exporter_address, sorted(simulators), rules
    )

    with ExitStack() as stack:
        for simulator in simulators.values():
            simulator.start()
            stack.callback(simulator.stop)
        exporter_config = tmp_path / "exporter.yml"
        write_multi_tenant_exporter_config(
            exporter_config,
            {name: simulator.url for name, simulator in simulators.items()},
            token_file,
        )
        stack.enter_context(
            running(
                [
                    exporter,
                    f"--config.file={exporter_config}",
                    f"--web.listen-address={exporter_address}",
                ],
                tmp_path / "exporter.log",
            )
        )
        wait_for(
            lambda: http_ok(f"http://{exporter_address}/-/ready"),
            START_TIMEOUT,
            lambda: "the exporter to be ready; " + tail(tmp_path / "exporter.log"),
        )
        prometheus = start_prometheus(
            stack, prometheus_program, prometheus_config, free_port(), tmp_path
        )

        # One target per tenant and one for the exporter's own /metrics, all
        # under the job the down alert watches, all up.
        def all_up() -> dict[str, dict[str, Any]] | None:
            targets = tenant_targets(prometheus)
            healthy = all(target["health"] == "up" for target in targets.values())
            return targets if len(targets) == 3 and healthy else None

        targets = wait_for(
            all_up,
            START_TIMEOUT,
            lambda: (
                f"every target to be up: {tenant_targets(prometheus)}; "
                + tail(tmp_path / "exporter.log")
            ),
        )
        assert set(targets) == {"", CALM, CROWDED}
        for name in (CALM, CROWDED):
            assert targets[name]["scrapeUrl"] == (
                f"http://{exporter_address}/probe?tenant={name}"
            )
        assert targets[""]["scrapeUrl"] == f"http://{exporter_address}/metrics"
        assert prometheus.values("koodrive_exporter_tenants", "tenant") == {"": 2}

        # Only the crowded tenant has allocated more than 90% of its capacity.
        prometheus.await_firing(
            lambda firing: (
                firing == {("KooDriveTenantAllocationNearlyExhausted", CROWDED)}
            ),
            "the crowded tenant's allocation alert, and nothing else",
        )
        allocated = prometheus.values("koodrive:tenant_allocated_ratio", "tenant")
        assert allocated[CROWDED] == pytest.approx(CROWDED_ALLOCATION)
        assert allocated[CALM] <= NEARLY_FULL_RATIO

        # Each tenant's figures are its own simulator's, in bytes, and its
        # departments add up to its total.
        used = prometheus.values("koodrive_tenant_used_bytes", "tenant")
        by_department = prometheus.values(
            "sum by (tenant) (koodrive_department_used_bytes)", "tenant"
        )
        departments = prometheus.values(
            "count by (tenant) (koodrive_department_used_bytes)", "tenant"
        )
        for name, simulator in simulators.items():
            overview = simulator.overview()
            assert used[name] == pytest.approx(overview["totalUsed"] * BYTES_PER_KB)
            assert by_department[name] == pytest.approx(used[name])
            assert departments[name] == len(simulator.departments())

        # rate() and increase() need two samples of each tenant's counters.
        counters = (
            "sum by (tenant) (rate(koodrive_api_requests_total[1m])) and on (tenant)"
            " sum by (tenant) (increase(koodrive_record_errors_total[1m]))"
        )
        wait_for(
            lambda: (
                True
                if set(prometheus.values(counters, "tenant")) == set(simulators)
                else None
            ),
            START_TIMEOUT,
            "two samples of every tenant's counters",
        )

        # The tenant and exporter dashboards show data for all tenants together
        # and for each one; the user dashboards, whose alert cases the first
        # test covers, at least accept the tenant filter.
        check_dashboard_queries(
            prometheus,
            SINGLE_TENANT_METRICS | MULTI_TENANT_METRICS,
            with_data=MULTI_TENANT_DASHBOARDS,
        )
        for name in simulators:
            check_dashboard_queries(
                prometheus,
                SINGLE_TENANT_METRICS,
                GRAFANA_VALUES | {"tenant": name},
                with_data=MULTI_TENANT_DASHBOARDS,
            )
        tenant_choices = prometheus.query(
            f'group by (tenant) (koodrive_tenant_capacity_bytes{{job="{JOB}"}})'
        )
        assert {s["metric"]["tenant"] for s in tenant_choices} == set(simulators)

        # The calm tenant's KooDrive goes away: only its refresh fails, both
        # targets stay up, and the crowded tenant's new figures still arrive.
        simulators[CALM].stop()
        prometheus.await_firing(
            lambda firing: (
                firing
                == {
                    ("KooDriveTenantAllocationNearlyExhausted", CROWDED),
                    ("KooDriveRefreshFailing", CALM),
                }
            ),
            "the calm tenant's refresh alert beside the crowded one's",
        )
        assert all(
            target["health"] == "up" for target in tenant_targets(prometheus).values()
        )
        assert prometheus.values("koodrive_up", "tenant") == {CALM: 0, CROWDED: 1}
        crowded = simulators[CROWDED]
        crowded.set_users([user | {"used": user["used"] * 2} for user in crowded.users])
        expected_used = crowded.overview()["totalUsed"] * BYTES_PER_KB
        wait_for(
            lambda: (
                True
                if prometheus.values("koodrive_tenant_used_bytes", "tenant")[CROWDED]
                == pytest.approx(expected_used)
                else None
            ),
            ALERT_TIMEOUT,
            "the crowded tenant's new usage to reach Prometheus",
        )
        failing = prometheus.values(
            f'koodrive_collector_up{{tenant="{CROWDED}"}} == 0', "collector"
        )
        assert not failing, failing
