"""A local StreamOne API v3, written from the documentation, the SDKs (see reference/apis.md §3) and the
vendor's own ``item/view`` command page.

Checks, in order, answering HTTP 200 with the status in the envelope's header:
- POST to ``/api/<command>/<action>`` only; ``api=3``; only the documented parameters (7 otherwise);
- ``timestamp`` within ``timestamp_window`` seconds of now (2);
- rate limiting after repeated failed authentication of one actor (8 while the actor is locked out);
- the signature, recomputed from the raw query string as received minus the ``signature`` pair, ``&``, and
  the raw body, so the PHP SDK's insertion order and the iOS SDK's sorted order both pass (3);
- the command and action exist (5); the timezone is known (9);
- the actor holds the action's token (:data:`TOKENS`: ``item-read`` for item/view) through a global role,
  a role for the account's customer, or a role for the account, for every requested account (4);
- the arguments are known and well-formed (6).

Serves deterministic items (videos and audio across dates, about one in ten archived, with ``datecreated``,
``dateaired``, ``duration``, ``views``, ``archived``, ``account``) and live streams, honours ``offset``,
``limit``, ``order``, ``orderfield``, ``archived``, ``mindatecreated``, ``maxdatecreated``, ``itemtype``,
``searchtitle``, reports ``count`` and answers in the requested ``timezone``.

From the vendor's ``item/view`` page: ``archived`` defaults to false (absent, ``0`` or ``false`` hide archived
items; sent empty, both archived and live are listed; ``1`` or ``true``, only archived ones);
``mindatecreated``/``maxdatecreated`` (both inclusive) are ``YYYY-MM-DD HH:MM:SS`` in the request's timezone;
the token is ``item-read``; ``duration`` is ``H:MM:SS`` with unpadded hours (``0:12:59``).

Documented assumptions: ``limit`` defaults to 30 and may not exceed 100; ``orderfield`` defaults to
``created`` and ``order`` to ``asc``; an empty date bound is no bound, and a wall time repeated when daylight
saving ends reads as its first occurrence; answers carry ``archived`` as a JSON boolean; about half the items
give ``duration`` as ``H:MM:SS``, the rest as ``HH:MM:SS.mmm`` (the form we assumed before the vendor's page);
the tokens of the other actions are ``<command>-<action>`` (``livestream-view``, ``api-mytokens``), and
``api/mytokens`` lists those the actor holds in the request's account or customer context; views grow with an
item's age.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random
import re
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
    ("item", "view"): {"item", "id", "archived", "mindatecreated", "maxdatecreated", "searchtitle", "itemtype",
                       "offset", "limit", "order", "orderfield", "livestream"},
    ("livestream", "view"): {"active", "orderfield", "offset", "limit", "order"},
    ("api", "mytokens"): set(),
}
TOKENS: dict[tuple[str, str], str] = {  # (command, action) -> the token an actor needs for it
    ("item", "view"): "item-read",  # the vendor's item/view page
    ("livestream", "view"): "livestream-view",
    ("api", "mytokens"): "api-mytokens",
}
ARCHIVED = {None: False, "0": False, "false": False, "": None, "1": True, "true": True}  # sent -> shown (None: both)
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
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
        items_per_day: tuple[int, int] = (0, 8),  # (fewest, most) items created a day
        timestamp_window: float = 300.0,
        max_failures: int = 5,
        lockout_seconds: float = 60.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        everything = [Role(frozenset(TOKENS.values()))]
        self.users = {k: Actor(psk, roles) for k, (psk, roles) in (users or {"demo-user": ("demo-user-psk", everything)}).items()}
        self.applications = {k: Actor(psk, roles) for k, (psk, roles) in
                             (applications or {"demo-app": ("demo-app-psk", everything)}).items()}
        self.sessions = dict(sessions or {})
        self.accounts = dict(accounts or {"acc-news00001": "cust-000001", "acc-sport0001": "cust-000001"})
        self.seed, self.now = seed, now
        self.timestamp_window, self.max_failures, self.lockout_seconds = timestamp_window, max_failures, lockout_seconds
        self.data_start = dt.datetime.fromisoformat(data_start).replace(tzinfo=dt.timezone.utc)
        self.items_per_day = items_per_day
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
            items = [dict(item) for item in self.past.apply("items", self._items, keep_added=lambda i: True)
                     if item["datecreated"] <= now]
        for item in items:
            age_days = (now - item["datecreated"]).total_seconds() / 86400
            item["views"] = int(item.pop("popularity", 1) * (1 + age_days) ** 0.5)
        return items

    def _items_of(self, day: dt.date) -> list[dict]:
        rng = random.Random(f"{self.seed}:items:{day}")
        accounts = sorted(self.accounts)
        items = []
        for number in range(rng.randint(*self.items_per_day)):
            created = dt.datetime.combine(day, dt.time(), dt.timezone.utc) + dt.timedelta(seconds=rng.randrange(86400))
            kind = rng.choice(["video", "video", "video", "audio"])
            length = rng.randint(5_000, 5_400_000)  # ms
            account = rng.choice(accounts)
            items.append({
                "id": self._make_id("item", day, number), "title": f"{kind.title()} {day:%d %b %Y} #{number + 1}",
                "type": kind, "description": f"Emulated {kind} {number + 1} of {day}",
                "duration": _duration(length, vendor_form=number % 2 == 0),
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
        actor = self._actor(params)
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
        token = TOKENS[(command, action)]
        accounts = [a for a in params.get("account", "").split(",") if a]
        if any(a not in self.accounts for a in accounts):
            return 290, "account not found", zone
        if not self._holds(actor, token, accounts, params.get("customer")):
            return 4, f"the actor lacks token {token}", zone
        return 0, "OK", zone

    def _actor(self, params: dict[str, str]) -> Actor | None:
        auth_type = params.get("authentication_type", "user")
        return (self.users if auth_type == "user" else self.applications).get(params[auth_type])

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
        if (command, action) == ("api", "mytokens"):  # the tokens the actor holds in this account/customer context
            actor, accounts = self._actor(params), [a for a in params.get("account", "").split(",") if a]
            tokens = {t for role in actor.roles for t in role.tokens}
            held = sorted(t for t in tokens if self._holds(actor, t, accounts, params.get("customer")))
            return self._envelope(0, "OK", held, zone)
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
            rows = self._filter_items(rows, arguments, zone)
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

    def _filter_items(self, rows: list[dict], arguments: dict[str, str], zone: ZoneInfo) -> list[dict] | Reply:
        if arguments.get("archived") not in ARCHIVED:
            return self._envelope(6, "archived must be 0, 1, false, true or empty", None, zone)
        shown = ARCHIVED[arguments.get("archived")]
        if shown is not None:
            rows = [r for r in rows if r["archived"] == shown]
        for name, keep in (("mindatecreated", lambda r, t: r["datecreated"] >= t),
                           ("maxdatecreated", lambda r, t: r["datecreated"] <= t)):
            if not arguments.get(name):
                continue
            try:
                bound = _parse_datetime(arguments[name], zone)
            except ValueError:
                return self._envelope(6, f"{name} must be YYYY-MM-DD HH:MM:SS", None, zone)
            rows = [r for r in rows if keep(r, bound)]
        if "itemtype" in arguments:
            if arguments["itemtype"] not in ("video", "audio", "videoonly"):
                return self._envelope(6, "itemtype must be video, audio or videoonly", None, zone)
            rows = [r for r in rows if r["type"] == arguments["itemtype"]]
        if arguments.get("searchtitle"):
            rows = [r for r in rows if arguments["searchtitle"].lower() in r["title"].lower()]
        wanted = arguments.get("item") or arguments.get("id")
        if wanted:
            rows = [r for r in rows if r["id"] == wanted]
        return rows

    @staticmethod
    def _public(row: dict, zone: ZoneInfo) -> dict:
        out = {k: v for k, v in row.items() if k != "popularity"}
        for name in ("datecreated", "dateaired"):
            if isinstance(out.get(name), dt.datetime):
                out[name] = out[name].astimezone(zone).strftime(DATETIME_FORMAT)
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


def _duration(ms: int, *, vendor_form: bool) -> str:
    """``H:MM:SS`` (the vendor's form, hours unpadded, whole seconds) or ``HH:MM:SS.mmm``."""
    hours, minutes, seconds = ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60
    if vendor_form:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{ms % 1000:03d}"


def _parse_datetime(text: str, zone: ZoneInfo) -> dt.datetime:
    """``YYYY-MM-DD HH:MM:SS`` in ``zone`` -> aware UTC; ValueError for any other form."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", text):
        raise ValueError(text)
    return dt.datetime.strptime(text, DATETIME_FORMAT).replace(tzinfo=zone).astimezone(dt.timezone.utc)
