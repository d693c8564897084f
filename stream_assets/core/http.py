"""The HTTP layer every client shares: one session with timeouts and urllib3 retries, request counting,
and JSON decoding that turns anything unexpected into a typed error."""

from __future__ import annotations

import json
import time
from typing import Any, Iterable

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from stream_assets.core.errors import ApiConnectionError, ApiPayloadError

DEFAULT_TIMEOUT = (10.0, 120.0)  # (connect, read) seconds
RETRYABLE_STATUSES = (500, 502, 503, 504)


def error_message(response: requests.Response) -> str:
    """The API's own explanation of a failed request: ``message``, ``error`` or ``errors[0]`` of a JSON
    body, else a short excerpt of a text body, else the HTTP reason."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("message", "error"):
            if payload.get(key):
                return str(payload[key])
        if isinstance(payload.get("errors"), list) and payload["errors"]:
            return str(payload["errors"][0])
    text = response.text.strip()
    return text[:120] if text and not text.startswith("<") else (response.reason or "no message")


def build_session(
    *,
    retries: int = 3,
    backoff_factor: float = 0.5,
    retry_statuses: Iterable[int] = RETRYABLE_STATUSES,
    read_retries: int | None = None,
) -> requests.Session:
    """A session that retries connection errors and the given statuses with exponential backoff.

    Every method is retried: the ingestion calls are reads, even those sent as POST (Streamroot puts
    its filters in a POST body). Clients whose requests must not be replayed as-is (StreamAPI's rid,
    StreamOne's timestamp) pass ``retry_statuses=(), read_retries=0`` and re-sign themselves: only
    failures to connect, where the request never left, are then retried as-is.
    """
    retry_statuses = tuple(retry_statuses)
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries if read_retries is None else read_retries,
        status=retries,
        other=0,
        backoff_factor=backoff_factor,
        status_forcelist=retry_statuses,
        allowed_methods=None,
        # urllib3 would also replay any 429 that carries Retry-After; clients that manage a budget
        # (retry_statuses=()) must see those answers themselves.
        respect_retry_after_header=bool(retry_statuses),
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=8)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "stream_assets (+dagster)"
    return session


class HttpApi:
    """Base of the API clients: a base URL, a shared session and a count of the requests sent.

    ``requests_made`` counts every attempt that reached the wire, urllib3 retries included, so that
    metadata and tests see what the API really served; ``http_seconds`` is the time spent waiting on
    HTTP (retries and their backoff included).
    """

    api_name = "api"

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or build_session()
        self.timeout = timeout
        self.requests_made = 0
        self.http_seconds = 0.0

    def send(self, method: str, endpoint: str, url: str, **kwargs: Any) -> requests.Response:
        """Send one request (with the session's retries); connection failures become ApiConnectionError.

        ``endpoint`` is the name used in errors; the URL is never put in an error, since some APIs
        carry credentials or signatures in the query string.
        """
        kwargs.setdefault("timeout", self.timeout)
        started = time.perf_counter()
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.exceptions.RetryError:
            # Retries were exhausted: every allowed attempt was sent.
            self.requests_made += 1 + self._max_retries(url)
            raise ApiConnectionError(self.api_name, endpoint, "gave up after repeated server errors") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            self.requests_made += 1
            raise ApiConnectionError(self.api_name, endpoint, type(exc).__name__) from None
        finally:
            self.http_seconds += time.perf_counter() - started
        retries = getattr(getattr(response.raw, "retries", None), "history", ()) or ()
        self.requests_made += 1 + len(retries)
        return response

    def _max_retries(self, url: str) -> int:
        retry = getattr(self.session.get_adapter(url), "max_retries", None)
        return int(getattr(retry, "total", 0) or 0)

    def decode_json(self, endpoint: str, response: requests.Response) -> Any:
        """The body as JSON, or ApiPayloadError for HTML pages, empty bodies and broken JSON."""
        content_type = response.headers.get("Content-Type", "")
        text = response.text
        if "html" in content_type.lower() or text.lstrip().startswith("<"):
            raise ApiPayloadError(
                self.api_name, endpoint, f"expected JSON, got an HTML/XML page: {text[:80]!r}", status=response.status_code
            )
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ApiPayloadError(
                self.api_name, endpoint, f"invalid JSON ({exc.msg} at {exc.pos}): {text[:80]!r}", status=response.status_code
            ) from None

