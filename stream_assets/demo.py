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
from stream_assets.streamapi.assets import LIVE_POLLS, POLL_KEY_FORMAT
from stream_assets.streamapi.emulator import StreamApiEmulator
from stream_assets.streamone.emulator import StreamOneEmulator
from stream_assets.streamtime.emulator import StreamtimeEmulator
from stream_assets.streamroot.emulator import StreamrootEmulator

REPO = Path(__file__).resolve().parents[1]
DEMO_STREAMROOT = ("demo-customer", "demo-streamroot-key")
DEMO_STREAMAPI = ("demo-streamapi-key", "demo-streamapi-secret")
DEMO_STREAMTIME = "demo-streamtime-key"
DEMO_STREAMONE = ("demo-app", "demo-app-psk")  # an application with every token (the emulator's default)


def start_emulators() -> tuple[list, dict[str, str]]:
    """Every emulator on a free port, and the environment that points the assets at them."""
    streamroot = StreamrootEmulator(dict([DEMO_STREAMROOT])).start()
    streamapi = StreamApiEmulator(dict([DEMO_STREAMAPI])).start()
    streamone = StreamOneEmulator().start()
    streamtime = StreamtimeEmulator({DEMO_STREAMTIME: "Demo Agency"}).start()
    env = {
        "STREAMROOT_CUSTOMER_ID": DEMO_STREAMROOT[0],
        "STREAMROOT_API_KEY": DEMO_STREAMROOT[1],
        "STREAMROOT_BASE_URL": streamroot.base_url,
        "STREAMAPI_KEY": DEMO_STREAMAPI[0],
        "STREAMAPI_SECRET": DEMO_STREAMAPI[1],
        "STREAMAPI_BASE_URL": streamapi.base_url,
        "STREAMONE_BASE_URL": streamone.root_url,
        "STREAMONE_AUTH_TYPE": "application",
        "STREAMONE_ACTOR_ID": DEMO_STREAMONE[0],
        "STREAMONE_PSK": DEMO_STREAMONE[1],
        "STREAMTIME_API_KEY": DEMO_STREAMTIME,
        "STREAMTIME_BASE_URL": streamtime.base_url,
    }
    return [streamroot, streamapi, streamone, streamtime], env


def materializations(first: dt.date, last: dt.date, poll_key: str) -> list[list[str]]:
    """`dagster asset materialize` arguments: the daily assets over the demo's days in one run, the snapshots
    in another (fewer CLI start-ups), then the two partitions that only exist now."""
    import dagster as dg

    from stream_assets.definitions import defs

    daily, snapshots = [], []
    for spec in defs.resolve_all_asset_specs():
        key = spec.key.to_user_string()
        if isinstance(spec.partitions_def, dg.DailyPartitionsDefinition) and key != "streamone/item_views_daily":
            daily.append(key)
        elif spec.partitions_def is None:
            snapshots.append(key)
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    return [
        ["--select", ",".join(sorted(daily)), "--partition-range", f"{first}...{last}"],
        ["--select", ",".join(sorted(snapshots))],
        ["--select", "streamapi/live_sessions", "--partition", poll_key],
        # views can only be snapshotted for today: the API keeps no history of them
        ["--select", "streamone/item_views_daily", "--partition", today],
    ]


def dagster(env: dict[str, str], *args: str) -> None:
    print(f"[demo] dagster {' '.join(args)}", flush=True)
    started = time.monotonic()
    result = subprocess.run(["dagster", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"[demo] `dagster {' '.join(args)}` failed (see above)")
    print(f"[demo]   done in {time.monotonic() - started:.0f}s", flush=True)


def materialize(env: dict[str, str], first: dt.date, last: dt.date) -> None:
    import dagster as dg

    # The live-session snapshots are partitioned by poll time: register this first poll with the instance.
    poll_key = dt.datetime.now(dt.timezone.utc).strftime(POLL_KEY_FORMAT)
    dg.DagsterInstance.get().add_dynamic_partitions(LIVE_POLLS.name, [poll_key])
    for args in materializations(first, last, poll_key):
        dagster(env, "asset", "materialize", "-m", "stream_assets", *args)


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
    os.environ.update(DAGSTER_HOME=str(home), STREAM_ASSETS_DATA_DIR=str(data_dir()))
    env = {**os.environ, **emulator_env}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for emulator in emulators:
        print(f"[demo] {emulator.name} emulator on {emulator.root_url}", flush=True)
    ui = None
    try:
        today = dt.datetime.now(dt.timezone.utc).date()
        materialize(env, today - dt.timedelta(days=args.days), today - dt.timedelta(days=1))
        # The live-session sensor polls the live list every minute and records changes.
        dagster(env, "sensor", "start", "streamapi_live_sessions_sensor", "-w", "workspace.yaml")
        if args.no_ui:
            return
        ui = subprocess.Popen(["dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(args.port)],
                              cwd=REPO, env=env)
        print(
            f"\n[demo] Dagster UI: http://127.0.0.1:{args.port}  (Ctrl-C stops the UI and the emulators)\n"
            f"[demo]   Assets > groups streamroot, streamtime, streamapi, streamone: partitions, metadata and checks of the last {args.days} days\n"
            f"[demo]   Runs: the demo's materializations; Automation: the live-session sensor (on), other sensors and schedules (off)\n"
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
