"""Tests of the app-authentication signature, one canonicalisation step at a time."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import pytest
from requests.structures import CaseInsensitiveDict

from koodrive_exporter import signing

USAGE_PATH = "/koodrive/ose/v1/space/usage/user"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
HEADERS = {
    "Host": "10.32.45.165",
    "X-Date": "20240909T033325Z",
    "X-User-Id": "1505084218764547200",
    "Content-Type": "application/json",
}


def hex_hmac(secret: str, message: str) -> str:
    """HMAC-SHA256 in lowercase hex, computed here rather than by the code."""
    return hmac.new(
        secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256
    ).hexdigest()


# X-Date


def test_x_date_is_compact_utc() -> None:
    moment = datetime(2024, 9, 9, 3, 33, 25, 987654, tzinfo=timezone.utc)

    assert signing.format_x_date(moment) == "20240909T033325Z"


def test_x_date_converts_other_offsets_to_utc() -> None:
    moment = datetime(2024, 9, 9, 11, 33, 25, tzinfo=timezone(timedelta(hours=8)))

    assert signing.format_x_date(moment) == "20240909T033325Z"


def test_x_date_parses_back_to_an_aware_utc_moment() -> None:
    parsed = signing.parse_x_date("20240909T033325Z")

    assert parsed == datetime(2024, 9, 9, 3, 33, 25, tzinfo=timezone.utc)
    assert parsed.utcoffset() == timedelta(0)


def test_x_date_round_trip() -> None:
    moment = datetime(2031, 12, 31, 23, 59, 59, tzinfo=timezone.utc)

    assert signing.parse_x_date(signing.format_x_date(moment)) == moment


@pytest.mark.parametrize(
    "value",
    [
        "",
        "20240909T033325",
        "2024-09-09T03:33:25Z",
        "20240909 033325Z",
        "20241309T033325Z",
        "20240909T253325Z",
        "20240909T033325Z ",
        "garbage",
    ],
)
def test_malformed_x_date_raises_value_error(value: str) -> None:
    with pytest.raises(ValueError):
        signing.parse_x_date(value)


# Canonical URI


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (USAGE_PATH, USAGE_PATH + "/"),
        (USAGE_PATH + "/", USAGE_PATH + "/"),
        ("", "/"),
        ("/", "/"),
        ("a/b", "/a/b/"),
        ("/a b/c", "/a%20b/c/"),
        ("/ü/", "/%C3%BC/"),
        ("/a+b=c;d", "/a%2Bb%3Dc%3Bd/"),
        ("/keep-_.~09AZaz", "/keep-_.~09AZaz/"),
    ],
)
def test_canonical_uri_encodes_segments_and_ends_with_slash(
    path: str, expected: str
) -> None:
    assert signing.canonical_uri(path) == expected


# Canonical query string


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], ""),
        ([("b", "2"), ("a", "1")], "a=1&b=2"),
        ([("a", "2"), ("a", "1")], "a=1&a=2"),
        ([("q", "a b")], "q=a%20b"),
        ([("k", "-_.~AZaz09")], "k=-_.~AZaz09"),
        ([("k", "a/b+c=d&e")], "k=a%2Fb%2Bc%3Dd%26e"),
        ([("k", "")], "k="),
        ([("name with space", "ü")], "name%20with%20space=%C3%BC"),
        ([("limit", "100"), ("Offset", "0")], "Offset=0&limit=100"),
    ],
)
def test_canonical_query_string_sorts_and_encodes(
    params: list[tuple[str, str]], expected: str
) -> None:
    assert signing.canonical_query_string(params) == expected


# Canonical and signed headers


def test_canonical_headers_are_lowercase_trimmed_sorted_and_newline_ended() -> None:
    headers = {
        "X-User-Id": "  1505084218764547200 ",
        "HOST": "\tkoodrive.test",
        "x-date": "20240909T033325Z",
        "Content-Type": "application/json",
    }

    result = signing.canonical_headers(headers, ["X-User-Id", "Host", "X-Date"])

    assert result == (
        "host:koodrive.test\nx-date:20240909T033325Z\nx-user-id:1505084218764547200\n"
    )


def test_canonical_headers_read_a_requests_header_mapping() -> None:
    headers = CaseInsensitiveDict(HEADERS)

    result = signing.canonical_headers(headers, signing.SIGNED_HEADERS)

    assert result.splitlines() == [
        "host:10.32.45.165",
        "x-date:20240909T033325Z",
        "x-user-id:1505084218764547200",
    ]


def test_canonical_headers_refuse_a_missing_signed_header() -> None:
    headers = {"Host": "koodrive.test", "X-Date": "20240909T033325Z"}

    with pytest.raises(KeyError, match="x-user-id"):
        signing.canonical_headers(headers, signing.SIGNED_HEADERS)


def test_signed_headers_are_lowercase_sorted_and_joined() -> None:
    names = ["X-User-Id", "Host", "X-Date"]

    assert signing.signed_headers(names) == "host;x-date;x-user-id"


def test_default_signed_headers_include_date_and_user() -> None:
    assert signing.signed_headers(signing.SIGNED_HEADERS) == "host;x-date;x-user-id"


# Payload, canonical request, string to sign, signature


def test_hashed_payload_of_empty_body() -> None:
    assert signing.hashed_payload(b"") == EMPTY_SHA256


def test_hashed_payload_of_non_empty_body() -> None:
    assert signing.hashed_payload(b"abc") == ABC_SHA256


def test_canonical_request_joins_six_parts_with_newlines() -> None:
    body = b'{"limit":100,"offset":0}'

    result = signing.canonical_request(
        "post", USAGE_PATH, [("b", "x y"), ("a", "1")], HEADERS, body
    )

    assert result == (
        "POST\n"
        "/koodrive/ose/v1/space/usage/user/\n"
        "a=1&b=x%20y\n"
        "host:10.32.45.165\n"
        "x-date:20240909T033325Z\n"
        "x-user-id:1505084218764547200\n"
        "\n"
        "host;x-date;x-user-id\n" + hashlib.sha256(body).hexdigest()
    )


def test_canonical_request_with_chosen_signed_headers() -> None:
    result = signing.canonical_request(
        "GET", "/", [], HEADERS, b"", signed=("Content-Type", "X-Date")
    )

    assert result == (
        "GET\n/\n\n"
        "content-type:application/json\n"
        "x-date:20240909T033325Z\n\n"
        "content-type;x-date\n" + EMPTY_SHA256
    )


def test_string_to_sign_is_algorithm_and_hash_of_canonical_request() -> None:
    canonical = "POST\n/\n\nhost:h\n\nhost\n" + EMPTY_SHA256

    result = signing.string_to_sign(canonical)

    expected_hash = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    assert result == "HMAC-SHA256\n" + expected_hash


def test_signature_matches_a_published_hmac_sha256_vector() -> None:
    # RFC 4231, test case 2.
    result = signing.signature("Jefe", "what do ya want for nothing?")

    assert result == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_signature_is_keyed_by_the_secret() -> None:
    to_sign = "HMAC-SHA256\n" + EMPTY_SHA256

    assert signing.signature("secret-a", to_sign) == hex_hmac("secret-a", to_sign)
    assert signing.signature("secret-a", to_sign) != signing.signature(
        "secret-b", to_sign
    )


def test_authorization_header_has_the_documented_form() -> None:
    canonical = signing.canonical_request("POST", USAGE_PATH, [], HEADERS, b"{}")
    expected_signature = hex_hmac(
        "app-secret",
        "HMAC-SHA256\n" + hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    )

    header = signing.authorization_header("app-1", "app-secret", canonical)

    assert header == (
        "HMAC-SHA256 AppId=app-1,SignedHeaders=host;x-date;x-user-id,"
        f"Signature={expected_signature}"
    )


def test_authorization_header_round_trips_through_parse() -> None:
    canonical = signing.canonical_request("POST", USAGE_PATH, [], HEADERS, b"")
    header = signing.authorization_header("app-1", "app-secret", canonical)

    fields = signing.parse_authorization(header)

    assert fields["AppId"] == "app-1"
    assert fields["SignedHeaders"] == "host;x-date;x-user-id"
    assert fields["Signature"] == signing.signature(
        "app-secret", signing.string_to_sign(canonical)
    )
    assert len(fields["Signature"]) == 64


def test_parse_authorization_tolerates_spaces_after_commas() -> None:
    fields = signing.parse_authorization(
        "HMAC-SHA256 AppId=a, SignedHeaders=host;x-date, Signature=ff"
    )

    assert fields == {"AppId": "a", "SignedHeaders": "host;x-date", "Signature": "ff"}


@pytest.mark.parametrize(
    "value",
    [
        "",
        "Bearer abc",
        "HMAC-SHA256",
        "HMAC-SHA256 ",
        "hmac-sha256 AppId=a,SignedHeaders=host,Signature=ff",
        "HMAC-SHA256 AppId=a,SignedHeaders=host",
        "HMAC-SHA256 AppId=a,SignedHeaders=host,Signature",
        "HMAC-SHA256 AppId=a;SignedHeaders=host;Signature=ff",
    ],
)
def test_parse_authorization_refuses_malformed_values(value: str) -> None:
    with pytest.raises(ValueError):
        signing.parse_authorization(value)
