"""A second Streamroot account (tenant ``acme``): its own names, schema, credential and settings."""

import dagster as dg
import pandas as pd
import pytest

from stream_assets.core.errors import SettingError
from stream_assets.core.tenants import Tenant
from stream_assets.core.warehouse import Warehouse
from stream_assets.core.windows import TimeWindow
from stream_assets.streamroot.definitions import build_defs
from stream_assets.streamroot.definitions import defs as default_defs
from stream_assets.streamroot.descriptions import COLUMN_DESCRIPTIONS
from stream_assets.streamroot.emulator import StreamrootEmulator
from stream_assets.streamroot.endpoints import ENDPOINTS
from stream_assets.streamroot.resources import StreamrootResource
from stream_assets_tests.conftest import STREAMROOT_CUSTOMER, STREAMROOT_KEY

ACME = Tenant("streamroot", "acme")
ACME_CUSTOMER, ACME_KEY = "acme-brand-2", "sr-acme-key-do-not-log"
DAY = "2026-03-01"
TABLES = [e.name for e in ENDPOINTS] + ["daily_kpis"]


@pytest.fixture(scope="module")
def acme_emulator():
    """The second account's Streamroot: another customer, key and seed than the session's emulator."""
    with StreamrootEmulator({ACME_CUSTOMER: ACME_KEY}, seed=29) as emulator:
        yield emulator


@pytest.fixture
def acme(acme_emulator):
    acme_emulator.clear()
    yield acme_emulator
    acme_emulator.clear()


def acme_resource(emulator, **fields) -> StreamrootResource:
    return StreamrootResource(api_key=ACME_KEY, customer_id=ACME_CUSTOMER, **{"base_url": emulator.base_url, **fields})


def materialize(defs: dg.Definitions, resource: StreamrootResource, warehouse, partition: str = DAY, **kwargs):
    return dg.materialize(list(defs.assets), resources={ACME.resource_key: resource, "warehouse": warehouse},
                          partition_key=partition, **kwargs)


def test_a_tenant_writes_its_own_account_into_its_own_schema(streamroot, acme, warehouse):
    defs = build_defs(ACME, acme_resource(acme), start_date="2026-02-01")
    result = materialize(defs, acme_resource(acme), warehouse)
    assert result.success
    assert {a.key for a in defs.assets} == {dg.AssetKey(["streamroot_acme", table]) for table in TABLES}
    assert {(e.check_name, e.passed) for e in result.get_asset_check_evaluations()} == {
        ("complete_days", True), ("rates_within_unit_interval", True), ("aggregates_match_timeseries", True)}

    window = TimeWindow.for_days(DAY)
    expected = acme.five_minute_data(ACME_CUSTOMER, window.start_ms, window.end_ms)
    other = streamroot.five_minute_data(STREAMROOT_CUSTOMER, window.start_ms, window.end_ms)
    assert expected.cdn.tolist() != other.cdn.tolist()  # the two accounts' data differ, so the rows tell them apart
    sr_key = acme.sr_key(ACME_CUSTOMER)
    traffic = warehouse.query("SELECT * FROM streamroot_acme.traffic_timeseries ORDER BY ts")
    assert set(traffic.sr_key) == {sr_key}
    assert traffic.ts.tolist() == pd.to_datetime(expected.ts_ms, unit="ms").tolist()
    assert traffic.cdn.tolist() == expected.cdn.tolist() and traffic.p2p.tolist() == expected.p2p.tolist()
    audience = warehouse.query("SELECT * FROM streamroot_acme.audience_timeseries ORDER BY ts")
    assert audience.audience.tolist() == expected.audience.tolist()
    buffering = warehouse.query("SELECT * FROM streamroot_acme.buffering")
    assert buffering[["played", "buffered"]].iloc[0].tolist() == [expected.played.sum(), expected.buffered.sum()]
    kpis = warehouse.query("SELECT * FROM streamroot_acme.daily_kpis")
    assert kpis.to_dict("records") == [{
        "sr_key": sr_key, "day": pd.Timestamp(DAY),
        "buffering_rate": pytest.approx(expected.buffered.sum() / (expected.played.sum() + expected.buffered.sum())),
        "p2p_offload": pytest.approx(expected.p2p.sum() / (expected.p2p.sum() + expected.cdn.sum())),
        "peak_audience": expected.audience.max(), "audience_95th": kpis.audience_95th.item()}]
    for table in TABLES:
        assert warehouse.query(f"SELECT count(*) AS n FROM streamroot_acme.{table}").n.item() > 0, table

    schemas = warehouse.query("SELECT DISTINCT table_schema FROM information_schema.tables").table_schema
    assert set(schemas) == {"streamroot_acme"}  # nothing in the default instance's schema
    assert len(acme.requests) == len(ENDPOINTS)
    assert {r.header("Authorization") for r in acme.requests} == {f"API-Key {ACME_KEY}"}
    assert all(r.path.startswith(f"/v3/customers/{ACME_CUSTOMER}/") for r in acme.requests)
    assert streamroot.requests == []  # the default account's API was never asked
    assert all(ACME_KEY not in str(event) for event in result.all_events)


def test_a_tenant_names_its_jobs_schedules_partitions_and_tables():
    defs = build_defs(ACME, StreamrootResource(api_key="k", customer_id="c"), start_date="2026-02-01")
    names = [job.name for job in defs.jobs] + [s.name for s in defs.schedules] + [s.name for s in defs.sensors or []]
    assert names == ["streamroot_daily_acme", "streamroot_refresh_acme", "streamroot_hourly_acme",
                     "streamroot_refresh_sensor_acme"]
    assert set(defs.resources) == {"streamroot_acme"}
    for asset in defs.assets:
        assert asset.group_names_by_key[asset.key] == "streamroot_acme"
        assert asset.partitions_def.start.date().isoformat() == "2026-02-01"
        assert asset.op.name.startswith("streamroot_acme__")
        assert asset.required_resource_keys - {"io_manager"} <= {"streamroot_acme", "warehouse"}
        metadata = asset.specs_by_key[asset.key].metadata
        table = asset.key.path[-1]
        assert metadata["dagster/table_name"] == f"streamroot_acme.{table}"
        columns = metadata["dagster/column_schema"].columns
        assert [c.name for c in columns] == list(COLUMN_DESCRIPTIONS[table])
        assert all(c.description for c in columns), table
    job = dg.Definitions.merge(defs, dg.Definitions(resources={"warehouse": Warehouse()})).resolve_job_def(
        "streamroot_daily_acme")
    assert job.asset_layer.selected_asset_keys == {a.key for a in defs.assets}


def test_the_default_instance_and_a_tenant_load_side_by_side():
    defs = dg.Definitions.merge(default_defs, build_defs(ACME, StreamrootResource(api_key="k", customer_id="c")),
                                dg.Definitions(resources={"warehouse": Warehouse()}))
    dg.Definitions.validate_loadable(defs)
    assert {key.path[0] for key in defs.resolve_asset_graph().get_all_asset_keys()} == {"streamroot", "streamroot_acme"}
    assert defs.resolve_job_def("streamroot_daily").name == "streamroot_daily"
    assert defs.resolve_schedule_def("streamroot_hourly").name == "streamroot_hourly"
    for asset in default_defs.assets:  # the default instance keeps its metadata names, plus the standard ones
        metadata = asset.specs_by_key[asset.key].metadata
        assert metadata["table"] == metadata["dagster/table_name"] == f"streamroot.{asset.key.path[-1]}"


def test_resource_fields_override_the_environment(acme, warehouse, monkeypatch, tmp_path):
    monkeypatch.setenv("STREAMROOT_BASE_URL", "garbage-without-a-scheme")
    monkeypatch.setenv("STREAM_ASSETS_HTTP_REQUEST_SECONDS", "forever")
    environment_dir = tmp_path / "from-environment"
    monkeypatch.setenv("STREAM_ASSETS_DATA_DIR", str(environment_dir))
    field_dir = tmp_path / "from-field"
    traffic_timeseries = [dg.AssetKey(["streamroot_acme", "traffic_timeseries"])]
    defs = build_defs(ACME, acme_resource(acme))

    resource = acme_resource(acme, data_dir=str(field_dir), http_request_seconds="30")
    result = materialize(defs, resource, warehouse, selection=traffic_timeseries)
    assert result.success
    assert len(acme.requests_to("traffic/timeseries")) == 1  # served by the field's base URL
    assert warehouse.query("SELECT count(*) AS n FROM streamroot_acme.traffic_timeseries").n.item() == 288
    assert (field_dir / "staging").is_dir() and not environment_dir.exists()  # pages staged under the field's folder

    # Without the fields, the same run reads the environment's garbage and fails naming the variable.
    bare = StreamrootResource(api_key=ACME_KEY, customer_id=ACME_CUSTOMER)
    with pytest.raises(SettingError, match="^STREAMROOT_BASE_URL must be an http"):
        materialize(defs, bare, warehouse, selection=traffic_timeseries)
    with pytest.raises(SettingError, match="^STREAM_ASSETS_HTTP_REQUEST_SECONDS must be a number"):
        materialize(defs, acme_resource(acme), warehouse, selection=traffic_timeseries)


def test_a_bad_field_fails_the_run_naming_it_and_never_the_loading(acme, warehouse):
    defs = build_defs(ACME, acme_resource(acme, content_type="everything"))  # loads
    with pytest.raises(SettingError, match="^content_type must be one of all, live, vod, got 'everything'"):
        materialize(defs, acme_resource(acme, content_type="everything"), warehouse,
                    selection=[dg.AssetKey(["streamroot_acme", "traffic"])])
    with pytest.raises(SettingError, match=r"^base_url \(for STREAMROOT_BASE_URL\) must be an http"):
        materialize(defs, acme_resource(acme, base_url="ftp://example.com"), warehouse,
                    selection=[dg.AssetKey(["streamroot_acme", "traffic"])])
    assert acme.requests == []


def test_content_type_field_filters_every_request(acme, warehouse):
    defs = build_defs(ACME, acme_resource(acme))
    result = materialize(defs, acme_resource(acme, content_type="live"), warehouse,
                         selection=[dg.AssetKey(["streamroot_acme", "traffic"])])
    assert result.success
    assert [r.json().get("contentType") for r in acme.requests] == ["live"]


@pytest.mark.parametrize("start_date", ["2026-1-01", "yesterday"])
def test_a_bad_start_date_is_refused_when_the_definitions_are_built(start_date):
    with pytest.raises(SettingError, match="start_date must be a date written exactly YYYY-MM-DD"):
        build_defs(ACME, StreamrootResource(api_key="k", customer_id="c"), start_date=start_date)
