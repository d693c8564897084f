"""Deployment settings read from the environment (see the contract in design.md).

Everything here is read lazily, at run time, so that importing the package never depends on the
environment. None of these values is a secret.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

DEFAULT_START_DATE = "2026-01-01"


def data_dir() -> Path:
    """The folder holding the warehouse and the shared limiter/rid state (not created here)."""
    return Path(os.environ.get("STREAM_ASSETS_DATA_DIR") or "./data").resolve()


def duckdb_path() -> Path:
    configured = os.environ.get("STREAM_ASSETS_DUCKDB_PATH")
    return Path(configured).resolve() if configured else data_dir() / "warehouse.duckdb"


def start_date() -> str:
    """First daily partition, YYYY-MM-DD. Read when the definitions are built (it shapes partitions)."""
    value = os.environ.get("STREAM_ASSETS_START_DATE") or DEFAULT_START_DATE
    try:
        dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"STREAM_ASSETS_START_DATE must be YYYY-MM-DD, got {value!r}") from exc
    return value


def env_or_default(name: str, default: str) -> str:
    return os.environ.get(name) or default


# Several hosts (design.md, "Several hosts"). Unset means the one-machine defaults: files in data_dir().


def state_url() -> str | None:
    """``STREAM_ASSETS_STATE_URL``: a ``postgresql://`` URL holding the shared budgets and rids, or None.

    The URL may carry a password: pass it to the driver, never to a log or an error message."""
    value = (os.environ.get("STREAM_ASSETS_STATE_URL") or "").strip()
    if value and not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("STREAM_ASSETS_STATE_URL must be a postgresql:// URL (or unset for the SQLite default)")
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
