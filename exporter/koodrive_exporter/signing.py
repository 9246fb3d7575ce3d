"""KooDrive app-authentication signatures (HMAC-SHA256), as pure functions.

The steps follow KooDrive's public description of app authentication:
a canonical request is hashed, wrapped in a string to sign, and signed with
the app secret. No public page gives a worked example with a known
signature, so these functions are proven against their own rules only; the
simulator uses the same functions, which shows self-consistency, not
agreement with the real service.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from urllib.parse import quote

ALGORITHM = "HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
SIGNED_HEADERS = ("host", "x-date", "x-user-id")

# RFC 3986 unreserved characters are the only ones left unencoded.
_UNRESERVED = "-_.~"


def format_x_date(moment: datetime) -> str:
    """Render a moment as the `X-Date` header value, in UTC."""
    return moment.astimezone(timezone.utc).strftime(DATE_FORMAT)


def parse_x_date(value: str) -> datetime:
    """Read an `X-Date` header value; raises ValueError when malformed."""
    return datetime.strptime(value, DATE_FORMAT).replace(tzinfo=timezone.utc)


def canonical_uri(path: str) -> str:
    """Percent-encode each path segment and make sure the path ends in `/`."""
    segments = (path or "/").split("/")
    encoded = "/".join(quote(segment, safe=_UNRESERVED) for segment in segments)
    if not encoded.startswith("/"):
        encoded = "/" + encoded
    if not encoded.endswith("/"):
        encoded += "/"
    return encoded


def canonical_query_string(params: Iterable[tuple[str, str]]) -> str:
    """Encode each `name=value` pair and sort by name (then value)."""
    encoded = [
        (quote(name, safe=_UNRESERVED), quote(value, safe=_UNRESERVED))
        for name, value in params
    ]
    return "&".join(f"{name}={value}" for name, value in sorted(encoded))


def canonical_headers(headers: Mapping[str, str], signed: Iterable[str]) -> str:
    """Lowercase names, trimmed values, sorted by name, each line ending in `\\n`."""
    lowered = {name.lower(): value for name, value in headers.items()}
    lines = []
    for name in sorted(header.lower() for header in signed):
        if name not in lowered:
            raise KeyError(f"header to sign is missing: {name}")
        lines.append(f"{name}:{lowered[name].strip()}\n")
    return "".join(lines)


def signed_headers(signed: Iterable[str]) -> str:
    """The sorted lowercase header names joined by `;`."""
    return ";".join(sorted(header.lower() for header in signed))


def hashed_payload(body: bytes) -> str:
    """Lowercase hex SHA-256 of the request body."""
    return hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    *,
    signed: Iterable[str] = SIGNED_HEADERS,
) -> str:
    """Join the six canonical parts with newlines."""
    signed = list(signed)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query_string(query),
            canonical_headers(headers, signed),
            signed_headers(signed),
            hashed_payload(body),
        ]
    )


def string_to_sign(canonical: str) -> str:
    """The algorithm name and the hex SHA-256 of the canonical request."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{digest}"


def signature(secret: str, to_sign: str) -> str:
    """Lowercase hex HMAC-SHA256 of the string to sign, keyed by the app secret."""
    key = secret.encode("utf-8")
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(
    app_id: str, secret: str, canonical: str, signed: Iterable[str] = SIGNED_HEADERS
) -> str:
    """Build the full `Authorization` header value for app authentication."""
    sig = signature(secret, string_to_sign(canonical))
    names = signed_headers(signed)
    return f"{ALGORITHM} AppId={app_id},SignedHeaders={names},Signature={sig}"


def parse_authorization(value: str) -> dict[str, str]:
    """Split an app-authentication header into AppId, SignedHeaders and Signature.

    Raises ValueError when the value is not an HMAC-SHA256 header.
    """
    prefix = ALGORITHM + " "
    if not value.startswith(prefix):
        raise ValueError("not an HMAC-SHA256 authorization header")
    fields: dict[str, str] = {}
    for part in value[len(prefix) :].split(","):
        name, sep, field_value = part.strip().partition("=")
        if not sep:
            raise ValueError(f"malformed authorization field: {part!r}")
        fields[name] = field_value
    missing = {"AppId", "SignedHeaders", "Signature"} - fields.keys()
    if missing:
        raise ValueError(f"authorization header lacks {sorted(missing)}")
    return fields
