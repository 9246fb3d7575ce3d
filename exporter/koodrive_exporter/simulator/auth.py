"""Request authentication as the simulator checks it: token, app signature, or none.

Signatures are checked with `koodrive_exporter.signing`, the same functions
the exporter signs with. Agreement between the two proves self-consistency
only: no public KooDrive page gives a worked signature to compare against.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable, Mapping

from koodrive_exporter import signing

# App signatures are valid 15 minutes; a little clock skew ahead is forgiven.
MAX_AGE_SECONDS = 15 * 60
MAX_AHEAD_SECONDS = 60

# Headers the API requires on every request, for app authentication.
REQUIRED_HEADERS = ("x-user-id", "x-date", "host")

_MUST_SIGN = ("x-date", "x-user-id")


class Authenticator:
    """Decide whether a request's `Authorization` header is acceptable.

    With a token, the header may be `Bearer <token>`, `Bearer+<token>` or the
    bare token. With an app ID and secret, it must be a valid HMAC-SHA256
    app signature. With both, either passes; with neither, all requests pass.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        app_id: str | None = None,
        app_secret: str | None = None,
        clock: Callable[[], float],
    ) -> None:
        if (app_id is None) != (app_secret is None):
            raise ValueError("app authentication needs both an app ID and a secret")
        if app_id == "" or app_secret == "":
            raise ValueError("the app ID and secret must not be empty")
        _check_token(token)
        self._lock = threading.Lock()
        self._token = token
        self._app = None if app_id is None else (app_id, app_secret or "")
        self._clock = clock

    def set_token(self, token: str | None) -> None:
        """Accept a new token from now on; None turns token checks off."""
        _check_token(token)
        with self._lock:
            self._token = token

    @property
    def kinds(self) -> list[str]:
        """The schemes in force, for logs: `token`, `app`, or neither."""
        kinds = []
        if self._token is not None:
            kinds.append("token")
        if self._app is not None:
            kinds.append("app")
        return kinds

    def check(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> str | None:
        """Return None when the request may pass, else why it may not.

        `headers` must have lowercase names. The reason never quotes a
        credential.
        """
        try:
            self._verify(method, path, query, headers, body)
        except _RejectionError as rejection:
            return str(rejection)
        return None

    def _verify(
        self,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> None:
        with self._lock:
            token = self._token
        if token is None and self._app is None:
            return

        value = headers.get("authorization")
        if not value:
            raise _RejectionError("missing Authorization header")
        if self._app is not None and value.startswith(signing.ALGORITHM + " "):
            self._verify_signature(value, method, path, query, headers, body)
        elif token is None:
            raise _RejectionError("expected an HMAC-SHA256 app signature")
        elif not _token_matches(value, token):
            raise _RejectionError("the access token is not valid")

    def _verify_signature(
        self,
        value: str,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> None:
        app_id, app_secret = self._app or ("", "")
        try:
            fields = signing.parse_authorization(value)
        except ValueError as error:
            raise _RejectionError(f"malformed app authorization: {error}") from None
        if not hmac.compare_digest(fields["AppId"].encode(), app_id.encode()):
            raise _RejectionError("unknown AppId")

        signed = [name for name in fields["SignedHeaders"].split(";") if name]
        unsigned = [name for name in _MUST_SIGN if name not in signed]
        if unsigned:
            raise _RejectionError(f"headers must be signed: {', '.join(unsigned)}")
        self._verify_date(headers.get("x-date", ""))

        try:
            canonical = signing.canonical_request(
                method, path, query, headers, body, signed=signed
            )
        except KeyError as error:
            raise _RejectionError(str(error.args[0])) from None
        expected = signing.signature(app_secret, signing.string_to_sign(canonical))
        if not hmac.compare_digest(expected.encode(), fields["Signature"].encode()):
            raise _RejectionError("the signature does not match")

    def _verify_date(self, x_date: str) -> None:
        try:
            moment = signing.parse_x_date(x_date)
        except ValueError:
            raise _RejectionError("X-Date is not like 20240909T033325Z") from None
        age = self._clock() - moment.timestamp()
        if age > MAX_AGE_SECONDS:
            raise _RejectionError("X-Date is more than 15 minutes old")
        if age < -MAX_AHEAD_SECONDS:
            raise _RejectionError("X-Date is in the future")


class _RejectionError(Exception):
    """Ends the checks early; its message is the reason sent with the 401."""


def _check_token(token: str | None) -> None:
    if token is not None and not token.strip():
        raise ValueError("the token must not be empty")


def _token_matches(value: str, token: str) -> bool:
    candidates = ("Bearer " + token, "Bearer+" + token, token)
    given = value.encode("utf-8")
    # Compare against every form, so timing does not tell which came closest.
    results = [hmac.compare_digest(given, form.encode("utf-8")) for form in candidates]
    return any(results)
