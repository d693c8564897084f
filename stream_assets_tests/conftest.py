"""Shared fixtures: emulators started once per session on 127.0.0.1, a fresh warehouse per test."""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

import dagster as dg
import pytest

from stream_assets.core.warehouse import Warehouse
from stream_assets.streamapi.emulator import StreamApiEmulator
from stream_assets.streamapi.resources import StreamApiResource
from stream_assets.streamone.emulator import Role, StreamOneEmulator
from stream_assets.streamone.resources import StreamOneResource
from stream_assets.streamtime.emulator import StreamtimeEmulator
from stream_assets.streamtime.resources import StreamtimeResource
from stream_assets.streamroot.client import StreamrootClient
from stream_assets.streamroot.emulator import StreamrootEmulator
from stream_assets.streamroot.resources import StreamrootResource

STREAMROOT_CUSTOMER = "acme-tv"
STREAMROOT_KEY = "sr-test-key-do-not-log"
STREAMAPI_KEY = "sa-test-key"
STREAMAPI_SECRET = "sa-test-secret-do-not-log"
STREAMONE_APP, STREAMONE_APP_PSK = "app-ingest01", "app-psk-do-not-log"
STREAMTIME_KEY = "st-test-key-do-not-log"
VENV_BIN = Path(sys.executable).parent


def run_processes(target, arg_tuples, timeout: float = 180) -> list[int]:
    """Start one fresh ("spawn") process per argument tuple, all at once; their exit codes."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=target, args=args) for args in arg_tuples]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=timeout)
    return [worker.exitcode for worker in workers]


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path, monkeypatch):
    """Each test gets its own STREAM_ASSETS_DATA_DIR (warehouse default, rid and limiter state)."""
    monkeypatch.setenv("STREAM_ASSETS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def instance():
    """An ephemeral Dagster instance, closed after the test (an unclosed one leaves a temporary folder for the
    garbage collector, which warnings-as-errors reports in whatever test runs then)."""
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


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
def streamone():
    """A StreamOne with an all-powerful application, users with scoped roles, two customers' accounts."""
    every = frozenset({"item-view", "livestream-view", "api-mytokens"})
    with StreamOneEmulator(
        applications={STREAMONE_APP: (STREAMONE_APP_PSK, [Role(every)]), "application": ("apppsk", [Role(every)])},
        users={
            "user": ("psk", [Role(every)]),
            "cust-user001": ("cpsk", [Role(frozenset({"item-view"}), customer="cust-000001")]),
            "acct-user001": ("apsk", [Role(frozenset({"item-view"}), account="acc-news00001")]),
            "no-livestrm1": ("npsk", [Role(frozenset({"item-view"}))]),
        },
        sessions={"sess1": (STREAMONE_APP, "skey")},
        accounts={"acc-news00001": "cust-000001", "acc-sport0001": "cust-000001", "acc-other001": "cust-000002"},
        seed=4,
    ) as emulator:
        yield emulator


@pytest.fixture
def streamtime():
    """A Streamtime organisation with the documented limits (tests that need scaled windows set their own)."""
    with StreamtimeEmulator({STREAMTIME_KEY: "Test Agency"}, seed=8) as emulator:
        yield emulator


@pytest.fixture
def resources(streamroot, streamapi, streamone, streamtime, warehouse) -> dict:
    return {
        "streamroot": StreamrootResource(api_key=STREAMROOT_KEY, customer_id=STREAMROOT_CUSTOMER,
                                         base_url=streamroot.base_url),
        "streamapi": StreamApiResource(key=STREAMAPI_KEY, secret=STREAMAPI_SECRET, base_url=streamapi.base_url),
        "streamone": StreamOneResource(actor_id=STREAMONE_APP, psk=STREAMONE_APP_PSK, base_url=streamone.root_url),
        "streamtime": StreamtimeResource(api_key=STREAMTIME_KEY, base_url=streamtime.base_url),
        "warehouse": warehouse,
    }


@pytest.fixture
def cli_env(streamroot_emulator, streamapi, streamone, streamtime, tmp_path) -> dict[str, str]:
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
        "STREAMONE_BASE_URL": streamone.root_url,
        "STREAMONE_ACTOR_ID": STREAMONE_APP,
        "STREAMONE_PSK": STREAMONE_APP_PSK,
        "STREAMTIME_API_KEY": STREAMTIME_KEY,
        "STREAMTIME_BASE_URL": streamtime.base_url,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    })
    return env
