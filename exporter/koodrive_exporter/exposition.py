"""Prometheus exposition of one snapshot: custom collectors rendered once.

A snapshot's users and the exporter's status are rendered separately, so a
failed refresh re-renders only the small status block and reuses the users'
bytes. The result is served as stored bytes, compressed at most once.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.openmetrics.exposition import (
    generate_latest as generate_openmetrics,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .records import SpaceUsage, TenantOverview, UserQuota
from .snapshot import RefreshStatus

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_EOF = b"# EOF\n"

# (metric name, help text, UserQuota attribute)
USER_GAUGES = (
    (
        "koodrive_user_quota_bytes",
        "Space quota of the user in bytes; absent when no limit is set.",
        "quota_bytes",
    ),
    ("koodrive_user_used_bytes", "Space used by the user in bytes.", "used_bytes"),
    (
        "koodrive_user_quota_expiration_timestamp_seconds",
        "When the user's quota expires, as Unix time.",
        "expiration_seconds",
    ),
    (
        "koodrive_user_quota_effective_timestamp_seconds",
        "When the user's quota took effect, as Unix time.",
        "effective_seconds",
    ),
    (
        "koodrive_user_quota_creation_timestamp_seconds",
        "When the user's quota was created, as Unix time.",
        "creation_seconds",
    ),
)


class UsersCollector(Collector):
    """Per-user gauges from one immutable list of users.

    Sample output:
        koodrive_user_quota_bytes{user_id="1505084218764547200"} 1.073741824e+09
        koodrive_user_used_bytes{user_id="1505084218764547200"} 5.24288e+08
    """

    def __init__(self, users: Sequence[UserQuota]) -> None:
        self._users = users

    def collect(self) -> Iterator[Metric]:
        """Yield one gauge family per user field, skipping absent values."""
        for name, documentation, attribute in USER_GAUGES:
            family = GaugeMetricFamily(name, documentation, labels=["user_id"])
            for user in self._users:
                value = getattr(user, attribute)
                if value is not None:
                    family.add_metric([user.user_id], value)
            yield family


class StatusCollector(Collector):
    """The exporter's own metrics: refresh health, request and error counters."""

    def __init__(self, status: RefreshStatus) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        """Yield the status gauges and counters."""
        status = self._status
        yield _gauge(
            "koodrive_up",
            "1 when the last refresh succeeded for every enabled collector, else 0.",
            1.0 if status.up else 0.0,
        )
        yield _gauge("koodrive_users", "Users in the served snapshot.", status.users)
        if status.last_success_seconds is not None:
            yield _gauge(
                "koodrive_last_refresh_success_timestamp_seconds",
                "When the last successful refresh finished, as Unix time.",
                status.last_success_seconds,
            )
        if status.duration_seconds is not None:
            yield _gauge(
                "koodrive_refresh_duration_seconds",
                "How long the last refresh took, successful or not.",
                status.duration_seconds,
            )
        yield _counter(
            "koodrive_api_requests",
            "KooDrive API requests by outcome.",
            "outcome",
            status.requests,
        )
        yield _counter(
            "koodrive_record_errors",
            "API values that could not be read, by field; their samples were dropped.",
            "field",
            status.record_errors,
        )
        yield _counter(
            "koodrive_users_dropped",
            "Users listed by KooDrive but not exported, by reason.",
            "reason",
            status.users_dropped,
        )
        if status.collectors:
            collector_up = GaugeMetricFamily(
                "koodrive_collector_up",
                "1 when the collector's last fetch succeeded, else 0.",
                labels=["collector"],
            )
            for name, up in status.collectors.items():
                collector_up.add_metric([name], 1.0 if up else 0.0)
            yield collector_up
        build = GaugeMetricFamily(
            "koodrive_exporter_build_info",
            "Build information of koodrive-exporter; always 1.",
            labels=["version"],
        )
        build.add_metric([status.version], 1.0)
        yield build


class OverviewCollector(Collector):
    """Tenant totals from the overview API.

    Sample output:
        koodrive_tenant_capacity_bytes 1.2e+13
        koodrive_tenant_used_bytes 3.4e+12
    """

    FAMILIES = (
        (
            "koodrive_tenant_capacity_bytes",
            "Tenant storage capacity.",
            "capacity_bytes",
        ),
        (
            "koodrive_tenant_allocated_bytes",
            "Space allocated to users and team spaces as quotas.",
            "allocated_bytes",
        ),
        ("koodrive_tenant_used_bytes", "Space used in the tenant.", "used_bytes"),
        (
            "koodrive_tenant_quota_bytes",
            "The tenant's quota as the overview API reports it.",
            "quota_bytes",
        ),
    )

    def __init__(self, overview: TenantOverview) -> None:
        self._overview = overview

    def collect(self) -> Iterator[Metric]:
        """Yield one gauge per total the API sent."""
        for name, documentation, attribute in self.FAMILIES:
            value = getattr(self._overview, attribute)
            if value is not None:
                yield _gauge(name, documentation + " In bytes.", value)


class SpacesCollector(Collector):
    """Departments or team spaces: quota, used bytes and members per space.

    Sample output:
        koodrive_department_used_bytes{department_id="d1",department="Sales"} 5e+09
    """

    def __init__(self, kind: str, members_metric: str, spaces: Sequence[SpaceUsage]):
        self._kind = kind
        self._members_metric = members_metric
        self._spaces = spaces

    def collect(self) -> Iterator[Metric]:
        """Yield quota, used and member gauges labelled by ID and name."""
        kind = self._kind
        labels = [f"{kind}_id", kind]
        families = (
            (
                f"koodrive_{kind}_quota_bytes",
                f"Quota of the {kind} in bytes.",
                "quota_bytes",
            ),
            (
                f"koodrive_{kind}_used_bytes",
                f"Space used by the {kind} in bytes.",
                "used_bytes",
            ),
            (self._members_metric, f"Members of the {kind}.", "members"),
        )
        for name, documentation, attribute in families:
            family = GaugeMetricFamily(name, documentation, labels=labels)
            for space in self._spaces:
                value = getattr(space, attribute)
                if value is not None:
                    family.add_metric([space.space_id, space.name], value)
            yield family


class ExporterInfoCollector(Collector):
    """The exporter's own metrics when tenants are served on /probe."""

    def __init__(self, version: str, tenants: int) -> None:
        self._version = version
        self._tenants = tenants

    def collect(self) -> Iterator[Metric]:
        """Yield the build information and the number of tenants configured."""
        build = GaugeMetricFamily(
            "koodrive_exporter_build_info",
            "Build information of koodrive-exporter; always 1.",
            labels=["version"],
        )
        build.add_metric([self._version], 1.0)
        yield build
        yield _gauge(
            "koodrive_exporter_tenants",
            "Tenants configured, each served on /probe?tenant=NAME.",
            self._tenants,
        )


@dataclass(frozen=True)
class Block:
    """One collector rendered in both formats; OpenMetrics without its EOF line."""

    text: bytes
    openmetrics: bytes
    _deflated: dict[bool, _Deflated] = field(
        default_factory=dict, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, repr=False, compare=False
    )

    def deflated(self, *, openmetrics: bool) -> _Deflated:
        """This block compressed on its own, computed once and kept."""
        # Gauge-only blocks have one body for both formats: share the work.
        key = openmetrics and self.openmetrics is not self.text
        found = self._deflated.get(key)
        if found is None:
            with self._lock:
                found = self._deflated.get(key)
                if found is None:
                    plain = self.openmetrics if key else self.text
                    found = self._deflated[key] = _deflate(plain)
        return found


@dataclass(frozen=True)
class _Deflated:
    """Raw deflate data ending on a byte boundary, with the plain text's CRC."""

    plain: bytes
    data: bytes
    crc: int


def _deflate(plain: bytes) -> _Deflated:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    # A sync flush ends on a byte boundary without closing the stream, so
    # pieces compressed apart can be joined into one gzip member.
    data = compressor.compress(plain) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return _Deflated(plain, data, zlib.crc32(plain))


def gzip_chunks(pieces: Sequence[_Deflated]) -> tuple[bytes, ...]:
    """One gzip member (RFC 1952) from separately deflated pieces, in order."""
    crc = pieces[0].crc if pieces else 0
    for piece in pieces[1:]:
        # The first piece is the large one; its CRC is continued over the rest.
        crc = zlib.crc32(piece.plain, crc)
    size = sum(len(piece.plain) for piece in pieces)
    final = zlib.compressobj(6, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return (_GZIP_HEADER, *(piece.data for piece in pieces), final + trailer)


# Magic, deflate, no flags, no time, no extra flags, unknown OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def render(collector: Collector) -> Block:
    """Render a collector once in the text format and in OpenMetrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    openmetrics = generate_openmetrics(registry)
    if openmetrics.endswith(_EOF):
        openmetrics = openmetrics[: -len(_EOF)]
    return Block(text=generate_latest(registry), openmetrics=openmetrics)


def render_users(users: Sequence[UserQuota]) -> Block:
    """Render the per-user gauges: the same bytes as `render(UsersCollector(...))`.

    prometheus_client builds a sample object per value and formats it through
    several layers of calls; at 100,000 users that costs seconds. The
    families here are gauges with one label and plain help texts, which render
    identically in the text format and OpenMetrics, so one pass writes both
    straight from the records, one family at a time to keep memory low.
    A test holds the two renderings byte for byte equal.
    """
    labels = [_escape(user.user_id) for user in users]
    formatted: dict[float, str] = {}
    chunks: list[bytes] = []
    for name, documentation, attribute in USER_GAUGES:
        read = attrgetter(attribute)
        lines = [f"# HELP {name} {documentation}\n# TYPE {name} gauge\n"]
        prefix = name + '{user_id="'
        for label, user in zip(labels, users, strict=True):
            value = read(user)
            if value is None:
                continue
            # Quotas and dates repeat across users: format each value once.
            text = formatted.get(value)
            if text is None:
                text = formatted[value] = floatToGoString(value)
            lines.append(f'{prefix}{label}"}} {text}\n')
        chunks.append("".join(lines).encode("utf-8"))
        del lines
    body = b"".join(chunks)
    return Block(text=body, openmetrics=body)


@dataclass
class Exposition:
    """A complete /metrics body made of blocks, served as a list of chunks.

    The chunks are the blocks' own bytes, so no copy of a large body is made
    per format; compressed bodies reuse each block's compressed form.
    """

    blocks: tuple[Block, ...]
    _cache: dict[tuple[bool, bool], tuple[bytes, ...]] = field(
        default_factory=dict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def chunks(self, *, openmetrics: bool, compressed: bool) -> tuple[bytes, ...]:
        """The body in the asked format, in pieces to write one after another."""
        key = (openmetrics, compressed)
        cached = self._cache.get(key)
        if cached is None:
            with self._lock:
                cached = self._cache.get(key)
                if cached is None:
                    cached = self._cache[key] = self._build(
                        openmetrics=openmetrics, compressed=compressed
                    )
        return cached

    def body(self, *, openmetrics: bool, compressed: bool) -> bytes:
        """The whole body as one bytes object (a copy; servers use `chunks`)."""
        return b"".join(self.chunks(openmetrics=openmetrics, compressed=compressed))

    def _build(self, *, openmetrics: bool, compressed: bool) -> tuple[bytes, ...]:
        if compressed:
            # Each block keeps its own compressed form, so a failed refresh,
            # which re-renders only the small status block, compresses only it.
            pieces = [block.deflated(openmetrics=openmetrics) for block in self.blocks]
            if openmetrics:
                pieces.append(_EOF_DEFLATED)
            return gzip_chunks(pieces)
        if openmetrics:
            return (*(block.openmetrics for block in self.blocks), _EOF)
        return tuple(block.text for block in self.blocks)


_EOF_DEFLATED = _deflate(_EOF)


def exposition_of(blocks: Iterable[Block]) -> Exposition:
    """Assemble blocks into a servable exposition."""
    return Exposition(tuple(blocks))


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(
    name: str, documentation: str, label: str, values: dict[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for label_value in sorted(values):
        family.add_metric([label_value], values[label_value])
    return family


def _escape(label_value: str) -> str:
    if "\\" in label_value or "\n" in label_value or '"' in label_value:
        label_value = (
            label_value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        )
    return label_value
