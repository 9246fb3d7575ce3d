"""The exporter's own exceptions: every failure above the client is one of these."""

from __future__ import annotations


class ExporterError(Exception):
    """Root of every error the exporter raises on purpose."""


class ConfigError(ExporterError):
    """The configuration is invalid; carries every problem found, by key path."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = [f"{key}: {message}" for key, message in problems]
        super().__init__("invalid configuration:\n  " + "\n  ".join(lines))


class CredentialError(ExporterError):
    """A token or app secret could not be read from its file or variable."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"cannot read credential from {source}: {reason}")


class RefreshError(ExporterError):
    """A refresh failed; `reason` is a short label such as `http_429` or `timeout`."""

    def __init__(
        self,
        reason: str,
        detail: str = "",
        *,
        trace_id: str | None = None,
        page: int | None = None,
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.trace_id = trace_id
        self.page = page
        super().__init__(f"{reason}: {detail}" if detail else reason)


class ApiError(RefreshError):
    """KooDrive answered, but with an error: an HTTP status or a non-zero `code`."""

    def __init__(
        self,
        reason: str,
        detail: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        trace_id: str | None = None,
        page: int | None = None,
    ) -> None:
        super().__init__(reason, detail, trace_id=trace_id, page=page)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class DeadlineExceededError(RefreshError):
    """The refresh ran out of time before every page was fetched."""
