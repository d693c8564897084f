"""A local StreamAPI, written from the HTTP reference (see reference/apis.md §2).

What it checks, in this order, answering HTTP 200 with ``<code>``/``<msg>`` as the reference does:
``key``, ``sig`` and ``rid`` present (1), the key known (200), the signature recomputed from the
parameters as received (202), the rid strictly greater than the last accepted one for that key (203),
the call's required parameters (1), then the call's own rules: unknown host (8), unknown session (46),
a host created by another API key (201). ``session/create`` must be POSTed; the others are GETs.

What it serves, deterministic per seed and key: a handful of hosts (some broadcasting), recordings
across dates (``creation_date`` in epoch ms, ``duration`` in seconds, ``size`` in bytes), layout themes.
``session/create`` makes a session the other calls then see; it goes live at once but, as documented,
appears in ``session/live/list`` only after a delay (60 s by default, configurable for tests).

Documented assumptions: the root element is ``<response>``, with ``<videos>``, ``<themes>`` and
``<live_sessions>`` as wrappers; booleans are ``true``/``false``; ``start_date``/``end_date`` are both
inclusive; a ``video/list`` without dates covers everything up to now; no list call paginates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from typing import Callable

from stream_assets.core.emulator import Emulator, Reply, Request
from stream_assets.core.windows import to_epoch_ms
from stream_assets.streamapi.calls import BY_PATH, STATUS_MEANINGS
from stream_assets.streamapi.client import sign

PREFIX = "/service/"
DAY_MS = 86_400_000
THEMES = [
    ("1", "Classic", 640, 480), ("2", "Widescreen", 854, 480), ("3", "Studio HD", 1280, 720), ("4", "Compact", 320, 240),
]


@dataclass
class Host:
    public_hostid: str
    private_hostid: str
    owner: str  # the API key that created it
    username: str
    channel_id: str
    fme_key: str | None = None
    is_video_private: bool = False
    live_since: float | None = None  # epoch seconds; None when not broadcasting
    viewers: int = 0


class ApiFailure(Exception):
    def __init__(self, code: int, msg: str | None = None) -> None:
        super().__init__(code)
        self.code, self.msg = code, msg or STATUS_MEANINGS[code]


@dataclass
class _Account:
    secret: str
    last_rid: int = 0
    hosts: dict[str, Host] = field(default_factory=dict)


class StreamApiEmulator(Emulator):
    name = "streamapi"

    def __init__(
        self,
        accounts: dict[str, str] | None = None,
        *,
        seed: int = 5,
        list_delay_seconds: float = 60.0,
        data_start: str = "2025-01-01",
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.seed = seed
        self.list_delay_seconds = list_delay_seconds
        self.data_start_ms = to_epoch_ms(dt.datetime.fromisoformat(data_start))
        self.now = now
        self._state_lock = threading.Lock()
        self.accounts = {key: _Account(secret) for key, secret in (accounts or {"demo-streamapi-key": "demo-streamapi-secret"}).items()}
        for number, (key, account) in enumerate(self.accounts.items()):
            for index in range(6):
                host = self._new_host(key, str(1000016000 + 100 * number + index), f"host{index}")
                if index in (0, 2):  # two hosts are on air, with their list delay long past
                    host.live_since = self.now() - 3600 * (index + 1)
                    host.viewers = 40 + 17 * index
                account.hosts[host.public_hostid] = host

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/service"

    def _new_host(self, key: str, public_hostid: str, username: str) -> Host:
        private = hashlib.sha1(f"{self.seed}:{key}:{public_hostid}".encode()).hexdigest()[:12].upper()
        return Host(public_hostid, private, key, username, channel_id=str(500 + int(public_hostid) % 97))

    # --- test helpers --------------------------------------------------------------------------
    def all_hosts(self) -> dict[str, Host]:
        return {h.public_hostid: h for account in self.accounts.values() for h in account.hosts.values()}

    def end_broadcast(self, public_hostid: str) -> None:
        with self._state_lock:
            self.all_hosts()[public_hostid].live_since = None

    def start_broadcast(self, public_hostid: str, *, seconds_ago: float = 0.0) -> None:
        with self._state_lock:
            self.all_hosts()[public_hostid].live_since = self.now() - seconds_ago

    def recordings(self, key: str, start_ms: int, end_ms: int) -> list[dict]:
        """The recordings of ``key`` created in ``[start_ms, end_ms]`` (inclusive) that exist by now."""
        hosts = sorted(self.accounts[key].hosts)[:6]
        start_ms = max(start_ms, self.data_start_ms)
        end_ms = min(end_ms, int(self.now() * 1000) - 1)
        found = []
        for day in range(start_ms // DAY_MS, end_ms // DAY_MS + 1) if end_ms >= start_ms else ():
            rng = random.Random(f"{self.seed}:{key}:{day}")
            for number in range(rng.randint(0, 6)):
                video_id = str(day * 10 + number)
                duration = rng.randint(30, 7200)
                host = rng.choice(hosts)
                created = day * DAY_MS + rng.randrange(DAY_MS)
                if start_ms <= created <= end_ms:
                    found.append({
                        "id": video_id, "public_hostid": host, "duration": str(duration),
                        "channel_id": str(500 + int(host) % 97), "creation_date": str(created),
                        "filename": f"{video_id}.flv", "size": str(duration * rng.randint(50_000, 400_000)),
                        "url": f"http://videos.streamapi.com/{video_id}.flv",
                        "embed_code": f'<embed src="http://player.streamapi.com/v/{video_id}"/>',
                    })
        found = self.past.apply(self.recordings_collection(key), found,
                                keep_added=lambda v: start_ms <= int(v["creation_date"]) <= end_ms)
        return sorted(found, key=lambda v: int(v["creation_date"]))

    @staticmethod
    def recordings_collection(key: str) -> str:
        """The name under which ``past`` holds the late, changed and deleted recordings of one account."""
        return f"recordings/{key}"

    # --- HTTP --------------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        path = request.path[len(PREFIX):] if request.path.startswith(PREFIX) else None
        call = BY_PATH.get((path or "").strip("/"))
        if call is None:
            return Reply.text("<html><body>404 Not Found</body></html>", status=404, content_type="text/html")
        params = {k: v[-1] for k, v in request.query.items()}
        if request.method == "POST":
            params.update({k: v[-1] for k, v in request.form().items()})
        try:
            with self._state_lock:
                fields = self._serve(call.path, call.method, call.required, request.method, params)
        except ApiFailure as failure:
            return self._xml(failure.code, {}, failure.msg)
        return self._xml(0, fields)

    def _serve(self, path: str, method: str, required: tuple[str, ...], used_method: str, params: dict[str, str]):
        if not all(params.get(p) for p in ("key", "sig", "rid")):
            raise ApiFailure(1, "Missing required parameter(s): key, sig and rid are required")
        account = self.accounts.get(params["key"])
        if account is None:
            raise ApiFailure(200)
        if sign(params, account.secret, params["rid"]) != params["sig"]:
            raise ApiFailure(202)
        if not params["rid"].isdigit() or int(params["rid"]) <= account.last_rid:
            raise ApiFailure(203)
        account.last_rid = int(params["rid"])
        if used_method != method:
            raise ApiFailure(100, f"{path} must be called with {method}")
        missing = [p for p in required if not params.get(p)]
        if missing:
            raise ApiFailure(1, f"Missing required parameter(s): {', '.join(missing)}")
        return getattr(self, "_" + path.replace("/", "_"))(params["key"], account, params)

    def _host(self, public_hostid: str, key: str) -> Host:
        host = self.all_hosts().get(public_hostid)
        if host is None:
            raise ApiFailure(8)
        if host.owner != key:
            raise ApiFailure(201)
        return host

    def _session_create(self, key: str, account: _Account, params: dict[str, str]):
        for name, allowed in (("site_user_id", str.isdigit), ("username", str.isalnum), ("fme_key", str.isalnum)):
            if name in params and not allowed(params[name]):
                raise ApiFailure(100, f"invalid {name}")
        public = params.get("site_user_id") or str(2000000000 + sum(len(a.hosts) for a in self.accounts.values()))
        existing = self.all_hosts().get(public)
        if existing is not None and existing.owner != key:
            raise ApiFailure(201)
        host = self._new_host(key, public, params.get("username") or f"user{public}")
        host.fme_key = params.get("fme_key")
        host.is_video_private = params.get("is_video_private") == "true"
        host.live_since = self.now()
        account.hosts[public] = host
        return {"private_hostid": host.private_hostid, "public_hostid": host.public_hostid}

    def _session_live(self, key: str, account: _Account, params: dict[str, str]):
        host = self._host(params["public_hostid"], key)
        if host.live_since is None:
            return {"is_live": "false"}
        return {"is_live": "true", **self._session_fields(host)}

    def _session_fields(self, host: Host) -> dict[str, str]:
        return {
            "public_hostid": host.public_hostid, "private_hostid": host.private_hostid, "username": host.username,
            "start_time": str(int(host.live_since * 1000)), "duration": str(int(self.now() - host.live_since)),
            "channel_id": host.channel_id,
        }

    def _session_live_list(self, key: str, account: _Account, params: dict[str, str]):
        visible_before = self.now() - self.list_delay_seconds
        sessions = []
        for host in sorted(account.hosts.values(), key=lambda h: h.public_hostid):
            if host.live_since is not None and host.live_since <= visible_before:
                v = host.viewers
                sessions.append({**self._session_fields(host), "total_viewers": str(v * 3), "total_chatters": str(v // 2),
                                 "max_viewers": str(v + 5), "max_chatters": str(v // 3), "current_viewers": str(v),
                                 "current_chatters": str(v // 4)})
        return {"live_sessions": [("session", s) for s in sessions]}

    def _host_id_public(self, key: str, account: _Account, params: dict[str, str]):
        host = next((h for h in self.all_hosts().values() if h.private_hostid == params["private_hostid"]), None)
        if host is None:
            raise ApiFailure(46)
        if host.owner != key:
            raise ApiFailure(201)
        return {"public_hostid": host.public_hostid, "private_hostid": host.private_hostid}

    def _host_id_private(self, key: str, account: _Account, params: dict[str, str]):
        host = self._host(params["public_hostid"], key)
        return {"public_hostid": host.public_hostid, "private_hostid": host.private_hostid}

    def _video_list(self, key: str, account: _Account, params: dict[str, str]):
        for name in ("start_date", "end_date", "public_hostid"):
            if name in params and not params[name].isdigit():
                raise ApiFailure(100, f"invalid {name}")
        videos = self.recordings(key, int(params.get("start_date", 0)), int(params.get("end_date", 2**62)))
        if "public_hostid" in params:
            self._host(params["public_hostid"], key)
            videos = [v for v in videos if v["public_hostid"] == params["public_hostid"]]
        return {"videos": [("video", v) for v in videos]}

    def _theme_list(self, key: str, account: _Account, params: dict[str, str]):
        themes = [{"id": i, "name": n, "width": str(w), "height": str(h), "layout_path": f"/layouts/{i}.xml",
                   "skin_path": f"/skins/{i}.swf"} for i, n, w, h in THEMES]
        return {"themes": [("theme", t) for t in themes]}

    @staticmethod
    def _xml(code: int, fields: dict, msg: str | None = None) -> Reply:
        root = ElementTree.Element("response")
        ElementTree.SubElement(root, "code").text = str(code)
        if msg:
            ElementTree.SubElement(root, "msg").text = msg
        for name, value in fields.items():
            element = ElementTree.SubElement(root, name)
            if isinstance(value, list):  # a wrapper of (tag, record) pairs; the record's id is an attribute
                for tag, record in value:
                    item = ElementTree.SubElement(element, tag, {"id": record["id"]} if "id" in record else {})
                    for key, text in record.items():
                        if key != "id":
                            ElementTree.SubElement(item, key).text = text
            else:
                element.text = value
        return Reply(200, ElementTree.tostring(root, encoding="utf-8", xml_declaration=True), "text/xml")
