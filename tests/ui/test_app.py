"""The minimal screen, driven with Pilot against real servers."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from opsconsole import config
from opsconsole.ui.app import OpsConsole

pytestmark = pytest.mark.integration


def make_app(text: str, env: str | None = None, read_only: bool = False) -> OpsConsole:
    cfg = config.parse(text, None, Path.cwd())
    return OpsConsole(cfg, cfg.environment(env), read_only=read_only)


async def wait_for_round(app: OpsConsole, pilot, count: int = 1) -> None:
    seen = app.last_round
    for _ in range(200):
        await pilot.pause(0.05)
        if app.last_round is not None and app.last_round is not seen:
            count -= 1
            seen = app.last_round
            if count == 0:
                return
    raise AssertionError("no probe round arrived")


def cell(app: OpsConsole, row: str, column: str) -> str:
    from textual.widgets import DataTable

    table = app.query_one("#members", DataTable)
    return str(table.get_cell(row, column))


async def test_shows_live_status_and_recovers(pg_running, redis_running):
    text = f"""
[opsconsole]
refresh = 0.3
timeout = 1
[environments.local.services.db]
url = "{pg_running.url()}"
[environments.local.services.cache]
url = "{redis_running.url}"
"""
    app = make_app(text)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for_round(app, pilot)
        assert "OK" in cell(app, "db", "status") and "OK" in cell(app, "cache", "status")
        assert "conns" in cell(app, "db", "detail")
        redis_running.stop(signal.SIGKILL)
        try:
            await wait_for_round(app, pilot, 2)
            assert "CRIT" in cell(app, "cache", "status")
            assert "connection refused" in cell(app, "cache", "detail")
            # the UI keeps answering keys while a target is down
            await pilot.press("r")
        finally:
            redis_running.start()
        await wait_for_round(app, pilot, 2)
        assert "OK" in cell(app, "cache", "status")


async def test_production_badge_and_read_only(http_server):
    text = f"""
[environments.production]
protection = "typed"
[environments.production.services.api]
url = "{http_server.url('/healthy')}"
"""
    app = make_app(text, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_round(app, pilot)
        badge = app.query_one("#badge")
        assert "PRODUCTION" in str(badge.render()) and "read-only" in str(badge.render())
        assert badge.has_class("production")
        assert "OK" in cell(app, "api/db", "status")  # sub-services unfolded
