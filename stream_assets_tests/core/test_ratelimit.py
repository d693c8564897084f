"""The shared rate limiter: parsing, sliding windows, processing budgets, threads and processes."""

import threading
import time

import pytest

from stream_assets.core.ratelimit import Budget, RateLimiter, SqliteLimiterBackend, parse_budgets
from stream_assets.streamtime.client import StreamtimeClient
from stream_assets.streamtime.emulator import StreamtimeEmulator
from stream_assets_tests.conftest import STREAMTIME_KEY, run_processes

RATES, PROCESSING = "60/0.6,720/36", "30/0.6,300/36"


def test_budgets_parse_and_refuse_nonsense():
    assert parse_budgets("60/60, 720/3600", "requests") == [Budget(60, 60), Budget(720, 3600)]
    assert parse_budgets("30/60,300/3600", "processing")[1].label == "300 s processing/3600s"
    for bad in ("", "60", "60/0", "a/b", "60/60/60"):
        with pytest.raises(ValueError):
            parse_budgets(bad, "requests")


def test_a_request_waits_for_the_oldest_to_leave_the_window(tmp_path):
    clock = [1000.0]
    waits = []
    limiter = RateLimiter("b", parse_budgets("3/10", "requests"), SqliteLimiterBackend(tmp_path / "l.sqlite"),
                          clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s),
                          on_wait=lambda s, label: waits.append((round(s, 3), label)))
    for step in (0, 1, 2):
        clock[0] = 1000.0 + step
        limiter.acquire()
    clock[0] = 1003.0
    limiter.acquire()  # the 4th must wait until the 1st (t=1000) leaves the 10 s window (plus the guard)
    assert waits == [(round(1000 + Budget(3, 10).guarded_window - 1003, 3), "3 requests/10s")]
    assert clock[0] == pytest.approx(1000 + Budget(3, 10).guarded_window)
    assert limiter.remaining()["3 requests/10s"] == 0


def test_processing_budget_counts_the_settled_cost(tmp_path):
    clock = [0.0]
    limiter = RateLimiter("b", [Budget(100, 10), Budget(1.0, 10, "processing")], SqliteLimiterBackend(tmp_path / "l.sqlite"),
                          default_cost=0.1, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    with limiter.slot() as charge:
        charge(0.9)  # a slow request
    assert limiter.remaining()["1 s processing/10s"] == pytest.approx(0.1)
    clock[0] = 1.0
    with limiter.slot() as charge:  # the estimate (recent average 0.9) does not fit: wait for the window
        charge(0.2)
    assert clock[0] >= Budget(1, 10).guarded_window
    assert limiter.seconds_waited > 0 and limiter.waits == 1


def _window_counts(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, start = 0, 0
    for end in range(len(stamps)):
        while stamps[end] - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _client(base_url: str, data_dir: str | None = None) -> StreamtimeClient:
    import os

    from stream_assets.streamtime.resources import StreamtimeResource

    if data_dir:
        os.environ["STREAM_ASSETS_DATA_DIR"] = data_dir
    return StreamtimeResource(api_key=STREAMTIME_KEY, base_url=base_url, rate_limits=RATES,
                              processing_limits=PROCESSING).client()


def _hammer(base_url: str, data_dir: str, calls: int) -> None:
    client = _client(base_url, data_dir)
    for _ in range(calls):
        client.organisation()
    assert client.throttled == 0


@pytest.fixture
def scaled_streamtime():
    with StreamtimeEmulator({STREAMTIME_KEY: "Scaled"}, request_limits=RATES, processing_limits=PROCESSING,
                            processing_seconds=0.001, delay_seconds=0.05) as emulator:
        yield emulator


def test_threads_never_exceed_a_window_nor_see_a_429(scaled_streamtime, private_data_dir):
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


def test_processes_never_exceed_a_window_nor_see_a_429(scaled_streamtime, private_data_dir):
    args = (scaled_streamtime.base_url, str(private_data_dir), 60)
    assert run_processes(_hammer, [args] * 4) == [0] * 4
    stamps = [r.received_at for r in scaled_streamtime.requests]
    assert len(stamps) == 240 and scaled_streamtime.counters == {"requests": 240, "processed": 240, "throttled": 0, "delayed": 0}
    assert _window_counts(stamps, 0.6) <= 60 and _window_counts(stamps, 36) <= 720


def test_processing_budget_holds_against_a_slow_emulator(private_data_dir):
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
