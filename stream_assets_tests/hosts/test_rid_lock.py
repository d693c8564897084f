"""The rid lock on both SharedState backends: a bounded wait ends in a typed error naming what it waited for,
and a lock held by a process killed with SIGKILL is released, so the next request goes on."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from stream_assets.core.state import RequestIds, SharedStateTimeout, shared_state

HOLDER = textwrap.dedent("""
    import sys, time
    from stream_assets.core.state import RequestIds
    with RequestIds("sa-kill-key").issue() as rid:
        print(rid, flush=True)  # the parent reads this: the lock is held, a request is "in flight"
        time.sleep(600)
""")


def test_a_rid_lock_held_by_a_killed_process_is_released(state_backend):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        held_rid = int(holder.stdout.readline())
        waiting = RequestIds("sa-kill-key", shared_state(timeout=0.3))  # waits at most 5 x 0.3 s for the lock
        with pytest.raises(SharedStateTimeout, match=r"gave up waiting for the StreamAPI request in flight.* after 2 s"):
            with waiting.issue():
                pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        holder.stdout.close()
    started = time.monotonic()
    with RequestIds("sa-kill-key", shared_state(timeout=2)).issue() as rid:
        assert rid > held_rid
    assert time.monotonic() - started < 5
    assert RequestIds("sa-kill-key").last() == rid


def test_the_postgres_state_names_where_it_lives_without_the_password(postgres_database, monkeypatch):
    url = postgres_database("where")
    with_password = url.replace("postgres@", "postgres:not-a-real-secret@")
    monkeypatch.setenv("STREAM_ASSETS_STATE_URL", with_password)
    state = shared_state()
    assert state.advance("c", 5) == 5 and state.advance("c", 1) == 6 and state.peek("c") == 6
    assert state.where.startswith("Postgres postgres@127.0.0.1:5432/sa_where_")
    assert "not-a-real-secret" not in state.where
