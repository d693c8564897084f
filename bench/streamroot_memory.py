"""Benchmark: peak memory of one 31-day Streamroot timeseries answer, fetched and written.

Each scenario runs in a fresh process (so its peak RSS is its own): the client asks the emulator for
31 days of ``traffic_timeseries`` at 5-minute grain (one request, ~8,900 points per series), validates
it and replaces the partition range in a DuckDB warehouse.

- ``normal``: the answer as the emulator sends it;
- ``ten_mb_key``: the same answer with a 10 MB ``srKey`` (the answer that used to take 12 GB); it is
  now refused with a typed error before any row is built;
- ``ten_mb_key_rows_only``: the 10 MB key pushed through the row building with the length check
  lifted (``model_construct``), not written: the frame holds one reference to the key, not a copy per
  row (the cause of the 12 GB: ~8,900 copies of 10 MB). Writing it would still copy it into every
  DuckDB row, which is why such a key is refused.

    .venv/bin/python bench/streamroot_memory.py [--keys 1]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

SCENARIOS = ("normal", "ten_mb_key", "ten_mb_key_rows_only")
CUSTOMER, KEY = "bench-customer", "bench-key"
FIRST_DAY, LAST_DAY = "2026-03-01", "2026-03-31"


def run(scenario: str, keys: int, folder: str, results) -> None:
    import pandas as pd

    from stream_assets.core.emulator import Reply
    from stream_assets.core.errors import ApiError
    from stream_assets.core.warehouse import Warehouse
    from stream_assets.core.windows import TimeWindow
    from stream_assets.streamroot.client import StreamrootClient
    from stream_assets.streamroot.emulator import StreamrootEmulator
    from stream_assets.streamroot.endpoints import BY_NAME

    spec = BY_NAME["traffic_timeseries"]
    window = TimeWindow.for_days(FIRST_DAY, LAST_DAY)
    with StreamrootEmulator({CUSTOMER: KEY}) as emulator:
        client = StreamrootClient(KEY, CUSTOMER, emulator.base_url)
        answer = None
        if scenario != "normal" or keys > 1:
            (answer,) = client.fetch(spec, window, interval="5m")
            payload = [{"srKey": f"key-{n}" if keys > 1 else answer.sr_key, "cdn": answer.cdn, "p2p": answer.p2p}
                       for n in range(keys)]
            if scenario != "normal":
                payload[0]["srKey"] = "k" * 10_000_000
            emulator.fail_next(Reply(200, json.dumps(payload).encode()))
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        outcome = "written"
        try:
            warehouse = Warehouse(database=str(Path(folder) / f"{scenario}.duckdb"))
            if scenario == "ten_mb_key_rows_only":
                unchecked = spec.model.model_construct(sr_key=payload[0]["srKey"], cdn=answer.cdn, p2p=answer.p2p)
                frame = unchecked.frame()
                frame.insert(1, "ts", pd.to_datetime(frame.pop("ts_ms"), unit="ms", utc=True))
                outcome = f"{len(frame)} rows built, not written"
            else:
                frame = client.fetch_frame(spec, window)
                rows = warehouse.replace(spec.table, frame, window)
                outcome = f"{rows} rows written"
        except ApiError as error:
            outcome = f"refused: {type(error).__name__}: {str(error)[:90]}"
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.put((scenario, baseline, peak, seconds, outcome))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1, help="Streamroot keys in the answer")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with tempfile.TemporaryDirectory() as folder:
        for scenario in SCENARIOS:
            process = context.Process(target=run, args=(scenario, args.keys, folder, results))
            process.start()
            process.join(timeout=600)
            scenario, baseline, peak, seconds, outcome = results.get(timeout=5)
            print(f"{scenario:22s} peak RSS {peak:7.0f} MiB (before the request {baseline:5.0f} MiB), "
                  f"{seconds:5.2f} s: {outcome}")


if __name__ == "__main__":
    main()
