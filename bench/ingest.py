"""Benchmark (issue #13): ingest throughput and memory, every path on the same fake data, in one run.

(a) 90 days x 4 Streamroot timeseries x 2 keys at 5 minutes (207,360 rows), served from pre-generated
    JSON answers (one per endpoint and 31-day request: 12) by a fake server in a separate process:
    - ``current``: ``StreamrootClient.fetch_frame`` + ``Warehouse.replace`` (pydantic, pandas; the write path
      before #13, kept for comparison);
    - ``columnar``: what the assets run, ``streamroot.assets.replace_timeseries`` (columns.py's Arrow tables
      staged as they arrive, swapped in by ``Warehouse.replace_staged``);
    - ``dlt``: dlt 1.31 (bench/dlt_streamroot.py) in bench/.venv-dlt, installed here when missing.
    Rows/s end to end, and excluding the time spent waiting on HTTP; peak RSS of the process.
(b) The floor: DuckDB reading the same 12 answers from the JSON files (read_json + unnest + insert), and
    the columnar path reading them from disk too (parse + stage + swap, no HTTP).
(c) Streamtime searches of 10 k, 100 k and 1 M logged times (1,000 a page): peak RSS of the path before #13
    (``StreamtimeClient.rows`` + ``Warehouse.replace``) vs what the assets run,
    ``streamtime.assets.replace_entity`` (each page staged as it arrives, swapped in at the end).
(d) ``dagster asset materialize`` of one partition (whole process) vs the same command on a no-op asset.

Every path runs in a subprocess of its own, so peak RSS is that path's. Prints one table.

    .venv/bin/python bench/ingest.py [--runs 5] [--streamtime 10000,100000,1000000] [--no-dlt] [--no-cli]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DLT_VENV = REPO / "bench" / ".venv-dlt"
DLT_REQUIREMENT = "dlt[duckdb]>=1.31,<1.32"
CUSTOMERS = {"bench-customer": "bench-key", "bench-customer-2": "bench-key-2"}
CUSTOMER, KEY = "bench-customer", "bench-key"
STREAMTIME_KEY = "bench-streamtime-key"
FIRST_DAY = "2026-01-05"
STREAMTIME_DAY = "2026-03-02"
CLI_PARTITION = "2026-03-01"


def window(days: int):
    from stream_assets.core.windows import TimeWindow

    first = TimeWindow.for_days(FIRST_DAY).start
    return TimeWindow(first, first + dt.timedelta(days=days))


def timeseries_endpoints():
    from stream_assets.streamroot.endpoints import ENDPOINTS

    return [endpoint for endpoint in ENDPOINTS if endpoint.is_timeseries]


# --- the fake data and the fake server -------------------------------------------------------------
def generate_answers(directory: Path, days: int) -> dict[str, str]:
    """One answer file per (endpoint, 31-day request), two Streamroot keys each; (path|from|to) -> file."""
    from stream_assets.streamroot.client import MAX_TIMESERIES_SPAN
    from stream_assets.streamroot.emulator import StreamrootEmulator

    emulator = StreamrootEmulator(CUSTOMERS)
    index = {}
    for endpoint in timeseries_endpoints():
        for chunk in window(days).chunks(MAX_TIMESERIES_SPAN):
            answer = [{"srKey": emulator.sr_key(customer),
                       **emulator._timeseries(endpoint.path, emulator.five_minute_data(customer, chunk.start_ms, chunk.end_ms), 300_000)}
                      for customer in CUSTOMERS]
            name = f"{endpoint.name}-{chunk.start_ms}.json"
            (directory / name).write_text(json.dumps(answer))
            index[f"{endpoint.path}|{chunk.start_ms}|{chunk.end_ms}"] = str(directory / name)
    return index


def streamtime_page(offset: int, limit: int, total: int, day: str) -> list[dict]:
    """Logged times ``offset..`` of a search matching ``total`` records, as Streamtime v2 wraps them."""
    return [{"loggedTime": {"id": i + 1, "userId": 1 + i % 40, "jobId": 1000 + i % 997, "jobItemUserId": i % 5000,
                            "date": day, "minutes": float(15 + i % 480), "notes": f"worked on item {i % 613}",
                            "cost": 42.5, "totalCostExTax": 80.0, "totalExTax": 120.25,
                            "completedDatetime": None, "loggedTimeStatus": {"id": 2, "name": "Complete"}},
             "jobItem": {"id": i % 5000, "name": f"Design round {i % 5000}"}}
            for i in range(offset, min(offset + limit, total))]


def serve(index: dict[str, str], ports) -> None:
    """The fake servers: Streamroot answers from files, Streamtime searches of any size, the emulator (CLI)."""
    from stream_assets.core.emulator import Emulator, Reply
    from stream_assets.streamroot.emulator import StreamrootEmulator

    answers = {key: Path(path).read_bytes() for key, path in index.items()}

    class Files(Emulator):
        name = "bench"

        def handle(self, request):
            if request.path.startswith("/st/"):  # /st/<total>/search: a Streamtime search of <total> records
                if request.header("Authorization") != f"Bearer {STREAMTIME_KEY}":
                    return Reply.text("You are not authorised to make this request", status=401, content_type="text/html")
                if request.path.endswith("/search/setup"):
                    return Reply.json({"filters": [{"selector": "logged_time_date", "name": "Date", "filterType": "Date"}],
                                       "additionalData": ["jobItem"], "sortColumns": []})
                body = request.json()
                page = streamtime_page(body["offset"], body["limit"], int(request.path.split("/")[2]), STREAMTIME_DAY)
                return Reply.json(page)
            body = request.json()
            path = request.path.split("/", 4)[4]
            if request.header("Authorization") != f"API-Key {KEY}":
                return Reply.json({"message": "invalid API key"}, status=401)
            found = answers.get(f"{path}|{body['from']}|{body['to']}")
            return Reply(200, found) if found is not None else Reply.json({"message": "not found"}, status=404)

    files = Files().start()
    emulator = StreamrootEmulator({CUSTOMER: KEY}).start()
    ports.put((files.port, emulator.port))
    while True:
        time.sleep(3600)


# --- the paths, each run in a child process -----------------------------------------------------------
def path_current(base_url: str, workdir: Path, days: int) -> dict:
    from stream_assets.core.warehouse import Warehouse
    from stream_assets.streamroot.client import StreamrootClient

    client, warehouse = StreamrootClient(KEY, CUSTOMER, base_url), Warehouse(database=str(workdir / "current.duckdb"))
    started, rows = time.perf_counter(), 0
    for endpoint in timeseries_endpoints():
        rows += warehouse.replace(endpoint.table, client.fetch_frame(endpoint, window(days)), window(days))
    return {"rows": rows, "wall": time.perf_counter() - started, "http": client.http_seconds}


def path_columnar(base_url: str, workdir: Path, days: int) -> dict:
    from stream_assets.core.warehouse import Warehouse
    from stream_assets.streamroot.assets import replace_timeseries
    from stream_assets.streamroot.client import StreamrootClient

    client, warehouse = StreamrootClient(KEY, CUSTOMER, base_url), Warehouse(database=str(workdir / "columnar.duckdb"))
    started, rows = time.perf_counter(), 0
    for endpoint in timeseries_endpoints():
        rows += replace_timeseries(client, warehouse, endpoint, window(days)).rows
    return {"rows": rows, "wall": time.perf_counter() - started, "http": client.http_seconds}


def path_columnar_disk(index: dict[str, str], workdir: Path, days: int) -> dict:
    from stream_assets.core.staging import Staging, replace_from_staging
    from stream_assets.core.warehouse import Warehouse
    from stream_assets.core.windows import TimeWindow
    from stream_assets.streamroot.columns import timeseries_table
    from stream_assets.streamroot.endpoints import BY_PATH

    warehouse = Warehouse(database=str(workdir / "columnar_disk.duckdb"))
    started, rows = time.perf_counter(), 0
    for endpoint in timeseries_endpoints():
        with Staging(endpoint.table, key=("sr_key", "ts"), api="Streamroot", endpoint=endpoint.path,
                     window=window(days)) as staging:
            for key, file in index.items():
                path, start, end = key.split("|")
                if BY_PATH[path] is endpoint:
                    chunk = TimeWindow(dt.datetime.fromtimestamp(int(start) / 1000, dt.timezone.utc),
                                       dt.datetime.fromtimestamp(int(end) / 1000, dt.timezone.utc))
                    staging.append(timeseries_table(Path(file).read_bytes(), endpoint, chunk))
            with warehouse.get_connection() as conn:
                rows += replace_from_staging(conn, endpoint.table, staging, window(days))
    return {"rows": rows, "wall": time.perf_counter() - started, "http": 0.0}


def path_floor(index: dict[str, str], workdir: Path, days: int) -> dict:
    """DuckDB alone: read_json + unnest + insert, the same files, no checks, no Python per row."""
    import duckdb

    from stream_assets.streamroot.endpoints import BY_PATH

    started, rows = time.perf_counter(), 0
    conn = duckdb.connect(str(workdir / "floor.duckdb"))  # opening and closing (checkpoint) count: durable rows
    for endpoint in timeseries_endpoints():
        series = [name for name, _ in endpoint.columns]
        table = f"floor_{endpoint.name}"
        conn.execute(f"CREATE TABLE {table} (sr_key VARCHAR, ts TIMESTAMP, {', '.join(f'{s} DOUBLE' for s in series)})")
        files = [file for key, file in index.items() if BY_PATH[key.split("|")[0]] is endpoint]
        columns = "{'srKey': 'VARCHAR', " + ", ".join(f"'{s}': 'DOUBLE[][]'" for s in series) + "}"
        unnested = ", ".join(f"unnest({s}) AS {s}" for s in series)
        values = ", ".join(f"{s}[2]" for s in series)
        rows += conn.execute(
            f"INSERT INTO {table} SELECT srKey, make_timestamp(CAST({series[0]}[1] AS BIGINT) * 1000), {values} "
            f"FROM (SELECT srKey, {unnested} FROM read_json(?, columns={columns}, format='array'))", [files]).fetchall()[0][0]
    conn.close()
    return {"rows": rows, "wall": time.perf_counter() - started, "http": 0.0}


def _streamtime(base_url: str, records: int):
    from stream_assets.streamtime.client import StreamtimeClient
    from stream_assets.streamtime.entities import BY_NAME
    from stream_assets.core.windows import TimeWindow

    return (StreamtimeClient(STREAMTIME_KEY, f"{base_url}/st/{records}"), BY_NAME["logged_times"],
            TimeWindow.for_days(STREAMTIME_DAY))


def path_streamtime_current(base_url: str, workdir: Path, records: int) -> dict:
    import pandas as pd

    from stream_assets.core.warehouse import Warehouse

    client, entity, day = _streamtime(base_url, records)
    started = time.perf_counter()
    frame = pd.DataFrame(client.rows(entity, day), columns=entity.table.column_names)
    rows = Warehouse(database=str(workdir / "st_current.duckdb")).replace(entity.table, frame, day)
    return {"rows": rows, "wall": time.perf_counter() - started, "http": client.http_seconds}


def path_streamtime_paged(base_url: str, workdir: Path, records: int) -> dict:
    from stream_assets.core.warehouse import Warehouse
    from stream_assets.streamtime.assets import replace_entity

    client, entity, day = _streamtime(base_url, records)
    warehouse = Warehouse(database=str(workdir / "st_paged.duckdb"))
    started = time.perf_counter()
    _, written = replace_entity(client, warehouse, entity, day)
    return {"rows": written.rows, "wall": time.perf_counter() - started, "http": client.http_seconds}


PATHS = {"current": path_current, "columnar": path_columnar, "columnar_disk": path_columnar_disk,
         "floor": path_floor, "streamtime_current": path_streamtime_current,
         "streamtime_paged": path_streamtime_paged}


def child(name: str, argument: str, workdir: str, size: int) -> None:
    target = json.loads(argument) if argument.startswith("{") else argument
    result = PATHS[name](target, Path(workdir), size)
    print(json.dumps(result))


# --- the parent -------------------------------------------------------------------------------------
def run(command: list[str], env: dict | None = None, cwd: Path = REPO) -> tuple[dict | None, float, float, str]:
    """Run a process; (its last JSON line or {} when it printed none, wall seconds, peak RSS MiB from
    wait4, stderr tail); None instead of the JSON when it failed."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0), err.seek(0)
        lines = [line for line in out.read().decode().splitlines() if line.startswith("{")]
        tail = err.read().decode()[-2000:]
    if process.returncode != 0:
        print(f"  ! {' '.join(command[:6])} failed ({process.returncode}): {tail}", file=sys.stderr)
        return None, wall, usage.ru_maxrss / 1024, tail
    return (json.loads(lines[-1]) if lines else {}), wall, usage.ru_maxrss / 1024, tail


def ensure_dlt() -> Path | None:
    python = DLT_VENV / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import dlt"], capture_output=True).returncode == 0:
        return python
    print(f"installing {DLT_REQUIREMENT} into {DLT_VENV} ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(DLT_VENV)], check=True, capture_output=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", DLT_REQUIREMENT, "requests"], check=True,
                       capture_output=True, timeout=900)
        return python
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"dlt skipped: it could not be installed ({exc})", file=sys.stderr)
        return None


def summary(results: list[tuple[dict, float, float]]) -> dict:
    """Median and range over runs of rows/s end to end, rows/s excluding HTTP, peak RSS."""
    overall = [r["rows"] / r["wall"] for r, _, _ in results]
    no_http = [r["rows"] / (r["wall"] - r["http"]) for r, _, _ in results]
    rss = [peak for _, _, peak in results]
    return {"rows": results[0][0]["rows"], "overall": overall, "no_http": no_http, "rss": rss,
            "http": [r["http"] for r, _, _ in results], "runs": len(results)}


def spread(values: list[float], scale: float = 1000.0, unit: str = "k") -> str:
    if not values:
        return "-"
    middle = statistics.median(values) / scale
    if len(values) == 1:
        return f"{middle:,.0f} {unit}" if middle >= 10 else f"{middle:,.2f} {unit}"
    low, high = min(values) / scale, max(values) / scale
    return f"{middle:,.0f} {unit} ({low:,.0f}-{high:,.0f})" if middle >= 10 else f"{middle:,.2f} {unit} ({low:,.2f}-{high:,.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=4, metavar=("PATH", "ARG", "WORKDIR", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--runs", type=int, default=5, help="runs of each Streamroot path (median and range shown)")
    parser.add_argument("--streamtime", default="10000,100000,1000000", help="search sizes; empty to skip")
    parser.add_argument("--no-dlt", action="store_true")
    parser.add_argument("--no-cli", action="store_true")
    args = parser.parse_args()
    if args.child:
        name, argument, workdir, size = args.child
        child(name, argument, workdir, int(size))
        return

    workdir = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    (workdir / "answers").mkdir()
    index = generate_answers(workdir / "answers", args.days)
    ports = multiprocessing.get_context("spawn").Queue()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(index, ports), daemon=True)
    server.start()
    files_port, emulator_port = ports.get(timeout=120)
    base_url = f"http://127.0.0.1:{files_port}"
    env = {**os.environ, "STREAM_ASSETS_DATA_DIR": str(workdir / "data")}
    table: list[tuple[str, str, str, str, str]] = []
    figures: dict[str, dict] = {}

    def measure_once(name: str, argument: str, size: int, number: int) -> tuple[dict, float, float] | None:
        run_dir = workdir / f"{name}-{size}-{number}"
        run_dir.mkdir()
        result, _, peak, _ = run([sys.executable, __file__, "--child", name, argument, str(run_dir), str(size)], env)
        return None if result is None else (result, 0.0, peak)

    try:
        rows_expected = args.days * 288 * 2 * 4
        print(f"(a)/(b) {args.days} days x 4 Streamroot timeseries x 2 keys = {rows_expected:,} rows, "
              f"{len(index)} answers; {args.runs} run(s) each", file=sys.stderr)
        labels = {"current": "before #13: fetch_frame + Warehouse.replace", "columnar": "assets' path: replace_timeseries",
                  "columnar_disk": "columnar + staging, answers read from disk",
                  "floor": "floor: DuckDB read_json + unnest + insert, from disk"}
        python = None if args.no_dlt else ensure_dlt()
        if python:
            labels["dlt"] = "dlt 1.31 (a page per answer, DuckDB destination)"
        elif not args.no_dlt:
            print("dlt: skipped (it could not be installed)", file=sys.stderr)
        from stream_assets.streamroot.client import MAX_TIMESERIES_SPAN

        runs: dict[str, list] = {name: [] for name in labels}
        failed: set[str] = set()
        for number in range(args.runs):  # interleaved, so that a burst of load on the machine hits every path
            for name, argument in (("current", base_url), ("columnar", base_url),
                                   ("columnar_disk", json.dumps(index)), ("floor", json.dumps(index))):
                if name not in failed:
                    found = measure_once(name, argument, args.days, number)
                    runs[name].append(found) if found else failed.add(name)
            if python and "dlt" not in failed:
                spec = workdir / f"dlt-{number}.json"
                (workdir / f"dlt-{number}").mkdir()
                spec.write_text(json.dumps({
                    "base_url": base_url, "customer": CUSTOMER, "key": KEY, "workdir": str(workdir / f"dlt-{number}"),
                    "endpoints": [[e.name, e.path] for e in timeseries_endpoints()],
                    "chunks": [[c.start_ms, c.end_ms] for c in window(args.days).chunks(MAX_TIMESERIES_SPAN)]}))
                result, _, peak, _ = run([str(python), str(REPO / "bench" / "dlt_streamroot.py"), str(spec)])
                runs["dlt"].append((result, 0.0, peak)) if result else failed.add("dlt")
        figures.update({name: summary(found) if found and name not in failed else None for name, found in runs.items()})
        for name, label in labels.items():
            found = figures.get(name)
            if found is None:
                table.append((label, "failed", "", "", ""))
                continue
            http_column = spread(found["no_http"]) if name in ("current", "columnar", "dlt") else "(no HTTP)"
            table.append((label, f"{found['rows']:,}", spread(found["overall"]), http_column, spread(found["rss"], 1, "MiB")))

        sizes = [int(s) for s in args.streamtime.split(",") if s]
        for size in sizes:
            print(f"(c) Streamtime search of {size:,} records", file=sys.stderr)
            for name, label in (("streamtime_current", "Streamtime before #13: rows() + replace"),
                                ("streamtime_paged", "Streamtime assets' path: replace_entity")):
                once = measure_once(name, base_url, size, 0)
                found = summary([once]) if once else None
                table.append((f"{label}, {size:,} records", f"{found['rows']:,}" if found else "failed",
                              spread(found["overall"]) if found else "", "",
                              spread(found["rss"], 1, "MiB") if found else ""))

        if not args.no_cli:
            print(f"(d) CLI, one partition, {args.runs} run(s) each", file=sys.stderr)
            cli_env = {**env, "STREAM_ASSETS_DATA_DIR": str(workdir / "cli-data"), "STREAMROOT_API_KEY": KEY,
                       "STREAMROOT_CUSTOMER_ID": CUSTOMER, "STREAMROOT_BASE_URL": f"http://127.0.0.1:{emulator_port}"}
            cli_env.pop("DAGSTER_HOME", None)
            noop = workdir / "noop_asset.py"
            noop.write_text("import dagster as dg\n\n\n@dg.asset\ndef noop() -> None:\n    pass\n")
            dagster = str(Path(sys.executable).parent / "dagster")
            for label, command in (
                ("CLI: dagster asset materialize, streamroot/traffic_timeseries, 1 day",
                 [dagster, "asset", "materialize", "-m", "stream_assets", "--select", "streamroot/traffic_timeseries",
                  "--partition", CLI_PARTITION]),
                ("CLI: dagster asset materialize, Dagster's no-op asset", [dagster, "asset", "materialize", "-f", str(noop),
                                                                          "--select", "noop"])):
                walls, peaks = [], []
                for _ in range(args.runs):
                    result, wall, peak, _ = run(command, cli_env, cwd=REPO if "-m" in command else workdir)
                    if result is None:
                        break
                    walls.append(wall)
                    peaks.append(peak)
                if not walls:
                    table.append((label, "failed", "", "", ""))
                    continue
                table.append((label, "", f"{statistics.median(walls):.2f} s ({min(walls):.2f}-{max(walls):.2f}) whole process",
                              "", spread(peaks, 1, "MiB")))
    finally:
        server.terminate()
        shutil.rmtree(workdir, ignore_errors=True)

    header = ("path", "rows", "rows/s end to end", "rows/s excluding HTTP", "peak RSS")
    widths = [max(len(str(row[i])) for row in [header, *table]) for i in range(5)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in table:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")
    current, columnar, floor, dlt = (figures.get(k) for k in ("current", "columnar", "floor", "dlt"))
    if columnar and floor:
        new = statistics.median(columnar["no_http"])
        print(f"\ncolumnar excluding HTTP = {new / statistics.median(floor['overall']):.0%} of the DuckDB floor"
              + (f", {new / statistics.median(dlt['no_http']):.1f} x dlt" if dlt else "")
              + (f", {new / statistics.median(current['no_http']):.1f} x the current path" if current else ""))
        if len(columnar["no_http"]) == len(floor["overall"]) > 1:
            # Run n of every path ran back to back: the ratio within a run shares that moment's machine speed.
            paired = [c / f for c, f in zip(columnar["no_http"], floor["overall"])]
            print(f"per run (paths interleaved): {statistics.median(paired):.0%} of the floor "
                  f"({min(paired):.0%}-{max(paired):.0%})")


if __name__ == "__main__":
    main()
