"""A second StreamAPI account (tenant ``acme``) built by ``build_defs``: its own names, schema, credential and
settings, beside the default instance and never through it."""

import dagster as dg
import pandas as pd
import pytest

from stream_assets.core.errors import SettingError
from stream_assets.core.state import RequestIds
from stream_assets.core.tenants import Tenant
from stream_assets.core.windows import TimeWindow
from stream_assets.streamapi.assets import LIVE_SESSIONS, RECORDINGS, THEMES
from stream_assets.streamapi.definitions import build_defs
from stream_assets.streamapi.emulator import THEMES as EMULATOR_THEMES
from stream_assets.streamapi.emulator import StreamApiEmulator
from stream_assets.streamapi.resources import StreamApiResource
from stream_assets_tests.conftest import STREAMAPI_KEY, STREAMAPI_SECRET

ACME = Tenant("streamapi", "acme")
ACME_KEY, ACME_SECRET = "sa-acme-key", "sa-acme-secret-do-not-log"
DAY = "2026-03-01"
POLL = "2026-11-25T10:00:00Z"
RECORDINGS_KEY = dg.AssetKey(["streamapi_acme", "video_recordings"])
THEMES_KEY = dg.AssetKey(["streamapi_acme", "themes"])
LIVE_KEY = dg.AssetKey(["streamapi_acme", "live_sessions"])


@pytest.fixture
def acme():
    """A second StreamAPI, another seed; acme's key is its second account, so its hosts (10000161xx) differ
    from the default emulator's (10000160xx)."""
    with StreamApiEmulator({"not-acme-key": "not-acme-secret", ACME_KEY: ACME_SECRET}, seed=29) as emulator:
        yield emulator


@pytest.fixture
def acme_resource(acme) -> StreamApiResource:
    return StreamApiResource(key=ACME_KEY, secret=ACME_SECRET, base_url=acme.base_url)


def materialize(defs: dg.Definitions, resources: dict, key: dg.AssetKey, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(list(defs.assets), resources=resources, selection=[key], **kwargs)


def with_warehouse(defs: dg.Definitions, warehouse) -> dg.Definitions:
    """The definitions as the code location holds them: with the shared warehouse."""
    return dg.Definitions.merge(defs, dg.Definitions(resources={"warehouse": warehouse}))


def keys_sent(emulator: StreamApiEmulator) -> set[str]:
    return {value for request in emulator.requests for value in request.query.get("key", [])}


def schemas(warehouse) -> set[str]:
    return set(warehouse.query("SELECT DISTINCT table_schema FROM information_schema.tables").table_schema)


def test_a_tenant_reads_its_own_account_into_its_own_schema(acme, acme_resource, warehouse, instance):
    defs = build_defs(ACME, acme_resource, start_date="2026-01-01", live_poll_seconds=30)
    resources = {"streamapi_acme": acme_resource, "warehouse": warehouse}
    assert {a.key for a in defs.assets} == {RECORDINGS_KEY, THEMES_KEY, LIVE_KEY}
    assert {a.group_names_by_key[a.key] for a in defs.assets} == {"streamapi_acme"}
    assert [j.name for j in defs.jobs] == ["streamapi_live_sessions_job_acme", "streamapi_refresh_acme"]
    assert [s.name for s in defs.sensors] == ["streamapi_live_sessions_sensor_acme", "streamapi_refresh_sensor_acme"]
    assert all(d.name.endswith("_acme") for d in [*defs.jobs, *(defs.schedules or ()), *defs.sensors])
    assert next(iter(defs.sensors)).minimum_interval_seconds == 30

    assert materialize(defs, resources, RECORDINGS_KEY, partition_key=DAY, instance=instance).success
    assert materialize(defs, resources, THEMES_KEY, instance=instance).success
    instance.add_dynamic_partitions("streamapi_live_polls_acme", [POLL])
    assert materialize(defs, resources, LIVE_KEY, partition_key=POLL, instance=instance).success

    window = TimeWindow.for_days(DAY)
    expected = acme.recordings(ACME_KEY, window.start_ms, window.end_ms - 1)
    rows = warehouse.query("SELECT * FROM streamapi_acme.video_recordings ORDER BY creation_date")
    assert len(expected) > 0 and rows.id.tolist() == [v["id"] for v in expected]
    assert rows["size"].tolist() == [int(v["size"]) for v in expected]
    assert rows.creation_date.tolist() == [pd.Timestamp(int(v["creation_date"]), unit="ms") for v in expected]
    themes = warehouse.query("SELECT * FROM streamapi_acme.themes ORDER BY id")
    assert themes.name.tolist() == [name for _, name, _, _ in EMULATOR_THEMES]
    live = warehouse.query("SELECT * FROM streamapi_acme.live_sessions ORDER BY public_hostid")
    assert live.public_hostid.tolist() == ["1000016100", "1000016102"]
    assert set(live.poll_time) == {pd.Timestamp("2026-11-25 10:00:00")}

    assert schemas(warehouse) == {"streamapi_acme"}  # nothing in the default schema `streamapi`
    assert keys_sent(acme) == {ACME_KEY}
    dumped = str([instance.get_latest_materialization_event(key).asset_materialization.metadata
                  for key in (RECORDINGS_KEY, THEMES_KEY, LIVE_KEY)])
    assert ACME_SECRET not in dumped


def test_every_asset_carries_its_table_and_documented_columns():
    defs = build_defs(ACME, StreamApiResource(key="k", secret="s"))
    for asset in defs.assets:
        for spec in asset.specs:
            table = spec.key.path[-1]
            assert spec.metadata["dagster/table_name"] == f"streamapi_acme.{table}"
            columns = spec.metadata["dagster/column_schema"].columns
            definition = {t.name: t for t in (RECORDINGS, THEMES, LIVE_SESSIONS)}[table]
            assert [c.name for c in columns] == definition.column_names
            assert all(c.description for c in columns), table


def test_the_default_and_a_tenant_side_by_side_never_share_a_credential_a_schema_or_rids(
        streamapi, acme, acme_resource, warehouse, private_data_dir):
    from stream_assets.streamapi.definitions import defs as default_defs

    both = dg.Definitions.merge(default_defs, build_defs(ACME, acme_resource))
    resources = {"streamapi": StreamApiResource(key=STREAMAPI_KEY, secret=STREAMAPI_SECRET, base_url=streamapi.base_url),
                 "streamapi_acme": acme_resource, "warehouse": warehouse}
    selection = [dg.AssetKey(["streamapi", "video_recordings"]), RECORDINGS_KEY]
    assert dg.materialize(list(both.assets), resources=resources, selection=selection, partition_key=DAY).success

    window = TimeWindow.for_days(DAY)
    for schema, emulator, key in (("streamapi", streamapi, STREAMAPI_KEY), ("streamapi_acme", acme, ACME_KEY)):
        rows = warehouse.query(f"SELECT id FROM {schema}.video_recordings ORDER BY creation_date")
        assert rows.id.tolist() == [v["id"] for v in emulator.recordings(key, window.start_ms, window.end_ms - 1)]
        assert keys_sent(emulator) == {key}
    assert schemas(warehouse) == {"streamapi", "streamapi_acme"}
    # rids are kept per API key (hashed) in the shared state: two keys, two sequences
    default_rids, acme_rids = RequestIds(STREAMAPI_KEY), RequestIds(ACME_KEY)
    assert default_rids.name != acme_rids.name and default_rids.last() and acme_rids.last()


def test_instances_with_the_same_key_share_one_rid_sequence(acme, warehouse):
    one = StreamApiResource(key=ACME_KEY, secret=ACME_SECRET, base_url=acme.base_url)
    other = StreamApiResource(key=ACME_KEY, secret=ACME_SECRET, base_url=acme.base_url)
    first, second = one.client(), other.client()
    first.themes()
    second.themes()  # the emulator refuses (code 203) a rid that is not above the last one of the key
    first.themes()
    assert first.request_ids.name == second.request_ids.name
    assert first.request_ids.last() == second.request_ids.last() == int(acme.requests_to("theme/list")[-1].query["rid"][0])
    assert len(acme.requests_to("theme/list")) == 3


def test_resource_fields_override_the_environment(acme, warehouse, instance, monkeypatch, tmp_path):
    monkeypatch.setenv("STREAMAPI_BASE_URL", "ftp://garbage")
    monkeypatch.setenv("STREAMAPI_LIVE_POLL_SECONDS", "abc")
    monkeypatch.setenv("STREAM_ASSETS_HTTP_TOTAL_SECONDS", "forever")
    monkeypatch.setenv("STREAM_ASSETS_DATA_DIR", str(tmp_path / "not-this-one"))
    resource = StreamApiResource(key=ACME_KEY, secret=ACME_SECRET, base_url=acme.base_url, live_poll_seconds="15",
                                 http_total_seconds="30", data_dir=str(tmp_path / "acme-state"))
    defs = build_defs(ACME, resource)
    assert next(iter(defs.sensors)).minimum_interval_seconds == 15  # the field, read when the defs are built
    resources = {"streamapi_acme": resource, "warehouse": warehouse}
    assert materialize(defs, resources, RECORDINGS_KEY, partition_key=DAY).success
    assert len(acme.requests_to("video/list")) == 1
    assert (tmp_path / "acme-state" / "state.sqlite").exists() and not (tmp_path / "not-this-one").exists()

    # a sensor tick: the field wins over the bad variable
    sensor = next(iter(defs.sensors))
    with dg.build_sensor_context(instance=instance, resources={"streamapi_acme": resource}) as context:
        result = sensor(context)
    assert len(result.run_requests) == 1
    assert result.dynamic_partitions_requests[0].partitions_def_name == "streamapi_live_polls_acme"
    assert keys_sent(acme) == {ACME_KEY}


def test_a_bad_field_fails_each_tick_naming_it_but_never_the_loading(acme, instance, monkeypatch):
    monkeypatch.delenv("STREAMAPI_LIVE_POLL_SECONDS", raising=False)
    resource = StreamApiResource(key=ACME_KEY, secret=ACME_SECRET, base_url=acme.base_url, live_poll_seconds="often")
    defs = build_defs(ACME, resource)
    sensor = next(iter(defs.sensors))
    assert sensor.minimum_interval_seconds == 60
    context = dg.build_sensor_context(instance=instance, resources={"streamapi_acme": resource})
    with pytest.raises(SettingError, match=r"^live_poll_seconds \(for STREAMAPI_LIVE_POLL_SECONDS\) must be a whole"):
        sensor(context)
    assert not acme.requests


def test_the_live_sensor_of_a_tenant_compares_with_its_own_last_snapshot(acme, acme_resource, warehouse, instance):
    defs = build_defs(ACME, acme_resource)
    instance.add_dynamic_partitions("streamapi_live_polls_acme", [POLL])
    assert materialize(defs, {"streamapi_acme": acme_resource, "warehouse": warehouse}, LIVE_KEY,
                       partition_key=POLL, instance=instance).success
    sensor = next(iter(defs.sensors))
    # evaluated as the daemon does (the evaluation function, not a direct call of the sensor)
    with dg.build_sensor_context(instance=instance, resources={"streamapi_acme": acme_resource},
                                 definitions=with_warehouse(defs, warehouse)) as context:
        result = sensor.evaluate_tick(context)
    assert not result.run_requests and "as stored by the last snapshot" in (result.skip_message or "")
    assert result.cursor
