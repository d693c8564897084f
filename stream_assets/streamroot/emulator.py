"""A local Streamroot DNA data API v3, written from the documentation (see reference/apis.md §4).

What it enforces: POST only; ``Authorization: API-Key <key>`` for the customer in the path (401
otherwise; an unknown customer id is 404); the parameter rules (``since`` xor ``from``/``to``, both
bounds together, ``YYYY-MM-DD`` or epoch-ms bounds, ``contentType`` in all/live/vod, ``interval`` a
multiple of 5 minutes up to 4 weeks) with the documented 400 bodies (``{"message": ...}`` or
``{"error": "invalid content type"}``).

What it serves: deterministic 5-minute data per customer and seed (audience, CDN/P2P bytes, played and
buffered ms) that exists only for 5-minute intervals that have closed. Aggregates and timeseries are
both computed from that same data, so tests can cross-check them.

Documented assumptions (the documentation is silent on these):
- windows are half-open ``[from, to)``, a date means 00:00 UTC, ``since`` counts back from now and is
  floored to 5 minutes; a 5-minute point belongs to a window when its start lies inside it;
- audience is sampled per 5 minutes (the real service counts 2-minute windows); a timeseries bucket
  reports the peak of its samples, traffic and buffering are summed, bandwidth is averaged;
- ``audience95th`` and ``p2p95th`` are nearest-rank 95th percentiles of the 5-minute samples, the latter
  of total (CDN + P2P) bandwidth, as the documented example's magnitude implies;
- the ``interval`` defaults to 5 minutes; ``contentType`` defaults to ``all``; live + vod = all; a
  content or platform filter scales the data by that stream's or platform's share;
- the aggregate bandwidth answer spells ``p2pAvegage`` exactly as the documentation does.
"""

from __future__ import annotations

import math
import re
import time
import zlib
from typing import Callable

import numpy as np
import pandas as pd

from stream_assets.core.emulator import Emulator, Reply, Request
from stream_assets.streamroot.client import BASE_GRAIN, CONTENT_TYPES, MAX_INTERVAL, bound_to_ms, parse_duration
from stream_assets.streamroot.endpoints import BY_PATH

STEP_MS = int(BASE_GRAIN.total_seconds() * 1000)
DAY_MS = 86_400_000
PATH = re.compile(r"^/v3/customers/([^/]+)/(dna/data/[a-z/]+?)/?$")
# stream -> (content type, share of all traffic); live streams sum to 0.6, vod to 0.4
STREAMS = {
    "live/majorChannel.m3u8": ("live", 0.35),
    "live/sportsLive.m3u8": ("live", 0.25),
    "vod/mainContent/myVODstream.m3u8": ("vod", 0.25),
    "vod/catalogue/archive.m3u8": ("vod", 0.15),
}
PLATFORMS = {
    "web-desktop": 0.40,
    "web-mobile": 0.25,
    "android-webview": 0.15,
    "chromecast": 0.10,
    "desktop-electron": 0.06,
    "ios-native": 0.04,
}
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _uniform(index: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of (index, salt) mapped to [0, 1): deterministic noise, identical in every process."""
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64) * _GOLDEN + np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _salt(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def nearest_rank(values: np.ndarray, percentile: float) -> float:
    if len(values) == 0:
        return 0.0
    ordered = np.sort(values)
    return float(ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)])


class StreamrootEmulator(Emulator):
    """The DNA data API for a set of customers, each with one API key and one Streamroot key."""

    name = "streamroot"

    def __init__(
        self,
        customers: dict[str, str] | None = None,
        *,
        seed: int = 7,
        base_audience: int = 2000,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.customers = dict(customers or {"demo-customer": "demo-streamroot-key"})
        self.seed = seed
        self.base_audience = base_audience
        self.now = now

    @property
    def base_url(self) -> str:
        return self.root_url

    def sr_key(self, customer_id: str) -> str:
        digest = f"{_salt(self.seed, customer_id, 'a'):08x}{_salt(self.seed, customer_id, 'b'):08x}"
        return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[1:4]}-{digest}{digest[:4]}"

    # --- the data ------------------------------------------------------------------------------
    def five_minute_data(
        self,
        customer_id: str,
        start_ms: int,
        end_ms: int,
        *,
        content_type: str = "all",
        content: str | None = None,
        platform: str | None = None,
    ) -> pd.DataFrame:
        """The 5-minute points whose start lies in ``[start_ms, end_ms)`` and that have closed by now.

        Columns: ``ts_ms``, ``audience`` (viewers), ``cdn``/``p2p`` (bytes), ``played``/``buffered`` (ms).
        """
        closed_until = int(self.now() * 1000) // STEP_MS * STEP_MS
        first = -(-start_ms // STEP_MS) * STEP_MS
        last = min(end_ms, closed_until)
        ts = np.arange(first, last, STEP_MS, dtype=np.int64) if last > first else np.zeros(0, dtype=np.int64)
        index = ts // STEP_MS
        salt = _salt(self.seed, customer_id)
        minute_of_day = (ts % DAY_MS) / 60_000
        # Viewing peaks in the evening (UTC) and dips before dawn; weekends are busier.
        daily = 0.55 + 0.45 * np.sin(2 * np.pi * (minute_of_day / 1440 - 0.375))
        weekly = 1.0 + 0.15 * np.isin((ts // DAY_MS + 4) % 7, (5, 6))
        share = self._share(content_type, content, platform)
        # The unfiltered ("all") series are whole numbers; a filter scales them by its share, so that
        # live + vod adds up to all and the platforms' shares add up to the whole.
        audience = np.round(self.base_audience * daily * weekly * (0.9 + 0.2 * _uniform(index, salt + 1)))
        total_bytes = np.floor(audience * 1.125e8 * (0.9 + 0.2 * _uniform(index, salt + 2)))
        p2p = np.floor(total_bytes * (0.35 + 0.3 * _uniform(index, salt + 3)))
        played = np.floor(audience * 300_000 * (0.85 + 0.1 * _uniform(index, salt + 4)))
        buffered = np.floor(played * (0.002 + 0.02 * _uniform(index, salt + 5)))
        if share != 1.0:
            audience = np.round(audience * share)
            total_bytes, p2p, played, buffered = (x * share for x in (total_bytes, p2p, played, buffered))
        return pd.DataFrame(
            {"ts_ms": ts, "audience": audience, "cdn": total_bytes - p2p, "p2p": p2p,
             "played": played, "buffered": buffered}
        )

    @staticmethod
    def _share(content_type: str, content: str | None, platform: str | None) -> float:
        if content is not None:
            kind, share = STREAMS.get(content, ("none", 0.0))
            share = share if content_type in ("all", kind) else 0.0
        else:
            share = sum(s for kind, s in STREAMS.values() if content_type in ("all", kind))
        if platform is not None:
            share *= PLATFORMS.get(platform, 0.0)
        return share

    def _active(self, customer_id: str, names: list[str], days: np.ndarray, always: str) -> list[str]:
        """Names seen on any of ``days``: ``always`` every day, the others on about 80% of days."""
        return [
            name for name in names
            if len(days) and (name == always or bool((_uniform(days, _salt(self.seed, customer_id, name)) > 0.2).any()))
        ]

    # --- the HTTP face -------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        match = PATH.match(request.path)
        if not match or match.group(2) not in BY_PATH:
            return Reply.json({"message": "not found"}, status=404)
        if request.method != "POST":
            return Reply.json({"message": "method not allowed"}, status=405)
        customer_id, path = match.groups()
        if customer_id not in self.customers:
            return Reply.json({"message": "customer not found"}, status=404)
        if request.header("Authorization") != f"API-Key {self.customers[customer_id]}":
            return Reply.json({"message": "invalid API key"}, status=401)
        try:
            body = request.json()
        except ValueError:
            return Reply.json({"message": "invalid JSON body"}, status=400)
        if not isinstance(body, dict):
            return Reply.json({"message": "invalid JSON body"}, status=400)
        window = self._window(body)
        if isinstance(window, Reply):
            return window
        content_type = str(body.get("contentType", "all"))
        if content_type not in CONTENT_TYPES:
            return Reply.json({"error": "invalid content type"}, status=400)
        filters = {"content_type": content_type, "content": body.get("content"), "platform": body.get("platform")}
        data = self.five_minute_data(customer_id, *window, **filters)
        sr_key = self.sr_key(customer_id)
        endpoint = BY_PATH[path]
        if endpoint.is_timeseries:
            step = parse_duration(str(body.get("interval", "5m")))
            if step is None or step % BASE_GRAIN or step > MAX_INTERVAL:
                return Reply.json({"message": "invalid interval param"}, status=400)
            return Reply.json([{"srKey": sr_key, **self._timeseries(path, data, int(step.total_seconds() * 1000))}])
        return Reply.json([{"srKey": sr_key, **self._aggregate(path, data, customer_id, filters)}])

    def _window(self, body: dict) -> tuple[int, int] | Reply:
        has_since = "since" in body
        has_from, has_to = "from" in body, "to" in body
        if has_since and (has_from or has_to):
            return Reply.json({"message": "since cannot be passed in addition to from/to"}, status=400)
        if has_since:
            since = parse_duration(str(body["since"]))
            if since is None:
                return Reply.json({"message": "invalid since param"}, status=400)
            now_ms = int(self.now() * 1000)
            start = (now_ms - int(since.total_seconds() * 1000)) // STEP_MS * STEP_MS
            return start, now_ms
        if has_from != has_to:
            missing = "to" if has_from else "from"
            return Reply.json({"message": f"param '{missing}' is required if param '{'from' if has_from else 'to'}' is present"}, status=400)
        if not has_from:
            return Reply.json({"message": "one of since or from/to is required"}, status=400)
        start, end = bound_to_ms(str(body["from"])), bound_to_ms(str(body["to"]))
        if start is None:
            return Reply.json({"message": "invalid from param"}, status=400)
        if end is None:
            return Reply.json({"message": "invalid to param"}, status=400)
        if start >= end:
            return Reply.json({"message": "invalid time range: from must be before to"}, status=400)
        return start, end

    @staticmethod
    def _timeseries(path: str, data: pd.DataFrame, step_ms: int) -> dict:
        metric = path.split("/")[2]
        frame = data.assign(bucket=data.ts_ms - data.ts_ms % step_ms)
        if metric == "bandwidth":
            frame = frame.assign(cdn=frame.cdn * 8 / 300, p2p=frame.p2p * 8 / 300)
        columns = {"audience": ["audience"], "traffic": ["p2p", "cdn"], "bandwidth": ["p2p", "cdn"],
                   "buffering": ["played", "buffered"]}[metric]
        how = {"audience": "max", "traffic": "sum", "bandwidth": "mean", "buffering": "sum"}[metric]
        grouped = frame.groupby("bucket", sort=True)[columns].agg(how)
        buckets = grouped.index.to_numpy(dtype=np.int64).tolist()
        return {c: [[ts, value] for ts, value in zip(buckets, grouped[c].tolist())] for c in columns}

    def _aggregate(self, path: str, data: pd.DataFrame, customer_id: str, filters: dict) -> dict:
        metric = path.split("/")[2]
        if metric == "audience":
            audience = data.audience.to_numpy()
            return {"max": float(audience.max()) if len(audience) else 0,
                    "average": round(float(audience.mean()), 3) if len(audience) else 0,
                    "audience95th": nearest_rank(audience, 95)}
        if metric == "traffic":
            return {"cdn": float(data.cdn.sum()), "p2p": float(data.p2p.sum())}
        if metric == "bandwidth":
            cdn, p2p = (data.cdn * 8 / 300).to_numpy(), (data.p2p * 8 / 300).to_numpy()
            total = cdn + p2p
            if not len(total):
                return {"p2pAvegage": 0, "cdnMax": 0, "p2pMax": 0, "max": 0, "p2p95th": 0}
            return {"p2pAvegage": float(p2p.mean()), "cdnMax": float(cdn.max()), "p2pMax": float(p2p.max()),
                    "max": float(total.max()), "p2p95th": nearest_rank(total, 95)}
        if metric == "buffering":
            return {"played": float(data.played.sum()), "buffered": float(data.buffered.sum())}
        days = np.unique(data.ts_ms.to_numpy() // DAY_MS) if (data.audience > 0).any() else np.zeros(0, dtype=np.int64)
        if metric == "platforms":
            names = [filters["platform"]] if filters["platform"] else list(PLATFORMS)
            return {"platforms": self._active(customer_id, [n for n in names if n in PLATFORMS], days, "web-desktop")}
        kind = filters["content_type"]
        names = [filters["content"]] if filters["content"] else list(STREAMS)
        names = [n for n in names if n in STREAMS and kind in ("all", STREAMS[n][0])]
        return {"streams": self._active(customer_id, names, days, "live/majorChannel.m3u8")}
