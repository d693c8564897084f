"""Shared fixtures: emulators started once per session on 127.0.0.1, a fresh warehouse per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from stream_assets.core.warehouse import Warehouse
from stream_assets.streamapi.emulator import StreamApiEmulator
from stream_assets.streamapi.resources import StreamApiResource
from stream_assets.streamroot.client import StreamrootClient
from stream_assets.streamroot.emulator import StreamrootEmulator
from stream_assets.streamroot.resources import StreamrootResource

STREAMROOT_CUSTOMER = "acme-tv"
STREAMROOT_KEY = "sr-test-key-do-not-log"
STREAMAPI_KEY = "sa-test-key"
STREAMAPI_SECRET = "sa-test-secret-do-not-log"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path, monkeypatch):
    """Each test gets its own STREAM_ASSETS_DATA_DIR (warehouse default, rid and limiter state)."""
    monkeypatch.setenv("STREAM_ASSETS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture(scope="session")
def streamroot_emulator():
    with StreamrootEmulator({STREAMROOT_CUSTOMER: STREAMROOT_KEY, "other-customer": "other-key"}, seed=11) as emulator:
        yield emulator


@pytest.fixture
def streamroot(streamroot_emulator):
    """The session's emulator with an empty request log and no pending faults."""
    streamroot_emulator.clear()
    yield streamroot_emulator
    streamroot_emulator.clear()


@pytest.fixture
def streamroot_client(streamroot) -> StreamrootClient:
    return StreamrootClient(STREAMROOT_KEY, STREAMROOT_CUSTOMER, streamroot.base_url)


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(database=str(tmp_path / "warehouse.duckdb"))


@pytest.fixture
def streamapi():
    """A fresh StreamAPI emulator per test: its rid memory and sessions start clean."""
    with StreamApiEmulator({STREAMAPI_KEY: STREAMAPI_SECRET, "other-key": "other-secret"}, seed=3) as emulator:
        yield emulator


@pytest.fixture
def resources(streamroot, streamapi, warehouse) -> dict:
    return {
        "streamroot": StreamrootResource(api_key=STREAMROOT_KEY, customer_id=STREAMROOT_CUSTOMER,
                                         base_url=streamroot.base_url),
        "streamapi": StreamApiResource(key=STREAMAPI_KEY, secret=STREAMAPI_SECRET, base_url=streamapi.base_url),
        "warehouse": warehouse,
    }


@pytest.fixture
def cli_env(streamroot_emulator, streamapi, tmp_path) -> dict[str, str]:
    """Environment for `dagster` CLI subprocesses: emulator keys and a private data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAM", "DAGSTER_HOME"))}
    env.update({
        "STREAM_ASSETS_DATA_DIR": str(tmp_path / "data"),
        "STREAM_ASSETS_START_DATE": "2026-01-01",
        "STREAMROOT_API_KEY": STREAMROOT_KEY,
        "STREAMROOT_CUSTOMER_ID": STREAMROOT_CUSTOMER,
        "STREAMROOT_BASE_URL": streamroot_emulator.base_url,
        "STREAMAPI_KEY": STREAMAPI_KEY,
        "STREAMAPI_SECRET": STREAMAPI_SECRET,
        "STREAMAPI_BASE_URL": streamapi.base_url,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env
