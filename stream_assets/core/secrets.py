"""One scrubber for every message that leaves a client: errors, logs and metadata.

Clients register the secrets they were configured with (keys, pre-shared keys, signing secrets) and the
signatures they send; :func:`scrub` replaces each of them, and any ``sig=``/``signature=``/``key=``-style
query value, with ``***``, whatever a server echoed back. Registration is process-wide on purpose: an
error may be formatted far from the client that raised it (Dagster's event log, a sensor's skip reason).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

MASK = "***"
_MIN_SECRET_CHARS = 4  # shorter values would mask ordinary words
_RECENT_SIGNATURES = 256  # signatures change per request: keep the last ones only
_SIGNED_QUERY = re.compile(r"(?i)\b(sig|signature|key|psk|secret|token|api_key|apikey)=([^&\s\"'<>]+)")
_AUTH_HEADER = re.compile(r"(?i)\b(API-Key|Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{4,}")


class Scrubber:
    """A set of secret strings and recent signatures, and the function that masks them in text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._signatures: deque[str] = deque(maxlen=_RECENT_SIGNATURES)
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, *secrets: str | None) -> None:
        """Mask these values (and their URL-encoded forms) from now on."""
        with self._lock:
            for secret in secrets:
                if secret and len(secret) >= _MIN_SECRET_CHARS:
                    self._secrets.update({secret, quote(secret, safe=""), quote_plus(secret)})
            self._pattern = None

    def add_signature(self, signature: str) -> None:
        with self._lock:
            if signature and len(signature) >= _MIN_SECRET_CHARS and signature not in self._signatures:
                self._signatures.append(signature)
                self._pattern = None

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None:
                values = sorted(self._secrets | set(self._signatures), key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, values))) if values else None
            return self._pattern

    def patterns(self) -> list[re.Pattern[str]]:
        """Everything :meth:`scrub` masks, as patterns."""
        compiled = self._compiled()
        return ([compiled] if compiled else []) + [_SIGNED_QUERY, _AUTH_HEADER]

    @property
    def longest(self) -> int:
        with self._lock:
            return max(map(len, self._secrets | set(self._signatures)), default=0)

    def scrub(self, text: object) -> str:
        text = str(text)
        pattern = self._compiled()
        if pattern is not None:
            text = pattern.sub(MASK, text)
        text = _SIGNED_QUERY.sub(lambda m: f"{m.group(1)}={MASK}", text)
        return _AUTH_HEADER.sub(lambda m: f"{m.group(1)} {MASK}", text)


SCRUBBER = Scrubber()


def register_secrets(*secrets: str | None) -> None:
    SCRUBBER.add(*secrets)


def register_signature(signature: str) -> None:
    SCRUBBER.add_signature(signature)


def scrub(text: object) -> str:
    """``text`` with every registered secret and signature masked."""
    return SCRUBBER.scrub(text)


def scrubbed_excerpt(data: bytes | str, start: int, end: int) -> str:
    """``data[start:end]`` as scrubbed text. The cut is first widened to take in whole any secret or signed
    value it crosses: scrubbing after a plain cut would leave the part of a secret inside it unmasked."""
    start = max(0, start)
    end = max(start, end)
    low = max(0, start - SCRUBBER.longest - 64)  # room to see whole the secrets the cut crosses
    window = data[low:end + SCRUBBER.longest + 64]
    text = window.decode("utf-8", errors="replace") if isinstance(window, bytes) else window
    first, last = start - low, end - low
    widened = True
    while widened:
        widened = False
        for pattern in SCRUBBER.patterns():
            for match in pattern.finditer(text):
                if match.start() < last and match.end() > first and (match.start() < first or match.end() > last):
                    first, last, widened = min(first, match.start()), max(last, match.end()), True
    return scrub(text[first:last])


def url_without_query(url: str) -> str:
    """The URL with its query, fragment and any user:password removed (safe to show for signed APIs)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        return scrub(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
    except ValueError:
        return scrub(url.split("?", 1)[0])
