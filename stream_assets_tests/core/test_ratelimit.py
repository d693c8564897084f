"""The shared rate limiter: parsing, interval-aware windows, processing budgets, the queue, lock timeouts,
threads and processes, against the SQLite and the Postgres backend."""

import multiprocessing
import os
import signal
import threading
import time
import uuid

import pytest

from stream_assets.core.ratelimit import (Budget, LimiterLockTimeout, PostgresLimiterBackend, RateLimiter,
                                          SqliteLimiterBackend, limiter_backend, parse_budgets)
from stream_assets.streamtime.client import StreamtimeClient
from stream_assets.streamtime.emulator import StreamtimeEmulator
from stream_assets_tests.conftest import STREAMTIME_KEY, run_processes

RATES, PROCESSING = "60/0.6,720/36", "30/0.6,300/36"
POSTGRES_ADMIN_URL = os.environ.get("STREAM_ASSETS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# --- fixtures: both backends ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def postgres_url():
    """A database of its own (created here, dropped after the module); skipped without Postgres unless
    STREAM_ASSETS_REQUIRE_SERVICES=1."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        message = f"Postgres not reachable at {POSTGRES_ADMIN_URL} ({str(error).strip()[:120]})"
        if os.environ.get("STREAM_ASSETS_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " and STREAM_ASSETS_REQUIRE_SERVICES=1")
        pytest.skip(message + "; set STREAM_ASSETS_TEST_POSTGRES_URL to run the Postgres limiter tests")
    name = f"limiter_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend_kind(request):
    return request.param


@pytest.fixture
def make_backend(backend_kind, request, tmp_path):
    """Builds fresh backends of the parametrized kind (several may share one store, like processes do)."""
    made = []
    schema = f"t_{uuid.uuid4().hex[:10]}"
    url = request.getfixturevalue("postgres_url") if backend_kind == "postgres" else None

    def make(**kwargs):
        backend = (PostgresLimiterBackend(url, schema=schema, **kwargs) if url
                   else SqliteLimiterBackend(tmp_path / "limiter.sqlite", **kwargs))
        made.append(backend)
        return backend

    yield make
    for backend in made:
        if isinstance(backend, PostgresLimiterBackend):
            backend.close()


@pytest.fixture
def state_env(backend_kind, request, monkeypatch):
    """STREAM_ASSETS_STATE_URL for the Streamtime resource: unset (SQLite) or a Postgres database."""
    if backend_kind == "postgres":
        monkeypatch.setenv("STREAM_ASSETS_STATE_URL", request.getfixturevalue("postgres_url"))
        return request.getfixturevalue("postgres_url")
    monkeypatch.delenv("STREAM_ASSETS_STATE_URL", raising=False)
    return ""


def virtual_limiter(budgets, backend, clock, **kwargs):
    return RateLimiter("b", budgets, backend, clock=lambda: clock[0],
                       sleep=lambda s: clock.__setitem__(0, clock[0] + s), **kwargs)


# --- parsing ----------------------------------------------------------------------------------------
def test_budgets_parse_and_refuse_nonsense():
    assert parse_budgets("60/60, 720/3600", "requests") == [Budget(60, 60), Budget(720, 3600)]
    assert parse_budgets("30/60,300/3600", "processing")[1].label == "300 s processing/3600s"
    assert parse_budgets("60.5/60,0.25/1.5", "processing") == [Budget(60.5, 60, "processing"), Budget(0.25, 1.5, "processing")]
    for bad in ("", "60", "60/0", "a/b", "60/60/60", "inf/60", "60/inf", "nan/60", "-1/60", "60/-5", "1e999/60"):
        with pytest.raises(ValueError, match="STREAMTIME_RATE_LIMITS.*amount/seconds"):
            parse_budgets(bad, "requests")
    with pytest.raises(ValueError, match="STREAMTIME_PROCESSING_LIMITS: invalid budget 'nan/60'"):
        parse_budgets("30/60,nan/60", "processing")
    with pytest.raises(ValueError, match="at least 1 request"):
        parse_budgets("0.5/60", "requests")


def test_a_fractional_request_budget_allows_its_whole_part(make_backend):
    clock = [100.0]
    limiter = virtual_limiter(parse_budgets("3.5/10", "requests"), make_backend(), clock)
    for _ in range(4):
        limiter.settle(limiter.acquire())
    # 3 requests fit in a 10 s window (3.5 allows 3, not "unlimited"): the 4th waited for the 1st to leave.
    assert limiter.waits == 1 and clock[0] == pytest.approx(110.0, abs=1e-3)


def test_the_backend_follows_the_environment(monkeypatch, tmp_path, request):
    monkeypatch.delenv("STREAM_ASSETS_STATE_URL", raising=False)
    assert isinstance(limiter_backend(), SqliteLimiterBackend)
    monkeypatch.setenv("STREAM_ASSETS_STATE_URL", "mysql://somewhere/db")
    with pytest.raises(ValueError, match="STREAM_ASSETS_STATE_URL must be a postgresql:// URL"):
        limiter_backend()


def test_postgres_is_selected_by_the_state_url(postgres_url, monkeypatch):
    monkeypatch.setenv("STREAM_ASSETS_STATE_URL", postgres_url)
    backend = limiter_backend()
    assert isinstance(backend, PostgresLimiterBackend) and limiter_backend() is backend  # one pool per process
    assert postgres_url.rsplit("/", 1)[1] in backend.where


# --- the rule, on a virtual clock -------------------------------------------------------------------
def test_a_request_counts_in_every_window_its_interval_touches(make_backend):
    clock = [1000.0]
    waits = []
    limiter = virtual_limiter(parse_budgets("2/10", "requests"), make_backend(), clock,
                              on_wait=lambda s, label: waits.append((round(s, 3), label)))
    first = limiter.acquire()
    clock[0] = 1001.0
    second = limiter.acquire()
    clock[0] = 1004.0
    limiter.settle(first)  # a slow response: the first may have reached the server as late as t=1004
    clock[0] = 1005.0
    limiter.settle(second)
    limiter.acquire()  # waits until the interval [1000, 1004] has left the window: 1014, not 1010
    assert waits == [(9.0, "2 requests/10s")]
    assert clock[0] == pytest.approx(1014.0, abs=1e-3)
    assert limiter.remaining()["2 requests/10s"] == 0
    assert limiter.seconds_waited == pytest.approx(9.0, abs=1e-3)


def test_processing_is_charged_the_elapsed_time_when_the_response_is_in(make_backend):
    clock = [0.0]
    limiter = virtual_limiter([Budget(100, 10), Budget(1.0, 10, "processing")], make_backend(), clock)
    event = limiter.acquire()
    clock[0] = 0.9
    limiter.settle(event)  # 0.9 s elapsed
    assert limiter.remaining()["1 s processing/10s"] == pytest.approx(0.1)
    clock[0] = 1.0
    event = limiter.acquire()  # 0.9 used < 1: the server would take it, so do we (no estimate idles the budget)
    assert clock[0] == 1.0 and limiter.waits == 0
    clock[0] = 1.2
    limiter.settle(event)
    limiter.acquire()  # 1.1 used: wait until the first interval [0, 0.9] has left the window
    assert clock[0] == pytest.approx(10.9, abs=1e-3) and limiter.waits == 1


def test_an_in_flight_request_counts_up_to_its_deadline(make_backend):
    clock = [0.0]
    limiter = virtual_limiter([Budget(100, 10), Budget(5, 10, "processing")], make_backend(), clock, deadline=8.0, poll=0.5)
    limiter.acquire()  # never settled (a process that died mid-request): it may cost up to 8 s
    limiter.acquire()  # 8 >= 5: blocked until the first's deadline (8) has left the window (18)
    assert clock[0] == pytest.approx(18.0, abs=0.6)
    assert limiter.waits == 1


def test_waiters_are_served_first_come_first_served(make_backend):
    clock = [0.0]
    backend = make_backend()
    limiters = [virtual_limiter(parse_budgets("1/10", "requests"), backend, clock) for _ in range(3)]
    limiters[0].settle(limiters[0].acquire())
    clock[0] = 1.0
    first, second = limiters[1].admissions(), limiters[2].admissions()
    assert next(first) == pytest.approx(9.0, abs=1e-3)  # first in the queue
    assert next(second) >= 9.0  # behind it
    clock[0] = 10.5
    assert next(second) > 0  # the budget is free, but the later waiter asks first: refused
    with pytest.raises(StopIteration):
        next(first)  # the first in the queue gets it
    assert next(second) > 0  # only one fits per window
    assert limiters[1].seconds_waited == pytest.approx(9.5) and limiters[2].seconds_waited == 0


def test_a_waiter_that_gives_up_leaves_the_queue(make_backend):
    clock = [0.0]
    backend = make_backend()
    a, b, c = (virtual_limiter(parse_budgets("1/10", "requests"), backend, clock) for _ in range(3))
    a.settle(a.acquire())
    steps = b.admissions()
    next(steps)
    steps.close()  # interrupted (e.g. the run was cancelled): its ticket goes
    clock[0] = 10.5
    c.acquire()
    assert c.waits == 0


def test_a_locked_store_raises_a_typed_error_naming_what_it_waited_for(make_backend, backend_kind, request):
    backend = make_backend(timeout=0.3)
    limiter = RateLimiter("b", parse_budgets("5/1", "requests"), backend)
    if backend_kind == "sqlite":
        import sqlite3

        holder = sqlite3.connect(backend.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        expected = "SQLite lock"
    else:
        import psycopg

        holder = psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=False)
        holder.execute("SELECT pg_advisory_xact_lock(hashtextextended('limiter:b', 0))")
        expected = "Postgres lock of bucket b"
    started = time.monotonic()
    with pytest.raises(LimiterLockTimeout, match=f"waited 0.3s for the {expected}"):
        limiter.acquire()
    assert time.monotonic() - started < 5
    holder.rollback()
    holder.close()
    limiter.settle(limiter.acquire())


def _hold_postgres_lock(url: str, schema: str, ready) -> None:
    import psycopg

    PostgresLimiterBackend(url, schema=schema).close()
    conn = psycopg.connect(url, autocommit=False)
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('limiter:b', 0))")
    ready.set()
    time.sleep(600)


def test_a_process_killed_holding_the_postgres_lock_does_not_block_the_next_admission(postgres_url):
    schema = f"k_{uuid.uuid4().hex[:10]}"
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=_hold_postgres_lock, args=(postgres_url, schema, ready))
    holder.start()
    assert ready.wait(60)
    backend = PostgresLimiterBackend(postgres_url, schema=schema, timeout=0.5)
    limiter = RateLimiter("b", parse_budgets("5/1", "requests"), backend)
    with pytest.raises(LimiterLockTimeout):  # really held
        limiter.acquire()
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    backend.timeout = 10.0
    started = time.monotonic()
    limiter.settle(limiter.acquire())
    assert time.monotonic() - started < 10
    backend.close()


# --- against the emulator: threads and processes -----------------------------------------------------
def _window_counts(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, start = 0, 0
    for end in range(len(stamps)):
        while stamps[end] - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _client(base_url: str, data_dir: str | None = None, state_url: str = "") -> StreamtimeClient:
    from stream_assets.streamtime.resources import StreamtimeResource

    if data_dir:
        os.environ["STREAM_ASSETS_DATA_DIR"] = data_dir
    if state_url:
        os.environ["STREAM_ASSETS_STATE_URL"] = state_url
    return StreamtimeResource(api_key=STREAMTIME_KEY, base_url=base_url, rate_limits=RATES,
                              processing_limits=PROCESSING).client()


def _hammer(base_url: str, data_dir: str, state_url: str, calls: int) -> None:
    client = _client(base_url, data_dir, state_url)
    for _ in range(calls):
        client.organisation()
    assert client.throttled == 0


@pytest.fixture
def scaled_streamtime():
    with StreamtimeEmulator({STREAMTIME_KEY: "Scaled"}, request_limits=RATES, processing_limits=PROCESSING,
                            processing_seconds=0.001, delay_seconds=0.05) as emulator:
        yield emulator


def test_threads_never_exceed_a_window_nor_see_a_429(scaled_streamtime, private_data_dir, state_env):
    client = _client(scaled_streamtime.base_url)
    threads = [threading.Thread(target=lambda: [client.organisation() for _ in range(50)]) for _ in range(4)]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps = [r.received_at for r in scaled_streamtime.requests]
    assert len(stamps) == 200 and scaled_streamtime.counters["throttled"] == 0 and client.throttled == 0
    assert _window_counts(stamps, 0.6) <= 60
    assert time.time() - started >= 1.8  # 200 requests at 60 per 0.6 s need at least 3 full windows


def test_processes_never_exceed_a_window_nor_see_a_429(scaled_streamtime, private_data_dir, state_env):
    args = (scaled_streamtime.base_url, str(private_data_dir), state_env, 60)
    assert run_processes(_hammer, [args] * 4) == [0] * 4
    stamps = [r.received_at for r in scaled_streamtime.requests]
    assert len(stamps) == 240 and scaled_streamtime.counters == {"requests": 240, "processed": 240, "throttled": 0, "delayed": 0}
    assert _window_counts(stamps, 0.6) <= 60 and _window_counts(stamps, 36) <= 720


def test_processing_budget_holds_against_a_slow_emulator(private_data_dir, state_env):
    from stream_assets.streamtime.resources import StreamtimeResource

    with StreamtimeEmulator({STREAMTIME_KEY: "Slow"}, request_limits="100/1", processing_limits="0.5/1,5/36",
                            processing_seconds=0.05, delay_seconds=0.5) as slow:
        client = StreamtimeResource(api_key=STREAMTIME_KEY, base_url=slow.base_url, rate_limits="100/1",
                                    processing_limits="0.5/1,5/36").client()
        threads = [threading.Thread(target=lambda: [client.organisation() for _ in range(8)]) for _ in range(3)]
        started = time.time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.time() - started
    assert slow.counters["throttled"] == 0 and slow.counters["delayed"] == 0
    assert slow.counters["processed"] == 24
    assert elapsed >= 1.5  # 24 x >=0.05 s of processing at <=0.5 s per second
    assert client.limiter.waits > 0 and client.limiter.seconds_waited > 0  # the waiting stays visible


def test_the_emulator_stamps_arrival_after_its_arrival_latency():
    with StreamtimeEmulator({STREAMTIME_KEY: "Far"}, processing_seconds=0.0) as far:
        far.arrival_latency = (0.2, 0.3)
        client = StreamtimeClient(STREAMTIME_KEY, far.base_url)  # no limiter: one plain request
        sent = time.time()
        client.organisation()
    assert 0.2 <= far.requests[0].received_at - sent < 1.0
