"""The KooDrive space-usage client: one session, retries, paging and its guards.

Every failure of `requests`, of JSON decoding or of the API's own `code` is
translated here, once, into the exporter's exceptions; nothing above this
module sees a `requests` error.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

import requests
from urllib3.exceptions import DecodeError, HTTPError, ProtocolError, ReadTimeoutError

from .auth import KooDriveAuth
from .config import MAX_USER_IDS_PER_REQUEST, KooDriveSettings
from .errors import ApiError, CredentialError, DeadlineExceededError, RefreshError
from .logs import redact
from .records import (
    OVERVIEW_FIELDS,
    FieldError,
    RecordParser,
    SpaceParser,
    TenantOverview,
    read_number,
    read_overview,
)
from .selection import UserSelection
from .snapshot import Listing
from .stats import ApiStats

USAGE_PATH = "/koodrive/ose/v1/space/usage/user"


@dataclass(frozen=True)
class Endpoint:
    """One KooDrive API: how it is called and where its rows are."""

    name: str
    method: str
    path: str
    items_key: str | None
    id_field: str = "id"


USERS = Endpoint("users", "POST", USAGE_PATH, "data", "userId")
OVERVIEW = Endpoint("overview", "GET", "/koodrive/ose/v1/space/usage/overview", None)
DEPARTMENTS = Endpoint(
    "departments", "GET", "/koodrive/ose/v1/space/departmentList", "departments"
)
GROUPS = Endpoint("groups", "GET", "/koodrive/ose/v1/space/groupList", "groups")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A page of 100 users is some tens of KB; anything near this is not a page.
MAX_BODY_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 256 * 1024

log = logging.getLogger(__name__)


def new_trace_id() -> str:
    """A fresh 58-character hexadecimal `X-Traceid`."""
    return secrets.token_hex(29)


@dataclass(frozen=True)
class Page:
    """One decoded API page."""

    rows: list[Any]
    total: int | None


@dataclass(frozen=True)
class ParsedPage:
    """A page already turned into records, so its raw rows can be dropped."""

    number: int
    size: int
    total: int | None
    raw_ids: list[str]
    records: list[Any]
    errors: list[FieldError]

    def count_new(self, seen: set[str]) -> int:
        """Add this page's raw IDs to `seen`; return how many were not there."""
        before = len(seen)
        seen.update(self.raw_ids)
        return len(seen) - before


class _Accumulator:
    """Merges parsed pages, keeping each item once, first page first."""

    def __init__(
        self,
        key: Callable[[Any], str],
        selection: UserSelection | None = None,
        id_label: str = "user_id",
    ) -> None:
        self._key = key
        self._id_label = id_label
        self._selection = selection
        self.filtered = 0
        self.over_limit = 0
        self.items: dict[str, Any] = {}
        self.errors: dict[str, int] = {}
        self.examples: dict[str, str] = {}
        self.duplicates = 0
        self.pages = 0

    def merge(self, page: ParsedPage) -> None:
        """Add a page's records and errors."""
        self.pages += 1
        for error in page.errors:
            self.errors[error.field] = self.errors.get(error.field, 0) + 1
            if error.field not in self.examples:
                who = f"{self._id_label}={error.user_id} " if error.user_id else ""
                self.examples[error.field] = f"{who}{error.reason}"
        for record in page.records:
            self._keep(record)

    def _keep(self, record: Any) -> None:
        key = self._key(record)
        selection = self._selection
        if key in self.items:
            self.duplicates += 1
        elif selection is not None and not selection.wanted(key):
            self.filtered += 1
        elif selection is not None and 0 < selection.max_users <= len(self.items):
            self.over_limit += 1
        else:
            self.items[key] = record

    def listing(self) -> Listing:
        return Listing(
            items=tuple(self.items.values()),
            pages=self.pages,
            record_errors=dict(self.errors),
            error_examples=dict(self.examples),
            duplicates=self.duplicates,
            filtered=self.filtered,
            over_limit=self.over_limit,
        )


RowParser = Callable[[object], "tuple[Any | None, list[FieldError]]"]


def parse_page(parse: RowParser, page: Page, number: int, id_field: str) -> ParsedPage:
    """Turn a page's rows into records and field errors."""
    raw_ids: list[str] = []
    records: list[Any] = []
    errors: list[FieldError] = []
    for row in page.rows:
        # Progress is judged on the raw ID, so a page of unreadable rows
        # still counts as new and does not end the listing early.
        raw_ids.append(repr(row.get(id_field)) if isinstance(row, dict) else repr(row))
        record, row_errors = parse(row)
        errors.extend(row_errors)
        if record is not None:
            records.append(record)
    return ParsedPage(number, len(page.rows), page.total, raw_ids, records, errors)


PageFetch = Callable[[int, int], ParsedPage]


class KooDriveClient:
    """Lists every user's space usage through one `requests` session."""

    def __init__(
        self,
        settings: KooDriveSettings,
        session: requests.Session,
        auth: KooDriveAuth,
        stats: ApiStats,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        trace_ids: Callable[[], str] = new_trace_id,
        selection: UserSelection | None = None,
    ) -> None:
        self._settings = settings
        self._selection = selection or UserSelection()
        self._session = session
        self._auth = auth
        self._stats = stats
        self._monotonic = monotonic
        self._sleep = sleep
        self._jitter = jitter
        self._trace_ids = trace_ids
        self._base = settings.url
        self._parser = RecordParser(
            settings.quota_factor, settings.used_factor, settings.tz
        )

    def list_users(self, deadline: float) -> Listing:
        """Fetch every user (or the configured IDs) before `deadline` (monotonic)."""
        accumulator = _Accumulator(lambda user: user.user_id, self._selection)
        if self._settings.user_ids:
            chunks = _chunks(self._settings.user_ids, MAX_USER_IDS_PER_REQUEST)
            tasks = [
                partial(self._walk, self._users_fetcher(list(chunk), deadline))
                for chunk in chunks
            ]
            # Chunks run in parallel but merge in configuration order, so a
            # user cap keeps the same users every time.
            for pages in self._in_parallel(tasks):
                for page in pages:
                    accumulator.merge(page)
        else:
            for page in self._walk_all(self._users_fetcher(None, deadline)):
                accumulator.merge(page)
        return accumulator.listing()

    def list_departments(self, deadline: float) -> Listing:
        """Fetch every department's quota, use and user count."""
        parser = SpaceParser("departments", self._factors("departments"), "userNum")
        return self._list_spaces(DEPARTMENTS, parser, deadline)

    def list_groups(self, deadline: float) -> Listing:
        """Fetch every team space's quota, use and member count."""
        parser = SpaceParser("groups", self._factors("groups"), "memberNum")
        return self._list_spaces(GROUPS, parser, deadline)

    def get_overview(self, deadline: float) -> tuple[TenantOverview, list[FieldError]]:
        """Fetch the tenant's totals."""
        document = self._request(OVERVIEW, {}, 1, deadline)
        data = document.get("data", document)
        if not isinstance(data, dict) or not OVERVIEW_FIELDS.keys() & data.keys():
            # A body of the wrong shape is a failure, not a tenant with no totals.
            raise RefreshError("bad_response", "overview has no totals")
        return read_overview(document, self._factors("overview"))

    def _factors(self, collector: str) -> dict[str, float]:
        units = self._settings.space_units[collector]
        return {name: self._settings.factor(collector, name) for name in units}

    def _list_spaces(
        self, endpoint: Endpoint, parser: SpaceParser, deadline: float
    ) -> Listing:
        accumulator = _Accumulator(lambda space: space.space_id, id_label="id")

        def fetch_at(offset: int, number: int) -> ParsedPage:
            query = {"offset": offset, "limit": self._settings.page_size}
            page = self._fetch_rows(endpoint, query, number, deadline)
            return parse_page(parser.parse, page, number, endpoint.id_field)

        for page in self._walk_all(fetch_at):
            accumulator.merge(page)
        return accumulator.listing()

    def _users_fetcher(self, user_ids: list[str] | None, deadline: float) -> PageFetch:
        def fetch_at(offset: int, number: int) -> ParsedPage:
            body: dict[str, Any] = {"offset": offset, "limit": self._settings.page_size}
            if user_ids is not None:
                body["userIds"] = user_ids
            page = self._fetch_rows(USERS, body, number, deadline)
            return parse_page(self._parser.parse, page, number, USERS.id_field)

        return fetch_at

    def _walk_all(self, fetch_at: PageFetch) -> Iterator[ParsedPage]:
        """Every page of a listing, in page order, concurrently where possible."""
        first = fetch_at(0, 1)
        seen: set[str] = set()
        new = first.count_new(seen)
        yield first
        stride = first.size
        if first.total is None or self._settings.concurrency == 1 or stride == 0:
            yield from self._walk(fetch_at, after=first, new=new, seen=seen)
            return

        # The first page tells how many remain; its size is the server's real
        # page size, which may be below the limit asked for.
        self._check_page_count(first.total, stride)
        # The second page is fetched alone: a server that ignores `offset`
        # shows it there, before a request goes out for every page it claims.
        last = first
        first_parallel = stride
        if first.total > stride:
            last = fetch_at(stride, 2)
            new = last.count_new(seen)
            yield last
            if last.size != stride or new == 0:
                yield from self._walk(
                    fetch_at, after=last, offset=stride + last.size, new=new, seen=seen
                )
                return
            first_parallel = 2 * stride
        total = last.total if last.total is not None else first.total
        self._check_page_count(total, stride)
        offsets = range(first_parallel, total, stride)
        start = first_parallel // stride + 1
        tasks = [
            partial(fetch_at, offset, number)
            for number, offset in enumerate(offsets, start=start)
        ]
        for page in self._in_parallel(tasks):
            new = page.count_new(seen)
            last = page
            yield page
        if last.size == stride and last.total and last.total > total:
            # The listing grew while it was read: finish it page by page.
            offset = first_parallel + stride * len(offsets)
            yield from self._walk(
                fetch_at, after=last, offset=offset, new=new, seen=seen
            )
        else:
            _warn_if_short(len(seen), total, last.number)

    def _check_page_count(self, total: int, stride: int) -> None:
        if -(-total // stride) > self._settings.max_pages:
            raise RefreshError(
                "too_many_pages",
                f"total={total} needs more than "
                f"koodrive.max_pages={self._settings.max_pages}",
            )

    def _walk(
        self,
        fetch_at: PageFetch,
        *,
        after: ParsedPage | None = None,
        offset: int | None = None,
        new: int = 0,
        seen: set[str] | None = None,
    ) -> list[ParsedPage]:
        """Fetch page after page until the listing ends; `after` is the page before.

        The listing ends when the offset reaches `total`, on an empty page, or on
        a page that brings no item not seen before (a server ignoring `offset`):
        going on could loop. A short page is not an end while `total` says more.
        """
        seen = set() if seen is None else seen
        pages: list[ParsedPage] = []
        page = after
        if offset is None:
            offset = page.size if page is not None else 0
        while True:
            if page is not None:
                if page.total is not None and offset >= page.total:
                    return pages
                if page.size == 0 or new == 0:
                    if page.total is not None:
                        _warn_if_short(len(seen), page.total, page.number)
                    return pages
            number = page.number + 1 if page is not None else 1
            if number > self._settings.max_pages:
                raise RefreshError(
                    "too_many_pages",
                    f"stopped after koodrive.max_pages={self._settings.max_pages}",
                    page=number,
                )
            page = fetch_at(offset, number)
            new = page.count_new(seen)
            offset += page.size
            pages.append(page)

    def _in_parallel(self, tasks: list[Callable[[], Any]]) -> Iterator[Any]:
        """Run tasks on `koodrive.concurrency` threads; yield results in task order."""
        if not tasks:
            return
        workers = min(self._settings.concurrency, len(tasks))
        if workers == 1:
            for task in tasks:
                yield task()
            return
        pool = ThreadPoolExecutor(workers, thread_name_prefix="koodrive-page")
        try:
            futures = [pool.submit(task) for task in tasks]
            for future in futures:
                yield future.result()
        finally:
            # On a failure the remaining pages are not worth fetching.
            pool.shutdown(wait=False, cancel_futures=True)

    def fetch_page(self, body: dict[str, Any], number: int, deadline: float) -> Page:
        """POST one page of the users listing, with retries, until `deadline`."""
        return self._fetch_rows(USERS, body, number, deadline)

    def _fetch_rows(
        self,
        endpoint: Endpoint,
        arguments: dict[str, Any],
        number: int,
        deadline: float,
    ) -> Page:
        document = self._request(endpoint, arguments, number, deadline)
        rows = document.get(endpoint.items_key or "data")
        return Page(rows=rows or [], total=_read_total(document.get("total"), number))

    def _request(
        self,
        endpoint: Endpoint,
        arguments: dict[str, Any],
        number: int,
        deadline: float,
    ) -> dict[str, Any]:
        """Call an endpoint, retrying what is worth retrying, until `deadline`."""
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            trace_id = self._trace_ids()
            try:
                return self._attempt(endpoint, arguments, number, trace_id, deadline)
            except ApiError as error:
                if error.status == 401 and not renewed and self._renew_credentials():
                    renewed = True
                    continue
                retryable = error.status in RETRY_STATUSES
                self._backoff_or_raise(error, retryable, attempt, deadline)
            except _TransientError as transient:
                self._backoff_or_raise(transient.error, True, attempt, deadline)

    def _send(
        self,
        endpoint: Endpoint,
        arguments: dict[str, Any],
        trace_id: str,
        timeout: float,
    ) -> requests.Response:
        headers = {"Accept": "application/json", "X-Traceid": trace_id}
        options: dict[str, Any] = {}
        if endpoint.method == "POST":
            headers["Content-Type"] = "application/json"
            options["data"] = json.dumps(arguments, separators=(",", ":")).encode()
        else:
            options["params"] = arguments
        return self._session.request(
            endpoint.method,
            self._base + endpoint.path,
            headers=headers,
            auth=self._auth,
            timeout=timeout,
            verify=self._verify(),
            allow_redirects=False,
            stream=True,
            **options,
        )

    def _attempt(
        self,
        endpoint: Endpoint,
        arguments: dict[str, Any],
        number: int,
        trace_id: str,
        deadline: float,
    ) -> dict[str, Any]:
        remaining = deadline - self._monotonic()
        if remaining <= 0:
            raise DeadlineExceededError(
                "deadline", "refresh deadline passed", trace_id=trace_id, page=number
            )
        timeout = min(self._settings.timeout_seconds, remaining)
        started = self._monotonic()
        try:
            response = self._send(endpoint, arguments, trace_id, timeout)
            with response:
                body = self._read_body(response, deadline)
        except CredentialError as exc:
            raise RefreshError("credentials", str(exc), trace_id=trace_id) from None
        except (requests.RequestException, HTTPError, RefreshError) as exc:
            outcome, error, transient = _transport_error(exc, timeout)
            self._count(outcome, number, trace_id, started)
            error.trace_id, error.page = trace_id, number
            if transient:
                raise _TransientError(error) from None
            raise error from None
        except ValueError:
            # http.client refuses header values it cannot send; its message
            # quotes the header, so only the fact is reported.
            error = RefreshError("credentials", "a header value cannot be sent")
            raise error from None

        try:
            document = _decode(response.status_code, response.headers, body, endpoint)
        except RefreshError as error:
            error.trace_id, error.page = trace_id, number
            self._count(error.reason, number, trace_id, started)
            raise
        self._count("success", number, trace_id, started)
        return document

    def _read_body(self, response: requests.Response, deadline: float) -> bytes:
        """The whole body, unless the deadline passes or it grows too large.

        Request timeouts bound each read, not the whole body: a server that
        sends a byte at a time would otherwise hold a refresh for ever.
        """
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = response.raw.read1(_READ_CHUNK, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise RefreshError("bad_response", f"body over {MAX_BODY_BYTES} bytes")
            if self._monotonic() > deadline:
                raise RefreshError(
                    "timeout", "body not complete by the refresh deadline"
                )
            chunks.append(chunk)

    def _backoff_or_raise(
        self, error: RefreshError, retryable: bool, attempt: int, deadline: float
    ) -> None:
        if not retryable or attempt >= self._settings.retries.max_attempts:
            raise error
        retries = self._settings.retries
        ceiling = min(
            retries.max_backoff_seconds, retries.backoff_seconds * 2 ** (attempt - 1)
        )
        # Full jitter spreads retries of many exporters; Retry-After is a floor.
        wait = ceiling * self._jitter()
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            wait = max(wait, retry_after)
        if self._monotonic() + wait >= deadline:
            raise error
        log.debug(
            "retrying request",
            extra={
                "fields": {
                    "reason": error.reason,
                    "attempt": attempt,
                    "wait_seconds": round(wait, 3),
                    "trace_id": error.trace_id,
                }
            },
        )
        self._sleep(wait)

    def _renew_credentials(self) -> bool:
        try:
            changed = self._auth.renew()
        except CredentialError:
            return False
        if changed:
            log.info("credential changed on disk, retrying after 401")
        return changed

    def _verify(self) -> bool | str:
        if not self._settings.tls_verify:
            return False
        if self._settings.ca_file is not None:
            return str(self._settings.ca_file)
        return True

    def _count(self, outcome: str, number: int, trace_id: str, started: float) -> None:
        self._stats.count_request(outcome)
        log.debug(
            "api request",
            extra={
                "fields": {
                    "outcome": outcome,
                    "page": number,
                    "trace_id": trace_id,
                    "seconds": round(self._monotonic() - started, 3),
                }
            },
        )


def _warn_if_short(seen: int, total: int, page: int) -> None:
    if seen >= total:
        return
    log.warning(
        "listing ended before total",
        extra={"fields": {"pages": page, "users_seen": seen, "total": total}},
    )


class _TransientError(Exception):
    """Carries a retryable RefreshError out of one attempt."""

    def __init__(self, error: RefreshError) -> None:
        super().__init__(str(error))
        self.error = error


# Transport failures, first match wins: (types, outcome, detail, retry may help).
# Reading the body goes through urllib3 directly, so its errors come
# unwrapped; they mean the same as requests' own.
_TRANSPORT_ERRORS: tuple[tuple[tuple[type[Exception], ...], str, str, bool], ...] = (
    (
        (requests.exceptions.SSLError,),
        "tls",
        "TLS handshake or certificate check failed",
        False,
    ),
    ((requests.Timeout, ReadTimeoutError), "timeout", "no answer in time", True),
    (
        (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
            ProtocolError,
            DecodeError,
        ),
        "bad_response",
        "body cut short",
        True,
    ),
    ((requests.ConnectionError, HTTPError), "connection", "", True),
)


def _transport_error(exc: Exception, timeout: float) -> tuple[str, RefreshError, bool]:
    """The outcome label, the error, and whether retrying may help."""
    if isinstance(exc, RefreshError):
        return exc.reason, exc, exc.reason == "timeout"
    for types, outcome, detail, transient in _TRANSPORT_ERRORS:
        if isinstance(exc, types):
            said = detail or _connection_reason(exc)
            if outcome == "timeout":
                said = f"{detail} (timeout {timeout:.1f}s)"
            return outcome, RefreshError(outcome, said), transient
    return "connection", RefreshError("connection", type(exc).__name__), False


def _decode(
    status: int, headers: Mapping[str, str], body: bytes, endpoint: Endpoint
) -> dict:
    """The JSON document of a successful answer, or the error it carries."""
    if status != 200:
        raise _http_error(status, headers, body)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise RefreshError("bad_response", "body is not valid JSON") from None
    if not isinstance(document, dict) or "code" not in document:
        raise RefreshError("bad_response", "body has no code field")
    code = document["code"]
    if code not in (0, "0") or isinstance(code, bool):
        raise ApiError(
            "api_error",
            f"code={_short(repr(code))} msg={_short(document.get('msg'))}",
            code=_short(code),
        )
    if endpoint.items_key is not None:
        rows = document.get(endpoint.items_key)
        if rows is not None and not isinstance(rows, list):
            reason = f"{endpoint.items_key} is not a list"
            raise RefreshError("bad_response", reason)
    _read_total(document.get("total"))
    return document


def _http_error(status: int, headers: Mapping[str, str], body: bytes) -> ApiError:
    if status == 401:
        reason = "http_401"
    elif status == 429:
        reason = "http_429"
    else:
        reason = f"http_{status // 100}xx"
    code, message = _error_body(body)
    detail = f"status={status}"
    if code is not None:
        detail += f" code={code} msg={message}"
    return ApiError(
        reason,
        detail,
        status=status,
        code=code,
        retry_after=_retry_after(headers.get("Retry-After")),
    )


def _error_body(body: bytes) -> tuple[str | None, str]:
    try:
        document = json.loads(body[:65536])
    except (ValueError, RecursionError):
        return None, ""
    if not isinstance(document, dict) or "code" not in document:
        return None, ""
    return _short(document["code"]), _short(document.get("msg"))


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _read_total(value: object, number: int | None = None) -> int | None:
    if value is None:
        return None
    try:
        total = read_number(value)
    except ValueError:
        raise RefreshError(
            "bad_response",
            f"total is not a number: {_short(value)}",
            page=number,
        ) from None
    if total < 0 or total != int(total):
        raise RefreshError(
            "bad_response",
            "total is not a whole number",
            page=number,
        )
    return int(total)


def _connection_reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "reset by peer"):
        if marker in text:
            return marker.lower()
    return "connection failed"


def _short(value: object) -> str:
    # Mask before cutting: a cut secret would no longer be recognised.
    text = redact(str(value))
    return text if len(text) <= 120 else text[:117] + "..."


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
