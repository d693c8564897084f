"""Every setting reaches the code through the components and the resources: nothing else reads a variable."""

import ast
from pathlib import Path

import dagster as dg
import pytest

import stream_assets
from stream_assets.core.warehouse import Warehouse
from stream_assets.streamtime.assets import assets as streamtime_assets, daily_assets
from stream_assets.streamtime.resources import StreamtimeResource
from stream_assets_tests.conftest import STREAMTIME_KEY

PACKAGE = Path(stream_assets.__file__).parent
# The modules that may read the environment: the resources and the components (which own the settings), the one
# module that reads variables on their behalf, and the demo (a launcher that sets variables for its children).
MAY_READ = {"components.py", "core/config.py", "demo.py"}


def reads_environment(path: Path) -> list[int]:
    """Lines of ``path`` that touch ``os.environ`` or ``os.getenv``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(a.name in ("environ", "getenv") for a in node.names):
            lines.append(node.lineno)
    return lines


def test_only_resources_and_components_read_the_environment():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in MAY_READ or path.name == "resources.py":
            continue
        lines = reads_environment(path)
        if lines:
            offenders[relative] = lines
    assert offenders == {}, f"settings read behind the resources' back (move them to a resource field): {offenders}"


POISON = {
    "STREAM_ASSETS_DATA_DIR": "/proc/poisoned-data-dir", "STREAM_ASSETS_STATE_URL": "mysql://poisoned",
    "STREAM_ASSETS_HTTP_REQUEST_SECONDS": "poison", "STREAM_ASSETS_HTTP_TOTAL_SECONDS": "poison",
    "STREAM_ASSETS_HTTP_RETRIES": "poison", "STREAM_ASSETS_HTTP_BACKOFF_SECONDS": "poison",
    "STREAM_ASSETS_HTTP_RETRY_AFTER_CAP_SECONDS": "poison", "STREAM_ASSETS_HTTP_MAX_RESPONSE_MB": "poison",
    "STREAMTIME_BASE_URL": "poison", "STREAMTIME_RATE_LIMITS": "poison", "STREAMTIME_PROCESSING_LIMITS": "poison",
    "STREAMTIME_DATE_SELECTORS": "poison", "STREAMTIME_SENSOR_LOOKBACK_DAYS": "poison",
}


def test_a_run_with_every_field_set_reads_no_variable(streamtime, postgres_database, tmp_path, monkeypatch):
    # Every variable holds garbage: a run succeeds only if each value comes from the resource's fields.
    resource = StreamtimeResource(
        api_key=STREAMTIME_KEY, base_url=streamtime.base_url, rate_limits="120/60,720/3600",
        processing_limits="30/60,300/3600", date_selectors={"logged_times": "logged_time_date"},
        sensor_lookback_days="3", data_dir=str(tmp_path / "data"), state_url=postgres_database("state"),
        http_request_seconds="30", http_total_seconds="60", http_retries="1", http_backoff_seconds="0.1",
        http_retry_after_cap_seconds="5", http_max_response_mb="8")
    for name, value in POISON.items():
        monkeypatch.setenv(name, value)
    warehouse = Warehouse(database=str(tmp_path / "warehouse.duckdb"))
    result = dg.materialize(streamtime_assets, selection=[a.key for a in daily_assets], partition_key="2026-03-03",
                            resources={"streamtime": resource, "warehouse": warehouse})
    assert result.success
    assert warehouse.query("SELECT count(*) AS n FROM streamtime.logged_times").n.item() > 0
    assert resource.transport_policy().total_seconds == 60 and resource.sensor_lookback() == 3
    # And with the fields empty, the same resource reads the (poisoned) variables and says which one is bad.
    with pytest.raises(Exception, match="STREAMTIME_RATE_LIMITS"):
        StreamtimeResource(api_key=STREAMTIME_KEY, base_url=streamtime.base_url).budgets()
