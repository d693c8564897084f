"""Several accounts per API: the code location loaded with two tenants of each API beside the default instances,
each tenant against an emulator of its own, materialized concurrently; Streamtime budgets per account."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pytest

from stream_assets.components import forget_instances
from stream_assets.core.tenants import TenantNameError
import stream_assets
from stream_assets.core.warehouse import Warehouse
from stream_assets.streamapi.emulator import StreamApiEmulator
from stream_assets.streamone.emulator import TOKENS, Role, StreamOneEmulator
from stream_assets.streamroot.emulator import StreamrootEmulator
from stream_assets.streamtime.emulator import StreamtimeEmulator
from stream_assets.streamtime.entities import ENTITIES
from stream_assets_tests.conftest import VENV_BIN
from stream_assets_tests.streamtime.expect import expected_rows, key_rows

DAY = "2026-03-03"
TENANTS = ("north", "south")
APIS = ("streamtime", "streamroot", "streamapi", "streamone")
DEFAULTS = Path(stream_assets.__file__).parent / "defs"
COMPONENTS = {"streamtime": "StreamtimeComponent", "streamroot": "StreamrootComponent",
              "streamapi": "StreamAPIComponent", "streamone": "StreamOneComponent"}


def accounts_project(tmp_path: Path, instances: dict[tuple[str, str], dict], with_defaults: bool = False) -> Path:
    """A dg project of stream_assets' components: ``defs/<api>/<tenant>/defs.yaml`` per account (and the
    package's ``default/`` folders, with ``with_defaults``)."""
    module = f"accounts_{uuid.uuid4().hex[:8]}"
    root = tmp_path / module
    (root / module).mkdir(parents=True)
    (root / module / "__init__.py").write_text("")
    (root / module / "definitions.py").write_text(
        "from pathlib import Path\nimport dagster as dg\nfrom stream_assets.core.warehouse import Warehouse\n\n"
        "defs = dg.Definitions.merge(dg.load_from_defs_folder(path_within_project=Path(__file__).parent),\n"
        "                            dg.Definitions(resources={'warehouse': Warehouse()}))\n")
    (root / module / "defs").mkdir()
    if with_defaults:  # the package's default instances, beside the accounts
        for api in APIS:
            shutil.copytree(DEFAULTS / api / "default", root / module / "defs" / api / "default")
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "{module}"
        version = "0"
        [tool.dg]
        directory_type = "project"
        [tool.dg.project]
        root_module = "{module}"
        registry_modules = ["stream_assets.components"]
        """))
    for (api, tenant), attributes in instances.items():
        folder = root / module / "defs" / api / tenant
        folder.mkdir(parents=True)
        lines = [f"type: stream_assets.components.{COMPONENTS[api]}", "attributes:", f"  tenant: {tenant}"]
        lines += [f'  {name}: "{value}"' for name, value in attributes.items()]
        (folder / "defs.yaml").write_text("\n".join(lines) + "\n")
    sys.path.insert(0, str(root))
    return root


def load_with(root: Path) -> dg.Definitions:
    """The code location as ``definitions.py`` builds it, on the defs folder of ``root``."""
    return dg.Definitions.merge(dg.load_from_defs_folder(path_within_project=root),
                                dg.Definitions(resources={"warehouse": Warehouse()}))


def env_secret(monkeypatch, name: str, value: str) -> str:
    monkeypatch.setenv(name, value)
    return "{{ env." + name + " }}"


@pytest.fixture
def emulators():
    """Two emulators of each API, each with credentials (and data) of its own."""
    every = [Role(frozenset(TOKENS.values()))]
    started = {}
    for n, tenant in enumerate(TENANTS):
        started[("streamtime", tenant)] = StreamtimeEmulator({f"st-{tenant}-key": tenant.title()}, seed=20 + n,
                                                             request_limits="200/60").start()
        started[("streamroot", tenant)] = StreamrootEmulator({f"cust-{tenant}": f"sr-{tenant}-key"}, seed=30 + n).start()
        started[("streamapi", tenant)] = StreamApiEmulator({f"sa-{tenant}-key": f"sa-{tenant}-secret"}, seed=40 + n).start()
        started[("streamone", tenant)] = StreamOneEmulator(applications={f"app-{tenant}": (f"psk-{tenant}", every)},
                                                           seed=50 + n).start()
    yield started
    for emulator in started.values():
        emulator.stop()


def test_two_tenants_of_each_api_beside_the_defaults_materialize_concurrently(tmp_path, monkeypatch, emulators, warehouse):
    instances = {}
    for tenant in TENANTS:
        up = tenant.upper()
        instances[("streamtime", tenant)] = {
            "api_key": env_secret(monkeypatch, f"STREAMTIME_{up}_API_KEY", f"st-{tenant}-key"),
            "base_url": emulators[("streamtime", tenant)].base_url, "rate_limits": "200/60,720/3600"}
        instances[("streamroot", tenant)] = {
            "api_key": env_secret(monkeypatch, f"STREAMROOT_{up}_API_KEY", f"sr-{tenant}-key"),
            "customer_id": f"cust-{tenant}", "base_url": emulators[("streamroot", tenant)].base_url}
        instances[("streamapi", tenant)] = {
            "key": env_secret(monkeypatch, f"STREAMAPI_{up}_KEY", f"sa-{tenant}-key"),
            "secret": env_secret(monkeypatch, f"STREAMAPI_{up}_SECRET", f"sa-{tenant}-secret"),
            "base_url": emulators[("streamapi", tenant)].base_url}
        instances[("streamone", tenant)] = {
            "actor_id": f"app-{tenant}", "psk": env_secret(monkeypatch, f"STREAMONE_{up}_PSK", f"psk-{tenant}"),
            "base_url": emulators[("streamone", tenant)].root_url}
    defs = load_with(accounts_project(tmp_path, instances, with_defaults=True))
    repository = defs.get_repository_def()
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}

    # Names: the default instances unchanged, each tenant's under <api>_<tenant>.
    for api in APIS:
        default = {k for k in keys if k.split("/")[0] == api}
        assert default, api
        for tenant in TENANTS:
            assert {k.replace(f"{api}_{tenant}/", f"{api}/", 1) for k in keys if k.startswith(f"{api}_{tenant}/")} == default
    jobs = {job.name for job in repository.get_all_jobs()}
    assert {"streamtime_daily", "streamtime_daily_north", "streamroot_daily_south", "streamone_items_daily_north"} <= jobs
    sensors = {sensor.name for sensor in repository.sensor_defs}
    assert {"streamtime_budget_sensor_north", "streamapi_live_sessions_sensor_south"} <= sensors
    schedules = {schedule.name for schedule in repository.schedule_defs}
    assert {"streamroot_hourly_north", "streamtime_daily_schedule_south"} <= schedules
    for spec in repository.asset_graph.get_all_asset_keys():
        node = repository.asset_graph.get(spec)
        if node.is_materializable:
            assert {"dagster/table_name", "dagster/column_schema"} <= set(node.metadata), spec
    assert repository.asset_graph.get(dg.AssetKey(["streamtime_north", "jobs"])).group_name == "streamtime_north"
    # Secrets stay environment references (the UI shows the variable's name, never the value).
    assert defs.resources["streamtime_north"].api_key == "STREAMTIME_NORTH_API_KEY"

    # One day of every daily asset of every tenant, all eight runs at once.
    all_assets = list(defs.assets)
    resources = {**{f"{api}_{t}": defs.resources[f"{api}_{t}"] for api in APIS for t in TENANTS}, "warehouse": warehouse}

    def run(api: str, tenant: str) -> dg.ExecuteInProcessResult:
        # the daily assets a backfill covers (StreamOne's view snapshot takes only today, so it has no policy)
        selection = [a.key for a in all_assets if a.key.path[0] == f"{api}_{tenant}" and a.backfill_policy is not None]
        chosen = [a for a in all_assets if a.key in selection]
        return dg.materialize(chosen, resources={k: v for k, v in resources.items()
                                                 if k in ("warehouse", f"{api}_{tenant}")}, partition_key=DAY)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = {(api, t): pool.submit(run, api, t) for api in APIS for t in TENANTS}
        results = {key: future.result() for key, future in results.items()}
    assert all(result.success for result in results.values())

    tables = warehouse.query("SELECT table_schema, table_name FROM information_schema.tables")
    schemas = set(tables.table_schema)
    assert {f"{api}_{t}" for api in APIS for t in TENANTS} <= schemas and not schemas & set(APIS)
    for tenant in TENANTS:
        emulator = emulators[("streamtime", tenant)]
        for entity in (e for e in ENTITIES if e.partitioned):
            rows = warehouse.query(f"SELECT * FROM streamtime_{tenant}.{entity.name}")
            day = dt.date.fromisoformat(DAY)
            assert key_rows(rows, entity) == expected_rows(emulator, entity, day, day), (tenant, entity.name)
        # Each emulator saw only its own credential.
        assert {r.header("Authorization") for r in emulator.requests} == {f"Bearer st-{tenant}-key"}
        assert {r.header("Authorization") for r in emulators[("streamroot", tenant)].requests} == {f"API-Key sr-{tenant}-key"}
        assert {r.query.get("key", [None])[0] for r in emulators[("streamapi", tenant)].requests} == {f"sa-{tenant}-key"}
        assert {r.query.get("application", [None])[0] for r in emulators[("streamone", tenant)].requests} == {f"app-{tenant}"}
        for api in ("streamroot", "streamapi", "streamone"):
            counts = [warehouse.query(f"SELECT count(*) AS n FROM {api}_{tenant}.{name}").n.item()
                      for name in tables[tables.table_schema == f"{api}_{tenant}"].table_name]
            assert counts and sum(counts) > 0, (api, tenant)
    north, south = (warehouse.query(f"SELECT id FROM streamtime_{t}.logged_times ORDER BY id").id.tolist() for t in TENANTS)
    assert north and south and north != south  # different organisations, different data


def waited(result: dg.ExecuteInProcessResult) -> float:
    return sum(m.metadata["seconds_waited_for_budget"].value for m in result.get_asset_materialization_events()
               for m in [m.materialization] if "seconds_waited_for_budget" in m.metadata)


def test_streamtime_budgets_belong_to_the_key_not_the_tenant(tmp_path, monkeypatch, warehouse):
    # 25 requests per 10 s: one organisation's day (21 requests at most) fits, two days do not.
    limits = "25/10"
    with StreamtimeEmulator({"key-a": "A", "key-b": "B"}, seed=8, request_limits=limits) as emulator:
        def attributes(key: str) -> dict:
            return {"api_key": env_secret(monkeypatch, f"ST_{key.upper().replace('-', '_')}", key),
                    "base_url": emulator.base_url, "rate_limits": f"{limits},720/3600"}
        root = accounts_project(tmp_path, {("streamtime", "a"): attributes("key-a"), ("streamtime", "b"): attributes("key-b"),
                                           ("streamtime", "a_again"): attributes("key-a")})
        defs = dg.load_from_defs_folder(path_within_project=root)

        def run(tenant: str) -> dg.ExecuteInProcessResult:
            chosen = [a for a in defs.assets if a.key.path[0] == f"streamtime_{tenant}" and a.partitions_def is not None]
            return dg.materialize(chosen, partition_key=DAY,
                                  resources={"warehouse": warehouse, f"streamtime_{tenant}": defs.resources[f"streamtime_{tenant}"]})

        def side_by_side(*tenants: str) -> list[dg.ExecuteInProcessResult]:
            with ThreadPoolExecutor(max_workers=len(tenants)) as pool:
                return [f.result() for f in [pool.submit(run, t) for t in tenants]]

        different_keys = side_by_side("a", "b")
        assert all(r.success for r in different_keys)
        assert [waited(r) for r in different_keys] == [0.0, 0.0]  # neither waited for the other's budget
        emulator.clear()
        time_to_forget = 10.5  # let the window of the first pair pass
        import time
        time.sleep(time_to_forget)
        one_key = side_by_side("a", "a_again")
        assert all(r.success for r in one_key)
        assert sum(waited(r) for r in one_key) > 0  # one budget: together they had to wait
        assert emulator.counters["throttled"] == 0  # and the server never refused one


def test_a_bad_tenant_name_or_two_instances_of_one_tenant_are_refused_at_load(tmp_path, monkeypatch):
    key = env_secret(monkeypatch, "ST_KEY", "k")
    bad = accounts_project(tmp_path / "bad", {("streamtime", "acme"): {"api_key": key}})
    yaml = bad / bad.name / "defs" / "streamtime" / "acme" / "defs.yaml"
    yaml.write_text(yaml.read_text().replace("tenant: acme", "tenant: Acme-Corp"))
    with pytest.raises(Exception) as caught:
        dg.load_from_defs_folder(path_within_project=bad)
    refusal = next(e for e in _chain(caught.value) if isinstance(e, TenantNameError))
    assert "tenant 'Acme-Corp' must be lowercase letters, digits and underscores" in str(refusal)
    twice = accounts_project(tmp_path / "twice", {("streamtime", "acme"): {"api_key": key},
                                                  ("streamtime", "acme_copy"): {"api_key": key}})
    yaml = twice / twice.name / "defs" / "streamtime" / "acme_copy" / "defs.yaml"
    yaml.write_text(yaml.read_text().replace("tenant: acme_copy", "tenant: acme"))
    forget_instances()
    with pytest.raises(Exception) as caught:
        dg.load_from_defs_folder(path_within_project=twice)
    assert any("two instances with tenant 'acme'" in str(e) for e in _chain(caught.value))


def _chain(error: BaseException):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def test_dg_lists_checks_and_scaffolds_tenants(tmp_path):
    root = accounts_project(tmp_path, {})
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(root)

    def dg_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(VENV_BIN / "dg"), *args], cwd=root, env=env, capture_output=True, text=True,
                              timeout=240)

    scaffolded = dg_cli("scaffold", "defs", "stream_assets.components.StreamtimeComponent", "streamtime/acme")
    assert scaffolded.returncode == 0, scaffolded.stderr[-2000:]
    written = (root / root.name / "defs" / "streamtime" / "acme" / "defs.yaml").read_text()
    assert "tenant: acme" in written and "{{ env.STREAMTIME_ACME_API_KEY }}" in written
    listed = dg_cli("list", "defs")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "streamtime_acme/logged_times" in listed.stdout and "streamtime_daily_acme" in listed.stdout
    checked = dg_cli("check", "defs")
    assert checked.returncode == 0, checked.stderr[-2000:]
