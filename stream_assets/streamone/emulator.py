"""A local StreamOne API v3, written from the documentation and SDKs (see reference/apis.md §3).

Checks, in order, answering HTTP 200 with the status in the envelope's header:
- POST to ``/api/<command>/<action>`` only; ``api=3``; only the documented parameters (7 otherwise);
- ``timestamp`` within ``timestamp_window`` seconds of now (2);
- rate limiting after repeated failed authentication of one actor (8 while the actor is locked out);
- the signature, recomputed from the raw query string as received minus the ``signature`` pair, ``&``, and
  the raw body, so the PHP SDK's insertion order and the iOS SDK's sorted order both pass (3);
- the command and action exist (5); the timezone is known (9);
- the actor holds the action's token (``item-view``, ...) through a global role, a role for the
  account's customer, or a role for the account, for every requested account (4);
- the arguments are known and well-formed (6).

Serves deterministic items (videos and audio across dates, with ``datecreated``, ``dateaired``,
``duration``, ``views``, ``account``) and live streams, honours ``offset``, ``limit``, ``order``,
``orderfield``, ``archived``, ``itemtype``, ``searchtitle``, reports ``count`` and answers in the
requested ``timezone``. Documented assumptions: ``limit`` defaults to 30 and may not exceed 100;
``duration`` is ``HH:MM:SS.mmm``; ``orderfield`` defaults to ``created`` and ``order`` to ``asc``;
without ``archived`` both archived and live items are listed; views grow with an item's age.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stream_assets.core.emulator import Emulator, Reply, Request
from stream_assets.streamone.statuses import STATUS_NAMES

PARAMETERS = {"api", "format", "authentication_type", "user", "application", "session", "timestamp", "signature",
              "account", "customer", "timezone"}
ACTIONS: dict[tuple[str, str], set[str]] = {  # (command, action) -> accepted arguments
    ("item", "view"): {"item", "id", "archived", "searchtitle", "itemtype", "offset", "limit", "order", "orderfield",
                       "livestream"},
    ("livestream", "view"): {"active", "orderfield", "offset", "limit", "order"},
    ("api", "mytokens"): set(),
}
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


@dataclass(frozen=True)
class Role:
    tokens: frozenset[str]
    customer: str | None = None  # a customer role
    account: str | None = None  # an account role; neither means a global role


@dataclass
class Actor:
    psk: str
    roles: list[Role]
    failures: list[float] = field(default_factory=list)


class StreamOneEmulator(Emulator):
    name = "streamone"

    def __init__(
        self,
        *,
        users: dict[str, tuple[str, list[Role]]] | None = None,
        applications: dict[str, tuple[str, list[Role]]] | None = None,
        sessions: dict[str, tuple[str, str]] | None = None,  # session id -> (application id, session key)
        accounts: dict[str, str] | None = None,  # account id -> customer id
        seed: int = 9,
        data_start: str = "2025-06-01",
        timestamp_window: float = 300.0,
        max_failures: int = 5,
        lockout_seconds: float = 60.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        everything = [Role(frozenset({"item-view", "livestream-view", "api-mytokens"}))]
        self.users = {k: Actor(psk, roles) for k, (psk, roles) in (users or {"demo-user": ("demo-user-psk", everything)}).items()}
        self.applications = {k: Actor(psk, roles) for k, (psk, roles) in
                             (applications or {"demo-app": ("demo-app-psk", everything)}).items()}
        self.sessions = dict(sessions or {})
        self.accounts = dict(accounts or {"acc-news00001": "cust-000001", "acc-sport0001": "cust-000001"})
        self.seed, self.now = seed, now
        self.timestamp_window, self.max_failures, self.lockout_seconds = timestamp_window, max_failures, lockout_seconds
        self.data_start = dt.datetime.fromisoformat(data_start).replace(tzinfo=dt.timezone.utc)
        self._lock = threading.Lock()
        self._items: list[dict] = []
        self._items_until: dt.date | None = None

    # --- data ----------------------------------------------------------------------------------
    def _make_id(self, *parts: object) -> str:
        digest = hashlib.sha256(":".join(map(str, (self.seed, *parts))).encode()).digest()
        return "".join(_ID_CHARS[b % 64] for b in digest[:12])

    def items(self) -> list[dict]:
        """Every item created by now (UTC datetimes), oldest first, views as of now."""
        now = dt.datetime.fromtimestamp(self.now(), dt.timezone.utc)
        with self._lock:
            if self._items_until != now.date():
                self._items = [item for day in range((now.date() - self.data_start.date()).days + 1)
                               for item in self._items_of(self.data_start.date() + dt.timedelta(days=day))]
                self._items_until = now.date()
            items = [dict(item) for item in self._items if item["datecreated"] <= now]
        for item in items:
            age_days = (now - item["datecreated"]).total_seconds() / 86400
            item["views"] = int(item.pop("popularity") * (1 + age_days) ** 0.5)
        return items

    def _items_of(self, day: dt.date) -> list[dict]:
        rng = random.Random(f"{self.seed}:items:{day}")
        accounts = sorted(self.accounts)
        items = []
        for number in range(rng.randint(0, 8)):
            created = dt.datetime.combine(day, dt.time(), dt.timezone.utc) + dt.timedelta(seconds=rng.randrange(86400))
            kind = rng.choice(["video", "video", "video", "audio"])
            length = rng.randint(5_000, 5_400_000)  # ms
            account = rng.choice(accounts)
            items.append({
                "id": self._make_id("item", day, number), "title": f"{kind.title()} {day:%d %b %Y} #{number + 1}",
                "type": kind, "description": f"Emulated {kind} {number + 1} of {day}",
                "duration": f"{length // 3_600_000:02d}:{length // 60_000 % 60:02d}:{length // 1000 % 60:02d}.{length % 1000:03d}",
                "datecreated": created, "dateaired": created + dt.timedelta(hours=rng.randint(0, 72)),
                "popularity": rng.randint(1, 500), "archived": rng.random() < 0.1,
                "account": {"id": account, "name": f"Account {account[4:].rstrip('0')}"},
            })
        return sorted(items, key=lambda i: i["datecreated"])

    def livestreams(self) -> list[dict]:
        accounts = sorted(self.accounts)
        return [{"id": self._make_id("live", n), "title": title, "description": f"{title}, around the clock",
                 "type": {"label": "Live", "name": "live"}, "thumbnail": None,
                 "medialink": {"hls": f"https://live.example.invalid/{n}.m3u8"},
                 "account": {"id": accounts[n % len(accounts)], "name": f"Account {n}"}}
                for n, title in enumerate(["Newsroom", "Sports Arena", "Parliament"])]

    # --- HTTP --------------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        parts = request.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "api":
            return Reply.text("<html><body>404 Not Found</body></html>", status=404, content_type="text/html")
        if request.method != "POST":
            return Reply.text("<html><body>405 Method Not Allowed</body></html>", status=405, content_type="text/html")
        command, action = parts[1], parts[2]
        params = dict(parse_qsl(request.raw_query, keep_blank_values=True))
        arguments = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        status, message, zone = self._authorize(request, command, action, params)
        if status:
            return self._envelope(status, message, None, zone)
        return self._serve(command, action, arguments, params, zone)

    def _authorize(self, request: Request, command: str, action: str, params: dict[str, str]):
        zone = ZoneInfo("UTC")
        unknown = sorted(set(params) - PARAMETERS)
        if unknown or params.get("api") != "3":
            return 7, f"unknown parameter(s): {', '.join(unknown)}" if unknown else "api must be 3", zone
        auth_type = params.get("authentication_type", "user")
        if auth_type not in ("user", "application") or not params.get(auth_type):
            return 3, "missing or invalid actor", zone
        try:
            timestamp = int(params.get("timestamp", ""))
        except ValueError:
            return 2, "timestamp missing or not an integer", zone
        if abs(timestamp - self.now()) > self.timestamp_window:
            return 2, "timestamp out of range", zone
        actors = self.users if auth_type == "user" else self.applications
        actor = actors.get(params[auth_type])
        now = self.now()
        if actor is not None:
            actor.failures = [t for t in actor.failures if now - t < self.lockout_seconds]
            if len(actor.failures) >= self.max_failures:
                return 8, "too many failed authentication attempts; retry later", zone
        key = actor.psk if actor else None
        if actor and "session" in params:
            session = self.sessions.get(params["session"])
            key = actor.psk + session[1] if session and session[0] == params[auth_type] else None
        signed_query = "&".join(p for p in request.raw_query.split("&") if not p.startswith("signature="))
        expected = key and hmac.new(key.encode(), f"{request.path}?{signed_query}&{request.body.decode()}".encode(),
                                    hashlib.sha1).hexdigest()
        if not expected or not hmac.compare_digest(expected, params.get("signature", "")):
            if actor is not None:
                actor.failures.append(now)
            return 3, "authentication failed", zone
        if (command, action) not in ACTIONS:
            return 5, f"unknown action {command}/{action}", zone
        try:
            zone = ZoneInfo(params.get("timezone") or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            return 9, f"invalid timezone {params.get('timezone')!r}", ZoneInfo("UTC")
        token = f"{command}-{action}"
        accounts = [a for a in params.get("account", "").split(",") if a]
        if any(a not in self.accounts for a in accounts):
            return 290, "account not found", zone
        if not self._holds(actor, token, accounts, params.get("customer")):
            return 4, f"the actor lacks token {token}", zone
        return 0, "OK", zone

    def _holds(self, actor: Actor, token: str, accounts: list[str], customer: str | None) -> bool:
        def allowed(account: str | None, customer_id: str | None) -> bool:
            return any(token in role.tokens and (
                (role.customer is None and role.account is None)
                or (role.customer is not None and role.customer == customer_id)
                or (role.account is not None and role.account == account)) for role in actor.roles)

        if accounts:
            return all(allowed(a, self.accounts[a]) for a in accounts)
        return allowed(None, customer)

    def _serve(self, command: str, action: str, arguments: dict[str, str], params: dict[str, str], zone: ZoneInfo) -> Reply:
        unknown = sorted(set(arguments) - ACTIONS[(command, action)])
        if unknown:
            return self._envelope(6, f"unknown argument(s): {', '.join(unknown)}", None, zone)
        if (command, action) == ("api", "mytokens"):
            return self._envelope(0, "OK", ["item-view", "livestream-view", "api-mytokens"], zone)
        try:
            offset = int(arguments.get("offset", "0"))
            limit = int(arguments.get("limit", "30"))
        except ValueError:
            return self._envelope(6, "offset and limit must be integers", None, zone)
        order = arguments.get("order", "asc")
        if offset < 0 or not 1 <= limit <= 100 or order not in ("asc", "desc"):
            return self._envelope(6, "invalid offset, limit (1-100) or order (asc/desc)", None, zone)
        rows = self.items() if command == "item" else self.livestreams()
        accounts = [a for a in params.get("account", "").split(",") if a]
        if params.get("customer"):
            accounts = [a for a, c in self.accounts.items() if c == params["customer"]]
        if accounts:
            rows = [r for r in rows if r["account"]["id"] in accounts]
        if command == "item":
            rows = self._filter_items(rows, arguments)
            if isinstance(rows, Reply):
                return rows
        sort_key = {"created": "datecreated", "aired": "dateaired", "name": "title"}.get(arguments.get("orderfield", "created"))
        if sort_key is None or (command == "livestream" and sort_key != "title"):
            sort_key = "title" if command == "livestream" else None
        if sort_key is None:
            return self._envelope(6, "orderfield must be created, aired or name", None, zone)
        rows = sorted(rows, key=lambda r: (r[sort_key], r["id"]), reverse=order == "desc")
        page = [self._public(r, zone) for r in rows[offset:offset + limit]]
        return self._envelope(0, "OK", page, zone, count=len(rows))

    def _filter_items(self, rows: list[dict], arguments: dict[str, str]) -> list[dict] | Reply:
        archived = arguments.get("archived")
        if archived not in (None, "0", "1"):
            return self._envelope(6, "archived must be 0 or 1", None, ZoneInfo("UTC"))
        if archived is not None:
            rows = [r for r in rows if r["archived"] == (archived == "1")]
        if "itemtype" in arguments:
            if arguments["itemtype"] not in ("video", "audio", "videoonly"):
                return self._envelope(6, "itemtype must be video, audio or videoonly", None, ZoneInfo("UTC"))
            rows = [r for r in rows if r["type"] == arguments["itemtype"]]
        if arguments.get("searchtitle"):
            rows = [r for r in rows if arguments["searchtitle"].lower() in r["title"].lower()]
        wanted = arguments.get("item") or arguments.get("id")
        if wanted:
            rows = [r for r in rows if r["id"] == wanted]
        return rows

    @staticmethod
    def _public(row: dict, zone: ZoneInfo) -> dict:
        out = {k: v for k, v in row.items() if k not in ("archived", "popularity")}
        for name in ("datecreated", "dateaired"):
            if isinstance(out.get(name), dt.datetime):
                out[name] = out[name].astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
        return out

    @staticmethod
    def _envelope(status: int, message: str, body: object, zone: ZoneInfo, count: int | None = None) -> Reply:
        header = {"status": status, "statusmessage": message if status else "OK", "apiversion": 3,
                  "cacheable": status == 0, "timezone": str(zone)}
        if count is not None:
            header["count"] = count
        if status and message == STATUS_NAMES.get(status):
            header["statusmessage"] = message
        return Reply.json({"header": header, "body": body})
