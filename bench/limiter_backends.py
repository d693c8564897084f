"""Benchmark: admissions per second of the limiter's two shared stores, SQLite and Postgres, with 1 and 8
processes admitting (and settling) requests in one bucket as fast as they can. The budget never binds
(requests only, ``1000000/1``): this measures the cost of the admission transaction itself, lock included.

Postgres: a database of its own is created and dropped on ``--postgres`` (default the local server).

    .venv/bin/python bench/limiter_backends.py [--admissions 300] [--postgres postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import uuid

from stream_assets.core.ratelimit import PostgresLimiterBackend, RateLimiter, SqliteLimiterBackend, parse_budgets


def admit_many(kind: str, where: str, admissions: int, start_at: float, results) -> None:
    backend = PostgresLimiterBackend(where, pool_size=1) if kind == "postgres" else SqliteLimiterBackend(where)
    limiter = RateLimiter("bench", parse_budgets("1000000/1", "requests"), backend)
    time.sleep(max(0.0, start_at - time.time()))  # every process starts together
    for _ in range(admissions):
        limiter.settle(limiter.acquire())
    results.put(time.time())


def measure(kind: str, where: str, processes: int, admissions: int) -> float:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    start_at = time.time() + 3.0 + 0.3 * processes  # after every process has imported and connected
    workers = [context.Process(target=admit_many, args=(kind, where, admissions, start_at, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    ends = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    return processes * admissions / (max(ends) - start_at)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--admissions", type=int, default=300, help="per process")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    import psycopg

    name = f"limiter_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        stores = {"sqlite": lambda: str(tempfile.mkdtemp(prefix="limiter-bench-")) + "/ratelimit.sqlite",
                  "postgres": lambda: args.postgres.rsplit("/", 1)[0] + "/" + name}
        print("| store | processes | admissions per second (admit + settle) |\n|---|---|---|")
        for kind, where in stores.items():
            for processes in (1, 8):
                rate = measure(kind, where(), processes, args.admissions)
                print(f"| {kind} | {processes} | {rate:,.0f} |", flush=True)
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
