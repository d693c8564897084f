"""What each warehouse column of Streamroot holds, per table: the ``dagster/column_schema`` descriptions.

Data, not code. Sources: reference/apis.md §4 (the DNA data API v3 documentation); "assumed" marks what the
documentation leaves open (units, percentiles, the 5-minute grain of the rows, the key).
"""

from __future__ import annotations

SR_KEY = "Streamroot key (srKey, also spelled SrKey): the API answers with one object per key"
DAY = "The UTC day the API aggregated over (from = 00:00, to = the next 00:00, exclusive; window assumed half-open)"
TS = ("Start of the 5-minute interval the point reports, UTC (the API floors points to the interval start; "
      "5 minutes is the documented base grain)")

COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "audience": {
        "sr_key": SR_KEY,
        "day": DAY,
        "max": "max: peak concurrent viewers of the day (the API counts viewers per 2-minute window)",
        "average": "average: mean concurrent viewers over the day's windows",
        "audience_95th": "audience95th: 95th percentile of concurrent viewers (nearest rank over the samples: assumed)",
    },
    "audience_timeseries": {
        "sr_key": SR_KEY,
        "ts": TS,
        "audience": "audience: concurrent viewers in the interval (its peak sample: assumed)",
    },
    "traffic": {
        "sr_key": SR_KEY,
        "day": DAY,
        "cdn": "cdn: bytes of video delivered through the CDN that day (only data added to the player buffer)",
        "p2p": "p2p: bytes of video delivered peer to peer that day (only data added to the player buffer)",
    },
    "traffic_timeseries": {
        "sr_key": SR_KEY,
        "ts": TS,
        "cdn": "cdn: bytes delivered through the CDN in the interval",
        "p2p": "p2p: bytes delivered peer to peer in the interval",
    },
    "bandwidth": {
        "sr_key": SR_KEY,
        "day": DAY,
        "p2p_average": "p2pAvegage (sic; p2pAverage also read): average P2P bandwidth of the day, bits/s",
        "cdn_max": "cdnMax: highest CDN bandwidth of the day, bits/s (from 5-minute traffic buckets)",
        "p2p_max": "p2pMax: highest P2P bandwidth of the day, bits/s",
        "max": "max: highest total (CDN + P2P) bandwidth of the day, bits/s",
        "p2p_95th": "p2p95th: 95th percentile of the day's bandwidth, bits/s (of total CDN + P2P bandwidth, "
                    "nearest rank over 5-minute samples: assumed from the documented example's magnitude)",
    },
    "bandwidth_timeseries": {
        "sr_key": SR_KEY,
        "ts": TS,
        "cdn": "cdn: average CDN bandwidth in the interval, bits/s",
        "p2p": "p2p: average P2P bandwidth in the interval, bits/s",
    },
    "buffering": {
        "sr_key": SR_KEY,
        "day": DAY,
        "played": "played: time played that day (milliseconds: assumed, the documentation gives no unit)",
        "buffered": "buffered: time spent buffering that day (milliseconds: assumed)",
    },
    "buffering_timeseries": {
        "sr_key": SR_KEY,
        "ts": TS,
        "played": "played: time played in the interval (milliseconds: assumed)",
        "buffered": "buffered: time spent buffering in the interval (milliseconds: assumed)",
    },
    "platforms": {
        "sr_key": SR_KEY,
        "day": DAY,
        "platform": "One of platforms: a platform with Mesh Delivery traffic that day (e.g. web-desktop); one row each",
    },
    "streams": {
        "sr_key": SR_KEY,
        "day": DAY,
        "stream": "One of streams: a stream (manifest URL or content id) with traffic that day; one row each",
    },
    "daily_kpis": {
        "sr_key": SR_KEY,
        "day": "The UTC day of the KPIs",
        "buffering_rate": "buffered / (played + buffered) from the buffering table (the documented buffering rate); "
                          "NULL when nothing was played",
        "p2p_offload": "p2p / (p2p + cdn) from the traffic table: the share of bytes delivered peer to peer",
        "peak_audience": "The audience table's max: peak concurrent viewers of the day",
        "audience_95th": "The audience table's audience_95th",
    },
}
