"""Exposition output: a golden file for a fixed data set, read over real HTTP."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import requests

from helpers import CALLER_ID, make_settings, wire_user
from koodrive_exporter.auth import FileSecret, TokenAuth
from koodrive_exporter.client import KooDriveClient
from koodrive_exporter.exposition import (
    StatusCollector,
    UsersCollector,
    exposition_of,
    render,
    render_users,
)
from koodrive_exporter.records import UserQuota
from koodrive_exporter.simulator.app import Simulator
from koodrive_exporter.snapshot import RefreshStatus
from koodrive_exporter.stats import ApiStats

GOLDEN = Path(__file__).parent / "golden" / "fixed_tenant.prom"

# Every form the records module reads, each in one user of the fixed tenant.
FIXED_TENANT = [
    wire_user("1505084218764547200", quota="1048576", used=0),
    wire_user(
        "9223372036854775807123",
        quota="1.5e3",
        used="512.5",
        createTime="1735689600",
        effectiveTime="1735689600000",
        expirationTime="2026-12-31",
    ),
    wire_user(
        'odd "quoted" \\ user ü',
        quota=2048,
        used=2048,
        createTime="2025-03-01 08:00:00",
        effectiveTime="2025-03-01T08:00:00+08:00",
        expirationTime="2025-11-12T08:37:14.613Z",
    ),
    wire_user("no-quota-empty", quota="", used=10),
    wire_user("no-quota-null", quota=None, used=11),
    wire_user("no-quota-zero", quota="0", used=12),
    wire_user("no-quota-negative", quota=-1, used=13),
    wire_user("bad-values", quota="100", used="lots", expirationTime="someday"),
    wire_user("1505084218764547200", quota="1", used=999),
]

FIXED_STATUS = RefreshStatus(
    up=True,
    users=8,
    last_success_seconds=1767225600.0,
    duration_seconds=0.25,
    reason=None,
    requests={"success": 3, "http_429": 1},
    record_errors={"used": 1, "expirationTime": 1},
    version="0.0.0-test",
)


def render_fixed_tenant(tmp_path: Path) -> bytes:
    """Serve the fixed tenant from the simulator, read it, render it."""
    token_file = tmp_path / "token"
    token_file.write_text("golden-token", encoding="utf-8")
    with Simulator(FIXED_TENANT, token="golden-token") as sim:
        settings = make_settings(
            sim.url, token_file, page_size=4, timezone="Asia/Shanghai"
        ).koodrive
        auth = TokenAuth(CALLER_ID, FileSecret(token_file), "Bearer ")
        with requests.Session() as session:
            client = KooDriveClient(settings, session, auth, ApiStats())
            listing = client.list_users(deadline=float("inf"))
    assert listing.record_errors == {"used": 1, "expirationTime": 1}
    assert listing.duplicates == 1
    users = render(UsersCollector(listing.users))
    status = render(StatusCollector(FIXED_STATUS))
    return exposition_of((users, status)).body(openmetrics=False, compressed=False)


def test_fixed_tenant_matches_the_golden_exposition(tmp_path: Path) -> None:
    body = render_fixed_tenant(tmp_path)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_bytes(body)

    assert body.decode("utf-8") == GOLDEN.read_text(encoding="utf-8")


def test_openmetrics_body_ends_with_one_eof_and_keeps_counters() -> None:
    blocks = (render(UsersCollector(())), render(StatusCollector(FIXED_STATUS)))
    body = exposition_of(blocks).body(openmetrics=True, compressed=False).decode()

    assert body.endswith("# EOF\n")
    assert body.count("# EOF") == 1
    assert 'koodrive_api_requests_total{outcome="http_429"} 1.0' in body
    assert "# TYPE koodrive_api_requests counter" in body


def test_compressed_bodies_are_built_once_and_decompress_to_the_plain_body() -> None:
    exposition = exposition_of((render(StatusCollector(FIXED_STATUS)),))

    first = exposition.chunks(openmetrics=False, compressed=True)
    second = exposition.chunks(openmetrics=False, compressed=True)

    assert first is second
    plain = exposition.body(openmetrics=False, compressed=False)
    assert gzip.decompress(b"".join(first)) == plain


def test_fast_user_rendering_equals_prometheus_client_in_both_formats() -> None:
    users = [
        UserQuota("1505084218764547200", 1048576.0, 0.0, 1.7e9, 1.7e9, 1.8e9),
        UserQuota('a"b\\c\nd é', 0.5, 1e-9, None, 123456789.0, 1.5e300),
        UserQuota("big", None, 1e22, 1.0, None, 1767225600.123),
    ]

    fast = render_users(users)
    reference = render(UsersCollector(users))

    assert fast.text == reference.text
    assert fast.openmetrics == reference.openmetrics


def test_compressed_body_is_one_gzip_member_joined_from_separate_blocks() -> None:
    users = render_users(
        [UserQuota(str(i), 1e9, float(i), None, None, None) for i in range(500)]
    )
    status = render(StatusCollector(FIXED_STATUS))
    exposition = exposition_of((users, status))

    for openmetrics in (False, True):
        compressed = exposition.body(openmetrics=openmetrics, compressed=True)
        # wbits=31 reads exactly one gzip member and checks its CRC and size.
        reader = zlib.decompressobj(wbits=31)
        plain = reader.decompress(compressed) + reader.flush()
        assert reader.eof
        assert reader.unused_data == b""
        assert plain == exposition.body(openmetrics=openmetrics, compressed=False)
