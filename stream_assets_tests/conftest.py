"""Shared fixtures: emulators started once per session on 127.0.0.1, a fresh warehouse per test."""

from __future__ import annotations

import multiprocessing
import os
import sys
import uuid
from pathlib import Path
from typing import Callable

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


POSTGRES_ADMIN_URL = os.environ.get("STREAM_ASSETS_TEST_POSTGRES") or "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("STREAM_ASSETS_TEST_REDIS") or "redis://127.0.0.1:6379"


def missing_service(what: str) -> None:
    """Skip a test whose service is missing, saying what is missing; with STREAM_ASSETS_REQUIRE_SERVICES=1
    (as in CI) fail instead, so that the several-host tests can never silently not run."""
    if os.environ.get("STREAM_ASSETS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{what} (STREAM_ASSETS_REQUIRE_SERVICES=1 makes this a failure, not a skip)", pytrace=False)
    pytest.skip(what)


def ducklake_catalog(postgres_url: str) -> str:
    """``postgres:<libpq keywords>`` for a database URL, the form STREAM_ASSETS_DUCKLAKE_CATALOG takes."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    return "postgres:" + make_conninfo(**conninfo_to_dict(postgres_url))


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
def postgres_admin_url() -> str:
    """A reachable PostgreSQL server (STREAM_ASSETS_TEST_POSTGRES, default 127.0.0.1:5432, user postgres)."""
    import psycopg

    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        missing_service(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL} ({' '.join(str(error).split())[:160]})")
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_database(postgres_admin_url) -> Callable[[str], str]:
    """A factory of fresh Postgres databases with unique names (dropped after the test): label -> URL."""
    import psycopg

    from stream_assets.core.state import close_postgres_pools

    created: list[tuple[str, str]] = []

    def create(label: str) -> str:
        name = f"sa_{label}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{postgres_admin_url.rsplit('/', 1)[0]}/{name}"
        created.append((name, url))
        return url

    yield create
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        for name, url in created:
            close_postgres_pools(url)
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis server (STREAM_ASSETS_TEST_REDIS, default redis://127.0.0.1:6379), without a db number."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        missing_service(f"Redis is not reachable at {REDIS_URL} ({error})")
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgres"])
def state_backend(request, monkeypatch) -> str:
    """Runs a test once on each SharedState backend: the SQLite file, then Postgres (STREAM_ASSETS_STATE_URL)."""
    monkeypatch.delenv("STREAM_ASSETS_STATE_URL", raising=False)
    if request.param == "postgres":
        monkeypatch.setenv("STREAM_ASSETS_STATE_URL", request.getfixturevalue("postgres_database")("state"))
    return request.param


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
    every = frozenset({"item-read", "livestream-view", "api-mytokens"})
    with StreamOneEmulator(
        applications={STREAMONE_APP: (STREAMONE_APP_PSK, [Role(every)]), "application": ("apppsk", [Role(every)])},
        users={
            "user": ("psk", [Role(every)]),
            "cust-user001": ("cpsk", [Role(frozenset({"item-read"}), customer="cust-000001")]),
            "acct-user001": ("apsk", [Role(frozenset({"item-read"}), account="acc-news00001")]),
            "no-livestrm1": ("npsk", [Role(frozenset({"item-read"}))]),
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
