"""Settings are checked where they are read, with errors naming the variable and the form expected."""

import os
import subprocess
import sys

import pytest

from stream_assets.core import config
from stream_assets.core.errors import SettingError
from stream_assets.core.http import TransportPolicy


@pytest.mark.parametrize("value", ["20260101", "2026-1-01", "2026-02-30", " 2026-01-01", "2026-01-01T00:00"])
def test_start_date_must_be_exactly_yyyy_mm_dd(monkeypatch, value):
    monkeypatch.setenv("STREAM_ASSETS_START_DATE", value)
    with pytest.raises(SettingError, match="^STREAM_ASSETS_START_DATE must be a date written exactly YYYY-MM-DD"):
        config.start_date()


@pytest.mark.parametrize(("value", "expected"), [("abc", "a number > 0"), ("inf", "a number > 0"), ("nan", "a number > 0"),
                                                  ("-3", "a number > 0"), ("0", "a number > 0")])
def test_http_settings_are_checked(monkeypatch, value, expected):
    monkeypatch.setenv("STREAM_ASSETS_HTTP_TOTAL_SECONDS", value)
    with pytest.raises(SettingError, match=f"^STREAM_ASSETS_HTTP_TOTAL_SECONDS must be {expected}, got '{value}'"):
        TransportPolicy.from_env()
    monkeypatch.setenv("STREAM_ASSETS_HTTP_TOTAL_SECONDS", "12.5")
    assert TransportPolicy.from_env().total_seconds == 12.5


def test_a_bad_setting_for_one_api_does_not_stop_the_code_location_from_loading(tmp_path):
    env = {**os.environ, "STREAMAPI_LIVE_POLL_SECONDS": "abc", "STREAMROOT_BASE_URL": "no-scheme",
           "STREAMONE_AUTH_TYPE": "nobody", "STREAM_ASSETS_HTTP_TOTAL_SECONDS": "forever"}
    code = ("import stream_assets.definitions as d, dagster as dg; "
            "s = d.defs.resolve_sensor_def('streamapi_live_sessions_sensor'); "
            "from stream_assets.streamapi.resources import StreamApiResource as R; "
            "ctx = dg.build_sensor_context(resources={'streamapi': R(key='k', secret='s')}); "
            "import stream_assets.core.errors as e\n"
            "try:\n    s(ctx)\nexcept e.SettingError as error:\n    print('sensor:', error)")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sensor: STREAMAPI_LIVE_POLL_SECONDS must be a whole number > 0, got 'abc'" in result.stdout
