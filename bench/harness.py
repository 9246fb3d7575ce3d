"""Child processes and timed HTTP requests for the benchmark, loopback only.

Every child is started with its output in a log file, waited for with a
deadline, and stopped by its own process ID; every HTTP request goes to
127.0.0.1 and reads the whole body before the clock stops.
"""

from __future__ import annotations

import http.client
import math
import os
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
POLL_SECONDS = 0.025
LOG_TAIL_CHARS = 2000
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """The benchmark could not measure: a child failed or a wait ran out."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on at this moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@dataclass
class Child:
    """A process started by the benchmark, with its log file and start time."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    started: float

    @property
    def pid(self) -> int:
        """The child's process ID."""
        return self.process.pid

    def log_tail(self) -> str:
        """The end of the child's log, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return text[-LOG_TAIL_CHARS:]

    def check_alive(self) -> None:
        """Raise if the child has exited."""
        code = self.process.poll()
        if code is not None:
            raise BenchError(
                f"{self.name} exited with status {code}; log:\n{self.log_tail()}"
            )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


def spawn(name: str, argv: Sequence[str], log_path: Path) -> Child:
    """Start `argv` with stdout and stderr in `log_path`."""
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    return Child(name, process, log_path, started)


@dataclass(frozen=True)
class Fetched:
    """One HTTP answer and how long it took to arrive in full."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def get_once(port: int, path: str, timeout: float = 5.0) -> Fetched | None:
    """GET on a new connection; None while nothing answers on the port."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    started = time.perf_counter()
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    elapsed = time.perf_counter() - started
    headers = {name.lower(): value for name, value in response.getheaders()}
    return Fetched(response.status, headers, body, elapsed)


def wait_for_status(
    child: Child, port: int, path: str, timeout: float, status: int = 200
) -> float:
    """Poll `path` until it answers `status`; return the perf_counter time it did."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        child.check_alive()
        fetched = get_once(port, path)
        if fetched is not None and fetched.status == status:
            return time.perf_counter()
        time.sleep(POLL_SECONDS)
    raise BenchError(
        f"{child.name}: {path} did not answer {status} within {timeout:g}s; "
        f"log:\n{child.log_tail()}"
    )


class Scraper:
    """Sequential GETs over one kept-alive connection, as Prometheus scrapes."""

    def __init__(self, port: int, timeout: float) -> None:
        self._port = port
        self._timeout = timeout
        self._connection = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(LOOPBACK, self._port, timeout=self._timeout)

    def get(self, path: str, headers: Mapping[str, str]) -> Fetched:
        """GET `path` and read the raw body, undecoded; one reconnect if dropped."""
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                self._connection.request("GET", path, headers=dict(headers))
                response = self._connection.getresponse()
                body = response.read()
            except (ConnectionError, http.client.RemoteDisconnected):
                self._connection.close()
                self._connection = self._connect()
                if attempt == 2:
                    raise
                continue
            elapsed = time.perf_counter() - started
            found = {name.lower(): value for name, value in response.getheaders()}
            return Fetched(response.status, found, body, elapsed)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()


@dataclass(frozen=True)
class Latency:
    """Timings of a series of scrapes, in seconds."""

    first: float
    median: float
    p99: float
    count: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        """Summarise a series; p99 is the nearest-rank value (the maximum below 100)."""
        ordered = sorted(seconds)
        rank = max(1, math.ceil(0.99 * len(ordered)))
        return cls(
            first=seconds[0],
            median=statistics.median(ordered),
            p99=ordered[rank - 1],
            count=len(ordered),
        )


def proc_status_kib(pid: int, field: str) -> int:
    """A `kB` field of /proc/PID/status, such as VmHWM or VmRSS, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise BenchError(f"/proc/{pid}/status has no {field}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    # The command name may hold spaces; the fields after it are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS
