"""Benchmark figures: what one tenant size measured, the targets, the Markdown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness import Latency

TARGET_USERS = 100_000
MAX_REFRESH_OVER_FLOOR = 1.3
MAX_PEAK_RSS_BYTES = 300 * 10**6
MAX_LATENCY_OVER_NODE = 1.0

_MB = 10**6
_KIB = 1024


@dataclass(frozen=True)
class Variant:
    """One way Prometheus may ask for /metrics: a format and an encoding."""

    name: str
    accept: str
    encoding: str


VARIANTS = (
    Variant("text", "text/plain; version=0.0.4", "identity"),
    Variant("text gzip", "text/plain; version=0.0.4", "gzip"),
    Variant("OpenMetrics", "application/openmetrics-text; version=1.0.0", "identity"),
    Variant("OpenMetrics gzip", "application/openmetrics-text; version=1.0.0", "gzip"),
)


@dataclass(frozen=True)
class Served:
    """Scrape timings of one variant and what the server answered with."""

    latency: Latency
    body_bytes: int
    content_type: str
    content_encoding: str


@dataclass
class SizeResult:
    """Everything measured for one tenant size."""

    users: int
    pages: int
    concurrency: int
    latency_seconds: float
    api_calls: int
    refresh_seconds: float
    start_to_healthy_seconds: float
    start_to_ready_seconds: float
    refresh_cpu_seconds: float
    simulator_cpu_seconds: float
    rss_after_refresh_kib: int
    peak_rss_refresh_kib: int
    peak_rss_kib: int
    exporter_exit_status: int | None
    served: dict[str, Served] = field(default_factory=dict)
    node_served: dict[str, Served] = field(default_factory=dict)
    node_extra_samples: int | None = None
    node_peak_rss_kib: int | None = None

    @property
    def floor_seconds(self) -> float:
        """The least a listing can take: rounds of `concurrency` pages, each waited."""
        return math.ceil(self.pages / self.concurrency) * self.latency_seconds

    @property
    def refresh_over_floor(self) -> float:
        """The refresh duration as a multiple of the floor."""
        return self.refresh_seconds / self.floor_seconds

    @property
    def healthy_to_ready_seconds(self) -> float:
        """Wall time from the server answering to the first refresh installed."""
        return self.start_to_ready_seconds - self.start_to_healthy_seconds


@dataclass(frozen=True)
class Target:
    """One stated target and whether this run met it."""

    name: str
    passed: bool
    detail: str

    @property
    def verdict(self) -> str:
        """PASS or MISS."""
        return "PASS" if self.passed else "MISS"


def evaluate(
    results: Sequence[SizeResult], *, node_required: bool, node_ran: bool
) -> list[Target]:
    """Judge the targets: API calls at every size, the rest at TARGET_USERS."""
    targets = [
        Target(
            f"API calls == pages at {result.users:,} users",
            result.api_calls == result.pages,
            f"{result.api_calls} calls for {result.pages} pages",
        )
        for result in results
    ]
    at_target = [result for result in results if result.users == TARGET_USERS]
    if not at_target:
        return targets
    result = at_target[0]

    ratio = result.refresh_over_floor
    targets.append(
        Target(
            f"refresh / floor <= {MAX_REFRESH_OVER_FLOOR} at {TARGET_USERS:,} users",
            ratio <= MAX_REFRESH_OVER_FLOOR,
            f"{ratio:.3f} ({result.refresh_seconds:.2f} s over a "
            f"{result.floor_seconds:.2f} s floor; "
            f"{_margin(ratio, MAX_REFRESH_OVER_FLOOR)})",
        )
    )

    peak = result.peak_rss_kib * _KIB
    targets.append(
        Target(
            f"peak RSS < {MAX_PEAK_RSS_BYTES // _MB} MB at {TARGET_USERS:,} users",
            peak < MAX_PEAK_RSS_BYTES,
            f"{peak / _MB:.1f} MB ({_margin(peak, MAX_PEAK_RSS_BYTES)})",
        )
    )

    if node_ran:
        for variant in VARIANTS:
            ours = result.served[variant.name].latency.median
            theirs = result.node_served[variant.name].latency.median
            ratio = ours / theirs
            targets.append(
                Target(
                    f"median /metrics ({variant.name}) / node_exporter's <= "
                    f"{MAX_LATENCY_OVER_NODE} at {TARGET_USERS:,} users",
                    ratio <= MAX_LATENCY_OVER_NODE,
                    f"{ratio:.3f} ({ours * 1000:.2f} ms vs {theirs * 1000:.2f} ms; "
                    f"{_margin(ratio, MAX_LATENCY_OVER_NODE)})",
                )
            )
    elif node_required:
        targets.append(
            Target(
                "node_exporter comparison ran",
                False,
                "prometheus-node-exporter not found, and CI=true requires it",
            )
        )
    return targets


def _margin(measured: float, limit: float) -> str:
    share = (limit - measured) / limit * 100
    if share >= 0:
        return f"{share:.0f}% under the limit"
    return f"{-share:.0f}% over the limit"


def markdown(
    results: Sequence[SizeResult],
    targets: Sequence[Target],
    machine: Sequence[tuple[str, str]],
    *,
    node_note: str,
) -> str:
    """The whole results page."""
    lines = ["# Benchmark results", ""]
    lines += [
        "Written by `bench/run.py`; see the README's benchmark section for the",
        "method. Timings are of one run on a shared machine: expect noise.",
        "",
    ]
    lines += _table(["", ""], [list(row) for row in machine])

    lines += ["", "## Refresh", ""]
    lines += _table(
        [
            "users",
            "pages",
            "API calls",
            "floor (s)",
            "refresh (s)",
            "refresh / floor",
            "start to healthy (s)",
            "healthy to ready (s)",
            "exporter CPU in refresh (s)",
            "simulator CPU (s)",
            "RSS after refresh (MB)",
            "peak RSS by end of refresh (MB)",
            "peak RSS after scrapes (MB)",
        ],
        [
            [
                f"{r.users:,}",
                str(r.pages),
                str(r.api_calls),
                f"{r.floor_seconds:.2f}",
                f"{r.refresh_seconds:.3f}",
                f"{r.refresh_over_floor:.3f}",
                f"{r.start_to_healthy_seconds:.2f}",
                f"{r.healthy_to_ready_seconds:.2f}",
                f"{r.refresh_cpu_seconds:.2f}",
                f"{r.simulator_cpu_seconds:.2f}",
                _mb(r.rss_after_refresh_kib),
                _mb(r.peak_rss_refresh_kib),
                _mb(r.peak_rss_kib),
            ]
            for r in results
        ],
    )

    lines += ["", "## /metrics latency (ms)", ""]
    lines += [
        "`first` is the first scrape of the series: for gzip it includes",
        "compressing the stored body, which the exporter does once per snapshot.",
        "p99 is the nearest-rank value, which for fewer than 100 scrapes is the",
        "slowest one.",
        "",
    ]
    lines += _table(
        [
            "users",
            "variant",
            "scrapes",
            "body (bytes)",
            "first",
            "median",
            "p99",
            "node_exporter body (bytes)",
            "node_exporter median",
            "node_exporter p99",
            "ours / node_exporter (median)",
        ],
        [_latency_row(r, variant) for r in results for variant in VARIANTS],
    )
    lines += ["", node_note]

    lines += ["", "## Linearity", ""]
    lines += [
        "Marginal figures are the change from the next smaller size divided by",
        "the added users, so the fixed cost of a Python process drops out.",
        "",
    ]
    lines += _table(
        [
            "users",
            "refresh per user (us)",
            "CPU per user (us)",
            "marginal CPU per user (us)",
            "peak RSS per user (KB)",
            "marginal peak RSS per user (KB)",
        ],
        _linearity_rows(results),
    )

    lines += ["", "## Targets", ""]
    lines += [f"- {t.verdict}: {t.name}: {t.detail}" for t in targets]
    return "\n".join(lines) + "\n"


def _latency_row(result: SizeResult, variant: Variant) -> list[str]:
    ours = result.served[variant.name]
    row = [
        f"{result.users:,}",
        variant.name,
        str(ours.latency.count),
        f"{ours.body_bytes:,}",
        _ms(ours.latency.first),
        _ms(ours.latency.median),
        _ms(ours.latency.p99),
    ]
    theirs = result.node_served.get(variant.name)
    if theirs is None:
        return [*row, "-", "-", "-", "-"]
    ratio = ours.latency.median / theirs.latency.median
    return [
        *row,
        f"{theirs.body_bytes:,}",
        _ms(theirs.latency.median),
        _ms(theirs.latency.p99),
        f"{ratio:.3f}",
    ]


def _linearity_rows(results: Sequence[SizeResult]) -> list[list[str]]:
    rows = []
    previous: SizeResult | None = None
    for r in sorted(results, key=lambda item: item.users):
        marginal_cpu = marginal_rss = "-"
        if previous is not None and r.users > previous.users:
            added = r.users - previous.users
            cpu = r.refresh_cpu_seconds - previous.refresh_cpu_seconds
            rss = (r.peak_rss_kib - previous.peak_rss_kib) * _KIB
            marginal_cpu = f"{cpu / added * 1e6:.1f}"
            marginal_rss = f"{rss / added / 1000:.2f}"
        rows.append(
            [
                f"{r.users:,}",
                f"{r.refresh_seconds / r.users * 1e6:.1f}",
                f"{r.refresh_cpu_seconds / r.users * 1e6:.1f}",
                marginal_cpu,
                f"{r.peak_rss_kib * _KIB / r.users / 1000:.2f}",
                marginal_rss,
            ]
        )
        previous = r
    return rows


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _mb(kib: int) -> str:
    return f"{kib * _KIB / _MB:.1f}"
