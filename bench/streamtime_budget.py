"""Benchmark: the shared Streamtime limiter under 4 concurrent processes running a long backfill.

With scaled windows (default ``60/0.6,720/36`` requests, ``30/0.6,300/36`` processing: the documented
limits 100 times faster), four processes backfill 365 days day by day (one paged search per daily
entity per day, after one /search/setup per view and process) against the emulator, all drawing on one limiter in a shared data dir. Prints:

1. the share of the allowed request rate actually used (requests the emulator received during the
   full hourly-scale windows the run spans, against what the budgets allow in that time);
2. the 429 count (emulator and clients);
3. the requests of a 365-day single-run backfill (one /search/setup and one paged search per entity for the
   whole year) against the minimum: the pages plus one setup per view.

    .venv/bin/python bench/streamtime_budget.py [--processes 4] [--days 365]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import multiprocessing
import os
import tempfile
import time

from stream_assets.core.ratelimit import parse_budgets
from stream_assets.core.windows import TimeWindow
from stream_assets.streamtime.emulator import StreamtimeEmulator, pages_needed
from stream_assets.streamtime.entities import ENTITIES
from stream_assets.streamtime.resources import StreamtimeResource

KEY = "bench-streamtime-key"
FIRST_DAY = dt.date(2025, 11, 20)
DAILY = [e for e in ENTITIES if e.partitioned]


def backfill_days(base_url: str, data_dir: str, rates: str, processing: str, days: list[str], result_queue) -> None:
    os.environ["STREAM_ASSETS_DATA_DIR"] = data_dir
    client = StreamtimeResource(api_key=KEY, base_url=base_url, rate_limits=rates, processing_limits=processing).client()
    for day in days:
        for entity in DAILY:
            client.rows(entity, TimeWindow.for_days(day))
    result_queue.put((client.requests_made, client.throttled, client.limiter.seconds_waited))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rates", default="60/0.6,720/36")
    parser.add_argument("--processing", default="30/0.6,300/36")
    args = parser.parse_args()
    days = [(FIRST_DAY + dt.timedelta(days=n)).isoformat() for n in range(args.days)]
    budgets = parse_budgets(args.rates, "requests")
    with StreamtimeEmulator({KEY: "Bench"}, data_start="2025-11-01", request_limits=args.rates,
                            processing_limits=args.processing, processing_seconds=0.001, delay_seconds=0.02) as emulator:
        data_dir = tempfile.mkdtemp(prefix="st-bench-")
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        shares = [days[i::args.processes] for i in range(args.processes)]
        workers = [context.Process(target=backfill_days, args=(emulator.base_url, data_dir, args.rates, args.processing,
                                                                share, results)) for share in shares]
        started = time.time()
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=3600) for _ in workers]
        for worker in workers:
            worker.join()
        elapsed = time.time() - started
        stamps = sorted(r.received_at for r in emulator.requests)
        first = stamps[0]
        # Count over the whole multiples of the longest window the run spans, while work was still queued.
        longest = max(budgets, key=lambda b: b.window)
        full_windows = int((stamps[-1] - first) // longest.window)
        if full_windows:
            span = full_windows * longest.window
            used = sum(1 for s in stamps if s < first + span)
            allowed = min(b.amount * math.ceil(span / b.window) for b in budgets)
            share = used / allowed
        else:
            span = stamps[-1] - first
            used, allowed, share = len(stamps), min(b.amount * (math.floor(span / b.window) + 1) for b in budgets), None
        print(f"{args.processes} processes backfilling {args.days} days day by day, windows {args.rates} / {args.processing}:")
        print(f"  {len(stamps)} requests in {elapsed:.1f}s; seconds waited for budget per process: "
              f"{', '.join(f'{o[2]:.1f}' for o in outcomes)}")
        if share is not None:
            print(f"  allowed rate used: {share:.1%} ({used} requests in the first {full_windows} x {longest.window:g}s "
                  f"windows; the budgets allow {allowed:g})")
        else:
            print(f"  run shorter than one {longest.window:g}s window: {used} of {allowed:g} allowed")
        print(f"  429 answers: {emulator.counters['throttled']} at the emulator, {sum(o[1] for o in outcomes)} seen by "
              f"clients; processing delays: {emulator.counters['delayed']}")

        emulator.clear()
        year = TimeWindow.for_days(days[0], days[-1])
        os.environ["STREAM_ASSETS_DATA_DIR"] = tempfile.mkdtemp(prefix="st-bench-")
        client = StreamtimeResource(api_key=KEY, base_url=emulator.base_url, rate_limits=args.rates,
                                    processing_limits=args.processing).client()
        pages = 0
        for entity in DAILY:
            rows = client.rows(entity, year)
            pages += pages_needed(len(rows))
        # The least a correct client can send: the pages, plus one /search/setup per view (selectors are read, not guessed).
        minimal = pages + len(DAILY)
        setups = len(emulator.requests_to("/search/setup"))
        print(f"365-day single-run backfill: {client.requests_made} requests ({setups} setups) for {len(DAILY)} entities, "
              f"minimal {minimal} ({pages} pages + {len(DAILY)} setups): {client.requests_made / minimal:.2f} x minimal")


if __name__ == "__main__":
    main()
