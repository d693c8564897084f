"""Benchmark: the shared Streamtime limiter under many processes, network latency and binding budgets.

Every condition starts a fresh Streamtime emulator with scaled windows and N processes that share
``--requests`` day searches (``StreamtimeResource(...).client().rows(entity, day)``) through one limiter (the
SQLite file of a shared data dir, or Postgres with ``--state-url``). The windows: requests ``4/2,20/20`` (the
documented per-minute and per-hour budgets, their windows 30 and 180 times shorter); processing
``2/2,8.3/20`` (the documented seconds per request: 30 s per 60 requests, 300 s per 720) for cheap
requests (0.01 s of processing each), and ``0.5/2,3/20`` for costly ones (0.3 s each), so that the
processing budget binds. Conditions: 4 and 8 processes; no latency, or 0-300 ms of random latency before
the emulator stamps arrival (``arrival_latency``); cheap or costly requests.

For each condition it prints:
- 429s: answered by the emulator (and seen by clients) and processing delays (the per-minute processing
  budget exceeded);
- overruns: arrivals that the server's budgets would refuse, recomputed from the emulator's arrival stamps
  (``received_at``) and its processing charges (``processing_seconds`` per request, booked at arrival);
- rate used: the shortest time in which a server enforcing the budgets could have taken the run's requests,
  over the time they really took (first to last arrival). The shortest schedule places each arrival as early
  as every sliding window allows: ``floor(A)`` requests per window ``W`` for a request budget,
  ``ceil(A / cost)`` for a processing budget (the server accepts a request while the time already charged
  in the window is below ``A``); the slower budget binds.
- safe ceiling: the rate used by the best limiter that holds the budgets whatever the latency. From the client,
  time in the network and time in processing look the same, so it must charge a request its whole elapsed time
  (at least cost + the latency the emulator slept): the same shortest schedule with that charge, over the
  shortest schedule with the true cost. Where no processing budget binds, it is 100 %;
- of ceiling: rate used / safe ceiling.

Then the requests of a 365-day single-run backfill against the minimum: the pages plus one /search/setup per view.

    .venv/bin/python bench/streamtime_budget.py [--requests 60] [--runs 1] [--only 0,2] [--state-url URL] [--days 365]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import multiprocessing
import os
import tempfile
import time
from dataclasses import dataclass

from stream_assets.core.ratelimit import parse_budgets, server_overruns
from stream_assets.core.windows import TimeWindow
from stream_assets.streamtime.emulator import StreamtimeEmulator, pages_needed
from stream_assets.streamtime.entities import ENTITIES
from stream_assets.streamtime.resources import StreamtimeResource

KEY = "bench-streamtime-key"
FIRST_DAY = dt.date(2025, 11, 20)
DAILY = [e for e in ENTITIES if e.partitioned]


@dataclass(frozen=True)
class Condition:
    processes: int
    latency: tuple[float, float]  # seconds before the emulator stamps arrival
    cost: float  # processing seconds per request
    processing: str  # processing budgets

    def __str__(self) -> str:
        latency = "no latency" if not self.latency[1] else f"{self.latency[0] * 1000:g}-{self.latency[1] * 1000:g} ms latency"
        return f"{self.processes} processes, {latency}, {'costly' if self.cost >= 0.1 else 'cheap'} ({self.cost:g} s)"


REQUESTS = "4/2,20/20"
DOCUMENTED_PROCESSING, BINDING_PROCESSING = "2/2,8.3/20", "0.5/2,3/20"
CONDITIONS = [
    Condition(4, (0.0, 0.0), 0.01, DOCUMENTED_PROCESSING),
    Condition(8, (0.0, 0.0), 0.01, DOCUMENTED_PROCESSING),
    Condition(4, (0.0, 0.3), 0.01, DOCUMENTED_PROCESSING),
    Condition(8, (0.0, 0.3), 0.01, DOCUMENTED_PROCESSING),
    Condition(4, (0.0, 0.0), 0.3, BINDING_PROCESSING),
    Condition(8, (0.0, 0.0), 0.3, BINDING_PROCESSING),
    Condition(4, (0.0, 0.3), 0.3, BINDING_PROCESSING),
    Condition(8, (0.0, 0.3), 0.3, BINDING_PROCESSING),
]


def search_days(base_url: str, data_dir: str, state_url: str, rates: str, processing: str, days: list[str],
                start_at: float, result_queue) -> None:
    os.environ["STREAM_ASSETS_DATA_DIR"] = data_dir
    if state_url:
        os.environ["STREAM_ASSETS_STATE_URL"] = state_url
    client = StreamtimeResource(api_key=KEY, base_url=base_url, rate_limits=rates, processing_limits=processing).client()
    time.sleep(max(0.0, start_at - time.time()))  # every process starts together, once all are up
    for n, day in enumerate(days):
        client.rows(DAILY[n % len(DAILY)], TimeWindow.for_days(day))
    result_queue.put((client.requests_made, client.throttled, client.limiter.seconds_waited))


def minimum_span(requests: int, rates: str, processing: str, cost: float) -> float:
    """The shortest first-to-last arrival time in which a server enforcing the budgets takes ``requests``
    requests of ``cost`` seconds each: each arrival as early as every window allows."""
    per_window = [(math.floor(b.amount), b.window) for b in parse_budgets(rates, "requests")]
    per_window += [(math.ceil(b.amount / cost - 1e-9), b.window) for b in parse_budgets(processing, "processing")]
    times: list[float] = []
    for i in range(requests):
        times.append(max([times[-1] if times else 0.0] + [times[i - k] + window for k, window in per_window if i >= k]))
    return times[-1] - times[0]


def run_condition(condition: Condition, args) -> dict:
    days = [(FIRST_DAY + dt.timedelta(days=n)).isoformat() for n in range(args.requests)]
    with StreamtimeEmulator({KEY: "Bench"}, data_start="2025-11-01", request_limits=args.rates,
                            processing_limits=condition.processing, processing_seconds=condition.cost,
                            delay_seconds=2.0) as emulator:
        emulator.arrival_latency = condition.latency
        data_dir = tempfile.mkdtemp(prefix="st-bench-")
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        start_at = time.time() + 3.0 + 0.5 * condition.processes
        workers = [context.Process(target=search_days, args=(emulator.base_url, data_dir, args.state_url, args.rates,
                                                              condition.processing, days[i::condition.processes], start_at,
                                                              results))
                   for i in range(condition.processes)]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=3600) for _ in workers]
        for worker in workers:
            worker.join()
        arrivals = [(r.received_at, condition.cost) for r in emulator.requests]
        budgets = parse_budgets(args.rates, "requests") + parse_budgets(condition.processing, "processing")
        stamps = sorted(a for a, _ in arrivals)
        span = stamps[-1] - stamps[0]
        shortest = minimum_span(len(arrivals), args.rates, condition.processing, condition.cost)
        latency = sum(r.latency for r in emulator.requests) / len(emulator.requests)
        ceiling = shortest / minimum_span(len(arrivals), args.rates, condition.processing, condition.cost + latency)
        return {"requests": len(arrivals), "throttled": emulator.counters["throttled"],
                "seen": sum(o[1] for o in outcomes), "delayed": emulator.counters["delayed"],
                "overruns": server_overruns(arrivals, budgets), "span": span,
                "rate_used": shortest / span, "ceiling": ceiling,
                "waited": sum(o[2] for o in outcomes)}


def year_backfill(args) -> None:
    days = [(FIRST_DAY + dt.timedelta(days=n)).isoformat() for n in range(args.days)]
    with StreamtimeEmulator({KEY: "Bench"}, data_start="2025-11-01", request_limits="60/0.6,720/36",
                            processing_limits="30/0.6,300/36", processing_seconds=0.001, delay_seconds=0.02) as emulator:
        year = TimeWindow.for_days(days[0], days[-1])
        os.environ["STREAM_ASSETS_DATA_DIR"] = tempfile.mkdtemp(prefix="st-bench-")
        client = StreamtimeResource(api_key=KEY, base_url=emulator.base_url, rate_limits="60/0.6,720/36",
                                    processing_limits="30/0.6,300/36").client()
        pages = 0
        for entity in DAILY:
            rows = client.rows(entity, year)
            pages += pages_needed(len(rows))
        # The least a correct client can send: the pages, plus one /search/setup per view (selectors are read, not guessed).
        minimal = pages + len(DAILY)
        setups = len(emulator.requests_to("/search/setup"))
        print(f"{args.days}-day single-run backfill: {client.requests_made} requests ({setups} setups) for {len(DAILY)} "
              f"entities, minimal {minimal} ({pages} pages + {len(DAILY)} setups): {client.requests_made / minimal:.2f} x minimal")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=60, help="searches per condition, shared by its processes")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated condition numbers (default: all)")
    parser.add_argument("--rates", default=REQUESTS)
    parser.add_argument("--state-url", default=os.environ.get("STREAM_ASSETS_STATE_URL", ""))
    parser.add_argument("--days", type=int, default=365, help="days of the single-run backfill")
    args = parser.parse_args()
    chosen = [CONDITIONS[int(n)] for n in args.only.split(",")] if args.only else CONDITIONS
    print(f"request windows {args.rates}; {args.requests} searches per condition; "
          f"limiter state: {'Postgres' if args.state_url else 'SQLite'}")
    print("| condition | processing budgets | run | requests | 429s (emulator / clients) | processing delays | "
          "window overruns | rate used | safe ceiling | of ceiling | span |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for condition in chosen:
        for run in range(1, args.runs + 1):
            started = time.time()
            r = run_condition(condition, args)
            print(f"| {condition} | {condition.processing} | {run} | {r['requests']} | {r['throttled']} / {r['seen']} | {r['delayed']} | "
                  f"{r['overruns']} | {r['rate_used']:.1%} | {r['ceiling']:.1%} | {r['rate_used'] / r['ceiling']:.1%} | {r['span']:.0f} s ({time.time() - started:.0f} s wall, "
                  f"{r['waited']:.0f} s waited) |", flush=True)
    if args.days:
        year_backfill(args)


if __name__ == "__main__":
    main()
