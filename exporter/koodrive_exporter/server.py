"""HTTP routes: /metrics, the landing page and health endpoints.

`WebApp` maps a request to a `Response` and knows nothing of sockets, so it is
tested directly; `ExporterServer` is the thin threaded HTTP server around it.
"""

from __future__ import annotations

import contextlib
import html
import logging
import math
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote

from requests.structures import CaseInsensitiveDict

from . import __version__
from .config import RefreshSettings
from .errors import ExporterError
from .exposition import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, Exposition
from .refresh import Refresher
from .webconfig import WebGuard

SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Response:
    """Status, headers and body of one answer; a body may come in chunks."""

    status: int
    body: bytes | tuple[bytes, ...]
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TenantInfo:
    """What the landing page may show of one tenant: nothing secret goes in here."""

    api_url: str
    auth_kind: str
    collectors: tuple[str, ...]


@dataclass(frozen=True)
class LandingInfo:
    """What the landing page shows of the configuration."""

    tenants: Mapping[str, TenantInfo]
    refresh_mode: str
    min_interval_seconds: float


class WebApp:
    """Answers the exporter's routes from the refreshers' current states.

    With one tenant (named "") /metrics serves it; with several, each is served
    on /probe?tenant=NAME and /metrics carries the exporter's own metrics.
    """

    def __init__(
        self,
        refreshers: Mapping[str, Refresher],
        landing: LandingInfo,
        *,
        telemetry_path: str = "/metrics",
        scrape_timeout_seconds: float = 10.0,
        scrape_timeout_margin_seconds: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
        reload: Callable[[], None] | None = None,
        own_metrics: Exposition | None = None,
    ) -> None:
        self.refreshers = refreshers
        self.landing = landing
        self._reload = reload
        self._telemetry_path = telemetry_path
        self._scrape_timeout = scrape_timeout_seconds
        self._margin = scrape_timeout_margin_seconds
        self._monotonic = monotonic
        self._own_metrics = own_metrics

    def configure(
        self,
        refreshers: Mapping[str, Refresher],
        landing: LandingInfo,
        refresh: RefreshSettings,
        own_metrics: Exposition,
    ) -> None:
        """Take a reloaded configuration: tenants, page, scrape budget."""
        self.refreshers = refreshers
        self.landing = landing
        self._scrape_timeout = refresh.scrape_timeout_seconds
        self._margin = refresh.scrape_timeout_margin_seconds
        self._own_metrics = own_metrics

    @property
    def multi_tenant(self) -> bool:
        """True when tenants are served by name on /probe."""
        return "" not in self.refreshers

    def handle(self, method: str, target: str, headers: Mapping[str, str]) -> Response:
        """Route one request."""
        path, _, query = target.partition("?")
        if path == "/-/reload":
            return self.reload(method)
        if method not in ("GET", "HEAD"):
            return Response(
                405, b"method not allowed\n", headers={"Allow": "GET, HEAD"}
            )
        if path == self._telemetry_path:
            return self.metrics(headers)
        if path == "/probe":
            return self.probe(query, headers)
        routes = {
            "/": self.landing_page,
            "/-/healthy": self.healthy,
            "/-/ready": self.ready,
        }
        route = routes.get(path)
        return route() if route else Response(404, b"not found\n")

    def reload(self, method: str) -> Response:
        """Re-read the configuration on POST, when lifecycle endpoints are on."""
        if self._reload is None:
            return Response(404, b"reloading needs --web.enable-lifecycle\n")
        if method != "POST":
            return Response(405, b"use POST\n", headers={"Allow": "POST"})
        try:
            self._reload()
        except ExporterError as exc:
            return Response(500, f"reload failed: {exc}\n".encode())
        return Response(200, b"configuration reloaded\n")

    def healthy(self) -> Response:
        """200 while the process serves at all."""
        return Response(200, b"OK\n")

    def ready(self) -> Response:
        """200 once a refresh has succeeded (every tenant has tried, if several)."""
        refreshers = list(self.refreshers.values())
        if self.multi_tenant:
            ready = all(refresher.attempted for refresher in refreshers)
        else:
            ready = all(refresher.ready for refresher in refreshers)
        if ready:
            return Response(200, b"OK\n")
        return Response(503, b"no successful refresh yet\n")

    def metrics(self, headers: Mapping[str, str]) -> Response:
        """The single tenant's metrics, or the exporter's own with several tenants."""
        if self._own_metrics is not None and self.multi_tenant:
            return _exposition_response(self._own_metrics, headers)
        refresher = self.refreshers.get("")
        if refresher is None:
            return Response(404, b"no single tenant; scrape /probe?tenant=NAME\n")
        deadline = self._monotonic() + self._scrape_budget(headers)
        return _exposition_response(refresher.scrape(deadline), headers)

    def probe(self, query: str, headers: Mapping[str, str]) -> Response:
        """One tenant's metrics: /probe?tenant=NAME."""
        if not self.multi_tenant:
            return Response(404, b"no tenants configured; scrape /metrics\n")
        names = parse_qs(query).get("tenant", [])
        if len(names) != 1 or not names[0]:
            return Response(400, b"give exactly one tenant: /probe?tenant=NAME\n")
        refresher = self.refreshers.get(names[0])
        if refresher is None:
            return Response(404, b"unknown tenant\n")
        deadline = self._monotonic() + self._scrape_budget(headers)
        return _exposition_response(refresher.scrape(deadline), headers)

    def landing_page(self) -> Response:
        """A small HTML page with the version, links and the last refresh results."""
        info = self.landing
        rows = [
            ("Version", __version__),
            (
                "Refresh",
                f"{info.refresh_mode}, every {info.min_interval_seconds:g}s at most",
            ),
        ]
        for name, tenant in info.tenants.items():
            label = f"Tenant {name}" if name else "KooDrive"
            refresher = self.refreshers.get(name)
            rows.append((f"{label} API", tenant.api_url))
            rows.append((f"{label} authentication", tenant.auth_kind))
            rows.append((f"{label} collectors", ", ".join(tenant.collectors)))
            rows.append((f"{label} status", _status_line(refresher)))
        table = "\n".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
            for name, value in rows
        )
        links = [(self._telemetry_path, "Metrics")]
        links += [
            (f"/probe?tenant={quote(name)}", f"Tenant {name}")
            for name in info.tenants
            if name
        ]
        links += [("/-/healthy", "Health"), ("/-/ready", "Readiness")]
        items = "\n".join(
            f'<li><a href="{html.escape(href)}">{html.escape(text)}</a></li>'
            for href, text in links
        )
        page = f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>KooDrive Exporter</title></head>
<body>
<h1>KooDrive Exporter</h1>
<p>KooDrive storage quotas, usage and validity for Prometheus.</p>
<table>
{table}
</table>
<ul>
{items}
</ul>
</body>
</html>
"""
        return Response(200, page.encode("utf-8"), "text/html; charset=utf-8")

    def _scrape_budget(self, headers: Mapping[str, str]) -> float:
        value = headers.get(SCRAPE_TIMEOUT_HEADER)
        budget = self._scrape_timeout
        if value:
            try:
                budget = float(value)
            except ValueError:
                budget = math.nan
            if not math.isfinite(budget) or budget <= 0:
                log.debug("ignoring malformed scrape timeout header")
                budget = self._scrape_timeout
        return max(0.0, budget - self._margin)


class ExporterServer:
    """A threaded HTTP server around a WebApp, on IPv4 or IPv6, TLS optional."""

    def __init__(
        self, app: WebApp, host: str, port: int, guard: WebGuard | None = None
    ) -> None:
        guard = guard or WebGuard(None)
        handler = _handler_for(app, guard)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class _Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that went away (a scrape cancelled at its timeout)
                # is routine; anything else is logged once, not printed.
                error = sys.exc_info()[1]
                if isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError)):
                    log.debug(
                        "client connection dropped", extra={"fields": {"error": error}}
                    )
                else:
                    log.error("connection handling failed", exc_info=True)

            def get_request(self) -> tuple[socket.socket, Any]:
                connection, address = self.socket.accept()
                context = guard.config.tls
                if context is not None:
                    # The handshake happens in the handler's thread, so a slow
                    # client cannot stall the accept loop.
                    connection = context.wrap_socket(
                        connection, server_side=True, do_handshake_on_connect=False
                    )
                return connection, address

        self._server = _Server((host, port), handler)
        self._thread: threading.Thread | None = None
        self.tls = guard.tls

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="koodrive-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, finish the loop and close the socket."""
        # shutdown() waits for serve_forever(), so only a started server may ask.
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


def _handler_for(app: WebApp, guard: WebGuard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"koodrive-exporter/{__version__}"
        protocol_version = "HTTP/1.1"
        # Idle or slow clients give their thread back after this long.
        timeout = 60

        # Headers and small chunks go out in one segment: unbuffered writes
        # meet Nagle's algorithm and delayed ACKs and stall for ~40 ms.
        wbufsize = 1 << 16

        def setup(self) -> None:
            super().setup()
            self.dropped = False
            with contextlib.suppress(OSError):
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if isinstance(self.connection, ssl.SSLSocket):
                try:
                    self.connection.do_handshake()
                except (OSError, ssl.SSLError) as exc:
                    log.debug("tls handshake failed", extra={"fields": {"error": exc}})
                    self.dropped = True

        def handle(self) -> None:
            if not self.dropped:
                super().handle()

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_POST(self) -> None:
            self._answer(head=False)

        def _answer(self, *, head: bool) -> None:
            try:
                if guard.authorized(self.headers.get("Authorization")):
                    headers = CaseInsensitiveDict(self.headers.items())
                    response = app.handle(self.command, self.path, headers)
                else:
                    response = Response(
                        401,
                        b"unauthorized\n",
                        headers={"WWW-Authenticate": 'Basic realm="koodrive-exporter"'},
                    )
            except Exception:
                log.exception(
                    "request handling failed", extra={"fields": {"path": self.path}}
                )
                response = Response(500, b"internal error\n")
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            chunks = (
                (response.body,) if isinstance(response.body, bytes) else response.body
            )
            self.send_header("Content-Length", str(sum(map(len, chunks))))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                try:
                    for chunk in chunks:
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    log.debug("client went away", extra={"fields": {"path": self.path}})

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http request", extra={"fields": {"line": format % args}})

    return Handler


def _exposition_response(
    exposition: Exposition, headers: Mapping[str, str]
) -> Response:
    openmetrics = "application/openmetrics-text" in headers.get("Accept", "")
    compressed = _accepts_gzip(headers.get("Accept-Encoding", ""))
    chunks = exposition.chunks(openmetrics=openmetrics, compressed=compressed)
    extra = {"Vary": "Accept, Accept-Encoding"}
    if compressed:
        extra["Content-Encoding"] = "gzip"
    content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
    return Response(200, chunks, content_type, extra)


def _status_line(refresher: Refresher | None) -> str:
    state = refresher.state if refresher is not None else None
    if state is None:
        return "no refresh has finished yet"
    status = state.status
    outcome = "succeeded" if status.up else f"failed ({status.reason})"
    last = _format_time(status.last_success_seconds)
    return f"last refresh {outcome}; {status.users} users; last success {last}"


def _accepts_gzip(value: str) -> bool:
    for part in value.split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() != "gzip":
            continue
        weight = params.strip().lower().removeprefix("q=").strip() if params else "1"
        try:
            return float(weight) > 0
        except ValueError:
            return True
    return False


def _format_time(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )
