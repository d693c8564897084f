"""Deployment settings read from the environment (see the contract in design.md).

Everything here is read lazily, at run time, so that importing the package never depends on the
environment. Every value is checked where it is read, and a bad one raises :class:`SettingError`
naming the variable and the form it expects. None of these values is a secret.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from stream_assets.core.errors import SettingError

DEFAULT_START_DATE = "2026-01-01"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def data_dir() -> Path:
    """The folder holding the warehouse and the shared limiter/rid state (not created here)."""
    return Path(os.environ.get("STREAM_ASSETS_DATA_DIR") or "./data").resolve()


def duckdb_path() -> Path:
    configured = os.environ.get("STREAM_ASSETS_DUCKDB_PATH")
    return Path(configured).resolve() if configured else data_dir() / "warehouse.duckdb"


def iso_date(variable: str, value: str) -> str:
    """``value`` when it is exactly ``YYYY-MM-DD`` and a real date, else SettingError."""
    try:
        if _ISO_DATE.match(value):
            dt.date.fromisoformat(value)
            return value
    except ValueError:
        pass
    raise SettingError(variable, "a date written exactly YYYY-MM-DD (e.g. 2026-01-01)", value)


def start_date() -> str:
    """First daily partition, YYYY-MM-DD. Read when the definitions are built (it shapes partitions)."""
    return iso_date("STREAM_ASSETS_START_DATE", os.environ.get("STREAM_ASSETS_START_DATE") or DEFAULT_START_DATE)


DEFAULT_SENSOR_SECONDS = 300


def sensor_seconds() -> int:
    """``STREAM_ASSETS_SENSOR_SECONDS``: the minimum interval of every sensor of the code location (read when
    the definitions are built, since Dagster fixes it there; a bad value is a SettingError)."""
    return int(env_number("STREAM_ASSETS_SENSOR_SECONDS", DEFAULT_SENSOR_SECONDS, minimum=1, integer=True,
                          allow_zero=True))


def env_or_default(name: str, default: str) -> str:
    return os.environ.get(name) or default


def env_number(name: str, default: float, *, minimum: float = 0.0, integer: bool = False,
               allow_zero: bool = False) -> float:
    """A positive (or, with ``allow_zero``, non-negative) finite number from ``name``, or ``default``."""
    return number(name, os.environ.get(name), default, minimum=minimum, integer=integer, allow_zero=allow_zero)


def setting_name(field: str, variable: str, configured: object) -> str:
    """How an error names a setting: the variable it came from, or the resource field that set it."""
    return f"{field} (for {variable})" if configured not in (None, "") else variable


def number(name: str, raw: object, default: float, *, minimum: float = 0.0, integer: bool = False,
           allow_zero: bool = False) -> float:
    """``raw`` (text or a number) as a positive (or, with ``allow_zero``, non-negative) finite number, or
    ``default`` when it is empty; SettingError naming ``name`` otherwise."""
    if raw is None or str(raw).strip() == "":
        return default
    raw = str(raw)
    expected = ("a whole number" if integer else "a number") + (" >= " if allow_zero else " > ") + f"{minimum:g}"
    try:
        value = int(raw.strip()) if integer else float(raw.strip())
    except ValueError:
        raise SettingError(name, expected, raw) from None
    if not math.isfinite(value) or value < minimum or (value == minimum and not allow_zero):
        raise SettingError(name, expected, raw)
    return value


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise SettingError(name, "one of " + ", ".join(choices), value)
    return value


def checked_base_url(value: str, variable: str = "base URL") -> str:
    """An API root as ``http(s)://host[:port][/path]`` (no query, no fragment), without a trailing slash."""
    expected = "an http:// or https:// URL such as https://api.example.com (no query string)"
    try:
        parts = urlsplit(value.strip())
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        raise SettingError(variable, expected, value) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment or not port_ok:
        raise SettingError(variable, expected, value)
    return value.strip().rstrip("/")


def base_url(variable: str, configured: str | None, default: str) -> str:
    """The base URL from the resource setting, else ``variable`` in the environment, else ``default``."""
    value = configured or os.environ.get(variable) or default
    return checked_base_url(value, variable if not configured else f"base_url (for {variable})")
# Several hosts (design.md, "Several hosts"). Unset means the one-machine defaults: files in data_dir().


def state_url() -> str | None:
    """``STREAM_ASSETS_STATE_URL``: a ``postgresql://`` URL holding the shared budgets and rids, or None.

    The URL may carry a password: pass it to the driver, never to a log or an error message."""
    return checked_state_url(os.environ.get("STREAM_ASSETS_STATE_URL"))


def checked_state_url(value: str | None, name: str = "STREAM_ASSETS_STATE_URL") -> str | None:
    """A state store URL: ``postgresql://...`` or empty (None: the SQLite files in the data dir)."""
    value = (value or "").strip()
    if value and not value.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"{name} must be a postgresql:// URL (or unset for the SQLite default)")
    return value or None


def ducklake_settings() -> tuple[str, str] | None:
    """``(STREAM_ASSETS_DUCKLAKE_CATALOG, STREAM_ASSETS_DUCKLAKE_DATA_PATH)`` when the warehouse is a DuckLake,
    else None. The catalog may carry a password (same rule as :func:`state_url`)."""
    catalog = (os.environ.get("STREAM_ASSETS_DUCKLAKE_CATALOG") or "").strip()
    data_path = (os.environ.get("STREAM_ASSETS_DUCKLAKE_DATA_PATH") or "").strip()
    if not catalog:
        return None
    if not data_path:
        raise ValueError("STREAM_ASSETS_DUCKLAKE_DATA_PATH is required with STREAM_ASSETS_DUCKLAKE_CATALOG")
    return catalog, data_path


def celery_broker_url() -> str:
    """``STREAM_ASSETS_CELERY_BROKER``: the broker (and result backend) of the Celery job's workers."""
    return os.environ.get("STREAM_ASSETS_CELERY_BROKER") or "redis://127.0.0.1:6379/0"
