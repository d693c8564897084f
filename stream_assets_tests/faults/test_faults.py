"""Fault injection: a table of misbehaving answers x the clients they apply to.

Each case first materializes a partition through the fault server in pass-through mode, then breaks
the answers and materializes the same partition again. It asserts the typed error (API, endpoint,
partition, transient or not), that the run ended in bounded time, and that the partition's rows are
exactly what they were. Transient errors reach Dagster as ``RetryRequested`` (its retry takes over),
whose cause is the typed error. Deadlines are shortened through the ``STREAM_ASSETS_HTTP_*`` settings.

A client is a row of ``CLIENTS`` (an :class:`Api`); a case names the clients it applies to and how to
break each one's answers.

Streamtime sends every request through its shared limiter, so it never replays a request the server may
have received (a reset, a truncated or drip-fed answer, a 5xx): the run ends with a transient error after
one attempt and Dagster's retry takes over; only a 429 is retried in the run, each time through the
limiter. Its row asserts that one attempt, where the other clients retry within the total time.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import xml.etree.ElementTree as ElementTree
from xml.sax.saxutils import escape as xml_escape
from dataclasses import dataclass
from typing import Any, Callable

import dagster as dg
import pytest

from stream_assets.core.errors import (
    ApiError,
    ApiPayloadError,
    ApiResponseError,
    ApiThrottledError,
    ApiTimeoutError,
    ApiTransportError,
    DuplicateKeyError,
    IncompleteAnswerError,
    InvalidValueError,
    SettingError,
)
from stream_assets.core.warehouse import Warehouse
from stream_assets.streamapi import assets as streamapi_assets
from stream_assets.streamapi.resources import StreamApiResource
from stream_assets.streamone import assets as streamone_assets
from stream_assets.streamone.emulator import TOKENS, Role, StreamOneEmulator
from stream_assets.streamone.resources import StreamOneResource
from stream_assets.streamroot import assets as streamroot_assets
from stream_assets.streamroot.resources import StreamrootResource
from stream_assets.streamtime import assets as streamtime_assets
from stream_assets.streamtime.client import MAX_THROTTLED_RETRIES
from stream_assets.streamtime.resources import StreamtimeResource
from stream_assets_tests.conftest import (
    STREAMAPI_KEY,
    STREAMAPI_SECRET,
    STREAMONE_APP,
    STREAMONE_APP_PSK,
    STREAMROOT_CUSTOMER,
    STREAMROOT_KEY,
    STREAMTIME_KEY,
)
from stream_assets_tests.faults.server import Fault, FaultServer

REQUEST_SECONDS, TOTAL_SECONDS, RETRIES = 1.0, 3.0, 2
BOUND_SECONDS = TOTAL_SECONDS + 4.0  # the total HTTP time plus the run's own work
TEN_MB = "x" * 10_000_000


@pytest.fixture(autouse=True)
def short_deadlines(monkeypatch):
    monkeypatch.setenv("STREAM_ASSETS_HTTP_REQUEST_SECONDS", str(REQUEST_SECONDS))
    monkeypatch.setenv("STREAM_ASSETS_HTTP_TOTAL_SECONDS", str(TOTAL_SECONDS))
    monkeypatch.setenv("STREAM_ASSETS_HTTP_RETRIES", str(RETRIES))
    monkeypatch.setenv("STREAM_ASSETS_HTTP_BACKOFF_SECONDS", "0.05")


# --- the clients ------------------------------------------------------------------------------
@dataclass
class Api:
    """How to run one client's asset through the fault server, and what its partition holds."""

    name: str  # ApiError.api
    endpoint: str  # ApiError.endpoint of the broken call, and the path the fault server breaks
    emulator_fixture: str
    suffix: Callable[[Any], str]  # the base URL's path after the emulator's root
    resource: Callable[[str], dg.ConfigurableResource]  # base URL -> resource
    resource_name: str
    asset: dg.AssetsDefinition
    partition: Callable[[Any], str | None]  # emulator -> partition key (None: unpartitioned)
    rows_sql: str
    secrets: tuple[str, ...]
    base_url_variable: str
    replays: bool = True  # retries a request the server may have received (Streamtime: only through its limiter)


@pytest.fixture
def streamone_busy():
    """A StreamOne with 150 to 250 items a day over the last days: a day's partition (asked for by date) takes
    several pages, which the paging faults need."""
    start = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)).date().isoformat()
    with StreamOneEmulator(applications={STREAMONE_APP: (STREAMONE_APP_PSK, [Role(frozenset(TOKENS.values()))])},
                           data_start=start, items_per_day=(150, 250), seed=4) as emulator:
        yield emulator


def _streamone_yesterday(emulator) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)).date().isoformat()


def _streamapi_busy_day(emulator) -> str:
    for offset in range(1, 60):
        day = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=offset)).date()
        start = int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp() * 1000)
        if len(emulator.recordings(STREAMAPI_KEY, start, start + 86_400_000 - 1)) >= 2:
            return day.isoformat()
    raise AssertionError("no day with two recordings")


@dataclass(frozen=True)
class _ResourcesInContext:
    """An asset whose resources come through the context (``required_resource_keys``: StreamOne's, ...),
    invoked as :func:`materialize` invokes every asset, with the resources as keyword arguments."""

    asset: dg.AssetsDefinition

    @property
    def key(self) -> dg.AssetKey:
        return self.asset.key

    def __call__(self, context, **resources):
        partition = context.partition_key if context.has_partition_key else None
        with dg.build_asset_context(partition_key=partition, resources=resources) as bound:
            return self.asset(bound)


STREAMAPI = Api(  # after _ResourcesInContext: StreamAPI's assets take their resources from the context too
    "StreamAPI", "video/list", "streamapi", lambda e: "/service",
    lambda url: StreamApiResource(key=STREAMAPI_KEY, secret=STREAMAPI_SECRET, base_url=url), "streamapi",
    _ResourcesInContext(streamapi_assets.streamapi_video_recordings), _streamapi_busy_day,
    "SELECT * FROM streamapi.video_recordings ORDER BY ALL", (STREAMAPI_SECRET,), "STREAMAPI_BASE_URL",
)
STREAMONE = Api(
    "StreamOne", "item/view", "streamone_busy", lambda e: "",
    lambda url: StreamOneResource(actor_id=STREAMONE_APP, psk=STREAMONE_APP_PSK, base_url=url), "streamone",
    _ResourcesInContext(streamone_assets.streamone_items), _streamone_yesterday,
    "SELECT * FROM streamone.items ORDER BY ALL", (STREAMONE_APP_PSK,), "STREAMONE_BASE_URL",
)
STREAMONE_HISTORY = Api(
    "StreamOne", "livestream/view", "streamone", lambda e: "",
    STREAMONE.resource, "streamone", _ResourcesInContext(streamone_assets.streamone_livestreams), lambda e: None,
    "SELECT id, title, description, type, account_id, account_name FROM streamone.livestreams ORDER BY ALL",
    (STREAMONE_APP_PSK,), "STREAMONE_BASE_URL",
)
STREAMROOT = Api(  # after _ResourcesInContext: Streamroot's assets take their resources from the context too
    "Streamroot", "dna/data/traffic/timeseries", "streamroot", lambda e: "",
    lambda url: StreamrootResource(api_key=STREAMROOT_KEY, customer_id=STREAMROOT_CUSTOMER, base_url=url), "streamroot",
    _ResourcesInContext(next(a for a in streamroot_assets.assets if a.key.path[-1] == "traffic_timeseries")),
    lambda e: "2026-03-01",
    "SELECT * FROM streamroot.traffic_timeseries ORDER BY ALL", (STREAMROOT_KEY,), "STREAMROOT_BASE_URL",
)
STREAMTIME = Api(
    "Streamtime", "search?search_view=time", "streamtime", lambda e: "/v2",
    lambda url: StreamtimeResource(api_key=STREAMTIME_KEY, base_url=url), "streamtime",
    _ResourcesInContext(next(a for a in streamtime_assets.assets if a.key.path[-1] == "logged_times")), lambda e: "2026-03-03",
    "SELECT * FROM streamtime.logged_times ORDER BY ALL", (STREAMTIME_KEY,), "STREAMTIME_BASE_URL", replays=False,
)


# --- answer rewriting helpers -----------------------------------------------------------------
def json_body(mutate: Callable[[Any], Any], *, content_type: str | None = None, raw: Callable[[bytes], bytes] | None = None):
    """A transform editing a JSON answer (``mutate`` may edit in place or return a new payload)."""

    def transform(path, status, headers, body):
        payload = json.loads(body)
        changed = mutate(payload)
        payload = payload if changed is None else changed
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")  # allow_nan: NaN/Infinity literals
        data = raw(data) if raw else data
        return status, {**headers, **({"Content-Type": content_type} if content_type else {})}, data

    return transform


def xml_body(mutate: Callable[[ElementTree.Element], None], raw: Callable[[bytes], bytes] | None = None):
    def transform(path, status, headers, body):
        root = ElementTree.fromstring(body)
        mutate(root)
        data = ElementTree.tostring(root, encoding="utf-8")
        return status, headers, raw(data) if raw else data

    return transform


def replace_answer(status: int, body: bytes, content_type: str = "application/json", **extra: str):
    return lambda path, s, headers, b: (status, {"Content-Type": content_type, **extra}, body)


def sr_series(mutate_point: Callable[[list], None]):
    def mutate(payload):
        mutate_point(payload[0]["cdn"][0])
    return json_body(mutate)


def sr_duplicate(conflicting: bool):
    def mutate(payload):
        copy = json.loads(json.dumps(payload[0]))
        if conflicting:
            copy["cdn"] = [[ts, value + 1] for ts, value in copy["cdn"]]
        payload.append(copy)
    return json_body(mutate)


def videos(root):
    return root.findall(".//video")


def video_field(name: str, value: str, *, first_only: bool = False):
    def mutate(root):
        for video in videos(root)[:1] if first_only else videos(root):
            video.find(name).text = value
    return xml_body(mutate)


def video_duplicate(conflicting: bool):
    def mutate(root):
        first = videos(root)[0]
        parent = next(p for p in root.iter() if first in list(p))
        copy = ElementTree.fromstring(ElementTree.tostring(first))
        if conflicting:
            copy.find("size").text = str(int(copy.find("size").text) + 1)
        parent.append(copy)
    return xml_body(mutate)


def so_items(mutate_item: Callable[[dict], None], *, first_only: bool = False, content_type: str | None = None):
    def mutate(payload):
        for item in payload["body"][:1] if first_only else payload["body"]:
            mutate_item(item)
    return json_body(mutate, content_type=content_type)


def so_duplicate(conflicting: bool):
    def mutate(payload):
        copy = dict(payload["body"][0])
        if conflicting:
            copy["title"] = copy["title"] + " (changed)"
        payload["body"].append(copy)
        payload["header"]["count"] += 1
    return json_body(mutate)


def ignore_offset():
    """Every answer is the first one (a fresh transform per client: it remembers that first answer)."""
    first: dict[str, bytes] = {}

    def transform(path, status, headers, body):
        first.setdefault("body", body)
        return status, headers, first["body"]
    return transform


def st_records(mutate_record: Callable[[dict], None], *, first_only: bool = False, content_type: str | None = None):
    """A transform editing Streamtime's search answer (a bare array of records; the probe page may be empty)."""
    def mutate(payload):
        for record in payload[:1] if first_only else payload:
            mutate_record(record)
    return json_body(mutate, content_type=content_type)


def st_duplicate(conflicting: bool):
    def mutate(payload):
        if payload:
            copy = json.loads(json.dumps(payload[0]))
            if conflicting:
                copy["minutes"] += 15
            payload.append(copy)
    return json_body(mutate)


def so_cap_pages(cap: int):
    def mutate(payload):
        payload["body"] = payload["body"][:cap]
    return json_body(mutate)


def so_understate_count(count: int):
    def mutate(payload):
        payload["header"]["count"] = count
    return json_body(mutate)


def echo_in_malformed_answer(api: Api) -> Fault:
    """A 200 whose body is not JSON and echoes the secret: the payload error quotes an excerpt of it."""
    body = f"internal error: credential {api.secrets[0]} is not valid here".encode()
    return Fault(api.endpoint, replace_answer(200, body))


def echo_secret(api: Api) -> Fault:
    """An error answer that echoes the secret and the signed request (as some servers do)."""
    secret = api.secrets[0]

    def transform(path, status, headers, body):
        message = f"denied for {secret} on {path}"
        if api.name == "StreamAPI":
            data = f"<response><code>202</code><msg>{xml_escape(message)}</msg></response>".encode()
            return 200, {"Content-Type": "text/xml"}, data
        if api.name == "StreamOne":
            envelope = {"header": {"status": 3, "statusmessage": message}, "body": None}
            return 200, {"Content-Type": "application/json"}, json.dumps(envelope).encode()
        return 400, {"Content-Type": "application/json"}, json.dumps({"message": message}).encode()
    return Fault(api.endpoint, transform)


INVALID_UTF8 = {  # a byte that is never valid UTF-8, inside a string of each API's answer
    "Streamroot": json_body(lambda p: None, raw=lambda b: b.replace(b'"srKey": "', b'"srKey": "\xff', 1)),
    "StreamAPI": xml_body(lambda r: None, raw=lambda b: b.replace(b"<filename>", b"<filename>\xff", 1)),
    "StreamOne": json_body(lambda p: None, raw=lambda b: b.replace(b'"title": "', b'"title": "\xff', 1)),
    "Streamtime": json_body(lambda p: None, raw=lambda b: b.replace(b'"notes": "', b'"notes": "\xff', 1)),
}
STREAMTIME_TEXT = "Café ü"
TEXT_STORED = {"Streamroot": ("sr_key", "clé-ü"), "StreamOne": ("title", "Café ü"), "Streamtime": ("notes", STREAMTIME_TEXT)}


# --- the cases ------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    faults: dict[str, Callable[[Api], Fault]]  # Api.name -> the fault for that client
    error: type[BaseException] | None  # None: the run succeeds
    transient: bool = False
    match: str = ""
    apis: tuple[Api, ...] = (STREAMROOT, STREAMAPI, STREAMONE, STREAMTIME)
    check: Callable[[Api, Warehouse, Any], None] | None = None  # extra assertions after the run
    retried: bool = False  # the client itself retried the request (fresh signatures) before giving up
    attempts: dict[str, int] | None = None  # Api.name -> the exact number of requests the broken call made


def every(fault: Callable[[Api], Fault]) -> dict[str, Callable[[Api], Fault]]:
    return {"Streamroot": fault, "StreamAPI": fault, "StreamOne": fault, "Streamtime": fault}


def wire(kind: str) -> Callable[[Api], Fault]:
    return lambda api: Fault(api.endpoint, wire=kind)


def answer(transform) -> Callable[[Api], Fault]:
    return lambda api: Fault(api.endpoint, transform)


def _stored(api: Api, warehouse: Warehouse, column: str):
    return warehouse.query(f"SELECT {column} FROM {api.rows_sql.split('FROM ')[1].split(' ')[0]}")[column].tolist()


CASES = [
    Case("reset mid-body", every(wire("reset")), ApiTransportError, transient=True, match="connection broke",
         retried=True),
    Case("truncated body", every(wire("truncate")), ApiTransportError, transient=True, retried=True),
    Case("drip-feed", every(wire("drip")), ApiTimeoutError, transient=True, match="deadline", retried=True),
    Case("headers drip-fed", every(wire("drip-head")), ApiTimeoutError, transient=True, match="deadline", retried=True),
    Case("huge Retry-After", {  # Streamtime throttles with 429 (its 5xx are never waited on: see the module doc)
        **every(answer(replace_answer(503, b'{"message": "maintenance"}', **{"Retry-After": "86400"}))),
        "Streamtime": answer(replace_answer(429, b'{"message": "Too many requests"}', **{"Retry-After": "86400"}))},
         ApiThrottledError, transient=True, match="86400 s"),
    Case("server error, retried then reported", every(answer(replace_answer(503, b'{"message": "overloaded"}'))),
         ApiResponseError, transient=True, match="HTTP 503.*overloaded", retried=True),
    Case("429 every time, retried through the limiter then reported",
         {"Streamtime": answer(replace_answer(429, b'{"message": "Too many requests"}', **{"Retry-After": "0"}))},
         ApiResponseError, transient=True, match="HTTP 429.*Too many", apis=(STREAMTIME,),
         attempts={"Streamtime": 1 + MAX_THROTTLED_RETRIES}),
    Case("ignored offset", {"StreamOne": lambda api: Fault(api.endpoint, ignore_offset()),
                            "Streamtime": lambda api: Fault(api.endpoint, ignore_offset())},
         IncompleteAnswerError, match="ignores the offset", apis=(STREAMONE, STREAMTIME)),
    Case("capped pages with a true count are read to the end", {"StreamOne": answer(so_cap_pages(40))}, None,
         apis=(STREAMONE,)),
    Case("capped pages without a count", {"Streamtime": answer(json_body(lambda p: p[:10]))}, IncompleteAnswerError,
         match="caps its pages", apis=(STREAMTIME,)),
    Case("understated count", {"StreamOne": answer(so_understate_count(50))}, IncompleteAnswerError,
         match="understated", apis=(STREAMONE,)),
    Case("identical duplicates collapse", {
        "Streamroot": answer(sr_duplicate(False)), "StreamAPI": answer(video_duplicate(False)),
        "StreamOne": answer(so_duplicate(False)), "Streamtime": answer(st_duplicate(False))}, None,
         apis=(STREAMROOT, STREAMAPI, STREAMONE_HISTORY, STREAMTIME)),
    Case("conflicting duplicates", {
        "Streamroot": answer(sr_duplicate(True)), "StreamAPI": answer(video_duplicate(True)),
        "StreamOne": answer(so_duplicate(True)), "Streamtime": answer(st_duplicate(True))}, DuplicateKeyError,
         match="share a key|came twice", apis=(STREAMROOT, STREAMAPI, STREAMONE_HISTORY, STREAMTIME)),
    Case("NaN", {"Streamroot": answer(sr_series(lambda p: p.__setitem__(1, float("nan")))),
                 "StreamAPI": answer(video_field("duration", "NaN")),
                 "StreamOne": answer(so_items(lambda i: i.__setitem__("views", float("nan")))),
                 "Streamtime": answer(st_records(lambda r: r.__setitem__("minutes", float("nan"))))},
         ApiPayloadError, match="NaN|finite"),
    Case("Infinity", {"Streamroot": answer(sr_series(lambda p: p.__setitem__(1, float("inf")))),
                      "StreamAPI": answer(video_field("duration", "Infinity")),
                      "StreamOne": answer(so_items(lambda i: i.__setitem__("views", float("inf")))),
                      "Streamtime": answer(st_records(lambda r: r.__setitem__("cost", float("-inf")), first_only=True))},
         ApiPayloadError, match="Infinity|finite"),
    Case("1e999", {"Streamroot": answer(json_body(lambda p: None, raw=lambda b: re.sub(rb"(\[\d+, )[0-9.e+-]+\]", rb"\g<1>1e999]", b, count=1))),
                   "StreamAPI": answer(video_field("size", "1e999")),
                   "StreamOne": answer(json_body(lambda p: None, raw=lambda b: re.sub(rb'"views": \d+', b'"views": 1e999', b, count=1))),
                   "Streamtime": answer(json_body(lambda p: None, raw=lambda b: re.sub(rb'"minutes": \d+', b'"minutes": 1e999', b, count=1)))},
         ApiPayloadError, match="overflow|finite|whole|size"),
    Case("a 1e308 timestamp", {"Streamroot": answer(sr_series(lambda p: p.__setitem__(0, 1e308))),
                               "StreamAPI": answer(video_field("creation_date", "1" + "0" * 308)),
                               "StreamOne": answer(so_items(lambda i: i.__setitem__("dateaired", "9999-12-31 23:59:59"))),
                               "Streamtime": answer(st_records(lambda r: r.__setitem__("date", 1e308), first_only=True))},
         ApiPayloadError, match="outside|timestamp|creation_date|dateaired|field date"),
    Case("a bad date in a key column", {
        "Streamtime": answer(st_records(lambda r: r.__setitem__("date", "2026-02-30"), first_only=True))},
         ApiPayloadError, match="key column.*field date", apis=(STREAMTIME,)),
    Case("a key date outside the partition", {
        "Streamtime": answer(st_records(lambda r: r.__setitem__("date", "2026-03-04"), first_only=True))},
         InvalidValueError, match="outside partition", apis=(STREAMTIME,)),
    Case("negative bytes or minutes", {"Streamroot": answer(sr_series(lambda p: p.__setitem__(1, -5.0))),
                                       "StreamAPI": answer(video_field("size", "-1")),
                                       "StreamOne": answer(so_items(lambda i: i.__setitem__("views", -1))),
                                       "Streamtime": answer(st_records(lambda r: r.__setitem__("minutes", -15), first_only=True))},
         InvalidValueError, match="negative"),
    Case("a 10 MB field", {"Streamroot": answer(json_body(lambda p: p[0].__setitem__("srKey", TEN_MB))),
                           "StreamAPI": answer(video_field("filename", TEN_MB, first_only=True)),
                           "StreamOne": answer(so_items(lambda i: i.__setitem__("description", TEN_MB), first_only=True)),
                           "Streamtime": answer(st_records(lambda r: r.__setitem__("notes", TEN_MB), first_only=True))},
         ApiPayloadError, match="1000|100,000|characters"),
    Case("invalid UTF-8", {name: answer(transform) for name, transform in INVALID_UTF8.items()}, ApiPayloadError,
         match="UTF-8|not well-formed"),
    Case("text/plain JSON is read as UTF-8", {
        "Streamroot": answer(json_body(lambda p: p[0].__setitem__("srKey", "clé-ü"), content_type="text/plain")),
        "StreamOne": answer(so_items(lambda i: i.__setitem__("title", "Café ü"), first_only=True, content_type="text/plain")),
        "Streamtime": answer(st_records(lambda r: r.__setitem__("notes", STREAMTIME_TEXT), first_only=True,
                                        content_type="text/plain"))},
         None, apis=(STREAMROOT, STREAMONE, STREAMTIME),
         check=lambda api, warehouse, emulator: _assert_in(TEXT_STORED[api.name][1],
                                                           _stored(api, warehouse, TEXT_STORED[api.name][0]))),
    Case("a secret echoed in an error", {name: echo_secret for name in ("Streamroot", "StreamAPI", "StreamOne", "Streamtime")},
         ApiResponseError, match=r"denied for \*\*\*"),
    Case("a secret echoed in a malformed answer", {name: echo_in_malformed_answer for name in ("Streamroot", "StreamOne", "Streamtime")},
         ApiPayloadError, match=r"credential \*\*\*", apis=(STREAMROOT, STREAMONE, STREAMTIME)),
]

def _assert_in(value, values):
    assert value in values, f"{value!r} not stored"


def _cases():
    for case in CASES:
        for api in case.apis:
            yield pytest.param(case, api, id=f"{case.name}-{api.name}{'-history' if api is STREAMONE_HISTORY else ''}")


def materialize(api: Api, emulator, base_url: str, warehouse: Warehouse):
    """Run the asset in process (direct invocation, so a RetryRequested surfaces instead of waiting)."""
    partition = api.partition(emulator)
    with dg.build_asset_context(partition_key=partition) if partition else dg.build_asset_context() as context:
        return api.asset(context, **{api.resource_name: api.resource(base_url), "warehouse": warehouse})


@pytest.mark.parametrize(("case", "api"), list(_cases()))
def test_fault(case: Case, api: Api, request, warehouse):
    emulator = request.getfixturevalue(api.emulator_fixture)
    server = FaultServer(emulator.root_url)
    try:
        base_url = server.root_url + api.suffix(emulator)
        materialize(api, emulator, base_url, warehouse)
        before = warehouse.query(api.rows_sql)
        assert len(before), "the partition must hold rows before the fault"
        server.fault = case.faults[api.name](api)
        sent_before = server.requests_to(api.endpoint)
        started = time.monotonic()
        if case.error is None:
            materialize(api, emulator, base_url, warehouse)
            after = warehouse.query(api.rows_sql)
            if case.check:
                case.check(api, warehouse, emulator)
            else:
                assert after.equals(before)
            return
        with pytest.raises((ApiError, dg.RetryRequested)) as caught:
            materialize(api, emulator, base_url, warehouse)
        elapsed = time.monotonic() - started
        error = caught.value.__cause__ if isinstance(caught.value, dg.RetryRequested) else caught.value
        assert isinstance(error, case.error), repr(error)
        assert isinstance(caught.value, dg.RetryRequested) == case.transient == error.transient
        assert error.api.lower() == api.name.lower()
        assert error.endpoint in (api.endpoint, api.asset.key.path[-1])
        assert error.partition == api.partition(emulator)
        assert re.search(case.match, str(error)), str(error)
        assert elapsed < BOUND_SECONDS
        attempts = server.requests_to(api.endpoint) - sent_before
        if case.attempts and api.name in case.attempts:
            assert attempts == case.attempts[api.name]
        elif case.retried and not api.replays:
            assert attempts == 1  # never replayed outside the limiter: the server saw only what it admitted
        elif case.error is ApiTimeoutError:
            assert 2 <= attempts <= 1 + RETRIES  # retried until the total time ran out
        else:
            assert attempts == 1 + RETRIES if case.retried else attempts >= 1
        text = str(error) + repr(error.__dict__)
        for secret in api.secrets:
            assert secret not in text
        assert "signature=" not in text.replace("signature=***", "") and not re.search(r"sig=[0-9a-f]{8}", text)
        assert warehouse.query(api.rows_sql).equals(before), "the partition's previous rows must be unchanged"
    finally:
        server.stop()


@pytest.mark.parametrize("api", [STREAMROOT, STREAMAPI, STREAMONE, STREAMTIME], ids=lambda a: a.name)
@pytest.mark.parametrize("bad", ["127.0.0.1:8080", "ftp://example.com", "https://api.example.com/?key=abc"])
def test_a_bad_base_url_fails_at_run_time_naming_the_variable(api, bad, request, warehouse, monkeypatch):
    emulator = request.getfixturevalue(api.emulator_fixture)
    materialize(api, emulator, emulator.root_url + api.suffix(emulator), warehouse)
    before = warehouse.query(api.rows_sql)
    with pytest.raises(SettingError, match=api.base_url_variable) as caught:
        materialize(api, emulator, bad, warehouse)
    assert "abc" not in str(caught.value) or "key=***" in str(caught.value)
    monkeypatch.setenv(api.base_url_variable, bad)
    with pytest.raises(SettingError, match=f"^{api.base_url_variable} must be an http"):
        materialize(api, emulator, "", warehouse)
    assert warehouse.query(api.rows_sql).equals(before)
