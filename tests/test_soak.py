"""The soak script, shortened: faults, tenant changes and concurrent scrapes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"
CHECKS = ("no crash", "deadline", "threads", "rss", "final series", "no errors")


def test_a_short_soak_passes_every_check_and_prints_its_summary() -> None:
    finished = subprocess.run(
        [sys.executable, str(SOAK), "--seconds", "15"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    report = finished.stdout + finished.stderr
    assert finished.returncode == 0, report
    assert "result: PASS" in finished.stdout, report
    for row in ("| scrapes |", "| latency p99 (s) |", "| faults injected |"):
        assert row in finished.stdout, report
    for check in CHECKS:
        assert f"| {check} |" in finished.stdout, report
    assert "FAILED" not in finished.stdout, report
