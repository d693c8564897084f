"""One exception hierarchy for every API.

Each error names the API, the endpoint and (once the asset layer knows it) the partition, plus the HTTP
status or API code and the API's own message. Errors are built from names and messages only: never
from URLs, headers or bodies that could carry a key, a signature or a secret.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from stream_assets.core.secrets import scrub

if TYPE_CHECKING:
    from pydantic import ValidationError

_MAX_MESSAGE = 300


def _shorten(text: str) -> str:
    text = scrub(" ".join(str(text).split()))
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


class StreamAssetsError(Exception):
    """Base of every error raised by stream_assets."""


class ApiError(StreamAssetsError):
    """Something went wrong talking to an API."""

    kind = "error"

    def __init__(
        self,
        api: str,
        endpoint: str,
        message: str,
        *,
        status: int | None = None,
        code: int | str | None = None,
        partition: str | None = None,
        transient: bool | None = None,
    ) -> None:
        self.api = api
        self.endpoint = endpoint
        self.message = _shorten(message)
        self.status = status
        self.code = code
        self.partition = partition
        self._transient = transient
        super().__init__()

    @property
    def transient(self) -> bool:
        """Worth retrying later: the API was unreachable, overloaded or throttling."""
        if self._transient is not None:
            return self._transient
        return isinstance(self, ApiConnectionError) or self.status == 429 or (self.status or 0) >= 500

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __str__(self) -> str:
        where = f"{self.api} {self.endpoint}"
        if self.partition:
            where += f" (partition {self.partition})"
        details = []
        if self.status is not None:
            details.append(f"HTTP {self.status}")
        if self.code is not None:
            details.append(f"code {self.code}")
        prefix = f"{where}: {self.kind}" + (f" [{', '.join(details)}]" if details else "")
        return scrub(f"{prefix}: {self.message}")


class ApiRequestError(ApiError):
    """The caller asked for something the API's documented rules forbid (caught before sending)."""

    kind = "invalid request"


class ApiResponseError(ApiError):
    """The API answered with an error status or error code, carrying its own message."""

    kind = "error response"


class ApiPayloadError(ApiError):
    """The API answered successfully but with a body we cannot trust (HTML, bad JSON/XML, wrong types)."""

    kind = "malformed response"


class ApiConnectionError(ApiError):
    """The API could not be reached, or kept failing, after the configured retries."""

    kind = "unreachable"


class ApiTimeoutError(ApiConnectionError):
    """The request's deadline (connect and the whole body) passed: a slow or drip-feeding server."""

    kind = "timed out"


class ApiTransportError(ApiConnectionError):
    """The connection broke during the answer: reset mid-body, truncated body, undecodable compression."""

    kind = "broken answer"


class ApiThrottledError(ApiResponseError):
    """The API asked us to come back later than we are willing to wait (Retry-After above the cap).
    Transient: Dagster's retry or the next sensor tick takes over."""

    kind = "throttled"

    def __init__(self, api: str, endpoint: str, message: str, *, retry_after: float, **kwargs) -> None:
        self.retry_after = retry_after
        super().__init__(api, endpoint, message, transient=True, **kwargs)


class ResponseTooLargeError(ApiPayloadError):
    """The answer is larger than the configured maximum; it was not read further."""

    kind = "answer too large"


class IncompleteAnswerError(ApiPayloadError):
    """Paging could not prove it read everything (offset ignored, capped pages, a count contradicted,
    too many pages): the partition keeps its previous rows."""

    kind = "incomplete answer"


class InvalidValueError(ApiPayloadError, ValueError):
    """A value the warehouse may not hold (non-finite, out of range, negative, too long), naming the field."""

    kind = "invalid value"

    def __init__(self, api: str, endpoint: str, field: str, message: str, **kwargs) -> None:
        self.field = field
        super().__init__(api, endpoint, f"field {field}: {message}", **kwargs)


class DuplicateKeyError(InvalidValueError):
    """The same key twice in one answer with different values: there is no right row to keep (identical
    copies are stored once). ``field`` names the key column(s)."""

    kind = "conflicting duplicates"


class RowsOutsideWindowError(InvalidValueError):
    """An answer holds rows outside the partition asked for (or without a value placing them in one);
    storing them would overwrite another partition's rows. ``field`` names the window column."""

    kind = "rows outside the partition"


class SettingError(StreamAssetsError, ValueError):
    """An environment variable or resource setting with a value of the wrong form."""

    def __init__(self, variable: str, expected: str, value: object) -> None:
        self.variable = variable
        shown = scrub(repr(value))
        shown = shown if len(shown) <= 60 else shown[:59] + "…"
        super().__init__(f"{variable} must be {expected}, got {shown}")


class WarehouseError(StreamAssetsError):
    """The warehouse cannot be opened for a reason that waiting will not fix (a directory, no permission)."""


class LockTimeoutError(StreamAssetsError, TimeoutError):
    """A bounded wait for a lock ran out; says what was waited for, and for how long."""

    def __init__(self, what: str, waited_seconds: float, hint: str = "") -> None:
        self.what = what
        self.waited_seconds = waited_seconds
        super().__init__(f"gave up waiting for {what} after {waited_seconds:.0f} s" + (f"; {hint}" if hint else ""))


def invalid_payload(api: str, endpoint: str, what: str, error: "ValidationError", status: int | None = None) -> ApiPayloadError:
    """A pydantic validation failure as a payload error naming the first bad field."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "top level"
    count = error.error_count()
    more = f" ({count} invalid fields)" if count > 1 else ""
    return ApiPayloadError(api, endpoint, f"invalid {what} field {where}: {first['msg']}{more}", status=status)


@contextmanager
def naming_partition(partition: str | None) -> Iterator[None]:
    """Attach the partition being materialized to any ApiError raised inside the block."""
    try:
        yield
    except ApiError as error:
        if partition and not error.partition:
            error.partition = partition
        raise
