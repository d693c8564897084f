"""A rate limiter shared by every process (and host) of a deployment: request budgets and processing-time
budgets over sliding windows, held for any network latency, with first-come-first-served waiting.

Why not pyrate-limiter: it weighs a request when it is admitted and reasons on admission times, while the
server counts arrival times (later by an unknown latency) and charges processing time that is only known
once the response is in. This module keeps one small table of admitted requests per bucket instead.

The model
---------
Request ``j`` is *stamped* ``s_j`` inside the backend's exclusive transaction (after the lock is taken, so
stamps follow the order of admissions) and is sent after the commit. The server sees it *arrive* at some
``a_j`` and charges it ``c_j`` seconds of processing, booked at some instant ``x_j`` with
``s_j <= a_j <= x_j <= a_j + c_j <= r_j`` (booked at arrival, like the emulator, or at completion):
everything the server does with ``j`` lies inside its *interval* ``[s_j, r_j]``. ``r_j`` is the settle stamp,
taken when the response is in; while ``j`` is in flight, ``r_j`` is its deadline ``s_j + T`` (``T`` =
``deadline``: the client gives up on a request by then, so nothing of it reaches the server later, and no
request costs more than ``T``). ``e_j = r_j - s_j`` bounds ``c_j``: the elapsed time once settled, ``T`` in flight.

The server's rules, for a request ``k`` arriving at ``a_k`` and a budget of ``A`` per ``W`` seconds:
  requests:    at most ``A`` arrivals in ``(a_k - W, a_k]``, ``k`` included;
  processing:  the charges booked in ``(a_k - W, a_k]`` by other requests sum to less than ``A``.

The admission rule: at stamp ``now``, let ``L`` be the requests whose interval reaches into the window
(``r_j > now - W``). Admit when, for every budget, ``|L| + 1 <= A`` (requests) and ``sum(e_j, j in L) < A``
(processing); also, waiting callers are served first come, first served.

Why it holds for every placement. Take any arrival ``a_k`` and its window ``(a_k - W, a_k]``; let ``m`` be the
request admitted last among ``k`` and the requests booked in that window. Every other one ``j`` of them was
admitted before ``m``, and ``r_j >= a_j (or x_j) > a_k - W >= s_m - W`` (as ``m`` is in the window or is ``k``,
``a_k >= s_m``), so ``j`` was in ``L`` when ``m`` was admitted, with a bound ``e_j >= c_j`` valid at that time.
- Requests: the window holds ``m``, plus members of ``L`` at ``m``'s admission: at most ``(A - 1) + 1 = A``.
- Processing: if ``m = k``, the window's charges are at most ``sum(e_j, j in L) < A``. Otherwise ``k`` was
  still in flight at ``s_m`` (it arrives after ``s_m``), so ``L`` counted it with ``e_k = T``; the window's
  charges are those of ``L`` without ``k``, plus ``c_m <= T``: still below ``A``.
Clock offsets between our clock and the server's do not matter (only differences do). Every host must stamp
with one clock: the Postgres backend stamps with the database's clock.

Cost: one transaction per admission attempt that reads the bucket's live rows (at most the largest budget
over the longest window); one ``UPDATE`` per response. When ``T >= A`` for a processing budget (the usual
case: ``T`` is minutes, ``A`` 30 s/min), a request in flight blocks the next one: processing is admitted one
request at a time, which a processing budget of less than one second per second allows anyway.

Waiting is first come, first served: a caller who cannot go takes a ticket in the shared queue and only the
oldest live ticket may be admitted (tickets of dead processes expire). The head sleeps until the window frees
(or polls while an in-flight request may settle); the others poll, spaced by their place in the queue.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, Protocol, Sequence

from stream_assets.core.config import data_dir, state_url
from stream_assets.core.errors import LockTimeoutError, StreamAssetsError
from stream_assets.core.state import SCHEMA, SharedStateTimeout, create_tables, describe_postgres, postgres_connection

DEFAULT_DEADLINE = 180.0  # s; a client raises it to outlast its own transport policy (streamtime/client.py)
BUDGET_VARIABLES = {"requests": "STREAMTIME_RATE_LIMITS", "processing": "STREAMTIME_PROCESSING_LIMITS"}

Clock = Callable[[], float]


class LimiterLockTimeout(LockTimeoutError):
    """The limiter's shared state stayed locked (or unreachable) longer than its timeout. One of the lock-wait
    errors of core/errors.py, with a message of its own (what was waited for, where, how long)."""

    def __init__(self, message: str) -> None:
        StreamAssetsError.__init__(self, message)
        self.what, self.waited_seconds = message, None


@dataclass(frozen=True)
class Budget:
    """``amount`` per ``window`` seconds: requests (kind "requests") or seconds of processing ("processing")."""

    amount: float
    window: float
    kind: str = "requests"

    @property
    def label(self) -> str:
        unit = "requests" if self.kind == "requests" else "s processing"
        return f"{self.amount:g} {unit}/{self.window:g}s"


def parse_budgets(text: str, kind: str, source: str | None = None) -> list[Budget]:
    """``"60/60,720/3600"`` -> budgets. Amounts and windows are finite positive numbers (fractions allowed; a
    request budget allows ``floor(amount)`` requests, so at least 1). A clear ValueError for anything else,
    naming ``source`` (default: the environment variable that holds this kind of budget)."""
    source = source or BUDGET_VARIABLES.get(kind, kind)
    expected = "expected amount/seconds[,amount/seconds...] with finite positive numbers, e.g. 60/60,720/3600"
    budgets = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            amount, window = (float(x) for x in part.split("/"))
        except ValueError:
            raise ValueError(f"{source}: invalid budget {part!r} in {text!r}: {expected}") from None
        if not (math.isfinite(amount) and math.isfinite(window)) or amount <= 0 or window <= 0:
            raise ValueError(f"{source}: invalid budget {part!r} in {text!r}: {expected}")
        if kind == "requests" and amount < 1:
            raise ValueError(f"{source}: invalid budget {part!r}: a request budget allows at least 1 request")
        budgets.append(Budget(amount, window, kind))
    if not budgets:
        raise ValueError(f"{source}: no budget in {text!r}: {expected}")
    return budgets


@dataclass(frozen=True)
class Interval:
    """One admitted request as the limiter sees it: stamped ``start``; ``end`` is its settle stamp, or its
    deadline while in flight."""

    start: float
    end: float
    in_flight: bool

    @property
    def cost_bound(self) -> float:
        return self.end - self.start


def admission_wait(intervals: Sequence[Interval], budgets: Sequence[Budget], now: float,
                   poll: float) -> tuple[float, str]:
    """``(0, "")`` when a request stamped ``now`` may go (the rule in the module docstring); otherwise how long
    to wait at most before asking again, and the binding budget. Waiting on an in-flight request (which
    may settle any moment) is capped at ``poll``."""
    wait, binding = 0.0, ""
    for budget in budgets:
        live = sorted((i for i in intervals if i.end > now - budget.window), key=lambda i: i.end)
        needed, uncertain = 0.0, False
        if budget.kind == "requests":
            allowed = math.floor(budget.amount)
            if len(live) + 1 > allowed:  # the oldest len - allowed + 1 must leave the window first
                leaving = live[: len(live) - allowed + 1]
                needed = leaving[-1].end + budget.window - now
                uncertain = any(i.in_flight for i in leaving)
        else:
            used = sum(i.cost_bound for i in live)
            for interval in live:  # oldest end first: wait until enough cost has slid out
                if used < budget.amount:
                    break
                used -= interval.cost_bound
                needed = interval.end + budget.window - now
                uncertain = uncertain or interval.in_flight
        if uncertain:
            needed = min(needed, poll)
        if needed > 0 and needed + 1e-6 > wait:
            wait, binding = needed + 1e-6, budget.label
    return wait, binding


@dataclass(frozen=True)
class Admission:
    event_id: int | None  # None: not admitted yet
    wait: float = 0.0  # seconds to wait before asking again
    binding: str = ""  # the budget (or queue) that made us wait
    ticket: int | None = None  # our place in the queue while waiting


class LimiterBackend(Protocol):
    """Where the admitted requests and the waiting queue live. ``clock`` None means the backend's own
    clock (the one every host shares: the database's for Postgres)."""

    def admit(self, bucket: str, budgets: Sequence[Budget], *, ticket: int | None, deadline: float,
              poll: float, ticket_ttl: float, clock: Clock | None) -> Admission:
        """In one exclusive transaction: stamp now, and admit if the caller holds the oldest live ticket
        (or none is waiting) and :func:`admission_wait` allows it; otherwise queue (or refresh) the
        caller's ticket and say how long to wait."""
        ...

    def settle(self, event_id: int, clock: Clock | None) -> None:
        """The response is in: stamp the end of the request's interval."""
        ...

    def release(self, ticket: int) -> None:
        """Leave the queue (a waiter that gives up)."""
        ...

    def intervals(self, bucket: str, deadline: float, clock: Clock | None) -> tuple[float, list[Interval]]:
        """Now, and the bucket's admitted requests."""
        ...


class _SqlLimiterBackend:
    """The admission transaction, written once for SQLite and Postgres (``?`` placeholders)."""

    events = "limiter_events"
    queue = "limiter_queue"

    @contextmanager
    def _transaction(self, bucket: str) -> Iterator[Callable[..., list[tuple]]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _now(self, run: Callable[..., list[tuple]], clock: Clock | None) -> float:
        return clock() if clock else time.time()

    def _response_stamp(self, clock: Clock | None) -> float | None:
        """When a response is in, before any lock: the end of its interval may be stamped early (it only has
        to be no earlier than the response), so waiting for the store does not inflate the request's cost."""
        return clock() if clock else time.time()

    def admit(self, bucket: str, budgets: Sequence[Budget], *, ticket: int | None, deadline: float,
              poll: float, ticket_ttl: float, clock: Clock | None) -> Admission:
        events, queue = self.events, self.queue
        horizon = max(b.window for b in budgets)
        with self._transaction(bucket) as run:
            now = self._now(run, clock)  # stamped under the lock: stamps follow the order of admissions
            (last,) = run(f"SELECT max(admitted_at) FROM {events} WHERE bucket = ?", (bucket,))[0]
            now = max(now, last or now)  # a clock stepping back must not stamp before an earlier admission
            run(f"DELETE FROM {events} WHERE bucket = ? AND coalesce(settled_at, deadline_at) <= ?", (bucket, now - horizon))
            run(f"DELETE FROM {queue} WHERE bucket = ? AND expires_at <= ?", (bucket, now))
            if ticket is not None and not run(f"UPDATE {queue} SET expires_at = ? WHERE ticket = ? RETURNING ticket",
                                              (now + ticket_ttl, ticket)):
                ticket = None  # expired (we slept past its lifetime): queue again
            if ticket is None:
                (ahead,) = run(f"SELECT count(*) FROM {queue} WHERE bucket = ?", (bucket,))[0]
            else:
                (ahead,) = run(f"SELECT count(*) FROM {queue} WHERE bucket = ? AND ticket < ?", (bucket, ticket))[0]
            rows = run(f"SELECT admitted_at, coalesce(settled_at, deadline_at), settled_at IS NULL AND deadline_at > ? "
                       f"FROM {events} WHERE bucket = ?", (now, bucket))
            wait, binding = admission_wait([Interval(s, e, bool(f)) for s, e, f in rows], budgets, now, poll)
            if ahead == 0 and wait == 0:
                if ticket is not None:
                    run(f"DELETE FROM {queue} WHERE ticket = ?", (ticket,))
                ((event_id,),) = run(f"INSERT INTO {events} (bucket, admitted_at, deadline_at) VALUES (?, ?, ?) "
                                     "RETURNING id", (bucket, now, now + deadline))
                return Admission(event_id)
            if ticket is None:
                ((ticket,),) = run(f"INSERT INTO {queue} (bucket, expires_at) VALUES (?, ?) RETURNING ticket",
                                   (bucket, now + ticket_ttl))
            if ahead:  # behind others: poll, spaced by our place in the queue
                wait = max(wait, poll * ahead)
                binding = binding or f"the queue ({ahead} waiting ahead)"
            return Admission(None, wait, binding, ticket)

    def settle(self, event_id: int, clock: Clock | None) -> None:
        stamp = self._response_stamp(clock)
        with self._transaction("") as run:
            run(f"UPDATE {self.events} SET settled_at = ? WHERE id = ? AND settled_at IS NULL",
                (self._now(run, clock) if stamp is None else stamp, event_id))

    def release(self, ticket: int) -> None:
        with self._transaction("") as run:
            run(f"DELETE FROM {self.queue} WHERE ticket = ?", (ticket,))

    def intervals(self, bucket: str, deadline: float, clock: Clock | None) -> tuple[float, list[Interval]]:
        with self._transaction("") as run:
            now = self._now(run, clock)
            rows = run(f"SELECT admitted_at, coalesce(settled_at, deadline_at), settled_at IS NULL FROM {self.events} "
                       "WHERE bucket = ?", (bucket,))
        return now, [Interval(s, e, bool(f)) for s, e, f in rows]


class SqliteLimiterBackend(_SqlLimiterBackend):
    """The default, for one host: a SQLite file (``$STREAM_ASSETS_DATA_DIR/ratelimit.sqlite``; ``":memory:"``
    for one process) whose write lock (``BEGIN IMMEDIATE``) makes each admission atomic across processes."""

    def __init__(self, path: str | Path | None = None, *, timeout: float = 60.0) -> None:
        self.memory = str(path) == ":memory:"
        self.path = path if self.memory else Path(path) if path else data_dir() / "ratelimit.sqlite"
        if not self.memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self._local = threading.local()
        self._memory_lock = threading.Lock()
        with self._transaction("") as run:
            run(f"CREATE TABLE IF NOT EXISTS {self.events} (id INTEGER PRIMARY KEY AUTOINCREMENT, bucket TEXT NOT NULL, "
                "admitted_at REAL NOT NULL, deadline_at REAL NOT NULL, settled_at REAL)")
            run(f"CREATE INDEX IF NOT EXISTS {self.events}_by_bucket ON {self.events} (bucket, admitted_at)")
            run(f"CREATE TABLE IF NOT EXISTS {self.queue} (ticket INTEGER PRIMARY KEY AUTOINCREMENT, "
                "bucket TEXT NOT NULL, expires_at REAL NOT NULL)")

    def _connection(self) -> sqlite3.Connection:
        if self.memory:
            if not hasattr(self, "_shared"):
                self._shared = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            return self._shared
        pid, conn = getattr(self._local, "conn", (None, None))
        if conn is None or pid != os.getpid():  # one per thread, kept (cheaper than the admission); never across a fork
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")  # readers never block; commits need no fsync of the log
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = (os.getpid(), conn)
        return conn

    @contextmanager
    def _transaction(self, bucket: str) -> Iterator[Callable[..., list[tuple]]]:
        conn = self._connection()
        with self._memory_lock if self.memory else _nothing():
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if "locked" in str(error) or "busy" in str(error):
                    raise LimiterLockTimeout(f"rate limiter: waited {self.timeout:g}s for the SQLite lock on "
                                             f"{self.path} (bucket {bucket or '-'}) without getting it") from None
                raise
            try:
                yield lambda sql, params=(): conn.execute(sql, params).fetchall()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class PostgresLimiterBackend(_SqlLimiterBackend):
    """For several hosts: the tables in their own schema of a Postgres database, created on first use.
    Each admission is one transaction holding a per-bucket advisory lock (released by Postgres when the
    transaction ends, also when its process dies); stamps come from the database's clock. Connections come
    from the process's pool for that database, shared with the rid state (core/state.py)."""

    def __init__(self, url: str, *, schema: str = SCHEMA, timeout: float = 60.0) -> None:
        self.url, self.where = url, describe_postgres(url)  # never the password
        self.schema, self.timeout = schema, timeout
        self.events, self.queue = f"{schema}.limiter_events", f"{schema}.limiter_queue"
        try:
            create_tables(url, "limiter", [
                f"CREATE TABLE IF NOT EXISTS {self.events} (id bigserial PRIMARY KEY, bucket text NOT NULL, "
                "admitted_at double precision NOT NULL, deadline_at double precision NOT NULL, settled_at double precision)",
                f"CREATE INDEX IF NOT EXISTS limiter_events_by_bucket ON {self.events} (bucket, admitted_at)",
                f"CREATE TABLE IF NOT EXISTS {self.queue} (ticket bigserial PRIMARY KEY, bucket text NOT NULL, "
                "expires_at double precision NOT NULL)",
            ], timeout, schema=schema)
        except SharedStateTimeout as exc:
            raise LimiterLockTimeout(f"rate limiter: {exc}") from None

    def close(self) -> None:
        """Nothing to release: the pool is the process's, closed when it exits."""

    def _now(self, run: Callable[..., list[tuple]], clock: Clock | None) -> float:
        return clock() if clock else float(run("SELECT extract(epoch FROM clock_timestamp())")[0][0])

    def _response_stamp(self, clock: Clock | None) -> float | None:
        return clock() if clock else None  # the database's clock, read in the (lock-free) settle transaction

    @contextmanager
    def _transaction(self, bucket: str) -> Iterator[Callable[..., list[tuple]]]:
        import psycopg

        try:
            with postgres_connection(self.url, self.timeout) as conn, conn.transaction():
                def run(sql: str, params: Sequence[Any] = ()) -> list[tuple]:
                    cursor = conn.execute(sql.replace("?", "%s"), params)
                    return cursor.fetchall() if cursor.description else []

                run(f"SET LOCAL lock_timeout = '{int(self.timeout * 1000)}ms'")
                if bucket:
                    run("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"limiter:{bucket}",))
                yield run
        except psycopg.errors.LockNotAvailable:
            raise LimiterLockTimeout(f"rate limiter: waited {self.timeout:g}s for the Postgres lock of bucket "
                                     f"{bucket} on {self.where} without getting it") from None
        except SharedStateTimeout as exc:
            raise LimiterLockTimeout(f"rate limiter: {exc}") from None


_postgres_backends: dict[tuple[int, str], PostgresLimiterBackend] = {}
_postgres_lock = threading.Lock()


_FROM_ENVIRONMENT: Any = object()


def limiter_backend(url: str | None = _FROM_ENVIRONMENT, folder: Path | None = None) -> LimiterBackend:
    """The backend for a state store: Postgres at ``url`` (one pool per process and URL), else the SQLite
    file ``ratelimit.sqlite`` in ``folder``. Resources pass both; called without them (scripts, tests), the
    deployment's ``STREAM_ASSETS_STATE_URL`` and data dir are read."""
    if url is _FROM_ENVIRONMENT:
        url = state_url()  # checked there, once for the limiter and the rid state
    if not url:
        return SqliteLimiterBackend(folder / "ratelimit.sqlite" if folder is not None else None)
    with _postgres_lock:
        key = (os.getpid(), url)  # a pool must not cross a fork
        if key not in _postgres_backends:
            _postgres_backends[key] = PostgresLimiterBackend(url)
        return _postgres_backends[key]


class RateLimiter:
    """Blocks until every budget has room, then lets one request through and charges it.

    ``with limiter.slot() as charge: ...; charge(elapsed)`` admits one request (waiting as long as needed,
    reporting the wait to ``on_wait``) and settles it when the response is in: the processing budget is
    charged the time from admission to ``charge`` (``elapsed`` is the caller's view; the limiter's own
    stamps bound it from above). A request that never got a response stays in flight until its deadline.
    """

    def __init__(
        self,
        bucket: str,
        budgets: Sequence[Budget],
        backend: LimiterBackend | None = None,
        *,
        deadline: float = DEFAULT_DEADLINE,
        poll: float = 0.02,
        ticket_ttl: float = 30.0,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[float, str], None] | None = None,
    ) -> None:
        self.bucket = bucket
        self.budgets = list(budgets)
        self.backend = backend or limiter_backend()
        self.deadline, self.poll, self.ticket_ttl = deadline, poll, ticket_ttl
        self.clock, self.sleep, self.on_wait = clock, sleep, on_wait
        self._elapsed_clock = clock or time.monotonic
        self.seconds_waited = 0.0
        self.waits = 0

    def admissions(self) -> Generator[float, None, int]:
        """The admission loop, one step at a time: yields each wait (seconds to sleep), returns the event id.
        :meth:`acquire` sleeps through it; a simulation can drive it on a virtual clock."""
        ticket, started = None, None
        try:
            while True:
                admission = self.backend.admit(self.bucket, self.budgets, ticket=ticket, deadline=self.deadline,
                                               poll=self.poll, ticket_ttl=self.ticket_ttl, clock=self.clock)
                if admission.event_id is not None:
                    ticket = None
                    if started is not None:
                        self.seconds_waited += self._elapsed_clock() - started
                    return admission.event_id
                ticket = admission.ticket
                if started is None:
                    started = self._elapsed_clock()
                    self.waits += 1
                    if self.on_wait:
                        self.on_wait(admission.wait, admission.binding)
                yield min(admission.wait, self.ticket_ttl / 3)  # come back before the ticket expires
        finally:
            if ticket is not None:  # interrupted while queued: leave the queue
                self.backend.release(ticket)

    def acquire(self) -> int:
        steps = self.admissions()
        try:
            while True:
                self.sleep(next(steps))
        except StopIteration as done:
            return done.value

    def settle(self, event_id: int) -> None:
        self.backend.settle(event_id, self.clock)

    @contextmanager
    def slot(self) -> Iterator[Callable[[float], None]]:
        """Admit one request; the block calls ``charge(seconds)`` once its response is in."""
        event_id = self.acquire()
        yield lambda _elapsed: self.settle(event_id)

    def remaining(self) -> dict[str, float]:
        """Budget left per budget label (requests, or seconds of processing) for a request stamped now."""
        now, intervals = self.backend.intervals(self.bucket, self.deadline, self.clock)
        left = {}
        for budget in self.budgets:
            live = [i for i in intervals if i.end > now - budget.window]
            used = len(live) if budget.kind == "requests" else sum(i.cost_bound for i in live)
            left[budget.label] = max(0.0, budget.amount - used)
        return left


def server_overruns(arrivals: Sequence[tuple[float, float]], budgets: Sequence[Budget], *,
                    booked_at: str = "arrival") -> int:
    """How many of ``arrivals`` (server arrival time, processing seconds charged) a server enforcing
    ``budgets`` would refuse or delay: more than ``floor(A)`` arrivals in ``(a - W, a]``; or other requests'
    charges in ``(a - W, a]`` summing to ``A`` or more, booked at their arrival or at their completion."""
    import bisect
    import itertools

    arrivals = sorted(arrivals)
    times = [a for a, _ in arrivals]
    booked = arrivals if booked_at == "arrival" else sorted((a + c, c) for a, c in arrivals)
    at = [x for x, _ in booked]
    sums = list(itertools.accumulate((c for _, c in booked), initial=0.0))
    found = 0
    for budget in budgets:
        for a, cost in arrivals:
            if budget.kind == "requests":
                inside = bisect.bisect_right(times, a) - bisect.bisect_right(times, a - budget.window)
                found += inside > math.floor(budget.amount)
            else:
                lo, hi = bisect.bisect_right(at, a - budget.window), bisect.bisect_right(at, a)
                own = cost if booked_at == "arrival" or a - budget.window < a + cost <= a else 0.0
                found += sums[hi] - sums[lo] - own >= budget.amount - 1e-9
    return found
