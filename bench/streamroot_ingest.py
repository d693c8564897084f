"""Benchmark: a 90-day ranged backfill of the four Streamroot timeseries endpoints at 5-minute grain.

Prints rows written per second (with the time spent waiting on HTTP reported apart), peak RSS, and the
extra seconds a single-partition materialization costs beyond its HTTP calls. The emulator runs in a
separate process so that it does not share this process's CPU time or GIL.

    .venv/bin/python bench/streamroot_ingest.py [--days 90]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import dagster as dg

from stream_assets.core.warehouse import Warehouse
from stream_assets.core.windows import TimeWindow
from stream_assets.streamroot.assets import endpoint_assets
from stream_assets.streamroot.client import StreamrootClient
from stream_assets.streamroot.emulator import StreamrootEmulator
from stream_assets.streamroot.endpoints import ENDPOINTS
from stream_assets.streamroot.resources import StreamrootResource

CUSTOMER, KEY = "bench-customer", "bench-key"


def serve(port_queue) -> None:
    emulator = StreamrootEmulator({CUSTOMER: KEY}).start()
    port_queue.put(emulator.port)
    while True:
        time.sleep(3600)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    queue = multiprocessing.get_context("spawn").Queue()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(queue,), daemon=True)
    server.start()
    base_url = f"http://127.0.0.1:{queue.get(timeout=60)}"
    workdir = Path(tempfile.mkdtemp(prefix="sr-bench-"))
    warehouse = Warehouse(database=str(workdir / "bench.duckdb"))
    first = TimeWindow.for_days("2026-01-05").start
    window = TimeWindow(first, first + dt.timedelta(days=args.days))
    try:
        client = StreamrootClient(KEY, CUSTOMER, base_url)
        rows = 0
        started = time.perf_counter()
        write_seconds = 0.0
        for endpoint in (e for e in ENDPOINTS if e.is_timeseries):
            frame = client.fetch_frame(endpoint, window)
            write_started = time.perf_counter()
            rows += warehouse.replace(endpoint.table, frame, window)
            write_seconds += time.perf_counter() - write_started
        total = time.perf_counter() - started
        http = client.http_seconds
        print(f"ranged backfill: {args.days} days x 4 timeseries endpoints at 5m = {rows:,} rows, "
              f"{client.requests_made} requests")
        print(f"  wall {total:.2f}s = HTTP wait {http:.2f}s + parse/shape {total - http - write_seconds:.2f}s "
              f"+ DuckDB writes {write_seconds:.2f}s")
        print(f"  rows written per second: {rows / total:,.0f} overall, {rows / (total - http):,.0f} excluding HTTP wait, "
              f"{rows / write_seconds:,.0f} in the DuckDB write alone")
        print(f"  peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

        resources = {"streamroot": StreamrootResource(api_key=KEY, customer_id=CUSTOMER, base_url=base_url),
                     "warehouse": warehouse}
        asset = next(a for a in endpoint_assets if a.key.path[-1] == "traffic_timeseries")
        dg.materialize([asset], resources=resources, partition_key="2026-05-01")  # warm-up (imports, caches)
        overheads = []
        for _ in range(5):
            run_started = time.perf_counter()
            result = dg.materialize([asset], resources=resources, partition_key="2026-05-02")
            wall = time.perf_counter() - run_started
            http_seconds = result.asset_materializations_for_node(asset.node_def.name)[0].metadata["http_seconds"].value
            overheads.append(wall - http_seconds)
        overheads.sort()
        print(f"single-partition materialization (traffic_timeseries, 1 day, in-process): "
              f"{overheads[len(overheads) // 2]:.2f}s beyond its HTTP calls (median of 5; min {overheads[0]:.2f}s)")
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
