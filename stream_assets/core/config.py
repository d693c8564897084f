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
