"""A second StreamOne account (tenant ``acme``): its own names, schema, credential and settings."""

import datetime as dt
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest

from stream_assets.core.errors import SettingError
from stream_assets.core.tenants import Tenant
from stream_assets.core.warehouse import Warehouse
from stream_assets.streamone.assets import COLUMN_DESCRIPTIONS, ITEM_VIEWS, ITEMS, LIVESTREAMS
from stream_assets.streamone.definitions import build_defs
from stream_assets.streamone.definitions import defs as default_defs
from stream_assets.streamone.emulator import TOKENS, Role, StreamOneEmulator
from stream_assets.streamone.resources import StreamOneResource
from stream_assets_tests.conftest import STREAMONE_APP, STREAMONE_APP_PSK

UTC = dt.timezone.utc
ACME = Tenant("streamone", "acme")
ACME_APP, ACME_PSK = "app-acme0001", "acme-psk-do-not-log"
ACME_ACCOUNTS = {"acc-acme00001": "cust-acme001", "acc-acme00002": "cust-acme001"}
TABLES = {table.name: table for table in (ITEMS, LIVESTREAMS, ITEM_VIEWS)}
START_DATE = "2026-06-01"


def key(table: str) -> dg.AssetKey:
    return dg.AssetKey([ACME.prefix, table])


@pytest.fixture(scope="module")
def acme_emulator():
    """The second account's StreamOne: another application, key, accounts and seed than the default fixture's."""
    with StreamOneEmulator(applications={ACME_APP: (ACME_PSK, [Role(frozenset(TOKENS.values()))])},
                           accounts=ACME_ACCOUNTS, seed=31) as emulator:
        yield emulator


@pytest.fixture
def acme(acme_emulator):
    acme_emulator.clear()
    yield acme_emulator
    acme_emulator.clear()


@pytest.fixture
def default_account_in_environment(streamone, monkeypatch):
    """The default instance's variables point at the default account: a tenant must never fall back to them."""
    monkeypatch.setenv("STREAMONE_BASE_URL", streamone.root_url)
    monkeypatch.setenv("STREAMONE_ACTOR_ID", STREAMONE_APP)
    monkeypatch.setenv("STREAMONE_PSK", STREAMONE_APP_PSK)
    return streamone


def acme_resource(emulator, **fields) -> StreamOneResource:
    return StreamOneResource(actor_id=ACME_APP, psk=ACME_PSK, **{"base_url": emulator.root_url, **fields})


def materialize(defs: dg.Definitions, resource: StreamOneResource, warehouse, table: str, **kwargs):
    return dg.materialize(list(defs.assets), resources={ACME.resource_key: resource, "warehouse": warehouse},
                          selection=[key(table)], **kwargs)


def a_day_with_items(emulator, accounts=None) -> str:
    days = sorted({i["datecreated"].date().isoformat() for i in emulator.items()
                   if i["datecreated"].date().isoformat() >= START_DATE and (not accounts or i["account"]["id"] in accounts)})
    return days[len(days) // 2]


def expected_items(emulator, day: str, accounts=None) -> pd.DataFrame:
    """The emulator's items created on ``day`` as ``items`` stores them (views aside: they grow by the second)."""
    def seconds(duration: str) -> float:
        hours, minutes, rest = duration.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(rest)

    start = dt.datetime.fromisoformat(day).replace(tzinfo=UTC)
    items = sorted((i for i in emulator.items() if start <= i["datecreated"] < start + dt.timedelta(days=1)
                    and (not accounts or i["account"]["id"] in accounts)), key=lambda i: i["id"])
    return pd.DataFrame([{
        "id": i["id"], "title": i["title"], "type": i["type"], "description": i["description"],
        "duration": seconds(i["duration"]), "datecreated": pd.Timestamp(i["datecreated"]).tz_localize(None),
        "dateaired": pd.Timestamp(i["dateaired"]).tz_localize(None), "account_id": i["account"]["id"],
        "account_name": i["account"]["name"], "archived": i["archived"]} for i in items])


def stored_items(warehouse) -> pd.DataFrame:
    columns = ", ".join(c for c in ITEMS.column_names if c != "views")
    return warehouse.query(f"SELECT {columns} FROM streamone_acme.items ORDER BY id")


def query(request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.raw_query, keep_blank_values=True).items()}


def test_a_tenant_writes_its_own_account_into_its_own_schema(default_account_in_environment, acme, warehouse):
    streamone = default_account_in_environment
    defs = build_defs(ACME, acme_resource(acme), start_date=START_DATE)
    assert {a.key for a in defs.assets} == {key(table) for table in TABLES}
    day, today = a_day_with_items(acme), dt.datetime.now(UTC).date().isoformat()

    results = [materialize(defs, acme_resource(acme), warehouse, "items", partition_key=day),
               materialize(defs, acme_resource(acme), warehouse, "item_views_daily", partition_key=today),
               materialize(defs, acme_resource(acme), warehouse, "livestreams")]
    assert all(result.success for result in results)
    (check,) = results[0].get_asset_check_evaluations()
    assert check.passed and check.asset_key == key("items")

    expected = expected_items(acme, day)
    assert len(expected) and not set(expected.id) & {i["id"] for i in streamone.items()}  # the accounts differ
    pd.testing.assert_frame_equal(stored_items(warehouse), expected, check_dtype=False)
    views = warehouse.query("SELECT * FROM streamone_acme.item_views_daily")
    assert set(views.item_id) == {i["id"] for i in acme.items()} and set(views.day.dt.date.astype(str)) == {today}
    streams = warehouse.query("SELECT id, title, account_id FROM streamone_acme.livestreams ORDER BY id")
    assert streams.to_dict("records") == sorted(({"id": s["id"], "title": s["title"], "account_id": s["account"]["id"]}
                                                 for s in acme.livestreams()), key=lambda s: s["id"])

    tables = warehouse.query("SELECT table_schema, table_name FROM information_schema.tables")
    assert set(zip(tables.table_schema, tables.table_name)) == {("streamone_acme", table) for table in TABLES}
    assert "streamone" not in set(warehouse.query("SELECT schema_name FROM information_schema.schemata").schema_name)

    assert acme.requests and streamone.requests == []  # the default account's API was never asked
    assert {(query(r)["authentication_type"], query(r)["application"]) for r in acme.requests} == {("application", ACME_APP)}
    for result in results:
        assert all(ACME_PSK not in str(event) for event in result.all_events)


def test_a_tenant_names_its_jobs_schedules_partitions_and_tables():
    defs = build_defs(ACME, StreamOneResource(actor_id="a", psk="p"), start_date=START_DATE)
    names = [job.name for job in defs.jobs] + [s.name for s in defs.schedules] + [s.name for s in defs.sensors or []]
    assert names == ["streamone_items_daily_acme", "streamone_snapshots_acme", "streamone_refresh_acme",
                     "streamone_items_daily_acme", "streamone_daily_snapshot_acme", "streamone_refresh_sensor_acme"]
    assert all(name.endswith("_acme") for name in names)
    assert set(defs.resources) == {"streamone_acme"}
    for asset in defs.assets:
        table = asset.key.path[-1]
        assert asset.group_names_by_key[asset.key] == "streamone_acme"
        assert asset.op.name == f"streamone_acme__{table}" and asset.op.pool is None  # only Streamtime has a pool
        assert asset.required_resource_keys - {"io_manager"} == {"streamone_acme", "warehouse"}
        if asset.partitions_def is not None:
            assert asset.partitions_def.start.date().isoformat() == START_DATE
        for spec in asset.specs:
            assert spec.metadata["dagster/table_name"] == f"streamone_acme.{table}"
            columns = spec.metadata["dagster/column_schema"].columns
            assert [c.name for c in columns] == TABLES[table].column_names == list(COLUMN_DESCRIPTIONS[table])
            assert all(c.description for c in columns), table
    merged = dg.Definitions.merge(defs, dg.Definitions(resources={"warehouse": Warehouse()}))
    assert merged.resolve_job_def("streamone_items_daily_acme").asset_layer.selected_asset_keys == {key("items")}
    assert merged.resolve_job_def("streamone_snapshots_acme").asset_layer.selected_asset_keys == {
        key("item_views_daily"), key("livestreams")}


def test_the_default_instance_and_a_tenant_load_side_by_side():
    defs = dg.Definitions.merge(default_defs, build_defs(ACME, StreamOneResource(actor_id="a", psk="p")),
                                dg.Definitions(resources={"warehouse": Warehouse()}))
    dg.Definitions.validate_loadable(defs)
    assert {k.path[0] for k in defs.resolve_asset_graph().get_all_asset_keys()} == {"streamone", "streamone_acme"}
    assert {a.key for a in default_defs.assets} == {dg.AssetKey(["streamone", table]) for table in TABLES}
    assert [job.name for job in default_defs.jobs] == ["streamone_items_daily", "streamone_snapshots", "streamone_refresh"]
    assert [s.name for s in default_defs.schedules] == ["streamone_items_daily", "streamone_daily_snapshot"]
    assert set(default_defs.resources) == {"streamone"}
    assert defs.resolve_job_def("streamone_snapshots").asset_layer.selected_asset_keys == {
        dg.AssetKey(["streamone", "item_views_daily"]), dg.AssetKey(["streamone", "livestreams"])}
    for asset in default_defs.assets:
        assert asset.group_names_by_key[asset.key] == "streamone"
        assert asset.specs_by_key[asset.key].metadata["dagster/table_name"] == f"streamone.{asset.key.path[-1]}"


POISON = {
    "STREAMONE_BASE_URL": "garbage-without-a-scheme", "STREAMONE_AUTH_TYPE": "nobody", "STREAMONE_ACCOUNT": "acc-nowhere",
    "STREAMONE_TIMEZONE": "Mars/Olympus_Mons", "STREAMONE_ACTOR_ID": "poisoned", "STREAMONE_PSK": "poisoned",
    "STREAM_ASSETS_DATA_DIR": "/proc/poisoned-data-dir", "STREAM_ASSETS_STATE_URL": "mysql://poisoned",
    "STREAM_ASSETS_HTTP_REQUEST_SECONDS": "poison", "STREAM_ASSETS_HTTP_TOTAL_SECONDS": "poison",
    "STREAM_ASSETS_HTTP_RETRIES": "poison", "STREAM_ASSETS_HTTP_BACKOFF_SECONDS": "poison",
    "STREAM_ASSETS_HTTP_RETRY_AFTER_CAP_SECONDS": "poison", "STREAM_ASSETS_HTTP_MAX_RESPONSE_MB": "poison",
}


def test_resource_fields_override_the_environment(acme, warehouse, monkeypatch, tmp_path):
    for name, value in POISON.items():
        monkeypatch.setenv(name, value)
    defs = build_defs(ACME, acme_resource(acme), start_date=START_DATE)  # the environment never breaks loading
    account, zone = "acc-acme00002", "Europe/Amsterdam"
    resource = acme_resource(acme, auth_type="application", account=account, timezone=zone, data_dir=str(tmp_path),
                             http_request_seconds="30", http_total_seconds="60", http_retries="1",
                             http_backoff_seconds="0.1", http_retry_after_cap_seconds="5", http_max_response_mb="8")
    day = a_day_with_items(acme, {account})
    result = materialize(defs, resource, warehouse, "items", partition_key=day)
    assert result.success
    pd.testing.assert_frame_equal(stored_items(warehouse), expected_items(acme, day, {account}), check_dtype=False)
    start = dt.datetime.fromisoformat(day).replace(tzinfo=UTC)
    # the day's bounds written in the field's zone (no daylight saving change happens at midnight UTC there)
    bounds = [[(start + dt.timedelta(days=d)).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")] for d in (0, 1)]
    assert bounds[0] != [f"{day} 00:00:00"]
    for request in acme.requests:  # the field's account, authentication type and timezone, not the variables'
        assert (query(request)["account"], query(request)["authentication_type"], query(request)["timezone"]) == (
            account, "application", zone)
        assert [request.form()["mindatecreated"], request.form()["maxdatecreated"]] == bounds
    assert resource.transport_policy().total_seconds == 60

    # Without the fields, the same run reads the environment's garbage and fails naming the variable.
    for variable, expected in (("STREAMONE_BASE_URL", "an http"), ("STREAMONE_AUTH_TYPE", "one of user, application"),
                               ("STREAMONE_TIMEZONE", "an IANA timezone")):
        fields = {"base_url": acme.root_url, "auth_type": "application", "timezone": "UTC", "account": account}
        fields.pop(variable.removeprefix("STREAMONE_").lower())
        bare = StreamOneResource(actor_id=ACME_APP, psk=ACME_PSK, **fields)
        with pytest.raises(SettingError, match=f"^{variable} must be {expected}"):
            materialize(defs, bare, warehouse, "items", partition_key=day)


def test_a_bad_field_fails_the_run_naming_it_and_never_the_loading(acme, warehouse):
    day = a_day_with_items(acme)
    for fields, message in (({"auth_type": "robot"}, r"^auth_type \(for STREAMONE_AUTH_TYPE\) must be one of user, "
                                                     r"application, got 'robot'"),
                            ({"timezone": "Nowhere/Land"}, r"^timezone \(for STREAMONE_TIMEZONE\) must be an IANA"),
                            ({"base_url": "ftp://example.com"}, r"^base_url \(for STREAMONE_BASE_URL\) must be an http")):
        defs = build_defs(ACME, acme_resource(acme, **fields), start_date=START_DATE)  # loads
        with pytest.raises(SettingError, match=message):
            materialize(defs, acme_resource(acme, **fields), warehouse, "items", partition_key=day)
    assert acme.requests == []
