"""Soak: the exporter scraped concurrently while its simulated API misbehaves.

A simulator and an exporter run in this process, on 127.0.0.1 only. For
`--seconds`, one thread injects every fault kind the simulator knows,
reshapes the tenant (users appear, disappear, change order and usage) and
turns paging quirks on for a moment, while several scrapers read /metrics
with Prometheus's scrape-timeout header. Then the faults stop, a final
tenant is set, and the exposition must show exactly that tenant.

Checks, each printed with its bound; any failure makes the exit status 1:
every scrape answered 200 with a parseable body holding `koodrive_up`; every
scrape answered within the scrape timeout plus `--slack`; no exception left
a thread and no error was logged; the thread count and RSS grew by at most
the stated bounds between the sample after warm-up and the one at the end;
after the faults stop, the user series equal the final tenant with
`koodrive_up 1`.

    .venv/bin/python bench/soak.py [--seconds 60] [--users 300] [--scrapers 4]
"""

from __future__ import annotations

import argparse
import logging
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from koodrive_exporter import config
from koodrive_exporter.cli import Exporter, build_exporter
from koodrive_exporter.server import SCRAPE_TIMEOUT_HEADER
from koodrive_exporter.simulator.app import Simulator
from koodrive_exporter.simulator.faults import KINDS, Fault
from koodrive_exporter.simulator.tenant import generate_users

LOOPBACK = "127.0.0.1"
CALLER_ID = "1505084218764547200"
OPENMETRICS_ACCEPT = "application/openmetrics-text; version=1.0.0"

SCRAPE_TIMEOUT_SECONDS = 2.0
WARM_UP_LIMIT_SECONDS = 20.0
SETTLE_LIMIT_SECONDS = 30.0
SAMPLE_EVERY_SECONDS = 0.5
JOIN_SECONDS = 10.0
# A hang outlasts the client's request timeout, so the exporter must cut it.
HANG_SECONDS = 5.0
KEPT_FAILURES = 10
FINAL_GENERATED_USERS = 250

# User IDs that test label escaping: quotes, a backslash, a newline, non-ASCII.
ODD_USER_IDS = ('soak "quoted" user', "soak\\backslash", "soak\nnewline", "ユーザー")

TENANT_CHANGES = ("users_appear", "users_disappear", "users_reorder", "usage_changes")
FLAGS = ("ignore_offset", "omit_total", "page_cap", "total_override")
SUCCESS_MESSAGES = ("first refresh succeeded", "refresh recovered", "refresh succeeded")

log = logging.getLogger("soak")


@dataclass(frozen=True)
class Options:
    """The soak's parameters, from the command line."""

    seconds: float
    users: int
    scrapers: int
    seed: int
    slack_seconds: float
    thread_growth: int
    rss_growth_mib: float


def parse_options(argv: Sequence[str] | None) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="length of the fault phase"
    )
    parser.add_argument("--users", type=int, default=300, help="users at the start")
    parser.add_argument("--scrapers", type=int, default=4, help="scraping threads")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument(
        "--slack",
        type=float,
        default=1.0,
        help="seconds a scrape may take beyond its timeout (default: %(default)s)",
    )
    parser.add_argument(
        "--thread-growth",
        type=int,
        default=16,
        help="most threads gained from warm-up to the end (default: %(default)s)",
    )
    parser.add_argument(
        "--rss-growth-mib",
        type=float,
        default=48.0,
        help="most RSS gained from warm-up to the end, MiB (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.users < 10 or args.scrapers < 1 or args.slack < 0:
        parser.error(
            "need --seconds > 0, --users >= 10, --scrapers >= 1 and --slack >= 0"
        )
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    return Options(
        seconds=args.seconds,
        users=args.users,
        scrapers=args.scrapers,
        seed=seed,
        slack_seconds=args.slack,
        thread_growth=args.thread_growth,
        rss_growth_mib=args.rss_growth_mib,
    )


# The tenant.


class Tenant:
    """The simulated tenant's users, changed at random between pages and refreshes."""

    def __init__(self, users: list[dict[str, Any]], rng: random.Random) -> None:
        self.users = users
        self.peak = len(users)
        self._rng = rng
        self._next_seed = 1_000

    def change(self, kind: str) -> None:
        """Apply one change of the given kind."""
        rng = self._rng
        if kind == "users_appear":
            fresh = generate_users(rng.randint(1, 40), seed=self._next_seed)
            self._next_seed += 1
            known = {user["userId"] for user in self.users}
            for user in fresh:
                if user["userId"] not in known:
                    self.users.insert(rng.randint(0, len(self.users)), user)
            self.peak = max(self.peak, len(self.users))
        elif kind == "users_disappear" and len(self.users) > 20:
            for _ in range(rng.randint(1, 30)):
                self.users.pop(rng.randrange(len(self.users)))
        elif kind == "users_reorder":
            rng.shuffle(self.users)
        elif kind == "usage_changes":
            # New dicts, so a page being served never sees a value change.
            for index in rng.sample(range(len(self.users)), min(len(self.users), 50)):
                self.users[index] = {**self.users[index], "used": rng.randint(0, 2**40)}


def final_users(count: int, seed: int) -> list[dict[str, Any]]:
    """The known tenant set once the faults stop, odd IDs included."""
    users = generate_users(count, seed=seed)
    for position, user_id in enumerate(ODD_USER_IDS):
        users.append(
            {"userId": user_id, "quota": "1000", "used": 7 + position, "createTime": ""}
        )
    return users


def expected_series(users: list[dict[str, Any]]) -> tuple[dict, dict]:
    """(used bytes by user ID, quota bytes by user ID) the exporter should show."""
    used = {user["userId"]: float(user["used"]) for user in users}
    quota = {}
    for user in users:
        try:
            value = float(user["quota"])
        except (TypeError, ValueError):
            continue
        if value > 0:
            quota[user["userId"]] = value
    return used, quota


# The fault injector.


class FaultInjector(threading.Thread):
    """Pushes faults, reshapes the tenant and flips paging quirks at random."""

    def __init__(
        self, simulator: Simulator, tenant: Tenant, rng: random.Random
    ) -> None:
        super().__init__(name="soak-faults", daemon=True)
        self.simulator = simulator
        self.tenant = tenant
        self.rng = rng
        self.stop_event = threading.Event()
        self.injected: Counter[str] = Counter()

    def run(self) -> None:
        """Act every 0.1 to 0.6 seconds until stopped, each action once per round."""
        deck: list[str] = []
        while not self.stop_event.wait(self.rng.uniform(0.1, 0.6)):
            if not deck:
                # A shuffled round of every action: even a short soak meets each.
                deck = [*KINDS, *TENANT_CHANGES, *FLAGS]
                self.rng.shuffle(deck)
            action = deck.pop()
            if action in KINDS:
                self.simulator.faults.push(self._fault(action))
            elif action in TENANT_CHANGES:
                self.tenant.change(action)
                self.simulator.set_users(list(self.tenant.users))
            else:
                self._flip(action)
            self.injected[action] += 1

    def _fault(self, kind: str) -> Fault:
        rng = self.rng
        times = rng.randint(1, 3)
        if kind == "status":
            status = rng.choice([500, 502, 504, 400, 403])
            return Fault(kind=kind, status=status, times=times)
        if kind == "code":
            code = rng.choice([13000201, "13000102", 13000410])
            return Fault(kind=kind, code=code, times=times)
        if kind in ("rate_limited", "unavailable"):
            return Fault(kind=kind, retry_after=rng.choice([None, 1]), times=times)
        if kind == "slow":
            return Fault(kind=kind, delay=rng.uniform(0.2, 1.5), times=times)
        if kind == "hang":
            return Fault(kind=kind, delay=HANG_SECONDS, times=1)
        return Fault(kind=kind, times=times)

    def _flip(self, flag: str) -> None:
        simulator = self.simulator
        if flag == "ignore_offset":
            simulator.ignore_offset = True
        elif flag == "omit_total":
            simulator.omit_total = True
        elif flag == "page_cap":
            simulator.page_cap = self.rng.randint(7, 40)
        else:
            simulator.total_override = len(self.tenant.users) + self.rng.randint(
                -20, 200
            )
        self.stop_event.wait(self.rng.uniform(0.3, 1.5))
        reset_quirks(simulator)


def reset_quirks(simulator: Simulator) -> None:
    """Turn every paging quirk off."""
    simulator.ignore_offset = False
    simulator.omit_total = False
    simulator.page_cap = None
    simulator.total_override = None


# Scrapers.


@dataclass
class ScrapeLog:
    """Every scrape's latency and each failed scrape, shared by the scrapers."""

    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    late: int = 0
    examples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float, problem: str | None, limit: float) -> None:
        """Add one scrape: its latency and what was wrong with it, if anything."""
        with self.lock:
            self.latencies.append(seconds)
            if seconds > limit:
                self.late += 1
                self._keep(f"answered in {seconds:.2f}s, limit {limit:.2f}s")
            if problem is not None:
                self.failures += 1
                self._keep(problem)

    def _keep(self, text: str) -> None:
        if len(self.examples) < KEPT_FAILURES:
            self.examples.append(text)


class Scraper(threading.Thread):
    """Scrapes /metrics in a loop like a Prometheus with a 2 s scrape timeout."""

    def __init__(
        self, url: str, openmetrics: bool, scrapes: ScrapeLog, limit: float, seed: int
    ) -> None:
        super().__init__(name=f"soak-scraper-{seed}", daemon=True)
        self.url = url
        self.openmetrics = openmetrics
        self.scrapes = scrapes
        self.limit = limit
        self.rng = random.Random(seed)
        self.stop_event = threading.Event()

    def run(self) -> None:
        """Scrape, check, pause a little, until stopped."""
        headers = {SCRAPE_TIMEOUT_HEADER: f"{SCRAPE_TIMEOUT_SECONDS:g}"}
        if self.openmetrics:
            headers["Accept"] = OPENMETRICS_ACCEPT
        with requests.Session() as session:
            while not self.stop_event.is_set():
                started = time.monotonic()
                problem = self._scrape(session, headers)
                self.scrapes.record(time.monotonic() - started, problem, self.limit)
                self.stop_event.wait(self.rng.uniform(0.05, 0.25))

    def _scrape(self, session: requests.Session, headers: dict[str, str]) -> str | None:
        try:
            response = session.get(self.url, headers=headers, timeout=self.limit + 5)
        except requests.RequestException as exc:
            return f"request failed: {type(exc).__name__}"
        if response.status_code != 200:
            return f"status {response.status_code}"
        try:
            families = parse_body(response.text, openmetrics=self.openmetrics)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            return f"unparseable body: {type(exc).__name__}: {exc}"
        if "koodrive_up" not in families:
            return "no koodrive_up in the body"
        return None


def parse_body(text: str, *, openmetrics: bool) -> dict[str, Any]:
    """Metric families by name, parsed by prometheus_client."""
    parse: Callable[[str], Any] = parse_openmetrics if openmetrics else parse_text
    return {family.name: family for family in parse(text)}


def scrape_once(url: str) -> dict[str, Any]:
    """One scrape in the text format, parsed; empty when it failed."""
    headers = {SCRAPE_TIMEOUT_HEADER: f"{SCRAPE_TIMEOUT_SECONDS:g}"}
    try:
        response = requests.get(url, headers=headers, timeout=10)
        response.raise_for_status()
        return parse_body(response.text, openmetrics=False)
    except (requests.RequestException, ValueError) as exc:
        log.warning("scrape failed", extra={"fields": {"error": repr(exc)}})
        return {}


def value_of(families: dict[str, Any], name: str) -> float | None:
    """The value of a family's only sample, or None when it is absent."""
    family = families.get(name)
    return family.samples[0].value if family and family.samples else None


def by_user(families: dict[str, Any], name: str) -> dict[str, float]:
    """user_id -> value for a per-user family."""
    family = families.get(name)
    if family is None:
        return {}
    return {sample.labels["user_id"]: sample.value for sample in family.samples}


# Process health.


def rss_mib() -> float:
    """This process's resident set size, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS line in /proc/self/status")


@dataclass
class Health:
    """Thread counts and RSS, sampled during the run."""

    threads_start: int = 0
    threads_half: int = 0
    threads_end: int = 0
    threads_peak: int = 0
    rss_start: float = 0.0
    rss_half: float = 0.0
    rss_end: float = 0.0
    rss_peak: float = 0.0

    def sample(self) -> tuple[int, float]:
        """Take one sample and keep the peaks."""
        threads, rss = threading.active_count(), rss_mib()
        self.threads_peak = max(self.threads_peak, threads)
        self.rss_peak = max(self.rss_peak, rss)
        return threads, rss


class Incidents(logging.Handler):
    """Counts log records and uncaught thread exceptions; errors are kept."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.refresh_failures: Counter[str] = Counter()
        self.refresh_successes = 0
        self.recoveries = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Count refresh outcomes; keep every error-level record."""
        fields = getattr(record, "fields", None) or {}
        with self._lock:
            message = record.getMessage()
            if message == "refresh failed":
                self.refresh_failures[str(fields.get("reason"))] += 1
            elif message in SUCCESS_MESSAGES:
                self.refresh_successes += 1
                self.recoveries += message == "refresh recovered"
            if record.levelno >= logging.ERROR:
                self.errors.append(f"{record.name}: {message}")

    def thread_crashed(self, args: threading.ExceptHookArgs) -> None:
        """Record an exception that escaped a thread."""
        name = args.thread.name if args.thread else "?"
        with self._lock:
            self.errors.append(
                f"thread {name}: {args.exc_type.__name__}: {args.exc_value}"
            )


@contextmanager
def watching(incidents: Incidents) -> Iterator[None]:
    """Route logs and uncaught thread exceptions to `incidents` for a while."""
    root = logging.getLogger()
    saved_level, saved_hook = root.level, threading.excepthook
    root.addHandler(incidents)
    # Debug, because a routine successful refresh is logged at debug.
    root.setLevel(logging.DEBUG)
    threading.excepthook = incidents.thread_crashed
    try:
        yield
    finally:
        threading.excepthook = saved_hook
        root.removeHandler(incidents)
        root.setLevel(saved_level)


# The run.


@dataclass
class Check:
    """One assertion of the soak, with its bound and result."""

    name: str
    detail: str
    ok: bool


@dataclass
class Outcome:
    """Everything the summary prints."""

    options: Options
    scrapes: ScrapeLog
    injected: Counter[str]
    health: Health
    incidents: Incidents
    requests: dict[str, float]
    checks: list[Check] = field(default_factory=list)
    settle_seconds: float = 0.0
    tenant_peak: int = 0
    tenant_end: int = 0

    @property
    def passed(self) -> bool:
        """True when every check held."""
        return all(check.ok for check in self.checks)


def exporter_settings(url: str, token_file: Path) -> config.Settings:
    """Small intervals and timeouts, so one minute holds many refreshes."""
    return config.parse(
        {
            "koodrive": {
                "url": url,
                "user_id": CALLER_ID,
                "auth": {"token_file": str(token_file)},
                "page_size": 50,
                "timeout_seconds": 1.0,
                "concurrency": 4,
                "retries": {
                    "max_attempts": 3,
                    "backoff_seconds": 0.1,
                    "max_backoff_seconds": 1.0,
                },
            },
            "refresh": {
                "min_interval_seconds": 0.5,
                "timeout_seconds": 3.0,
                "scrape_timeout_seconds": SCRAPE_TIMEOUT_SECONDS,
            },
        }
    )


def wait_for(condition: Callable[[], bool], limit: float) -> bool:
    """Poll `condition` every 0.2 s for at most `limit` seconds."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def run(options: Options, simulator: Simulator, exporter: Exporter) -> Outcome:
    """Warm up, soak under faults, settle, and check; the caller stops the servers."""
    rng = random.Random(options.seed)
    url = f"http://{LOOPBACK}:{exporter.server.port}/metrics"
    limit = SCRAPE_TIMEOUT_SECONDS + options.slack_seconds
    scrapes = ScrapeLog()
    health = Health()
    incidents = Incidents()
    tenant = Tenant(simulator.users, random.Random(rng.random()))
    injector = FaultInjector(simulator, tenant, random.Random(rng.random()))
    scrapers = [
        Scraper(url, index % 2 == 1, scrapes, limit, options.seed + index)
        for index in range(options.scrapers)
    ]
    outcome = Outcome(options, scrapes, injector.injected, health, incidents, {})

    with watching(incidents):
        warm = wait_for(
            lambda: value_of(scrape_once(url), "koodrive_up") == 1.0,
            WARM_UP_LIMIT_SECONDS,
        )
        outcome.checks.append(
            Check("warm-up", f"koodrive_up 1 within {WARM_UP_LIMIT_SECONDS:g} s", warm)
        )
        if not warm:
            return outcome

        for scraper in scrapers:
            scraper.start()
        injector.start()
        time.sleep(1.0)
        health.threads_start, health.rss_start = health.sample()

        soak_end = time.monotonic() + options.seconds
        half_way = soak_end - options.seconds / 2
        while time.monotonic() < soak_end:
            time.sleep(min(SAMPLE_EVERY_SECONDS, max(0.0, soak_end - time.monotonic())))
            if not health.threads_half and time.monotonic() >= half_way:
                health.threads_half, health.rss_half = health.sample()
            else:
                health.sample()
        injector.stop_event.set()
        injector.join(JOIN_SECONDS)
        outcome.tenant_peak, outcome.tenant_end = tenant.peak, len(tenant.users)

        settled = settle(simulator, url, options.seed, outcome)
        health.threads_end, health.rss_end = health.sample()
        for scraper in scrapers:
            scraper.stop_event.set()
        for scraper in scrapers:
            scraper.join(limit + JOIN_SECONDS)

    outcome.checks.extend(final_checks(outcome, settled, injector, scrapers))
    return outcome


def settle(
    simulator: Simulator, url: str, seed: int, outcome: Outcome
) -> tuple[bool, dict[str, Any]]:
    """Stop the faults, set the final tenant, wait for a refresh begun after it."""
    simulator.faults.clear()
    reset_quirks(simulator)
    users = final_users(FINAL_GENERATED_USERS, seed=seed + 1)
    simulator.set_users(users)
    changed_at = time.time()
    started = time.monotonic()
    families: dict[str, Any] = {}

    def fresh() -> bool:
        nonlocal families
        families = scrape_once(url)
        success = value_of(families, "koodrive_last_refresh_success_timestamp_seconds")
        duration = value_of(families, "koodrive_refresh_duration_seconds")
        if success is None or duration is None:
            return False
        # The refresh must have begun after the change, not merely ended after.
        begun = success - duration
        return value_of(families, "koodrive_up") == 1.0 and begun > changed_at

    settled = wait_for(fresh, SETTLE_LIMIT_SECONDS)
    outcome.settle_seconds = time.monotonic() - started
    counters = families.get("koodrive_api_requests")
    outcome.requests = {
        sample.labels["outcome"]: sample.value
        for sample in (counters.samples if counters else ())
        if sample.name.endswith("_total")
    }
    used, quota = expected_series(users)
    got_used = by_user(families, "koodrive_user_used_bytes")
    got_quota = by_user(families, "koodrive_user_quota_bytes")
    exact = settled and got_used == used and got_quota == quota
    outcome.checks.append(
        Check(
            "final series",
            f"{len(used)} users' used and {len(quota)} quotas exactly, koodrive_up 1"
            + ("" if exact else f"; got {len(got_used)} used, {len(got_quota)} quota"),
            exact and value_of(families, "koodrive_users") == len(users),
        )
    )
    return settled, families


def final_checks(
    outcome: Outcome,
    settled: bool,
    injector: FaultInjector,
    scrapers: list[Scraper],
) -> list[Check]:
    """The checks on scrapes, threads, memory and incidents."""
    options, scrapes, health = outcome.options, outcome.scrapes, outcome.health
    stopped = not injector.is_alive() and not any(s.is_alive() for s in scrapers)
    thread_growth = health.threads_end - health.threads_start
    rss_growth = health.rss_end - health.rss_start
    return [
        Check(
            "no crash",
            f"{len(scrapes.latencies)} scrapes: 200, parseable, koodrive_up; "
            f"{scrapes.failures} failed",
            scrapes.failures == 0 and len(scrapes.latencies) > 0,
        ),
        Check(
            "deadline",
            f"every scrape within {SCRAPE_TIMEOUT_SECONDS:g} s + "
            f"{options.slack_seconds:g} s slack; {scrapes.late} late",
            scrapes.late == 0,
        ),
        Check(
            "settled",
            f"a refresh begun after the faults stopped, in "
            f"{outcome.settle_seconds:.1f} s (limit {SETTLE_LIMIT_SECONDS:g} s)",
            settled,
        ),
        Check(
            "threads",
            f"grew by {thread_growth} (bound {options.thread_growth})",
            thread_growth <= options.thread_growth,
        ),
        Check(
            "rss",
            f"grew by {rss_growth:.1f} MiB (bound {options.rss_growth_mib:g} MiB)",
            rss_growth <= options.rss_growth_mib,
        ),
        Check(
            "no errors",
            f"{len(outcome.incidents.errors)} error logs or thread exceptions",
            not outcome.incidents.errors,
        ),
        Check("stopped", "injector and scrapers joined", stopped),
    ]


# Output.


def percentile(values: list[float], share: float) -> float:
    """The value at `share` (0..1) of the sorted values, nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
    return ordered[index]


def summary(outcome: Outcome) -> str:
    """The summary table, in Markdown."""
    options, scrapes, health = outcome.options, outcome.scrapes, outcome.health
    latencies = scrapes.latencies or [0.0]
    failures = outcome.incidents.refresh_failures
    rows = [
        ("seconds of faults", f"{options.seconds:g}"),
        ("seed", str(options.seed)),
        (
            "users at start / most / end of faults / final",
            f"{options.users} / {outcome.tenant_peak} / {outcome.tenant_end} / "
            f"{FINAL_GENERATED_USERS + len(ODD_USER_IDS)}",
        ),
        ("scrapers", str(options.scrapers)),
        ("scrapes", str(len(scrapes.latencies))),
        ("failed scrapes", str(scrapes.failures)),
        ("latency p50 (s)", f"{statistics.median(latencies):.3f}"),
        ("latency p99 (s)", f"{percentile(latencies, 0.99):.3f}"),
        ("latency max (s)", f"{max(latencies):.3f}"),
        ("faults injected", _counts(outcome.injected, KINDS)),
        ("tenant changes", _counts(outcome.injected, TENANT_CHANGES)),
        ("quirks flipped", _counts(outcome.injected, FLAGS)),
        ("refreshes succeeded", str(outcome.incidents.refresh_successes)),
        ("refreshes failed", f"{sum(failures.values())}: {_counts(failures, None)}"),
        ("recoveries after failure", str(outcome.incidents.recoveries)),
        ("API requests", _counts(Counter(outcome.requests), None)),
        ("threads start / half-way / end / peak", _series(health, "threads", "{:d}")),
        ("RSS MiB start / half-way / end / peak", _series(health, "rss", "{:.1f}")),
    ]
    lines = ["| soak | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", "| check | bound and figure | result |", "|---|---|---|"]
    lines += [
        f"| {c.name} | {c.detail} | {'ok' if c.ok else 'FAILED'} |"
        for c in outcome.checks
    ]
    for example in scrapes.examples + outcome.incidents.errors[:KEPT_FAILURES]:
        lines.append(f"problem: {example!r}")
    lines.append(f"result: {'PASS' if outcome.passed else 'FAIL'}")
    return "\n".join(lines)


def _counts(
    counter: Counter[str] | dict[str, float], order: Sequence[str] | None
) -> str:
    names = order if order is not None else sorted(counter)
    return ", ".join(f"{name} {counter[name]:g}" for name in names) or "none"


def _series(health: Health, what: str, form: str) -> str:
    parts = ("start", "half", "end", "peak")
    values = [getattr(health, f"{what}_{part}") for part in parts]
    return " / ".join(form.format(value) for value in values)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; 0 when every check held, 1 otherwise."""
    options = parse_options(argv)
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="koodrive-soak-") as folder:
        token_file = Path(folder) / "token"
        token_file.write_text(token + "\n", encoding="utf-8")
        users = generate_users(options.users, seed=options.seed)
        with Simulator(users, host=LOOPBACK, token=token) as simulator:
            exporter = build_exporter(
                exporter_settings(simulator.url, token_file), LOOPBACK, 0
            )
            exporter.start()
            try:
                outcome = run(options, simulator, exporter)
            finally:
                exporter.stop()
    print(summary(outcome))
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main())
