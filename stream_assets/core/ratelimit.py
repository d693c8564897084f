"""A rate limiter shared by every process of a deployment: request budgets and processing-time budgets
over sliding windows, with its state outside the process.

Why not pyrate-limiter: its SQLite bucket shares request counts across processes well, but a
processing-time budget is only known once the response is in (the API charges the time it spent), and
pyrate-limiter weighs a request when it is admitted. So this module keeps both kinds of budget in one
small table: each admitted request is an event stamped with its admission time and an estimated cost,
settled to the measured elapsed time when the response arrives. Admission happens inside one SQLite
write transaction (``BEGIN IMMEDIATE``), so concurrent processes never over-admit.

The backend is an interface (:class:`LimiterBackend`): a Postgres or Redis implementation of ``admit``,
``settle`` and ``usage`` lets several hosts share one budget.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

from stream_assets.core.config import data_dir
from stream_assets.core.state import sqlite_transaction


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

    @property
    def guarded_window(self) -> float:
        """The window widened by a small margin, so that the server, which stamps requests a few
        milliseconds later than we admit them, never counts more than ``amount`` in its own window."""
        return self.window * 1.02 + 0.005


def parse_budgets(text: str, kind: str) -> list[Budget]:
    """``"60/60,720/3600"`` -> budgets; a clear ValueError for anything else."""
    budgets = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            amount, window = (float(x) for x in part.split("/"))
        except ValueError:
            raise ValueError(f"invalid budget {part!r} in {text!r}: expected amount/seconds, e.g. 60/60") from None
        if amount <= 0 or window <= 0:
            raise ValueError(f"invalid budget {part!r}: amount and window must be positive")
        budgets.append(Budget(amount, window, kind))
    if not budgets:
        raise ValueError(f"no budget in {text!r}")
    return budgets


@dataclass(frozen=True)
class Admission:
    event_id: int | None  # None: not admitted yet
    wait: float = 0.0  # seconds until a slot frees up
    binding: str = ""  # the budget that made us wait


class LimiterBackend(Protocol):
    def admit(self, bucket: str, budgets: Sequence[Budget], now: float, default_cost: float) -> Admission:
        """Admit one request at ``now`` if every budget has room for it, charging it an estimated cost
        (the bucket's recent average, else ``default_cost``); otherwise say how long to wait."""
        ...

    def settle(self, event_id: int, cost: float) -> None: ...

    def usage(self, bucket: str, budgets: Sequence[Budget], now: float) -> dict[str, float]: ...


class SqliteLimiterBackend:
    """Sliding-window events in a SQLite file (default ``$STREAM_ASSETS_DATA_DIR/ratelimit.sqlite``)."""

    def __init__(self, path: str | Path | None = None, *, timeout: float = 60.0) -> None:
        self.path = Path(path) if path else data_dir() / "ratelimit.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        with self._transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS limiter_events ("
                         "id INTEGER PRIMARY KEY AUTOINCREMENT, bucket TEXT NOT NULL, at REAL NOT NULL, cost REAL NOT NULL)")
            conn.execute("CREATE INDEX IF NOT EXISTS limiter_events_by_time ON limiter_events (bucket, at)")

    def _transaction(self):
        return sqlite_transaction(self.path, self.timeout)

    def admit(self, bucket: str, budgets: Sequence[Budget], now: float, default_cost: float) -> Admission:
        horizon = max(b.guarded_window for b in budgets)
        with self._transaction() as conn:
            conn.execute("DELETE FROM limiter_events WHERE bucket = ? AND at <= ?", (bucket, now - horizon))
            (recent,) = conn.execute("SELECT avg(cost) FROM (SELECT cost FROM limiter_events WHERE bucket = ? "
                                     "ORDER BY id DESC LIMIT 20)", (bucket,)).fetchone()
            estimate = default_cost if recent is None else recent
            wait, binding = 0.0, ""
            for budget in budgets:
                since = now - budget.guarded_window
                if budget.kind == "requests":
                    rows = conn.execute("SELECT at FROM limiter_events WHERE bucket = ? AND at > ? ORDER BY at DESC LIMIT ?",
                                        (bucket, since, int(budget.amount))).fetchall()
                    if len(rows) >= budget.amount:  # the amount-th newest must leave the window first
                        needed = rows[-1][0] + budget.guarded_window - now
                    else:
                        needed = 0.0
                else:
                    rows = conn.execute("SELECT at, cost FROM limiter_events WHERE bucket = ? AND at > ? ORDER BY at",
                                        (bucket, since)).fetchall()
                    excess = sum(cost for _, cost in rows) + min(estimate, budget.amount) - budget.amount
                    needed = 0.0
                    for at, cost in rows:  # oldest first: wait until enough cost has slid out
                        if excess <= 1e-9:
                            break
                        excess -= cost
                        needed = at + budget.guarded_window - now
                if needed > wait:
                    wait, binding = needed, budget.label
            if wait > 0:
                return Admission(None, wait, binding)
            cursor = conn.execute("INSERT INTO limiter_events (bucket, at, cost) VALUES (?, ?, ?)", (bucket, now, estimate))
            return Admission(cursor.lastrowid)

    def settle(self, event_id: int, cost: float) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE limiter_events SET cost = ? WHERE id = ?", (cost, event_id))

    def usage(self, bucket: str, budgets: Sequence[Budget], now: float) -> dict[str, float]:
        """Budget left per budget label (requests, or seconds of processing) at ``now``."""
        left = {}
        with self._transaction() as conn:
            for budget in budgets:
                count, cost = conn.execute("SELECT count(*), coalesce(sum(cost), 0) FROM limiter_events "
                                           "WHERE bucket = ? AND at > ?", (bucket, now - budget.window)).fetchone()
                used = count if budget.kind == "requests" else cost
                left[budget.label] = max(0.0, budget.amount - used)
        return left


class RateLimiter:
    """Blocks until every budget has room, then lets one request through and charges it.

    ``with limiter.slot() as charge: ...; charge(elapsed)`` admits one request (waiting as long as
    needed, reporting each wait to ``on_wait``) and settles its processing cost afterwards.
    """

    def __init__(
        self,
        bucket: str,
        budgets: Sequence[Budget],
        backend: LimiterBackend | None = None,
        *,
        default_cost: float = 0.5,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[float, str], None] | None = None,
    ) -> None:
        self.bucket = bucket
        self.budgets = list(budgets)
        self.backend = backend or SqliteLimiterBackend()
        self.default_cost = default_cost
        self.clock, self.sleep, self.on_wait = clock, sleep, on_wait
        self.seconds_waited = 0.0
        self.waits = 0

    def acquire(self) -> int:
        started = None
        while True:
            admission = self.backend.admit(self.bucket, self.budgets, self.clock(), self.default_cost)
            if admission.event_id is not None:
                if started is not None:
                    waited = self.clock() - started
                    self.seconds_waited += waited
                return admission.event_id
            if started is None:
                started = self.clock()
                self.waits += 1
                if self.on_wait:
                    self.on_wait(admission.wait, admission.binding)
            self.sleep(min(admission.wait, 5.0))

    @contextmanager
    def slot(self) -> Iterator[Callable[[float], None]]:
        """Admit one request; the block calls ``charge(seconds)`` with its measured cost. A request that
        never got a response keeps its estimated cost (it may well have been processed)."""
        event_id = self.acquire()
        yield lambda cost: self.backend.settle(event_id, cost)

    def remaining(self) -> dict[str, float]:
        return self.backend.usage(self.bucket, self.budgets, self.clock())
