"""The limiter on a virtual clock: N clients, random latencies and costs, any mix of the four budgets.

Each client loops: wait for admission (the limiter's own admission steps, :meth:`RateLimiter.admissions`),
send; the request reaches the "server" after an upstream latency, costs some processing, and the response
comes back after a downstream latency, when the client settles it. A few requests are abandoned (never
settled, as by a process that died). The server side is checked with its own rules, from the true arrival
times and charges (booked at arrival, as the emulator does, and at completion): no window of any budget
may ever overrun, for every seed and condition.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass

import pytest

from stream_assets.core.ratelimit import Budget, RateLimiter, SqliteLimiterBackend, parse_budgets, server_overruns
from stream_assets_tests.core.test_ratelimit import backend_kind, make_backend, postgres_url  # noqa: F401 (fixtures)

REAL = {"req-minute": "60/60", "req-hour": "720/3600", "proc-minute": "30/60", "proc-hour": "300/3600"}
SCALED = {"req-minute": "4/2", "req-hour": "20/20", "proc-minute": "0.5/2", "proc-hour": "3/20"}
REQUESTS = 400  # per run: 8 conditions x 3 seeds = 9,600 requests
DEADLINE = 8.0  # s: above the longest request of the simulation (2 s up + 2 s processing + 2 s down)


@dataclass(frozen=True)
class Condition:
    clients: int
    budgets: tuple[str, ...]  # keys of the scale
    scale: dict
    latency: str  # "none", "uniform" (0-2 s each way) or "spiky" (mostly 20 ms, 10 % at 2 s)
    cost: tuple[float, float]  # processing seconds, uniform

    def parsed(self) -> list[Budget]:
        return [b for key in self.budgets for b in parse_budgets(self.scale[key], "requests" if key.startswith("req") else "processing")]

    def __str__(self) -> str:
        return f"{self.clients} clients, {'+'.join(self.budgets)} ({'scaled' if self.scale is SCALED else 'real'}), latency {self.latency}, cost {self.cost[0]:g}-{self.cost[1]:g} s"


@dataclass
class Outcome:
    arrivals: list[tuple[float, float]]  # (arrival, processing seconds) per request the server saw
    span: float
    waited: float

    def overruns(self, budgets: list[Budget]) -> int:
        """Arrivals the server would refuse or delay, its charges booked at arrival, then at completion."""
        processing = [b for b in budgets if b.kind == "processing"]
        return server_overruns(self.arrivals, budgets) + server_overruns(self.arrivals, processing, booked_at="completion")

    def utilisation(self, budgets: list[Budget]) -> float:
        """Arrivals per second against the long-run rate the binding budget allows (the processing
        budgets at the mean cost the server saw)."""
        mean_cost = sum(c for _, c in self.arrivals) / len(self.arrivals)
        rates = [b.amount / b.window if b.kind == "requests" else b.amount / b.window / mean_cost for b in budgets]
        return len(self.arrivals) / self.span / min(rates)


def simulate(condition: Condition, backend, requests: int, seed: int) -> Outcome:
    rng = random.Random(seed)
    clock = [0.0]
    budgets = condition.parsed()
    limiters = [RateLimiter("sim", budgets, backend, deadline=DEADLINE, poll=0.25, clock=lambda: clock[0])
                for _ in range(condition.clients)]
    steps: list = [None] * condition.clients
    arrivals: list[tuple[float, float]] = []
    order = itertools.count()
    timeline = [(rng.uniform(0, 0.5), next(order), n, "acquire", None) for n in range(condition.clients)]
    heapq.heapify(timeline)

    def latency() -> float:
        if condition.latency == "none":
            return 0.0
        if condition.latency == "uniform":
            return rng.uniform(0, 2.0)
        return 2.0 if rng.random() < 0.1 else 0.02

    sent = 0
    while timeline:
        clock[0], _, n, action, event_id = heapq.heappop(timeline)
        if action == "settle":
            limiters[n].settle(event_id)
            heapq.heappush(timeline, (clock[0], next(order), n, "acquire", None))
            continue
        if sent >= requests:
            continue
        steps[n] = steps[n] or limiters[n].admissions()
        try:
            wait = next(steps[n])
            heapq.heappush(timeline, (clock[0] + wait, next(order), n, "acquire", None))
            continue
        except StopIteration as admitted:
            steps[n], event_id = None, admitted.value
        sent += 1
        up, cost, down = latency(), rng.uniform(*condition.cost), latency()
        arrivals.append((clock[0] + up, cost))
        if rng.random() < 0.005:  # abandoned: the server still gets it, the limiter never hears back
            heapq.heappush(timeline, (clock[0] + up + cost + down, next(order), n, "acquire", None))
        else:
            heapq.heappush(timeline, (clock[0] + up + cost + down, next(order), n, "settle", event_id))
    first = min(a for a, _ in arrivals)
    return Outcome(arrivals, max(a for a, _ in arrivals) - first, sum(l.seconds_waited for l in limiters))


CONDITIONS = [
    Condition(1, ("req-minute", "req-hour"), SCALED, "uniform", (0.01, 0.05)),
    Condition(4, ("req-minute", "req-hour", "proc-minute", "proc-hour"), SCALED, "none", (0.01, 0.05)),
    Condition(4, ("req-minute", "req-hour", "proc-minute", "proc-hour"), SCALED, "uniform", (0.01, 2.0)),
    Condition(8, ("req-minute", "proc-hour"), SCALED, "spiky", (0.01, 2.0)),
    Condition(16, ("req-minute", "req-hour"), SCALED, "spiky", (0.01, 0.05)),
    Condition(16, ("proc-minute",), SCALED, "uniform", (0.01, 2.0)),
    Condition(6, ("req-minute", "req-hour", "proc-minute", "proc-hour"), REAL, "uniform", (0.01, 2.0)),
    Condition(2, ("req-minute", "proc-minute"), REAL, "spiky", (0.5, 2.0)),
]


@pytest.mark.parametrize("condition", CONDITIONS, ids=str)
def test_no_window_ever_overruns_on_the_server(condition, capsys):
    for seed in (1, 2, 3):
        outcome = simulate(condition, SqliteLimiterBackend(":memory:"), requests=REQUESTS, seed=seed)
        budgets = condition.parsed()
        assert len(outcome.arrivals) == REQUESTS
        assert outcome.overruns(budgets) == 0, f"seed {seed}"
        with capsys.disabled():
            print(f"\n  {condition}, seed {seed}: utilisation {outcome.utilisation(budgets):.0%}, "
                  f"{outcome.waited:.0f} s waited in all", end="")


def test_the_simulation_holds_against_both_shared_stores(make_backend):
    """The same run through a store shared the way processes share it (a file, a database)."""
    condition = CONDITIONS[1]
    outcome = simulate(condition, make_backend(), requests=200, seed=7)
    assert len(outcome.arrivals) == 200 and outcome.overruns(condition.parsed()) == 0


def test_the_overrun_check_sees_an_overrun():
    """The checker itself: admission-time reasoning with latency does overrun, and it is caught."""
    budgets = parse_budgets("2/10", "requests") + parse_budgets("1/10", "processing")
    # admitted at 0, 1, 10.5 (fine on admission times) but arriving at 3, 1, 10.6: 3 lies in (0.6, 10.6]
    outcome = Outcome([(3.0, 0.1), (1.0, 0.1), (10.6, 0.1)], 9.6, 0.0)
    assert outcome.overruns(budgets[:1]) == 1
    heavy = Outcome([(0.0, 0.6), (1.0, 0.5), (2.0, 0.1)], 2.0, 0.0)
    assert heavy.overruns(budgets[1:]) >= 1  # 1.1 s booked before the third arrives
