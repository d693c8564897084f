"""The keyless demo: emulators on 127.0.0.1, the last 7 days materialized, then the Dagster UI.

Run ``python -m stream_assets.demo`` (the README's demo command creates the environment first).
Ctrl-C stops the web UI and the emulators. Real keys in the environment are ignored here: the demo
always talks to the emulators, and writes to ``$STREAM_ASSETS_DATA_DIR`` (default ``./data``).

The console gets one line per API as its assets are materialized, then the UI's address once the web
server answers, then Dagster's log lines at INFO and above; every run's full log is in the UI, and the
web server's own output in ``$STREAM_ASSETS_DATA_DIR/dagster_home/webserver.log``. A second start asks
the Dagster instance which days are already materialized and fetches only the others.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from stream_assets.core.config import data_dir, duckdb_path
from stream_assets.streamapi.assets import LIVE_POLLS, POLL_KEY_FORMAT
from stream_assets.streamapi.emulator import StreamApiEmulator
from stream_assets.streamone.emulator import StreamOneEmulator
from stream_assets.streamroot.emulator import StreamrootEmulator
from stream_assets.streamtime.emulator import StreamtimeEmulator

REPO = Path(__file__).resolve().parents[1]
DEMO_STREAMROOT = ("demo-customer", "demo-streamroot-key")
DEMO_STREAMAPI = ("demo-streamapi-key", "demo-streamapi-secret")
DEMO_STREAMTIME = "demo-streamtime-key"
# A second Streamtime organisation, tenant `demo2`, with data of its own: the UI shows two accounts side by side.
DEMO2_STREAMTIME = "demo2-streamtime-key"
DEMO2_TENANT = """\
# A second Streamtime organisation (the demo's second emulator), beside the default one.
type: stream_assets.components.StreamtimeComponent
attributes:
  tenant: demo2
  api_key: "{{ env.STREAMTIME_DEMO2_API_KEY }}"
  base_url: "{{ env.STREAMTIME_DEMO2_BASE_URL }}"
"""
DEMO_MODULE = "stream_assets_demo"
DEMO_STREAMONE = ("demo-app", "demo-app-psk")  # an application with every token (the emulator's default)
GROUPS = ("streamroot", "streamapi", "streamone", "streamtime")
LIVE_SESSIONS = "streamapi/live_sessions"
ITEM_VIEWS = "streamone/item_views_daily"  # only today's partition can be materialized
LIVE_SENSOR = "streamapi_live_sessions_sensor"
# Switched on by the demo: the live-session poll, and the refresh sensors that keep the closed days of each
# instance equal to its source (README, "Keeping up with the source").
DEMO_SENSORS = (LIVE_SENSOR, "streamtime_refresh_sensor", "streamtime_refresh_sensor_demo2", "streamroot_refresh_sensor",
                "streamapi_refresh_sensor", "streamone_refresh_sensor")
UI_WAIT_SECONDS = 180
# Materialization runs log to the console at this level; their full (DEBUG) logs are in the UI.
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def start_emulators() -> tuple[list, dict[str, str]]:
    """Every emulator on a free port, and the environment that points the assets at them."""
    streamroot = StreamrootEmulator(dict([DEMO_STREAMROOT])).start()
    streamapi = StreamApiEmulator(dict([DEMO_STREAMAPI])).start()
    streamone = StreamOneEmulator().start()
    streamtime = StreamtimeEmulator({DEMO_STREAMTIME: "Demo Agency"}).start()
    streamtime2 = StreamtimeEmulator({DEMO2_STREAMTIME: "Second Agency"}, seed=5).start()
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
        "STREAMTIME_DEMO2_API_KEY": DEMO2_STREAMTIME,
        "STREAMTIME_DEMO2_BASE_URL": streamtime2.base_url,
    }
    return [streamroot, streamapi, streamone, streamtime, streamtime2], env


def demo_location(folder: Path) -> Path:
    """The demo's code location: a dg project in ``folder`` whose defs folder holds the package's default
    instances and the second Streamtime organisation (kept out of the package, so that no deployment gets it)."""
    package = folder / DEMO_MODULE
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(Path(__file__).parent / "defs", package / "defs")
    (package / "defs" / "streamtime" / "demo2").mkdir()
    (package / "defs" / "streamtime" / "demo2" / "defs.yaml").write_text(DEMO2_TENANT)
    (package / "__init__.py").write_text("")
    (package / "definitions.py").write_text(
        '"""The demo\'s code location: the package\'s instances, a second Streamtime organisation, what is shared."""\n'
        "from pathlib import Path\n\nimport dagster as dg\n\n"
        "from stream_assets.celery_job import defs as celery_defs\nfrom stream_assets.core.warehouse import Warehouse\n\n"
        "defs = dg.Definitions.merge(dg.load_from_defs_folder(path_within_project=Path(__file__).parent), celery_defs,\n"
        "                            dg.Definitions(resources={'warehouse': Warehouse()}))\n")
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "{DEMO_MODULE}"\nversion = "0"\n\n[tool.dg]\ndirectory_type = "project"\n\n'
        f'[tool.dg.project]\nroot_module = "{DEMO_MODULE}"\nregistry_modules = ["stream_assets.components"]\n')
    (folder / "workspace.yaml").write_text(
        f"load_from:\n  - python_module:\n      module_name: {DEMO_MODULE}.definitions\n"
        f"      working_directory: {folder}\n      location_name: stream_assets\n")
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return folder


@dataclass
class GroupPlan:
    """What one API's group still needs: daily assets over a range of days, snapshots, one-off partitions."""

    name: str
    total: int  # assets in the group
    daily: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)  # the demo's days some daily asset lacks
    snapshots: list[str] = field(default_factory=list)
    single: list[tuple[str, str]] = field(default_factory=list)  # (asset, partition key)

    @property
    def todo(self) -> int:
        return (len(self.daily) if self.days else 0) + len(self.snapshots) + len(self.single)


def plan(instance, defs, days: list[str]) -> list[GroupPlan]:
    """Per group, what the instance has not materialized yet among the demo's days, snapshots and polls."""
    import dagster as dg

    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    plans = {group: GroupPlan(group, 0) for group in GROUPS}
    for spec in defs.resolve_all_asset_specs():
        # one line per API: its accounts (streamtime, streamtime_demo2) are materialized together
        group, key = plans[spec.group_name.split("_")[0]], spec.key.to_user_string()
        group.total += 1
        if key == ITEM_VIEWS:
            if today not in instance.get_materialized_partitions(spec.key):
                group.single.append((key, today))
        elif key == LIVE_SESSIONS:
            if instance.get_latest_materialization_event(spec.key) is None:
                group.single.append((key, dt.datetime.now(dt.timezone.utc).strftime(POLL_KEY_FORMAT)))
        elif isinstance(spec.partitions_def, dg.TimeWindowPartitionsDefinition):
            group.daily.append(key)
            done = instance.get_materialized_partitions(spec.key)
            group.days = sorted(set(group.days) | {day for day in days if day not in done})
        elif instance.get_latest_materialization_event(spec.key) is None:
            group.snapshots.append(key)
    return [plans[group] for group in GROUPS]


def materialize(instance, defs, group: GroupPlan) -> list[str]:
    """Run what the group needs, in-process against the instance (the runs show in the UI); failed assets."""
    import dagster as dg

    job = defs.resolve_implicit_global_asset_job_def()
    runs = []
    if group.days:  # one single-run backfill over the days still missing
        runs.append((group.daily, None, {"dagster/asset_partition_range_start": group.days[0],
                                         "dagster/asset_partition_range_end": group.days[-1]}))
    if group.snapshots:
        runs.append((group.snapshots, None, {}))
    for key, partition in group.single:
        if key == LIVE_SESSIONS:  # partitioned by poll time: register this first poll
            instance.add_dynamic_partitions(LIVE_POLLS.name, [partition])
        runs.append(([key], partition, {}))
    failed = []
    for keys, partition, tags in runs:
        result = job.execute_in_process(
            instance=instance, asset_selection=[dg.AssetKey.from_user_string(k) for k in keys],
            partition_key=partition, tags={**tags, "stream_assets/demo": "true"}, run_config=QUIET_RUN_CONFIG,
            raise_on_error=False,
        )
        if not result.success:
            failed.extend(keys)
    return failed


def materialize_all(days: list[str]) -> None:
    import dagster as dg

    from importlib import import_module

    defs = import_module(f"{DEMO_MODULE}.definitions").defs
    instance = dg.DagsterInstance.get()
    plans = plan(instance, defs, days)
    total = sum(group.total for group in plans)
    if not any(group.todo for group in plans):
        say(f"all {total} assets are materialized for {days[0]}...{days[-1]} (asked the Dagster instance): nothing to fetch")
        return
    started, done = time.monotonic(), 0
    for group in plans:
        skipped = group.total - group.todo
        if group.todo:
            failed = materialize(instance, defs, group)
            if failed:
                raise SystemExit(f"[demo] {group.name}: {', '.join(failed)} failed; the run's log is in the UI "
                                 f"(dg dev) and in {instance.root_directory}")
        done += group.total
        days_note = (f"days {group.days[0]}...{group.days[-1]}" if group.days else "no day missing")
        note = f", {skipped} already materialized" if skipped else ""
        say(f"{group.name:<10} {group.todo}/{group.total} assets materialized ({days_note}{note}); "
            f"{done}/{total} assets done, {time.monotonic() - started:.0f}s elapsed")


def wait_for_ui(url: str, ui: subprocess.Popen, timeout: float = UI_WAIT_SECONDS) -> None:
    """Poll the web server until it answers (bounded); fail if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ui.poll() is not None:
            raise SystemExit(f"[demo] the web UI exited with code {ui.returncode} (see its log)")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise SystemExit(f"[demo] the web UI did not answer on {url} within {timeout:.0f}s (see its log)")


START_SENSOR = """mutation($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) { __typename ... on PythonError { message } }
}"""


def running_sensors() -> set[str]:
    """The sensors the instance already runs (switched on by an earlier start)."""
    import dagster as dg
    from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType

    states = dg.DagsterInstance.get().all_instigator_state(instigator_type=InstigatorType.SENSOR)
    return {s.name for s in states if s.status == InstigatorStatus.RUNNING}


def start_sensor(url: str, name: str) -> str:
    """Switch a sensor on through the web server's GraphQL API (kept on in the instance)."""
    selector = {"repositoryLocationName": "stream_assets", "repositoryName": "__repository__", "sensorName": name}
    body = json.dumps({"query": START_SENSOR, "variables": {"selector": selector}}).encode()
    request = urllib.request.Request(f"{url}/graphql", body, {"Content-Type": "application/json"})
    deadline = time.monotonic() + 60  # the code location may still be loading
    answer: dict = {}
    while time.monotonic() < deadline:
        with urllib.request.urlopen(request, timeout=30) as reply:
            answer = json.load(reply).get("data", {}).get("startSensor") or {}
        if answer.get("__typename") == "Sensor":
            return "on"
        if "already running" in answer.get("message", ""):
            return "on (already)"
        time.sleep(1)
    return f"not started ({answer.get('message', 'no answer')[:200]})"


def forward_logs(ui: subprocess.Popen, log_path: Path, console: threading.Event) -> None:
    """Copy the web server's output to its log file; once ``console`` is set, also show lines at INFO and
    above (run workers log every event at DEBUG; those stay in the file and in the UI)."""
    with log_path.open("a") as log:
        for line in ui.stdout:
            log.write(line)
            log.flush()
            if console.is_set() and " - DEBUG - " not in ANSI_COLOUR.sub("", line):
                sys.stdout.write(line)
                sys.stdout.flush()


def start_ui(env: dict[str, str], home: Path, location: Path, port: int) -> tuple[subprocess.Popen, threading.Event]:
    # Run from DAGSTER_HOME: started from the repository, Dagster would warn that the dagster.yaml there is not
    # used (it is: the demo copied it into DAGSTER_HOME). Given a workspace file, `dg dev` needs no project folder.
    ui = subprocess.Popen(
        ["dg", "dev", "-w", str(location / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port), "--log-level", "info"],
        cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    console = threading.Event()
    threading.Thread(target=forward_logs, args=(ui, home / "webserver.log", console), daemon=True).start()
    return ui, console


def stop(ui: subprocess.Popen | None) -> None:
    if ui is None or ui.poll() is not None:
        return
    ui.send_signal(signal.SIGINT)
    try:
        ui.wait(timeout=30)
    except subprocess.TimeoutExpired:
        ui.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7, help="closed days to materialize (default 7)")
    parser.add_argument("--port", type=int, default=3000, help="web UI port on 127.0.0.1 (default 3000)")
    parser.add_argument("--no-ui", action="store_true", help="materialize, then stop (no web UI)")
    args = parser.parse_args(argv)
    # Stop cleanly on Ctrl-C and on SIGTERM, even when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()

    home = data_dir() / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    emulators, emulator_env = start_emulators()
    location = demo_location(data_dir() / "demo_location")
    # The materializations run in this process, the UI in a child: both read the same environment.
    os.environ.update(DAGSTER_HOME=str(home), STREAM_ASSETS_DATA_DIR=str(data_dir()), **emulator_env)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    say("emulators: " + ", ".join(f"{e.name} {e.root_url}" for e in emulators))
    ui = None
    try:
        today = dt.datetime.now(dt.timezone.utc).date()
        days = [(today - dt.timedelta(days=n)).isoformat() for n in range(args.days, 0, -1)]
        if not args.no_ui:  # the web server starts while the assets materialize
            ui, console = start_ui(env, home, location, args.port)
        materialize_all(days)
        if args.no_ui:
            say(f"done in {time.monotonic() - started:.0f}s; warehouse: {duckdb_path()}")
            return
        url = f"http://127.0.0.1:{args.port}"
        wait_for_ui(url, ui)
        running = running_sensors()
        states = {name: "on (already)" if name in running else start_sensor(url, name) for name in DEMO_SENSORS}
        sensor = states[LIVE_SENSOR]
        refreshing = sum(state.startswith("on") for name, state in states.items() if name != LIVE_SENSOR)
        say(f"ready in {time.monotonic() - started:.0f}s")
        print(
            f"\n[demo] Dagster UI: {url}  (Ctrl-C stops the UI and the emulators)\n"
            f"[demo]   Assets > groups streamroot, streamtime, streamapi, streamone: partitions, metadata and checks of the last {args.days} days\n"
            f"[demo]   and streamtime_demo2: a second Streamtime organisation (tenant demo2), with a budget of its own\n"
            f"[demo]   Runs: the demo's materializations; Automation: the live-session sensor ({sensor}) and the refresh sensors "
            f"({refreshing} of {len(DEMO_SENSORS) - 1} on), other sensors and schedules (off)\n"
            f"[demo]   Warehouse: {duckdb_path()}  (open it read-only with duckdb once the UI is stopped)\n"
            f"[demo]   Dagster's log lines at INFO and above follow; all of them: {home / 'webserver.log'}\n",
            flush=True,
        )
        console.set()
        ui.wait()
    except KeyboardInterrupt:
        say("stopping")
    finally:
        stop(ui)
        for emulator in emulators:
            emulator.stop()


if __name__ == "__main__":
    main()
