"""The Dagster UI in a real browser: `dg dev` over the emulators and a small materialized state, driven by
Playwright with Debian's chromium (Playwright's own browser download is not used)."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
UI_START_SECONDS = 180
BACKFILL_SECONDS = 300
TODAY = dt.datetime.now(dt.timezone.utc).date()
# The small state: two days of the streamroot group. The backfill: three other days, within the dialog's 90.
STATE_DAYS = [(TODAY - dt.timedelta(days=n)).isoformat() for n in (3, 2)]
BACKFILL_DAYS = [(TODAY - dt.timedelta(days=n)).isoformat() for n in (12, 11, 10)]


def chromium() -> str:
    """The system chromium, or a skip (a failure where STREAM_ASSETS_REQUIRE_SERVICES=1, as in CI)."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    missing = None
    if path is None:
        missing = "no chromium browser (Debian: apt-get install -y chromium; .ci/run installs it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is missing (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("STREAM_ASSETS_REQUIRE_SERVICES") == "1":
            pytest.fail(f"browser tests required (STREAM_ASSETS_REQUIRE_SERVICES=1) but {missing}")
        pytest.skip(f"browser tests skipped: {missing}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, timeout: float, what: str, pause: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(pause)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def dagster_ui(cli_env, tmp_path):
    """`dg dev` on a free port, its instance in a private DAGSTER_HOME holding two materialized days."""
    chromium()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**cli_env, "DAGSTER_HOME": str(home)}
    state = subprocess.run(["dagster", "asset", "materialize", "-m", "stream_assets", "--select", "group:streamroot",
                            "--partition-range", f"{STATE_DAYS[0]}...{STATE_DAYS[-1]}"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert state.returncode == 0, (state.stdout + state.stderr)[-3000:]
    port = free_port()
    log = (tmp_path / "dg-dev.log").open("w")
    ui = subprocess.Popen(["dg", "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
                          cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: ui.poll() is not None or answers(f"{url}/server_info"), UI_START_SECONDS, "the web UI")
        assert ui.poll() is None, (tmp_path / "dg-dev.log").read_text()[-3000:]
        yield {"url": url, "env": env, "home": home, "warehouse": Path(env["STREAM_ASSETS_DATA_DIR"]) / "warehouse.duckdb"}
    finally:
        ui.send_signal(signal.SIGINT)
        try:  # a graceful stop of `dg dev` can take 30 s; its instance is this test's own, so 5 s is enough
            ui.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        try:  # what is left of the web server, daemon and code server: the process group started above
            os.killpg(ui.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        ui.wait(timeout=30)
        log.close()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def step(page, name: str):
    """A named step of the test; on failure, a screenshot in test-artifacts/ (kept by CI)."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"ui-{name}.png"), full_page=True)
        raise


def open_page(page, url: str) -> None:
    page.goto(url, wait_until="networkidle")
    skip = page.get_by_role("button", name="Skip")  # the community sign-up prompt of a fresh instance
    if skip.count():
        skip.first.click()


def open_materialize_dialog(page, asset: str, attempts: int = 3):
    """The launch dialog and its partition selection. On a loaded machine the dialog can open before the
    partition status has loaded and stay without its selection field: such an attempt is closed and the page
    loaded again, rather than failing the test on one slow answer."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(1, attempts + 1):
        open_page(page, asset)
        page.get_by_role("button", name="Materialize…").click()
        dialog = page.get_by_role("dialog")
        selection = dialog.get_by_placeholder("No matching partitions")
        try:
            selection.wait_for(timeout=60_000)
            return dialog, selection
        except PlaywrightTimeout:
            if attempt == attempts:
                raise
            page.keyboard.press("Escape")


def rows_per_day(warehouse: Path, days: list[str]) -> dict[str, int] | None:
    """Rows of streamroot.traffic_timeseries per day, or None while a writer holds the file."""
    try:
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            found = conn.execute(
                "SELECT CAST(ts AS DATE)::VARCHAR, count(*) FROM streamroot.traffic_timeseries GROUP BY 1").fetchall()
    except duckdb.Error:
        return None
    return {day: count for day, count in found if day in days}


def test_the_ui_shows_the_catalog_and_an_asset_and_launches_a_range_backfill(dagster_ui, browser):
    import dagster as dg
    from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, BulkActionStatus

    url = dagster_ui["url"]
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.set_default_timeout(60_000)

    with step(page, "catalog"):
        open_page(page, f"{url}/assets")
        page.get_by_text("streamroot / traffic_timeseries", exact=True).first.wait_for()
        catalog = page.inner_text("body")
        for group in ("streamroot", "streamapi", "streamone", "streamtime"):
            assert re.search(rf"\b{group}\b", catalog), f"group {group} not in the catalog"

    asset = f"{url}/assets/streamroot/traffic_timeseries"
    with step(page, "asset-overview"):
        open_page(page, asset)
        page.get_by_text("Row count").first.wait_for()
        overview = page.inner_text("body")
        assert re.search(r"Row count\s+288\b", overview), overview[:2000]
        for key in ("rows_in_run", "requests_in_run", "preview", "window"):
            assert key in overview, key

    with step(page, "asset-partitions"):
        open_page(page, f"{asset}?view=partitions")
        page.get_by_text(STATE_DAYS[-1]).first.wait_for()
        partitions = page.inner_text("body")
        assert "Materialized" in partitions or "materialized" in partitions.lower()

    with step(page, "asset-checks"):
        open_page(page, f"{asset}?view=checks")
        page.get_by_text("complete_days").first.wait_for()
        assert re.search(r"Passed|Succeeded", page.inner_text("body")), page.inner_text("body")[:2000]

    with step(page, "materialize-dialog"):
        dialog, selection = open_materialize_dialog(page, asset)
        selection.fill(f"[{BACKFILL_DAYS[0]}...{BACKFILL_DAYS[-1]}]")
        selection.press("Enter")
        dialog.get_by_text("3 partitions").wait_for()
        dialog.get_by_text("Backfills all partitions in a single run.").wait_for()
        dialog.get_by_role("button", name="Launch backfill").click()
        dialog.wait_for(state="hidden")

    with step(page, "backfill-lands-rows"):
        with dg.DagsterInstance.from_config(str(dagster_ui["home"])) as instance:
            (backfill,) = wait_until(instance.get_backfills, 60, "the backfill to be recorded")

            def finished():
                current = instance.get_backfill(backfill.backfill_id)
                return current if current.status in BULK_ACTION_TERMINAL_STATUSES else None

            done = wait_until(finished, BACKFILL_SECONDS, "the backfill to finish", pause=2)
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        assert done.status == BulkActionStatus.COMPLETED_SUCCESS, done.status
        assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.SUCCESS  # one run for the range
        landed = wait_until(lambda: rows_per_day(dagster_ui["warehouse"], BACKFILL_DAYS), 60, "the warehouse")
        assert landed == {day: 288 for day in BACKFILL_DAYS}
        open_page(page, f"{url}/runs/b/{backfill.backfill_id}")
        page.get_by_text("Completed").first.wait_for()
