"""The dashboard, driven with Pilot against real servers."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from opsconsole import config
from opsconsole.errors import ConfigError
from opsconsole.ui.app import OpsConsole, create
from opsconsole.ui.dialogs.environments import EnvironmentPicker
from opsconsole.ui.screens.detail import MemberDetail
from opsconsole.ui.widgets.panel import MemberPanel

pytestmark = pytest.mark.integration


def make_app(text: str, env: str | None = None, read_only: bool = False, base_dir: Path | None = None,
             **options) -> OpsConsole:
    path = (base_dir / "opsconsole.toml") if base_dir else None
    cfg = config.parse(text, path, base_dir or Path.cwd())
    return create(cfg, cfg.environment(env), read_only=read_only, **options)


async def wait_until(pilot, check, seconds: float = 10.0, what: str = "condition") -> float:
    """Pause the pilot until `check()` holds; returns how long it took."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if check():
            return time.monotonic() - start
        await pilot.pause(0.02)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


async def wait_for_rounds(app: OpsConsole, pilot, count: int = 1, since: int = 0, seconds: float = 10.0) -> None:
    """Wait until `count` rounds more than `since` have been shown (capture `since` before acting)."""
    target = since + count
    await wait_until(pilot, lambda: app.rounds_shown >= target, seconds, what=f"{count} probe round(s)")


def panel(app: OpsConsole, name: str) -> MemberPanel:
    return app.panels[name]


def panel_text(app: OpsConsole, name: str) -> str:
    from textual.widgets import Static

    return "\n".join(str(s.render()) for s in panel(app, name).query(Static))


def status_of(app: OpsConsole, name: str) -> str:
    p = panel(app, name)
    return next((s for s in ("ok", "warn", "crit", "unknown") if p.has_class(f"-{s}")), "none")


async def test_redis_down_turns_crit_within_refresh_plus_timeout_and_recovers(pg_running, redis_running):
    refresh, timeout = 0.5, 0.5
    text = f"""
[opsconsole]
refresh = {refresh}
timeout = {timeout}
[environments.local.services.db]
url = "{pg_running.url()}"
[environments.local.services.cache]
url = "{redis_running.url}"
"""
    app = make_app(text)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_rounds(app, pilot)
        assert status_of(app, "db") == "ok" and status_of(app, "cache") == "ok"
        assert "conns" in panel_text(app, "db") and "clients" in panel_text(app, "cache")
        redis_running.stop(signal.SIGKILL)
        try:
            took = await wait_until(pilot, lambda: status_of(app, "cache") == "crit", what="cache to turn crit")
            assert took <= refresh + timeout + 0.5, f"crit after {took:.2f}s"
            assert "connection closed by" in panel_text(app, "cache") or "connection refused by" in panel_text(app, "cache")
            assert status_of(app, "db") == "ok"
            # Keys keep answering while a member is down: a dialog opens at once.
            await pilot.press("e")
            await wait_until(pilot, lambda: isinstance(app.screen, EnvironmentPicker), 0.5, "the picker")
            await pilot.press("escape")
        finally:
            redis_running.start()
        took = await wait_until(pilot, lambda: status_of(app, "cache") == "ok", what="cache to recover")
        assert took <= refresh + timeout + 1.0
        assert app.query_one("#env-status").has_class("ok")


async def test_keys_answer_while_a_round_hangs(blackhole):
    # The round waits up to 5 s on a server that never answers; a key that waited for it would take seconds. The
    # picker's own work on a loaded 2-core CI machine takes up to ~0.6 s, so 1.5 s tells the two apart with room.
    text = f"""
[opsconsole]
refresh = 0.2
timeout = 5
[environments.local.services.stuck]
url = "http://127.0.0.1:{blackhole.port}/health"
"""
    app = make_app(text)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.monitor is not None and app.monitor.running, what="a round in flight")
        start = time.monotonic()
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, EnvironmentPicker), 2.0, "the picker")
        assert time.monotonic() - start < 1.5
        assert app.monitor.running  # the round is still waiting on the network
        await pilot.press("escape")


async def test_drill_down_shows_every_metric_and_history(pg_running):
    text = f"""
[opsconsole]
refresh = 0.2
[environments.local.services.db]
url = "{pg_running.url()}"
"""
    app = make_app(text)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for_rounds(app, pilot, 2)
        await pilot.press("enter")
        assert isinstance(app.screen, MemberDetail)
        from textual.widgets import DataTable

        metrics = app.screen.query_one("#metrics", DataTable)
        keys = {k.value for k in metrics.rows}
        assert {"max_connections", "connections", "size_bytes", "latency_ms", "role"} <= keys
        history = app.screen.query_one("#history", DataTable)
        await wait_for_rounds(app, pilot, 1, since=app.rounds_shown)  # the detail view follows live rounds
        assert history.row_count >= 3
        assert "ENVIRONMENT" not in str(app.screen.query_one("#badge").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, MemberDetail)


async def test_switch_environment_with_key_and_palette(http_server, redis_running):
    text = f"""
[opsconsole]
refresh = 0.3
[environments.staging.services.api]
url = "{http_server.url('/healthy')}"
[environments.production]
protection = "typed"
[environments.production.services.cache]
url = "{redis_running.url}"
[environments.broken.services.x]
url = "${{UNSET_URL_FOR_TEST}}"
"""
    app = make_app(text)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_rounds(app, pilot)
        assert set(app.panels) == {"api"}
        await pilot.press("e")
        assert isinstance(app.screen, EnvironmentPicker)
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: app.environment.name == "production", what="the switch")
        assert set(app.panels) == {"cache"}
        await wait_until(pilot, lambda: status_of(app, "cache") == "ok", what="the first production round")
        header = app.query_one("EnvHeader")
        assert header.has_class("production") and "PRODUCTION" in str(app.query_one("#badge").render())

        # The command palette offers every other environment.
        await pilot.press("ctrl+p")
        await pilot.press(*"staging")

        def offered() -> bool:
            lists = app.screen.query("CommandList")
            return bool(lists) and any("Switch environment: staging" in str(o.prompt) for o in lists.first().options)

        await wait_until(pilot, offered, 3, "the palette entry")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.environment.name == "staging", what="the palette switch")
        assert not app.query_one("EnvHeader").has_class("production")

        # An environment whose config cannot resolve is refused with a message; we stay where we are.
        app.switch_environment("broken")
        await pilot.pause(0.1)
        assert app.environment.name == "staging"
        assert any("UNSET_URL_FOR_TEST" in n.message for n in app._notifications)


async def test_refresh_key_interval_and_dialog_pause(http_server):
    text = f"""
[opsconsole]
refresh = 30
[environments.local.services.api]
url = "{http_server.url('/healthy')}"
"""
    app = make_app(text)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_rounds(app, pilot)
        shown = app.rounds_shown
        await pilot.press("r")
        await wait_until(pilot, lambda: app.rounds_shown > shown, 3, "a round after r")  # long before 30 s
        assert "of 30s" in str(app.query_one("#round-info").render())
        await pilot.press("minus")
        assert app.refresh_s == 15
        await pilot.press("plus", "plus")
        assert app.refresh_s == 60

        # A round that falls due while a dialog is open waits for it to close.
        await pilot.press("e")
        shown = app.rounds_shown
        app._start_round()
        await pilot.pause(0.3)
        assert app.rounds_shown == shown and app._round_due
        assert "paused while a dialog is open" in str(app.screen_stack[0].query_one("#round-info").render())
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.rounds_shown > shown, 3, "the round that waited")


async def test_read_only_badge(http_server):
    text = f"""
[environments.local.services.api]
url = "{http_server.url('/healthy')}"
"""
    app = make_app(text, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_rounds(app, pilot)
        assert "READ-ONLY" in str(app.query_one("#badge").render())
        assert "db ok" in panel_text(app, "api")  # the health JSON's sub-services, inside the panel


async def test_keymap_from_config_remaps_bindings(http_server):
    text = f"""
[opsconsole]
refresh = 30
[keymap]
refresh = "f5"
environments = "ctrl+e"
[environments.local.services.api]
url = "{http_server.url('/healthy')}"
"""
    app = make_app(text)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_rounds(app, pilot)
        shown = app.rounds_shown
        await pilot.press("r")
        await pilot.pause(0.3)
        assert app.rounds_shown == shown  # r no longer refreshes
        await pilot.press("f5")
        await wait_until(pilot, lambda: app.rounds_shown > shown, 3, "a round after f5")
        await pilot.press("ctrl+e")
        assert isinstance(app.screen, EnvironmentPicker)


def test_bad_keymap_and_theme_name_their_line(tmp_path):
    text = '[opsconsole]\ntheme = "no-such-theme"\n[environments.local]\n'
    with pytest.raises(ConfigError) as err:
        make_app(text, base_dir=tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'opsconsole.toml'}:2: unknown theme 'no-such-theme'")
    text = '[environments.local]\n[keymap]\nrefresh = "f5"\nrefersh = "f6"\n'
    with pytest.raises(ConfigError) as err:
        make_app(text, base_dir=tmp_path)
    assert ":4: keymap: unknown binding id 'refersh'" in str(err.value)


def test_themes_shipped_and_from_the_users_folder(tmp_path):
    (tmp_path / "themes").mkdir()
    (tmp_path / "themes" / "night.toml").write_text('name = "night-shift"\nprimary = "#5fafff"\n')
    app = make_app('[opsconsole]\ntheme = "night-shift"\n[environments.local]\n', base_dir=tmp_path)
    assert app.theme == "night-shift"
    assert {"opsconsole-dark", "opsconsole-light", "opsconsole-high-contrast"} <= set(app.available_themes)
    (tmp_path / "themes" / "bad.toml").write_text('name = "bad"\nprimary = "#5fafff"\nerror = "not-a-colour"\n')
    with pytest.raises(ConfigError) as err:
        make_app("[environments.local]\n", base_dir=tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'themes' / 'bad.toml'}:3: error: 'not-a-colour' is not a colour")


async def test_crit_alerts_only_past_the_failures_threshold(redis_running):
    """Soft, then hard, as Nagios has it: the panel says CRIT from the first failed check, the alert (error
    notification, bell, the panel's mark) comes once more checks than `failures` have failed in a row."""
    text = f"""
[opsconsole]
refresh = 0.3
timeout = 0.5
[environments.local.services.cache]
url = "{redis_running.url}"
thresholds = {{ failures = 2 }}
"""
    app = make_app(text)
    rings = []
    app.bell = lambda: rings.append(time.monotonic())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for_rounds(app, pilot)
        redis_running.stop(signal.SIGKILL)
        try:
            await wait_until(pilot, lambda: status_of(app, "cache") == "crit", what="crit")
            await pilot.pause(0.05)
            first = app.last_round.reading("cache")
            assert first.consecutive_failures == 1 and not first.alerting
            assert "failed 1× in a row · alerts after 2" in panel_text(app, "cache")
            assert rings == [] and not any(n.severity == "error" for n in app._notifications)
            await wait_until(pilot, lambda: app.panels["cache"].has_class("-alert"), what="the alert")
            await pilot.pause(0.05)
            assert app.last_round.reading("cache").consecutive_failures == 3
            assert "⚑ ALERT" in panel_text(app, "cache") and "ALERT: failed 3× in a row" in panel_text(app, "cache")
            alerts = [n for n in app._notifications if n.title == "ALERT"]
            assert len(alerts) == 1 and alerts[0].message.startswith("cache: crit, failed 3× in a row: ")
            assert len(rings) == 1
            await wait_for_rounds(app, pilot, since=app.rounds_shown)
            assert len(rings) == 1  # one alert per outage, not one per round
        finally:
            redis_running.start()
        await wait_until(pilot, lambda: status_of(app, "cache") == "ok", what="recovery")
        await pilot.pause(0.05)
        assert any(n.message.startswith("cache: crit → ok (alert over)") for n in app._notifications)
        assert not app.panels["cache"].has_class("-alert")


async def test_a_failing_sub_service_makes_its_member_crit(http_server):
    text = f"""
[environments.local.services.api]
url = "{http_server.url('/health')}"
"""
    app = make_app(text)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for_rounds(app, pilot)
        panel = app.panels["api"]
        # The endpoint answered 200 healthy, but search is down: the word and the colour are both CRIT.
        assert app.last_round.reading("api").status.value == "crit"
        assert panel.has_class("-crit") and not panel.has_class("-ok")
        shown = panel_text(app, "api")
        assert "CRIT" in shown and "OK" not in shown.split("\n")[0]
        # the failing sub-service on its own line with its message, said once (not again as a reason below)
        assert "✖ search crit: connection refused" in shown and "sub-service search" not in shown
        # each sub-service line in its own status colour
        from rich.style import Style

        from textual.widgets import Static

        figures = panel.query_one("#figures", Static).content  # the Text the panel drew
        line = next(part for part in figures.split("\n") if part.plain.startswith("✖"))
        style = next(span.style for span in line.spans if span.start == 0 and span.end == len(line.plain))
        colour = Style.parse(str(style)).color.get_truecolor()
        assert colour == Style.parse(app.theme_variables["status-crit"]).color.get_truecolor()
