"""The base of the four API emulators: a threaded HTTP server on 127.0.0.1 with a free port, a request
log that tests can read, injectable faults, and a clean shutdown.

A subclass implements :meth:`Emulator.handle`, turning one :class:`Request` into one :class:`Reply`.
Its deterministic data can be given a changing past (:class:`PastChanges`): records added late to days
already served, fields changed, records deleted, as real sources do after a day has closed.
``arrival_latency = (low, high)`` delays each request by a random number of seconds before it is stamped
(``received_at``) and handled: network latency between a client's send and the server's arrival time.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    raw_query: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    received_at: float
    latency: float = 0.0  # seconds slept before arrival (arrival_latency), which no client can tell from processing

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds slept before answering (slow upstreams, throttling)

    @classmethod
    def json(cls, payload: Any, status: int = 200, **kwargs: Any) -> "Reply":
        return cls(status, json.dumps(payload).encode(), "application/json", **kwargs)

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain", **kwargs: Any) -> "Reply":
        return cls(status, text.encode(), content_type, **kwargs)


@dataclass
class PastChanges:
    """What changed at the source after records were first served, per collection (a view, ``items``, one
    account's ``recordings``...), keyed by each record's id:

    - ``add`` a record late (time logged days later): served beside the generated ones, on its own date;
    - ``change`` fields of a record (an invoice edited, an item retitled or archived);
    - ``delete`` a record (generated or added). A record moved to another day is a ``delete``, then an
      ``add`` with the same id on the new day.
    """

    added: dict[str, list[dict]] = field(default_factory=dict)
    changed: dict[str, dict[Any, dict]] = field(default_factory=dict)
    deleted: dict[str, set] = field(default_factory=dict)

    def add(self, collection: str, record: dict) -> None:
        self.added.setdefault(collection, []).append(dict(record))

    def change(self, collection: str, record_id: Any, **fields: Any) -> None:
        self.changed.setdefault(collection, {}).setdefault(record_id, {}).update(fields)

    def delete(self, collection: str, record_id: Any, *, key: str = "id") -> None:
        self.deleted.setdefault(collection, set()).add(record_id)
        if collection in self.added:
            self.added[collection] = [r for r in self.added[collection] if r[key] != record_id]

    def apply(self, collection: str, rows: list[dict], *, key: str = "id",
              keep_added: Callable[[dict], bool] = lambda record: True) -> list[dict]:
        """``rows`` (generated) as the source holds them now: deleted ones dropped, changes applied, and the
        added records that ``keep_added`` accepts (the caller's window) appended."""
        gone, fields = self.deleted.get(collection, set()), self.changed.get(collection, {})
        out = [{**row, **fields.get(row[key], {})} for row in rows if row[key] not in gone]
        out += [{**row, **fields.get(row[key], {})} for row in self.added.get(collection, []) if keep_added(row)]
        return out


@dataclass
class _Fault:
    matches: Callable[[Request], bool]
    reply: Reply
    remaining: int


class Emulator:
    """Base class: serve, log and fault-inject; subclasses decide what each request means."""

    name = "emulator"

    def __init__(self, *, arrival_latency: tuple[float, float] = (0.0, 0.0)) -> None:
        self.requests: list[Request] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.arrival_latency = arrival_latency  # (low, high) seconds, uniform, slept before arrival is stamped
        self.past = PastChanges()  # late, changed and deleted records (tests change the source's past here)

    # --- subclass hook -------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self, port: int = 0) -> "Emulator":
        """Listen on 127.0.0.1 (a free port unless one is given) in a daemon thread."""
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                low, high = emulator.arrival_latency
                latency = random.uniform(low, high) if high > 0 else 0.0
                time.sleep(latency)
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    raw_query=parts.query,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                    received_at=time.time(),
                    latency=latency,
                )
                reply = emulator._dispatch(request)
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"{self.name}-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "Emulator":
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} emulator is not running")
        return self._server.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- test helpers --------------------------------------------------------------------------
    def fail_next(self, reply: Reply, *, times: int = 1, path_contains: str = "") -> None:
        """Answer the next ``times`` matching requests with ``reply`` instead of handling them."""
        with self._lock:
            self._faults.append(_Fault(lambda r: path_contains in r.path, reply, times))

    def clear(self) -> None:
        """Forget the request log and pending faults (state of the emulated service is kept)."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()

    def requests_to(self, path_contains: str = "") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if path_contains in r.path]

    # --- internals -----------------------------------------------------------------------------
    def _dispatch(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(request):
                    fault.remaining -= 1
                    return fault.reply
        try:
            return self.handle(request)
        except Exception as exc:  # an emulator bug must surface as a 500, not a hung client
            return Reply.json({"message": f"emulator error: {type(exc).__name__}: {exc}"}, status=500)
