"""KooDrive's space usage APIs, served on loopback from a list of users.

The simulator answers `POST /koodrive/ose/v1/space/usage/user` the way the
public reference describes it, and beside it the tenant overview and the
department and group listings (`GET .../space/usage/overview`,
`.../space/departmentList`, `.../space/groupList`), derived from the same
users. It checks a token or an app signature, and can misbehave on purpose:
queued faults and flags that make it page badly or lie about totals. Small
control endpoints under `/_simulator/` let scripts queue faults and read
counters while it runs.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from requests.structures import CaseInsensitiveDict

from koodrive_exporter import __version__
from koodrive_exporter.simulator.auth import REQUIRED_HEADERS, Authenticator
from koodrive_exporter.simulator.faults import (
    DELAYING_KINDS,
    Fault,
    FaultQueue,
    fault_reply,
)
from koodrive_exporter.simulator.listing import (
    PageRequestError,
    UserDirectory,
    parse_page_query,
    parse_page_request,
)
from koodrive_exporter.simulator.spaces import (
    DEFAULT_DEPARTMENTS,
    DEFAULT_GROUPS,
    TenantSpaces,
    generate_groups,
)
from koodrive_exporter.simulator.wire import (
    CODE_GATEWAY_NOT_FOUND,
    CODE_GATEWAY_UNAUTHORIZED,
    CODE_INNER_FAILURE,
    CODE_INVALID_PARAMETER,
    Reply,
    error_reply,
    json_reply,
)

API_PATH = "/koodrive/ose/v1/space/usage/user"
OVERVIEW_PATH = "/koodrive/ose/v1/space/usage/overview"
DEPARTMENTS_PATH = "/koodrive/ose/v1/space/departmentList"
GROUPS_PATH = "/koodrive/ose/v1/space/groupList"
FAULTS_PATH = "/_simulator/faults"
STATS_PATH = "/_simulator/stats"

# Only the most recent requests are kept, so a long run does not grow without end.
RECORDED_REQUESTS_LIMIT = 10_000

# How often the serving loop looks for a stop request; stop() waits up to this.
STOP_POLL_SECONDS = 0.01

MAX_BODY_BYTES = 1024 * 1024
IDLE_TIMEOUT_SECONDS = 60.0

_HEADER_NAMES = {"x-user-id": "X-User-Id", "x-date": "X-Date", "host": "Host"}

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """Whether a listen address stays on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class _Endpoint:
    """One API path: its method, how it answers, and its wrong-shape payload."""

    method: str
    answer: Callable[[list[tuple[str, str]], bytes], Reply]
    wrong_shape: dict[str, Any] | None = None


class Simulator:
    """A KooDrive API double on a local port, with faults and paging quirks on demand.

    Behaviour flags may be changed while it runs: `ignore_offset` serves
    every page from offset 0, `omit_total` leaves `total` out, `page_cap`
    serves at most that many rows per page whatever the `limit`, and
    `code_as_string` sends `"0"` instead of `0`; these apply to the user,
    department and group listings alike, and `code_as_string` to the
    overview too. `total_override` reports that total instead of the true
    one, in the user listing only.

    Departments and groups: `departments` is how many departments the users
    are spread over, `groups` how many team spaces `seed` generates, and
    `tenant_capacity_gb` the tenant's fixed capacity, by default a quarter
    more than the allocation at start, rounded up to a whole 1000 GB.
    `quota_unit` and `used_unit` are the bytes in one unit of the users'
    `quota` and `used`, for users scaled with `scale_units`.
    """

    def __init__(
        self,
        users: Sequence[dict[str, Any]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        app_id: str | None = None,
        app_secret: str | None = None,
        max_page_size: int = 100,
        latency_seconds: float = 0.0,
        clock: Callable[[], float] = time.time,
        allow_non_loopback: bool = False,
        departments: int = DEFAULT_DEPARTMENTS,
        groups: int = DEFAULT_GROUPS,
        seed: int = 0,
        tenant_capacity_gb: float | None = None,
        quota_unit: int = 1,
        used_unit: int = 1,
    ) -> None:
        host = host.strip("[]")
        if not allow_non_loopback and not is_loopback(host):
            raise ValueError(
                f"refusing to listen on {host!r}: not a loopback address, "
                "and non-loopback addresses were not allowed explicitly"
            )
        if max_page_size < 1:
            raise ValueError(f"max_page_size must be at least 1: {max_page_size}")
        if latency_seconds < 0:
            raise ValueError(f"latency_seconds must not be negative: {latency_seconds}")

        self.host = host
        self.port = port
        self.max_page_size = max_page_size
        self.latency_seconds = latency_seconds
        self.faults = FaultQueue()
        self.ignore_offset = False
        self.omit_total = False
        self.page_cap: int | None = None
        self.total_override: int | None = None
        self.code_as_string = False

        self._clock = clock
        self._auth = Authenticator(
            token=token, app_id=app_id, app_secret=app_secret, clock=clock
        )
        self._directory = UserDirectory(users)
        self._department_count = departments
        self._units = (quota_unit, used_unit)
        self._groups = generate_groups(groups, seed=seed)
        self._spaces = self._tenant_spaces(self._directory.users, tenant_capacity_gb)
        # Later users change the allocation, never the tenant's capacity.
        self._tenant_capacity_gb = self._spaces.tenant_capacity_gb
        self._endpoints = {
            API_PATH: _Endpoint("POST", self._answer_users),
            OVERVIEW_PATH: _Endpoint(
                "GET",
                self._answer_overview,
                {"code": 0, "msg": "success", "data": [{"x": 1}]},
            ),
            DEPARTMENTS_PATH: _Endpoint(
                "GET",
                self._answer_departments,
                {"code": 0, "msg": "success", "total": 1, "departments": {"x": 1}},
            ),
            GROUPS_PATH: _Endpoint(
                "GET",
                self._answer_groups,
                {"code": 0, "msg": "success", "total": 1, "groups": {"x": 1}},
            ),
        }
        self._stats_lock = threading.Lock()
        self._request_count = 0
        self._requests: deque[dict[str, Any]] = deque(maxlen=RECORDED_REQUESTS_LIMIT)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Run-time changes and counters.

    def set_users(self, users: Sequence[dict[str, Any]]) -> None:
        """Serve these users, and departments and totals from them, from now on."""
        directory = UserDirectory(users)
        spaces = self._tenant_spaces(directory.users, self._tenant_capacity_gb)
        # Handlers read each reference once, so swapping them is enough.
        self._directory = directory
        self._spaces = spaces

    @property
    def users(self) -> list[dict[str, Any]]:
        """The users being served, in listing order."""
        return list(self._directory.users)

    def departments(self) -> list[dict[str, Any]]:
        """The departments as the department listing serves them, in id order."""
        return [dict(row) for row in self._spaces.departments]

    def groups(self) -> list[dict[str, Any]]:
        """The groups (team spaces) as the group listing serves them."""
        return [dict(row) for row in self._spaces.groups]

    def overview(self) -> dict[str, float]:
        """The tenant totals the overview serves under `data`."""
        return dict(self._spaces.overview)

    def _tenant_spaces(
        self, users: Sequence[dict[str, Any]], tenant_capacity_gb: float | None
    ) -> TenantSpaces:
        quota_unit, used_unit = self._units
        return TenantSpaces(
            users,
            departments=self._department_count,
            groups=self._groups,
            tenant_capacity_gb=tenant_capacity_gb,
            quota_unit=quota_unit,
            used_unit=used_unit,
        )

    def set_token(self, token: str | None) -> None:
        """Accept this token from the next request on; None turns token checks off."""
        self._auth.set_token(token)

    @property
    def auth_kinds(self) -> list[str]:
        """The authentication schemes in force: `token`, `app`, or none."""
        return self._auth.kinds

    @property
    def request_count(self) -> int:
        """API requests received so far, rejected ones included."""
        with self._stats_lock:
            return self._request_count

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Recent API requests: method, path, query, headers, body, status, time."""
        with self._stats_lock:
            return list(self._requests)

    def reset_stats(self) -> None:
        """Forget the requests counted and recorded so far."""
        with self._stats_lock:
            self._request_count = 0
            self._requests.clear()

    # Life cycle.

    def start(self) -> Simulator:
        """Listen and serve in a background thread; returns the simulator itself."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        self._stopping.clear()
        server_class = _ServerIPv6 if ":" in self.host else _Server
        self._server = server_class((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": STOP_POLL_SECONDS},
            name="koodrive-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, waking any request held back by a delay or a hang."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL clients should use, such as `http://127.0.0.1:8001`."""
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        host, port = self._server.server_address[:2]
        if ":" in str(host):
            return f"http://[{host}]:{port}"
        return f"http://{host}:{port}"

    # Requests.

    def route(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> Reply | None:
        """Answer one HTTP request; None means: close the connection unanswered."""
        path, _, query = target.partition("?")
        path = urlsplit(path).path or "/"
        endpoint = self._endpoints.get(path)
        if endpoint is not None:
            return self._serve_api(endpoint, method, path, query, list(headers), body)
        if path == FAULTS_PATH:
            return self._serve_faults(method, body)

        readable = {STATS_PATH: self._stats_reply, "/": self._home_reply}
        if path not in readable:
            return error_reply(404, CODE_GATEWAY_NOT_FOUND, f"no API at {path}")
        if method != "GET":
            return _method_not_allowed("GET")
        return readable[path]()

    def _serve_api(
        self,
        endpoint: _Endpoint,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> Reply | None:
        lowered = {name.lower(): value for name, value in headers}
        record = {
            "method": method,
            "path": path,
            "query": query,
            "headers": CaseInsensitiveDict(headers),
            "body": _readable_body(body),
            "status": None,
            "time": self._clock(),
        }
        with self._stats_lock:
            self._request_count += 1
            self._requests.append(record)

        reply = self._answer_api(endpoint, method, path, query, lowered, body)
        if reply is not None:
            if "x-traceid" in lowered:
                reply.headers["X-Traceid"] = lowered["x-traceid"]
            record["status"] = reply.status
        return reply

    def _answer_api(
        self,
        endpoint: _Endpoint,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
    ) -> Reply | None:
        if method != endpoint.method:
            return _method_not_allowed(endpoint.method)
        if self.latency_seconds > 0 and self._stopping.wait(self.latency_seconds):
            return None

        fault = self.faults.pop()
        if fault is not None:
            replacement = fault_reply(fault, wrong_shape=endpoint.wrong_shape)
            if replacement is not None:
                return replacement
            if fault.kind in DELAYING_KINDS and self._stopping.wait(fault.wait_seconds):
                return None

        reply = self._answer_checked(endpoint, path, query, headers, body)
        if fault is not None and fault.kind == "truncated":
            reply.truncate = True
        return reply

    def _answer_checked(
        self,
        endpoint: _Endpoint,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
    ) -> Reply:
        """Check the mandatory headers and the credentials, then answer."""
        missing = [
            _HEADER_NAMES[name] for name in REQUIRED_HEADERS if not headers.get(name)
        ]
        if missing:
            msg = f"parameter validation failed: missing header {', '.join(missing)}"
            return error_reply(400, CODE_INVALID_PARAMETER, msg)

        query_pairs = parse_qsl(query, keep_blank_values=True)
        reason = self._auth.check(
            endpoint.method, unquote(path), query_pairs, headers, body
        )
        if reason is not None:
            logger.debug("api request rejected reason=%r", reason)
            return error_reply(401, CODE_GATEWAY_UNAUTHORIZED, reason)

        try:
            return endpoint.answer(query_pairs, body)
        except PageRequestError as error:
            msg = f"parameter validation failed: {error}"
            return error_reply(400, CODE_INVALID_PARAMETER, msg)

    def _answer_users(self, query_pairs: list[tuple[str, str]], body: bytes) -> Reply:
        page = parse_page_request(body, self.max_page_size)
        listing = self._directory.select(page.user_ids)
        payload: dict[str, Any] = {
            "code": self._success_code(),
            "msg": "success",
            "data": self._page(listing, page.offset, page.limit),
        }
        if not self.omit_total:
            override = self.total_override
            payload["total"] = len(listing) if override is None else override
        return json_reply(200, payload)

    def _answer_overview(
        self, query_pairs: list[tuple[str, str]], body: bytes
    ) -> Reply:
        payload = {
            "code": self._success_code(),
            "msg": "success",
            "data": self._spaces.overview,
        }
        return json_reply(200, payload)

    def _answer_departments(
        self, query_pairs: list[tuple[str, str]], body: bytes
    ) -> Reply:
        page = parse_page_query(query_pairs, self.max_page_size)
        listing = self._spaces.find_departments(page.key_word)
        return self._listing_reply("departments", listing, page.offset, page.limit)

    def _answer_groups(self, query_pairs: list[tuple[str, str]], body: bytes) -> Reply:
        page = parse_page_query(query_pairs, self.max_page_size)
        listing = self._spaces.groups
        return self._listing_reply("groups", listing, page.offset, page.limit)

    def _listing_reply(
        self, key: str, listing: Sequence[dict[str, Any]], offset: int, limit: int
    ) -> Reply:
        """A department or group page: `code`, `msg`, `total` and the rows."""
        payload: dict[str, Any] = {"code": self._success_code(), "msg": "success"}
        if not self.omit_total:
            payload["total"] = len(listing)
        payload[key] = self._page(listing, offset, limit)
        return json_reply(200, payload)

    def _page(
        self, listing: Sequence[dict[str, Any]], offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """The rows of one page, as the paging flags in force serve it."""
        if self.ignore_offset:
            offset = 0
        page_cap = self.page_cap
        size = limit if page_cap is None else max(0, min(limit, page_cap))
        return list(listing[offset : offset + size])

    def _success_code(self) -> int | str:
        return "0" if self.code_as_string else 0

    def _serve_faults(self, method: str, body: bytes) -> Reply:
        if method == "GET":
            pending = [
                dict(fault.to_dict(), remaining=remaining)
                for fault, remaining in self.faults.pending()
            ]
            return json_reply(200, {"faults": pending})
        if method == "DELETE":
            self.faults.clear()
            return json_reply(200, {"pending": 0})
        if method != "POST":
            return _method_not_allowed("GET, POST, DELETE")
        try:
            raw = json.loads(body or b"null")
            items = raw if isinstance(raw, list) else [raw]
            faults = [Fault.from_dict(item) for item in items]
        except (ValueError, TypeError) as error:
            return json_reply(400, {"error": str(error)})
        self.faults.extend(faults)
        logger.info("faults queued kinds=%s", ",".join(fault.kind for fault in faults))
        return json_reply(200, {"pending": len(self.faults)})

    def _stats_reply(self) -> Reply:
        stats = {"requests": self.request_count, "users": len(self._directory)}
        return json_reply(200, stats)

    def _home_reply(self) -> Reply:
        auth = ", ".join(self.auth_kinds) or "none"
        lines = [
            f"KooDrive API simulator (koodrive-exporter {__version__})",
            "",
            f"API:     POST {API_PATH}",
            f"         GET {OVERVIEW_PATH}",
            f"         GET {DEPARTMENTS_PATH}?offset=&limit=&keyWord=",
            f"         GET {GROUPS_PATH}?offset=&limit=",
            f"users:   {len(self._directory)}",
            f"departments: {len(self._spaces.departments)}, "
            f"groups: {len(self._spaces.groups)}",
            f"auth:    {auth}",
            f"faults:  GET, POST, DELETE {FAULTS_PATH}",
            f"stats:   GET {STATS_PATH}",
            "",
        ]
        body = "\n".join(lines).encode("utf-8")
        return Reply(200, body, content_type="text/plain; charset=utf-8")


def _method_not_allowed(allowed: str) -> Reply:
    reply = error_reply(405, CODE_INVALID_PARAMETER, "method not allowed")
    reply.headers["Allow"] = allowed
    return reply


def _readable_body(body: bytes) -> Any:
    """The request body as recorded: parsed JSON, else text, else None when empty."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


class _Server(ThreadingHTTPServer):
    """A threaded HTTP server that can drop its open connections when stopping."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer would look the address up in DNS here, which can be slow.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open client connection, waking handlers blocked on reads."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection already closed")

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection failed client=%s", client_address, exc_info=True)


class _ServerIPv6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Reads one request at a time and hands it to the simulator."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_SECONDS
    # Headers and body go out in separate writes; Nagle would hold the second.
    disable_nagle_algorithm = True
    server: _Server

    def version_string(self) -> str:
        return f"koodrive-simulator/{__version__}"

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            return
        try:
            reply = self.server.simulator.route(
                self.command, self.path, self.headers.items(), body
            )
        except Exception:
            logger.exception("simulator failed on a request path=%s", self.path)
            reply = error_reply(500, CODE_INNER_FAILURE, "the simulator failed")
        if reply is None:
            self.close_connection = True
            return
        self._send(reply)

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a body it cannot read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._refuse(411, "send the body with a Content-Length")
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(400, "Content-Length is not a valid length")
            return None
        if length > MAX_BODY_BYTES:
            self._refuse(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            return None
        return self.rfile.read(length)

    def _refuse(self, status: int, msg: str) -> None:
        reply = error_reply(status, CODE_INVALID_PARAMETER, msg)
        reply.headers["Connection"] = "close"
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        body = reply.body[: len(reply.body) // 2] if reply.truncate else reply.body
        if self.command == "HEAD":
            body = b""
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            # A truncated reply still announces its full length, like a cut transfer.
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            logger.debug("client went away before the reply was sent")
            self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.partition("?")[0]
        logger.debug(
            "request served method=%s path=%s status=%s", self.command, path, code
        )

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http %s", format % args)
