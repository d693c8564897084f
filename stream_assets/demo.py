"""The keyless demo: emulators on 127.0.0.1, the last 7 days materialized, then the Dagster UI.

Run ``python -m stream_assets.demo`` (the README's demo command creates the environment first).
Ctrl-C stops the web UI and the emulators. Real keys in the environment are ignored here: the demo
always talks to the emulators, and writes to ``$STREAM_ASSETS_DATA_DIR`` (default ``./data``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from stream_assets.core.config import data_dir, duckdb_path
from stream_assets.streamroot.emulator import StreamrootEmulator

REPO = Path(__file__).resolve().parents[1]
DEMO_STREAMROOT = {"demo-customer": "demo-streamroot-key"}


def start_emulators() -> tuple[list, dict[str, str]]:
    """Every emulator on a free port, and the environment that points the assets at them."""
    streamroot = StreamrootEmulator(DEMO_STREAMROOT).start()
    (customer, key), = DEMO_STREAMROOT.items()
    env = {
        "STREAMROOT_API_KEY": key,
        "STREAMROOT_CUSTOMER_ID": customer,
        "STREAMROOT_BASE_URL": streamroot.base_url,
    }
    return [streamroot], env


# (asset selection, partitioned?) per API; partitioned groups get the last 7 closed days.
MATERIALIZATIONS = [("group:streamroot", True)]


def materialize(env: dict[str, str], first: dt.date, last: dt.date) -> None:
    for selection, partitioned in MATERIALIZATIONS:
        command = ["dagster", "asset", "materialize", "-m", "stream_assets", "--select", selection]
        if partitioned:
            command += ["--partition-range", f"{first}...{last}"]
        print(f"[demo] materializing {selection} {first}...{last}" if partitioned else f"[demo] materializing {selection}",
              flush=True)
        started = time.monotonic()
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
            raise SystemExit(f"[demo] materializing {selection} failed (see above)")
        print(f"[demo]   done in {time.monotonic() - started:.0f}s", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=7, help="closed days to materialize (default 7)")
    parser.add_argument("--port", type=int, default=3000, help="web UI port on 127.0.0.1 (default 3000)")
    parser.add_argument("--no-ui", action="store_true", help="materialize, then stop (no web UI)")
    args = parser.parse_args(argv)
    # Stop cleanly on Ctrl-C and on SIGTERM, even when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    home = data_dir() / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    emulators, emulator_env = start_emulators()
    env = {**os.environ, **emulator_env, "DAGSTER_HOME": str(home), "STREAM_ASSETS_DATA_DIR": str(data_dir())}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for emulator in emulators:
        print(f"[demo] {emulator.name} emulator on {emulator.root_url}", flush=True)
    ui = None
    try:
        today = dt.datetime.now(dt.timezone.utc).date()
        materialize(env, today - dt.timedelta(days=args.days), today - dt.timedelta(days=1))
        if args.no_ui:
            return
        ui = subprocess.Popen(["dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.port)],
                              cwd=REPO, env=env)
        print(
            f"\n[demo] Dagster UI: http://127.0.0.1:{args.port}  (Ctrl-C stops the UI and the emulators)\n"
            f"[demo]   Assets > group streamroot: partitions, metadata and checks of the last {args.days} days\n"
            f"[demo]   Runs: the demo's materializations; Automation: the schedules (off by default)\n"
            f"[demo]   Warehouse: {duckdb_path()}  (open it read-only with duckdb once the UI is stopped)\n",
            flush=True,
        )
        ui.wait()
    except KeyboardInterrupt:
        print("\n[demo] stopping", flush=True)
    finally:
        if ui is not None and ui.poll() is None:
            ui.send_signal(signal.SIGINT)
            try:
                ui.wait(timeout=30)
            except subprocess.TimeoutExpired:
                ui.kill()
        for emulator in emulators:
            emulator.stop()


if __name__ == "__main__":
    main()
