"""One in-memory DuckDB per process and settings, kept for the life of the process.

The warehouse attaches its file to it for each block (core/warehouse.py) and the lake attaches its catalog
under an alias of its own (core/lake.py): creating an instance costs ~12 ms, loading the lake's extensions
~0.45 s, attaching and detaching a few ms. The pid is part of the key: an instance made before a fork
(Celery's worker pool) is never used after it.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Mapping

import duckdb

_INSTANCES: dict[tuple, duckdb.DuckDBPyConnection] = {}
LOCK = threading.Lock()  # held while an instance is made, found, or its attachments change


def process_instance(config: Mapping[str, object], kind: str = "",
                     setup: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> tuple[tuple, duckdb.DuckDBPyConnection]:
    """``(key, instance)`` for these settings; ``setup`` (e.g. loading extensions) runs once, on a new one."""
    key = (os.getpid(), kind, tuple(sorted((name, str(value)) for name, value in config.items())))
    with LOCK:
        if key not in _INSTANCES:
            instance = duckdb.connect(":memory:", config=dict(config))
            try:
                if setup is not None:
                    setup(instance)
            except BaseException:
                instance.close()
                raise
            _INSTANCES[key] = instance
        return key, _INSTANCES[key]


def discard(key: tuple) -> None:
    """Close an instance left in a state it cannot leave (closing releases whatever it had attached)."""
    with LOCK:
        instance = _INSTANCES.pop(key, None)
    if instance is not None:
        instance.close()
