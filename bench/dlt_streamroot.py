"""The dlt 1.31 side of bench/ingest.py: the same Streamroot timeseries requests, loaded by a dlt pipeline.

Runs under the benchmark's own venv (bench/.venv-dlt), which has dlt but not stream_assets. Written as a
dlt user would: one resource per endpoint yielding a page (list of row dicts) per answer, loaded into
DuckDB. Prints one JSON line: rows, wall seconds, seconds waiting on HTTP.

    bench/.venv-dlt/bin/python bench/dlt_streamroot.py <spec.json>
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time

import dlt
import requests


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    session = requests.Session()
    waited = [0.0]

    def series(path: str, chunks: list[list[int]]):
        url = f"{spec['base_url']}/v3/customers/{spec['customer']}/{path}"
        for start, end in chunks:
            started = time.perf_counter()
            response = session.post(url, json={"from": str(start), "to": str(end), "interval": "5m"},
                                    headers={"Authorization": f"API-Key {spec['key']}"}, timeout=60)
            response.raise_for_status()
            body = response.content
            waited[0] += time.perf_counter() - started
            for answer in json.loads(body):
                names = [name for name in answer if name not in ("srKey", "SrKey")]
                points = {name: dict((int(ts), value) for ts, value in answer[name]) for name in names}
                stamps = sorted(set().union(*points.values()))
                yield [{"sr_key": answer["srKey"], "ts": dt.datetime.fromtimestamp(ts / 1000, dt.timezone.utc),
                        **{name: points[name].get(ts) for name in names}} for ts in stamps]

    pipeline = dlt.pipeline(pipeline_name="bench_streamroot", pipelines_dir=spec["workdir"],
                            destination=dlt.destinations.duckdb(os.path.join(spec["workdir"], "dlt.duckdb")),
                            dataset_name="streamroot")
    started = time.perf_counter()
    rows = 0
    for name, path in spec["endpoints"]:
        resource = dlt.resource(series(path, spec["chunks"]), name=name, write_disposition="append")
        pipeline.run(resource)
        rows += pipeline.last_trace.last_normalize_info.row_counts.get(name, 0)
    wall = time.perf_counter() - started
    print(json.dumps({"rows": rows, "wall": wall, "http": waited[0]}))


if __name__ == "__main__":
    main()
