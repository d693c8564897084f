"""The HTTP layer every client shares: one transport policy, written once.

- **Deadlines.** Each attempt has a deadline for the whole exchange (connect, headers and every read of
  the body), not just per socket read: the body is streamed and the deadline checked between reads, so
  a server that drip-feeds one byte at a time fails in bounded time. All attempts together, backoff
  included, stay within ``total_seconds``.
- **Typed errors.** Every transport failure (refused, reset mid-body, truncated body, undecodable
  compression, SSL, a base URL without a scheme) becomes an :class:`ApiError`; the transient ones are
  retried within the total time, and stay transient for Dagster's retry after that.
- **Retry-After** is honoured up to ``retry_after_cap`` (5 minutes); a longer wait raises
  :class:`ApiThrottledError` at once (transient: Dagster's retry or the next sensor tick takes over).
- **Size.** A body larger than ``max_response_bytes`` is refused while reading; it is never buffered whole.
- **JSON** is decoded from the bytes as UTF-8 (invalid bytes refused, whatever the Content-Type says),
  strictly: ``NaN``, ``Infinity`` and numbers that overflow a double are refused.

Error texts never carry a URL's query string, a header or a registered secret (see ``core/secrets.py``).
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterable

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from stream_assets.core import config
from stream_assets.core.errors import (
    ApiConnectionError,
    ApiError,
    ApiPayloadError,
    ApiRequestError,
    ApiThrottledError,
    ApiTimeoutError,
    ApiTransportError,
    ResponseTooLargeError,
    SettingError,
)
from stream_assets.core.secrets import register_secrets, scrub, scrubbed_excerpt
from stream_assets.core.validation import finite_number

RETRYABLE_STATUSES = (429, 500, 502, 503, 504)
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class TransportPolicy:
    """How long, how often and how much: the bounds of every request a client sends.

    The defaults come from ``STREAM_ASSETS_HTTP_*`` variables (see :meth:`from_env`). A 31-day
    Streamroot timeseries for one key is about 0.5 MB; 64 MB leaves room for a hundred keys.
    """

    connect_seconds: float = 10.0
    request_seconds: float = 120.0  # one attempt: connect + headers + whole body
    total_seconds: float = 300.0  # every attempt and every wait between them
    retries: int = 3
    backoff_seconds: float = 0.5  # doubled after each attempt
    retry_after_cap: float = 300.0
    max_response_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_env(cls) -> "TransportPolicy":
        """The policy with the ``STREAM_ASSETS_HTTP_*`` overrides, each checked (SettingError names it)."""
        d = cls()
        return cls(
            connect_seconds=min(d.connect_seconds, config.env_number("STREAM_ASSETS_HTTP_REQUEST_SECONDS", d.connect_seconds)),
            request_seconds=config.env_number("STREAM_ASSETS_HTTP_REQUEST_SECONDS", d.request_seconds),
            total_seconds=config.env_number("STREAM_ASSETS_HTTP_TOTAL_SECONDS", d.total_seconds),
            retries=int(config.env_number("STREAM_ASSETS_HTTP_RETRIES", d.retries, integer=True, allow_zero=True)),
            backoff_seconds=config.env_number("STREAM_ASSETS_HTTP_BACKOFF_SECONDS", d.backoff_seconds, allow_zero=True),
            retry_after_cap=config.env_number("STREAM_ASSETS_HTTP_RETRY_AFTER_CAP_SECONDS", d.retry_after_cap, allow_zero=True),
            max_response_bytes=int(config.env_number("STREAM_ASSETS_HTTP_MAX_RESPONSE_MB", d.max_response_bytes / 2**20)
                                   * 2**20),
        )


def error_message(response: requests.Response) -> str:
    """The API's own explanation of a failed request: ``message``, ``error`` or ``errors[0]`` of a JSON
    body, else a short excerpt of a text body, else the HTTP reason. Scrubbed of registered secrets."""
    text = (response.content or b"")[:4096].decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    message = None
    if isinstance(payload, dict):
        for key in ("message", "error"):
            if payload.get(key):
                message = str(payload[key])
                break
        else:
            if isinstance(payload.get("errors"), list) and payload["errors"]:
                message = str(payload["errors"][0])
    if message is None:
        text = text.strip()
        message = scrubbed_excerpt(text, 0, 120) if text and not text.startswith("<") else (response.reason or "no message")
    return scrub(message)


# --- the deadline while the status line and headers arrive -------------------------------------------------
# Socket timeouts bound each read, not the sum of them: a server dripping its headers a byte at a time would
# never time out. The body is read against the deadline in HttpApi._read_body; for the head, a watchdog
# shuts the connection's socket down when the attempt's deadline (set per thread by send_once) passes.
_attempt = threading.local()


def _shut_down(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


class _HeadDeadline:
    """Mixin for urllib3 connections: ``getresponse`` (status line and headers) ends by the attempt's deadline."""

    def getresponse(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        deadline = getattr(_attempt, "deadline", None)
        if deadline is None:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _shut_down, args=(self,))
        watchdog.daemon = True
        watchdog.start()
        try:
            return super().getresponse(*args, **kwargs)  # type: ignore[misc]
        finally:
            watchdog.cancel()


class _HTTPConnection(_HeadDeadline, HTTPConnection):
    pass


class _HTTPSConnection(_HeadDeadline, HTTPSConnection):
    pass


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def build_session(
    *,
    retries: int = 3,
    backoff_factor: float = 0.5,
    retry_statuses: Iterable[int] = RETRYABLE_STATUSES,
    read_retries: int | None = None,
) -> requests.Session:
    """A pooled session; retries happen in :meth:`HttpApi.send`, inside the request's deadlines.

    ``retry_statuses`` are the statuses :meth:`HttpApi.send` retries for this session (honouring
    Retry-After up to the cap). A client that must not replay a request that reached the server as-is
    (one that manages a budget, or signs each request) passes ``retry_statuses=(), read_retries=0``:
    only failures to connect, where nothing was sent, are then retried. ``retries`` and
    ``backoff_factor`` are kept for compatibility; the transport policy bounds them.
    """
    session = requests.Session()
    # urllib3 only follows redirects: every other retry is ours, so that deadlines cover it.
    adapter = HTTPAdapter(max_retries=Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5,
                                            raise_on_status=False, respect_retry_after_header=False),
                          pool_maxsize=8)
    adapter.poolmanager.pool_classes_by_scheme = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "stream_assets (+dagster)"
    session.stream_assets_retry_statuses = tuple(retry_statuses)  # type: ignore[attr-defined]
    session.stream_assets_replay_sent = read_retries is None or read_retries > 0  # type: ignore[attr-defined]
    return session


def retry_after_seconds(response: requests.Response) -> float | None:
    """The ``Retry-After`` header in seconds (a number or an HTTP date), None when absent or unreadable."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = moment.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} is not JSON")


def utf8_text(data: bytes) -> str:
    """A JSON body as text: UTF-8, with or without a byte-order mark (UnicodeDecodeError, a ValueError, if not)."""
    return data.decode("utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8")


def strict_json(data: bytes) -> Any:
    """JSON from UTF-8 bytes: invalid UTF-8, NaN, Infinity and overflowing numbers raise ValueError."""
    return json.loads(utf8_text(data), parse_constant=_refuse_constant, parse_float=finite_number)  # 1e999 overflows to inf: refused


class HttpApi:
    """Base of the API clients: a base URL, a shared session, the transport policy and a count of the
    requests sent.

    ``requests_made`` counts every attempt that reached the wire, retries included, so that metadata
    and tests see what the API really served; ``http_seconds`` is the time spent waiting on HTTP
    (retries and their backoff included).
    """

    api_name = "api"

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] | None = None,
        policy: TransportPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        try:
            self.base_url = config.checked_base_url(base_url, f"{self.api_name} base URL")
        except SettingError as exc:
            raise ApiRequestError(self.api_name, "configuration", str(exc)) from None
        self.session = session or build_session()
        self.policy = policy or TransportPolicy.from_env()
        if timeout is not None:  # the old (connect, read) form: the read bound becomes the attempt deadline
            self.policy = replace(self.policy, connect_seconds=timeout[0], request_seconds=timeout[1])
        self._sleep = sleep
        self.requests_made = 0
        self.http_seconds = 0.0

    def register_secrets(self, *secrets: str | None) -> None:
        """Mask these values in every message (errors, logs, metadata) from now on."""
        register_secrets(*secrets)

    @property
    def retry_statuses(self) -> tuple[int, ...]:
        return getattr(self.session, "stream_assets_retry_statuses", RETRYABLE_STATUSES)

    @property
    def replays_sent_requests(self) -> bool:
        return getattr(self.session, "stream_assets_replay_sent", True)

    # --- sending -------------------------------------------------------------------------------
    def send(self, method: str, endpoint: str, url: str, **kwargs: Any) -> requests.Response:
        """Send one request under the transport policy; the response has its body read (bounded).

        ``endpoint`` is the name used in errors; the URL is never put in an error with its query,
        since some APIs carry credentials or signatures there.
        """
        replay = self.replays_sent_requests
        return self.retrying(endpoint, lambda deadline: self.send_once(method, endpoint, url, deadline, **kwargs),
                             retry_statuses=self.retry_statuses if replay else (), replay_sent=replay)

    def retrying(
        self,
        endpoint: str,
        attempt: Callable[[float], requests.Response],
        *,
        retry_statuses: Iterable[int] | None = None,
        replay_sent: bool = True,
    ) -> requests.Response:
        """Run ``attempt(deadline)`` until it gives an answer not worth retrying, within the policy.

        Retried: failures to connect (always: nothing was sent), other transient transport failures
        (when ``replay_sent``; a client that signs each request passes an ``attempt`` that re-signs),
        and ``retry_statuses``, after Retry-After when given (up to the cap) or an exponential backoff.
        The last answer or error is returned or raised once retries or the total time run out.
        """
        policy = self.policy
        statuses = tuple(self.retry_statuses if retry_statuses is None else retry_statuses)
        started = time.monotonic()
        total_deadline = started + policy.total_seconds
        number = 0
        while True:
            number += 1
            deadline = min(time.monotonic() + policy.request_seconds, total_deadline)
            try:
                response = attempt(deadline)
            except ApiConnectionError as error:
                nothing_sent = getattr(error, "nothing_sent", False)
                if number > policy.retries or not (nothing_sent or replay_sent):
                    raise
                wait = policy.backoff_seconds * 2 ** (number - 1)
                if time.monotonic() + wait >= total_deadline:
                    raise
                self._wait(wait)
                continue
            if response.status_code not in statuses and response.status_code != 429:
                return response
            retry_after = retry_after_seconds(response)
            if retry_after is not None and retry_after > policy.retry_after_cap:
                raise ApiThrottledError(
                    self.api_name, endpoint,
                    f"asked to retry after {retry_after:.0f} s, more than the {policy.retry_after_cap:.0f} s we wait "
                    f"within a run ({error_message(response)})",
                    retry_after=retry_after, status=response.status_code)
            if response.status_code not in statuses or number > policy.retries:
                return response
            wait = retry_after if retry_after is not None else policy.backoff_seconds * 2 ** (number - 1)
            if time.monotonic() + wait >= total_deadline:
                return response
            self._wait(wait)

    def _wait(self, seconds: float) -> None:
        started = time.perf_counter()
        self._sleep(seconds)
        self.http_seconds += time.perf_counter() - started

    def send_once(self, method: str, endpoint: str, url: str, deadline: float, **kwargs: Any) -> requests.Response:
        """One attempt, finished by ``deadline`` (``time.monotonic()``): connect, headers and whole body.

        Transport failures become typed errors: ApiRequestError for a URL that cannot be sent,
        ApiConnectionError (``nothing_sent``) when the connection could not be made, ApiTimeoutError
        past the deadline, ApiTransportError for a reset/truncated/undecodable body, and
        ResponseTooLargeError above the size limit.
        """
        policy = self.policy
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ApiTimeoutError(self.api_name, endpoint, f"no time left for another attempt "
                                                           f"(total {policy.total_seconds:g} s)")
        kwargs.pop("timeout", None)
        kwargs.pop("stream", None)
        started = time.perf_counter()
        response: requests.Response | None = None
        _attempt.deadline = deadline
        try:
            try:
                response = self.session.request(method, url, stream=True, timeout=(min(policy.connect_seconds, remaining),
                                                                                    remaining), **kwargs)
            except requests.exceptions.ConnectTimeout:
                raise self._connection_failed(endpoint, ApiTimeoutError, "could not connect in time", sent=False) from None
            except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                    requests.exceptions.InvalidSchema, requests.exceptions.URLRequired):
                raise ApiRequestError(self.api_name, endpoint,
                                      f"cannot send to the base URL {self.base_url!r}: it needs http:// or https:// and a host") from None
            except requests.exceptions.SSLError as exc:
                raise self._connection_failed(endpoint, ApiConnectionError, f"TLS failed ({_reason(exc)})", sent=False) from None
            except requests.exceptions.ReadTimeout:
                raise self._connection_failed(endpoint, ApiTimeoutError,
                                              f"no answer within the {policy.request_seconds:g} s deadline", sent=True) from None
            except requests.exceptions.ConnectionError as exc:
                if time.monotonic() >= deadline:  # the head watchdog shut the connection: headers too slow
                    raise self._connection_failed(endpoint, ApiTimeoutError, f"no complete answer within the "
                                                  f"{policy.request_seconds:g} s deadline", sent=True) from None
                sent = not _is_connect_failure(exc)
                what = "connection broke before the answer" if sent else "could not connect"
                raise self._connection_failed(endpoint, ApiConnectionError, f"{what} ({_reason(exc)})", sent=sent) from None
            except requests.exceptions.RequestException as exc:
                raise self._connection_failed(endpoint, ApiConnectionError, type(exc).__name__, sent=True) from None
            self.requests_made += 1
            response._content = self._read_body(endpoint, response, deadline)  # type: ignore[attr-defined]
            response.raw.release_conn()  # read to the end: the connection can serve the next request
            return response
        except BaseException:
            if response is not None:
                response.close()  # a half-read connection is never reused
            raise
        finally:
            _attempt.deadline = None
            self.http_seconds += time.perf_counter() - started

    def _connection_failed(self, endpoint: str, kind: type[ApiConnectionError], message: str, *, sent: bool) -> ApiConnectionError:
        self.requests_made += 1
        error = kind(self.api_name, endpoint, message)
        error.nothing_sent = not sent  # type: ignore[attr-defined]
        return error

    def _read_body(self, endpoint: str, response: requests.Response, deadline: float) -> bytes:
        """The body, read in pieces against the deadline and the size limit."""
        limit = self.policy.max_response_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ResponseTooLargeError(self.api_name, endpoint, f"answer of {int(declared):,} bytes exceeds the "
                                        f"{limit:,}-byte limit (STREAM_ASSETS_HTTP_MAX_RESPONSE_MB)", status=response.status_code)
        raw: urllib3.HTTPResponse = response.raw
        sock = _socket_of(raw)
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ApiTimeoutError(self.api_name, endpoint, f"the answer did not arrive within the "
                                          f"{self.policy.request_seconds:g} s deadline ({size:,} bytes read)",
                                          status=response.status_code)
                if sock is not None:
                    sock.settimeout(remaining)
                chunk = raw.read1(_CHUNK, decode_content=True)
                if not chunk:
                    if not raw.closed and raw.length_remaining:  # pragma: no cover - read1 raises first
                        raise ApiTransportError(self.api_name, endpoint, "truncated body")
                    break
                size += len(chunk)
                if size > limit:
                    raise ResponseTooLargeError(self.api_name, endpoint, f"answer exceeds the {limit:,}-byte limit "
                                                f"(STREAM_ASSETS_HTTP_MAX_RESPONSE_MB); stopped reading",
                                                status=response.status_code)
                chunks.append(chunk)
        except ApiError:
            raise
        except (TimeoutError, urllib3.exceptions.ReadTimeoutError):
            raise ApiTimeoutError(self.api_name, endpoint, f"the answer did not arrive within the "
                                  f"{self.policy.request_seconds:g} s deadline ({size:,} bytes read)",
                                  status=response.status_code) from None
        except urllib3.exceptions.DecodeError:
            raise ApiTransportError(self.api_name, endpoint, "the body's compression could not be decoded",
                                    status=response.status_code) from None
        except (urllib3.exceptions.ProtocolError, urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiTransportError(self.api_name, endpoint, f"connection broke during the body after {size:,} bytes "
                                    f"({_reason(exc)})", status=response.status_code) from None
        return b"".join(chunks)

    # --- decoding ------------------------------------------------------------------------------
    def refuse_markup(self, endpoint: str, response: requests.Response) -> bytes:
        """The body, or ApiPayloadError when it is an HTML/XML page (an error page of a proxy, say)."""
        content_type = response.headers.get("Content-Type", "")
        data = response.content or b""
        head = data[:200].lstrip()
        if "html" in content_type.lower() or head.startswith(b"<"):
            skipped = len(data[:200]) - len(head)
            excerpt = scrubbed_excerpt(data, skipped, skipped + 80)
            raise ApiPayloadError(self.api_name, endpoint, f"expected JSON, got an HTML/XML page: {excerpt!r}",
                                  status=response.status_code)
        return data

    def json_bytes(self, endpoint: str, response: requests.Response) -> bytes:
        """The body as UTF-8 JSON bytes for a columnar parser, after the checks :meth:`decode_json` makes
        before parsing (HTML/XML pages, empty bodies, invalid UTF-8 refused with ApiPayloadError)."""
        data = self.refuse_markup(endpoint, response)
        if not data.strip():
            raise ApiPayloadError(self.api_name, endpoint, "expected JSON, got an empty body", status=response.status_code)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiPayloadError(self.api_name, endpoint, f"body is not valid UTF-8 (byte {exc.start})",
                                  status=response.status_code) from None
        return data

    def decode_json(self, endpoint: str, response: requests.Response) -> Any:
        """The body as strict JSON, or ApiPayloadError for HTML pages, empty bodies, invalid UTF-8,
        broken JSON and non-finite numbers. The Content-Type's charset is ignored: JSON is UTF-8."""
        data = self.refuse_markup(endpoint, response)
        try:
            return strict_json(data)
        except UnicodeDecodeError as exc:
            raise ApiPayloadError(self.api_name, endpoint, f"body is not valid UTF-8 (byte {exc.start})",
                                  status=response.status_code) from None
        except json.JSONDecodeError as exc:
            excerpt = scrubbed_excerpt(data, exc.pos - 20, exc.pos + 40)
            raise ApiPayloadError(self.api_name, endpoint, f"invalid JSON ({exc.msg} at {exc.pos}): {excerpt!r}",
                                  status=response.status_code) from None
        except (ValueError, RecursionError) as exc:
            raise ApiPayloadError(self.api_name, endpoint, f"invalid JSON: {exc}", status=response.status_code) from None


def _reason(exc: BaseException) -> str:
    """The innermost cause's class name: never the exception text, which may hold the URL."""
    seen = exc
    for _ in range(6):
        inner = seen.__context__ or seen.__cause__ or (seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None)
        if inner is None:
            break
        reason = getattr(inner, "reason", None)
        seen = reason if isinstance(reason, BaseException) else inner
    return type(seen).__name__


def _is_connect_failure(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection was never made (so nothing was sent): refused, unresolvable host."""
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", inner)
    return isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError,
                               urllib3.exceptions.NameResolutionError))


def _socket_of(raw: urllib3.HTTPResponse):
    connection = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    return getattr(connection, "sock", None)
