"""Benchmark koodrive-exporter against its simulator, and node_exporter's textfile.

For each tenant size the simulator, the exporter and node_exporter run as
separate processes on loopback, so each one's CPU and memory are its own.
The script prints a results table, writes it to bench/RESULTS.md and exits
non-zero when a stated target is missed.

    .venv/bin/python bench/run.py [--sizes 1000,10000,100000] [--latency 0.05]
        [--concurrency 4] [--scrapes N]
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import yaml
from harness import (
    BenchError,
    Child,
    Fetched,
    Latency,
    Scraper,
    cpu_seconds,
    free_port,
    get_once,
    proc_status_kib,
    spawn,
    wait_for_status,
)
from report import (
    VARIANTS,
    Served,
    SizeResult,
    Variant,
    evaluate,
    markdown,
)

import koodrive_exporter

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
BIN_DIR = Path(sys.executable).parent
RESULTS_PATH = BENCH_DIR / "RESULTS.md"
SCRATCH_DIR = BENCH_DIR / "scratch"

PAGE_SIZE = 100
DEFAULT_SIZES = (1_000, 10_000, 100_000)
SCRAPES_SMALL = 50
SCRAPES_LARGE = 20
LARGE_FROM_USERS = 100_000
NODE_EXPORTER_PATHS = ("/usr/bin/prometheus-node-exporter",)
NODE_EXPORTER_NAMES = ("prometheus-node-exporter", "node_exporter")

SIMULATOR_START_SECONDS = 300.0
EXPORTER_START_SECONDS = 60.0
NODE_START_SECONDS = 30.0
SCRAPE_TIMEOUT_SECONDS = 120.0
SEED = 1
CALLER_USER_ID = "1505084218764547200"


@dataclass(frozen=True)
class Options:
    """What to run: tenant sizes, simulated latency, concurrency, scrape counts."""

    sizes: tuple[int, ...]
    latency: float
    concurrency: int
    scrapes: int | None

    def scrapes_for(self, users: int) -> int:
        """Scrapes per variant: fewer at large sizes, where each one is slow."""
        if self.scrapes is not None:
            return self.scrapes
        return SCRAPES_LARGE if users >= LARGE_FROM_USERS else SCRAPES_SMALL


def parse_args(argv: Sequence[str] | None) -> Options:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark koodrive-exporter against its simulator."
    )
    parser.add_argument(
        "--sizes",
        default=",".join(str(size) for size in DEFAULT_SIZES),
        help="comma-separated tenant sizes in users (default: %(default)s)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.05,
        help="seconds the simulator waits before each API answer (default: 0.05)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="koodrive.concurrency of the exporter (default: 4)",
    )
    parser.add_argument(
        "--scrapes",
        type=int,
        default=None,
        help=f"scrapes per variant (default: {SCRAPES_SMALL}, "
        f"{SCRAPES_LARGE} from {LARGE_FROM_USERS:,} users)",
    )
    args = parser.parse_args(argv)
    try:
        sizes = tuple(int(part) for part in args.sizes.split(",") if part.strip())
    except ValueError:
        parser.error(f"--sizes must be whole numbers: {args.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--sizes needs at least one size, each of one user or more")
    if args.latency <= 0:
        parser.error("--latency must be positive: the floor is made of it")
    if not 1 <= args.concurrency <= 32:
        parser.error("--concurrency must be 1 to 32, as koodrive.concurrency")
    if args.scrapes is not None and args.scrapes < 1:
        parser.error("--scrapes must be at least 1")
    return Options(sizes, args.latency, args.concurrency, args.scrapes)


def find_node_exporter() -> Path | None:
    """Debian's prometheus-node-exporter, or a node_exporter on PATH."""
    for candidate in NODE_EXPORTER_PATHS:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    for name in NODE_EXPORTER_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def first_line(argv: Sequence[str]) -> str:
    """The first output line of a short command, or `unknown`."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    output = (done.stdout or done.stderr).strip()
    return output.splitlines()[0] if output else "unknown"


def machine_info(
    options: Options, node_exporter: Path | None, argv: Sequence[str]
) -> list[tuple[str, str]]:
    """Rows describing where and how the run happened."""
    cpu_model = "unknown"
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            cpu_model = line.partition(":")[2].strip()
            break
    commit = first_line(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"])
    node = first_line([str(node_exporter), "--version"]) if node_exporter else "absent"
    scrapes = ", ".join(
        f"{options.scrapes_for(size)} at {size:,}" for size in options.sizes
    )
    return [
        ("date (UTC)", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")),
        ("command", "`" + " ".join(["bench/run.py", *argv]) + "`"),
        ("nproc", str(os.cpu_count())),
        ("CPU", cpu_model),
        ("kernel", platform.release()),
        ("Python", platform.python_version()),
        ("prometheus_client", metadata.version("prometheus-client")),
        ("koodrive-exporter", f"{koodrive_exporter.__version__} (commit {commit})"),
        ("node_exporter", node),
        ("sizes (users)", ", ".join(f"{size:,}" for size in options.sizes)),
        ("simulated API latency", f"{options.latency:g} s per request"),
        ("koodrive.concurrency", str(options.concurrency)),
        ("koodrive.page_size", str(PAGE_SIZE)),
        ("scrapes per variant", scrapes),
    ]


def write_config(
    path: Path,
    api_port: int,
    token_file: Path,
    options: Options,
    refresh_timeout: float,
) -> None:
    """The exporter's configuration: on-scrape, one refresh, generous timeouts."""
    settings = {
        "koodrive": {
            "url": f"http://127.0.0.1:{api_port}",
            "user_id": CALLER_USER_ID,
            "auth": {"token_file": str(token_file)},
            "page_size": PAGE_SIZE,
            "concurrency": options.concurrency,
        },
        "refresh": {
            "mode": "on_scrape",
            "min_interval_seconds": 3600,
            "stale_after_seconds": 0,
            "timeout_seconds": refresh_timeout,
            "scrape_timeout_seconds": refresh_timeout,
        },
    }
    path.write_text(yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")


def scrape_series(port: int, variant: Variant, count: int) -> tuple[Served, Fetched]:
    """`count` sequential scrapes of /metrics; the summary and the first answer."""
    headers = {"Accept": variant.accept, "Accept-Encoding": variant.encoding}
    scraper = Scraper(port, SCRAPE_TIMEOUT_SECONDS)
    seconds: list[float] = []
    first: Fetched | None = None
    try:
        for _ in range(count):
            fetched = scraper.get("/metrics", headers)
            if fetched.status != 200:
                raise BenchError(f"/metrics answered {fetched.status} ({variant.name})")
            first = first or fetched
            seconds.append(fetched.seconds)
    finally:
        scraper.close()
    assert first is not None
    served = Served(
        latency=Latency.of(seconds),
        body_bytes=len(first.body),
        content_type=first.headers.get("content-type", ""),
        content_encoding=first.headers.get("content-encoding", "identity"),
    )
    return served, first


def plain_body(fetched: Fetched) -> bytes:
    """The body with any gzip encoding undone."""
    if fetched.headers.get("content-encoding") == "gzip":
        return gzip.decompress(fetched.body)
    return fetched.body


def gauge(text: str, name: str) -> float:
    """The value of an unlabelled sample in an exposition."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    if match is None:
        raise BenchError(f"no {name} sample in the exposition")
    return float(match.group(1))


def sample_lines(text: str, prefix: str = "") -> int:
    """Sample lines (not comments) whose metric name starts with `prefix`."""
    return sum(
        1
        for line in text.splitlines()
        if line and not line.startswith("#") and line.startswith(prefix)
    )


def measure_exporter(
    users: int, options: Options, workdir: Path
) -> tuple[SizeResult, bytes]:
    """Run simulator and exporter for one size; the figures and the text body."""
    pages = math.ceil(users / PAGE_SIZE)
    floor = math.ceil(pages / options.concurrency) * options.latency
    refresh_timeout = max(120.0, 4 * floor + 60)

    token_file = workdir / "token"
    token_file.write_text(secrets.token_hex(16) + "\n", encoding="utf-8")
    api_port, exporter_port = free_port(), free_port()
    config_file = workdir / "koodrive-exporter.yml"
    write_config(config_file, api_port, token_file, options, refresh_timeout)

    children: list[Child] = []
    try:
        simulator = spawn(
            "simulator",
            [
                str(BIN_DIR / "koodrive-simulator"),
                f"--listen=127.0.0.1:{api_port}",
                f"--users={users}",
                f"--seed={SEED}",
                f"--token-file={token_file}",
                f"--latency={options.latency}",
            ],
            workdir / "simulator.log",
        )
        children.append(simulator)
        wait_for_status(
            simulator, api_port, "/_simulator/stats", SIMULATOR_START_SECONDS
        )
        simulator_cpu_before = cpu_seconds(simulator.pid)

        exporter = spawn(
            "exporter",
            [
                str(BIN_DIR / "koodrive-exporter"),
                f"--config.file={config_file}",
                f"--web.listen-address=127.0.0.1:{exporter_port}",
            ],
            workdir / "exporter.log",
        )
        children.append(exporter)
        healthy_at = wait_for_status(
            exporter, exporter_port, "/-/healthy", EXPORTER_START_SECONDS
        )
        cpu_at_healthy = cpu_seconds(exporter.pid)
        ready_at = wait_for_status(
            exporter, exporter_port, "/-/ready", refresh_timeout + 30
        )
        refresh_cpu = cpu_seconds(exporter.pid) - cpu_at_healthy
        rss_after_refresh = proc_status_kib(exporter.pid, "VmRSS")
        peak_after_refresh = proc_status_kib(exporter.pid, "VmHWM")

        stats = get_once(api_port, "/_simulator/stats")
        if stats is None or stats.status != 200:
            raise BenchError("the simulator's stats endpoint did not answer")
        api_calls = int(yaml.safe_load(stats.body)["requests"])
        simulator_cpu = cpu_seconds(simulator.pid) - simulator_cpu_before
        # Idle from here on; stopped so it takes nothing from the scrapes.
        simulator.stop()

        served: dict[str, Served] = {}
        text_body = b""
        for variant in VARIANTS:
            served[variant.name], first = scrape_series(
                exporter_port, variant, options.scrapes_for(users)
            )
            check_encoding(variant, served[variant.name], "exporter")
            if variant.name == "text":
                text_body = first.body
        peak_rss = proc_status_kib(exporter.pid, "VmHWM")
        exit_status = exporter.stop()
    finally:
        for child in reversed(children):
            child.stop()

    text = text_body.decode("utf-8")
    exported = gauge(text, "koodrive_users")
    if exported != users or gauge(text, "koodrive_up") != 1:
        raise BenchError(f"the exporter served {exported:g} users, not {users}")
    result = SizeResult(
        users=users,
        pages=pages,
        concurrency=options.concurrency,
        latency_seconds=options.latency,
        api_calls=api_calls,
        refresh_seconds=gauge(text, "koodrive_refresh_duration_seconds"),
        start_to_healthy_seconds=healthy_at - exporter.started,
        start_to_ready_seconds=ready_at - exporter.started,
        refresh_cpu_seconds=refresh_cpu,
        simulator_cpu_seconds=simulator_cpu,
        rss_after_refresh_kib=rss_after_refresh,
        peak_rss_refresh_kib=peak_after_refresh,
        peak_rss_kib=peak_rss,
        exporter_exit_status=exit_status,
        served=served,
    )
    return result, text_body


def check_encoding(variant: Variant, served: Served, who: str) -> None:
    """Fail when asked-for gzip was not sent, so no figure mixes up encodings."""
    if variant.encoding == "gzip" and served.content_encoding != "gzip":
        raise BenchError(f"{who} did not gzip the {variant.name} variant")
    if variant.encoding != "gzip" and served.content_encoding == "gzip":
        raise BenchError(f"{who} gzipped the {variant.name} variant unasked")


def measure_node_exporter(
    node_exporter: Path, result: SizeResult, body: bytes, workdir: Path, scrapes: int
) -> None:
    """Serve the same samples from node_exporter's textfile collector and scrape."""
    textfile_dir = workdir / "textfile"
    textfile_dir.mkdir()
    staging = textfile_dir / "koodrive.prom.tmp"
    staging.write_bytes(body)
    staging.rename(textfile_dir / "koodrive.prom")

    port = free_port()
    node = spawn(
        "node_exporter",
        [
            str(node_exporter),
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={textfile_dir}",
        ],
        workdir / "node_exporter.log",
    )
    node_text = ""
    try:
        wait_for_status(node, port, "/", NODE_START_SECONDS)
        for variant in VARIANTS:
            served, first = scrape_series(port, variant, scrapes)
            check_encoding(variant, served, "node_exporter")
            result.node_served[variant.name] = served
            if variant.name == "text":
                node_text = plain_body(first).decode("utf-8")
        result.node_peak_rss_kib = proc_status_kib(node.pid, "VmHWM")
    finally:
        node.stop()
        (textfile_dir / "koodrive.prom").unlink(missing_ok=True)

    if gauge(node_text, "node_textfile_scrape_error") != 0:
        raise BenchError("node_exporter could not read the textfile; see its log")
    ours = sample_lines(body.decode("utf-8"))
    theirs = sample_lines(node_text, "koodrive_")
    if theirs != ours:
        raise BenchError(f"node_exporter served {theirs} koodrive samples, not {ours}")
    result.node_extra_samples = sample_lines(node_text) - theirs


def node_note(results: Sequence[SizeResult], node_exporter: Path | None) -> str:
    """A sentence on what the node_exporter figures contain."""
    if node_exporter is None:
        return "prometheus-node-exporter was not found: no comparison was made."
    extras = sorted(
        {r.node_extra_samples for r in results if r.node_extra_samples is not None}
    )
    served = {
        served.content_type.split(";")[0]
        for r in results
        for served in r.node_served.values()
    }
    return (
        "node_exporter serves the exporter's text body from its textfile collector "
        "(all other collectors off), plus its own samples: "
        f"{', '.join(str(extra) for extra in extras)} more "
        "(textfile mtime and scrape error, collector status, build info, "
        "go_, process_ and promhttp_ metrics). "
        f"It answered every variant with {', '.join(sorted(served))}: "
        "where that is not OpenMetrics, its OpenMetrics rows are text format."
    )


def print_progress(message: str) -> None:
    """One timestamped progress line on stderr."""
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every size, print and write the results; 1 when a target is missed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(argv)
    node_exporter = find_node_exporter()
    in_ci = os.environ.get("CI", "").lower() == "true"
    if node_exporter is None:
        print_progress(
            "prometheus-node-exporter not found: skipping the node_exporter "
            "comparison" + (" (a failure under CI=true)" if in_ci else "")
        )

    run_dir = SCRATCH_DIR / datetime.now().strftime("run-%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True)
    results: list[SizeResult] = []
    try:
        for users in options.sizes:
            workdir = run_dir / f"users-{users}"
            workdir.mkdir()
            print_progress(f"{users:,} users: simulator and exporter")
            result, body = measure_exporter(users, options, workdir)
            if node_exporter is not None:
                print_progress(f"{users:,} users: node_exporter")
                measure_node_exporter(
                    node_exporter, result, body, workdir, options.scrapes_for(users)
                )
            results.append(result)
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2

    targets = evaluate(results, node_required=in_ci, node_ran=node_exporter is not None)
    page = markdown(
        results,
        targets,
        machine_info(options, node_exporter, argv),
        node_note=node_note(results, node_exporter),
    )
    RESULTS_PATH.write_text(page, encoding="utf-8")
    print(page)
    print(f"written to {RESULTS_PATH.relative_to(REPO_DIR)}; logs in {run_dir}")
    for result in results:
        if result.exporter_exit_status != 0:
            print(
                f"note: the exporter exited with {result.exporter_exit_status} "
                f"after SIGTERM at {result.users:,} users"
            )
    return 0 if all(target.passed for target in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
