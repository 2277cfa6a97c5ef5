"""The secret rotation flow, driven with Pilot: a real `.env` rotated by the local provider, real restart commands,
the health of a real HTTP service verified, a rollback; read-only; SVG snapshots of the screen and its summary."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC
from pathlib import Path

import pytest
from dotenv import dotenv_values
from textual.widgets import Button, DataTable, Static

from opsconsole import config, secret_values
from opsconsole.journal import open_journal
from opsconsole.ui.app import OpsConsole, create
from opsconsole.ui.dialogs.confirm import ConfirmDialog
from opsconsole.ui.screens.run import RunScreen
from opsconsole.ui.screens.secrets import RotationSummary, SecretsScreen, action_line, describe
from tests.demo import round_from_json
from tests.ui.replay import RECORDINGS, Replay, play_all
from tests.ui.test_app import wait_until

OLD_JWT = "old-jwt-value-1234567890"
OLD_TOKEN = "tok-current-abcdef"
OLDER_TOKEN = "tok-older-abcdef"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http_server) -> Path:
    (tmp_path / "opsconsole.toml").write_text(textwrap.dedent(f"""
        [opsconsole]
        refresh = 0.5
        [environments.local]
        provider = "local"
        protection = "open"
        [environments.local.services.api]
        url = "{http_server.url('/healthy')}"
        restart = "echo api >> restarts.log"
        [environments.local.services.worker]
        restart = "echo worker >> restarts.log"
        [environments.local.secrets.JWT_SECRET]
        restart = ["api", "worker"]
        [environments.local.secrets.API_TOKEN]
        restart = ["api"]
        [environments.local.secrets.BROKEN]
        restart = ["nope"]
        """))
    (tmp_path / ".env.local").write_text(f"JWT_SECRET={OLD_JWT}\nAPI_TOKEN={OLD_TOKEN}\n")
    (tmp_path / ".env.local.previous").write_text(f"API_TOKEN={OLDER_TOKEN}\n")
    monkeypatch.setenv("OPSCONSOLE_JOURNAL", str(tmp_path / "journal.sqlite3"))
    return tmp_path


def make_app(home: Path, read_only: bool = False) -> OpsConsole:
    cfg = config.load(str(home / "opsconsole.toml"))
    return create(cfg, cfg.environment("local"), read_only=read_only)


async def open_secrets(app: OpsConsole, pilot) -> SecretsScreen:
    screen = SecretsScreen()
    app.push_screen(screen)
    await wait_until(pilot, lambda: screen.loads >= 1, what="the secrets to load")
    return screen


def rows(screen: SecretsScreen) -> dict[str, list[str]]:
    table = screen.query_one("#secrets", DataTable)
    return {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)] for i in range(table.row_count)}


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def current(home: Path, name: str) -> str:
    return dotenv_values(home / ".env.local")[name]


async def run_through(app: OpsConsole, pilot, screen: SecretsScreen) -> RunScreen:
    """From the summary: continue, start the run, confirm the destructive step, wait for its end, come back."""
    await wait_until(pilot, lambda: isinstance(app.screen, RotationSummary), what="the summary")
    await pilot.click("#continue")
    await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
    run = app.screen
    await pilot.press("s")
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), what="the confirmation")
    await pilot.click("#confirm")
    await wait_until(pilot, lambda: run.finished is not None, 30, "the run to finish")
    loads = screen.loads
    await pilot.press("escape")
    await wait_until(pilot, lambda: app.screen is screen and screen.loads > loads, what="the secrets again")
    return run


async def test_lists_where_each_secret_lives_who_uses_it_and_what_rollback_keeps(home):
    app = make_app(home)
    async with app.run_test(size=(140, 30)) as pilot:
        screen = await open_secrets(app, pilot)
        listed = rows(screen)
        assert listed["JWT_SECRET"] == ["JWT_SECRET", ".env.local", "api, worker", "nothing kept",
                                        secret_values.fingerprint(OLD_JWT)]
        assert listed["API_TOKEN"] == ["API_TOKEN", ".env.local", "api", secret_values.fingerprint(OLDER_TOKEN),
                                       secret_values.fingerprint(OLD_TOKEN)]
        about = text_of(screen, "#secret-about")
        assert "JWT_SECRET lives in .env.local" in about and "Used by api" in about
        assert "No previous value is kept" in about
        assert screen.active_bindings["enter"].binding.description == "Rotate…"
        assert not screen.active_bindings["u"].enabled  # nothing to roll back to
        await pilot.press("down")
        assert "A previous value (" + secret_values.fingerprint(OLDER_TOKEN) + ") is kept" in \
            text_of(screen, "#secret-about")
        assert screen.active_bindings["u"].enabled
        shown = app.export_screenshot()
        for value in (OLD_JWT, OLD_TOKEN, OLDER_TOKEN):
            assert value not in shown
        await pilot.press("escape")
        named = SecretsScreen(select="BROKEN")  # a palette entry opens the screen on one secret
        app.push_screen(named)
        await wait_until(pilot, lambda: named.loads >= 1, what="the secrets to load")
        assert named.selected.name == "BROKEN" and "nope" in text_of(named, "#secret-about")


async def test_rotate_then_roll_back_through_the_run_screen(home):
    app = make_app(home)
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_secrets(app, pilot)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RotationSummary), what="the summary")
        summary = app.screen
        assert app.focused is summary.query_one("#cancel", Button)
        steps = text_of(summary, "#summary-steps")
        assert "Generate a new random value for JWT_SECRET. It is never shown" in steps
        assert "Restart the services that use it: api, worker." in steps
        # api has a probe, so the plan verifies it; worker has none.
        assert ("Verify their health: the run waits until api is ok; if not, it stops and offers the rollback. "
                "worker has no health probe: check by hand.") in steps
        assert "which asks you y/N first" in steps
        calls = text_of(summary, "#summary-calls")
        assert "JWT_SECRET=***" in calls and "echo api >> restarts.log" in calls and "echo worker" in calls
        await pilot.press("enter")  # Cancel has the focus: nothing happens
        await wait_until(pilot, lambda: app.screen is screen, what="the secrets screen")
        assert current(home, "JWT_SECRET") == OLD_JWT and "nothing changed" in text_of(screen, "#secrets-status")

        await pilot.press("enter")
        run = await run_through(app, pilot, screen)
        assert run.finished == "succeeded", text_of(run, "#state")
        new = current(home, "JWT_SECRET")
        assert new != OLD_JWT and len(new) >= 32
        assert (home / "restarts.log").read_text().split() == ["api", "worker"]
        outcome = text_of(screen, "#secrets-outcome")
        assert f"The rotation of JWT_SECRET: run {run.record.run_id} succeeded." in outcome
        assert f"JWT_SECRET is now {secret_values.fingerprint(new)}" in outcome
        assert f"Kept for rollback: {secret_values.fingerprint(OLD_JWT)}" in outcome
        assert "press u to roll back" in outcome
        assert rows(screen)["JWT_SECRET"][3:] == [secret_values.fingerprint(OLD_JWT), secret_values.fingerprint(new)]
        with open_journal(str(home / "journal.sqlite3")) as store:
            record = store.get(run.record.run_id)
        [step] = [s for s in record.steps if s.status == "succeeded"]
        assert "verified: api is ok" in step.verification
        assert record.runbook_path == f"opsconsole {action_line('JWT_SECRET', ('api', 'worker'))}"
        assert new not in app.export_screenshot() and OLD_JWT not in app.export_screenshot()

        assert screen.active_bindings["u"].enabled
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, RotationSummary), what="the rollback summary")
        assert "Put back the previous value of JWT_SECRET" in text_of(app.screen, "#summary-steps")
        back = await run_through(app, pilot, screen)
        assert back.finished == "succeeded"
        assert current(home, "JWT_SECRET") == OLD_JWT
        assert f"The roll back of JWT_SECRET: run {back.record.run_id} succeeded." in text_of(screen, "#secrets-outcome")
        assert rows(screen)["JWT_SECRET"][3:] == [secret_values.fingerprint(new), secret_values.fingerprint(OLD_JWT)]
        assert (home / "restarts.log").read_text().split() == ["api", "worker", "api", "worker"]


async def test_a_rotation_that_cannot_be_planned_says_why_and_changes_nothing(home):
    app = make_app(home)
    async with app.run_test(size=(140, 30)) as pilot:
        screen = await open_secrets(app, pilot)
        await pilot.press("down", "down", "enter")
        await wait_until(pilot, lambda: "nope" in text_of(screen, "#secrets-status"), what="the refusal")
        assert "environment 'local' has no service 'nope' to restart" in text_of(screen, "#secrets-status")
        assert app.screen is screen and not screen.planning


async def test_read_only_lists_secrets_and_offers_no_change(home):
    app = make_app(home, read_only=True)
    async with app.run_test(size=(140, 30)) as pilot:
        screen = await open_secrets(app, pilot)
        assert set(rows(screen)) == {"JWT_SECRET", "API_TOKEN", "BROKEN"}
        assert "read-only here: secrets are listed, never changed" in text_of(screen, "#secrets-status")
        assert "u" not in screen.active_bindings
        assert "enter" not in screen.active_bindings
        await pilot.press("enter", "down", "u")
        await pilot.pause(0.3)
        assert app.screen is screen
        screen.action_rollback()  # from anywhere else (a palette entry): still refused
        assert "local is read-only here: secrets cannot be changed" in text_of(screen, "#secrets-status")
        await pilot.pause(0.3)
        assert app.screen is screen
    assert current(home, "JWT_SECRET") == OLD_JWT and current(home, "API_TOKEN") == OLD_TOKEN


def test_a_keyring_provider_reports_the_kept_previous_value(tmp_path, file_keyring):
    cfg = config.parse(textwrap.dedent("""
        [environments.k8s]
        provider = "kubernetes"
        [environments.k8s.provider_options]
        context = "kind-shop"
        namespace = "shop"
        [environments.k8s.secrets.JWT_SECRET]
        secret = "app-secrets"
        key = "jwt"
        restart = ["api"]
        """), None, tmp_path)
    env = cfg.environment("k8s")
    [info], problem = describe(cfg, env)
    assert problem is None
    assert (info.lives_in, info.restart, info.previous_kept, info.fingerprint) == (
        "kubernetes: secret app-secrets, key jwt", ("api",), False, None)
    secret_values.keep_previous("k8s", "JWT_SECRET", "kept-value-123456")
    [info], _ = describe(cfg, env)
    assert info.previous_kept is True and info.previous_fingerprint == secret_values.fingerprint("kept-value-123456")


# --- snapshots ----------------------------------------------------------------------------------------------------

SECRETS = """
[environments.staging.secrets.JWT_SECRET]
restart = ["api"]
[environments.staging.secrets.SESSION_KEY]
restart = ["api", "cache"]
[environments.staging.secrets.WEBHOOK_TOKEN]
"""


def snapshot_app(base_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[OpsConsole, int]:
    """The replayed healthy dashboard (fixed rounds, clock and time zone) with rotatable secrets in staging."""
    monkeypatch.setenv("OPSCONSOLE_JOURNAL", str(tmp_path / "journal.sqlite3"))
    data = json.loads((RECORDINGS / "healthy.json").read_text())
    text = data["config"].replace("[environments.staging.services.api]\n",
                                  '[environments.staging.services.api]\nrestart = "systemctl restart shop-api"\n', 1)
    text = text.replace("[environments.staging.services.cache]\n",
                        '[environments.staging.services.cache]\nrestart = "systemctl restart redis"\n', 1)
    rounds = [round_from_json(r) for r in data["rounds"]]
    cfg = config.parse(text + SECRETS, None, base_dir)
    app = create(cfg, cfg.environment("staging"), monitor_factory=lambda env, timeout: Replay(rounds),
                 clock=lambda: 0.0, tz=UTC)
    return app, len(rounds)


def snap_secrets(snap_compare, app: OpsConsole, count: int, size: tuple[int, int], keys: tuple[str, ...] = (),
                 summary: bool = False) -> bool:
    async def run_before(pilot) -> None:
        await play_all(app, pilot, count)
        await open_secrets(app, pilot)
        if keys:
            await pilot.press(*keys)
        if summary:
            await wait_until(pilot, lambda: isinstance(app.screen, RotationSummary), what="the summary")
        await pilot.pause(0.2)

    return snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])
def test_snapshot_secrets(snap_compare, tmp_path, monkeypatch, size):
    (tmp_path / ".env.staging").write_text("JWT_SECRET=jwt-now-0123456789\nSESSION_KEY=session-now-0123456789\n")
    (tmp_path / ".env.staging.previous").write_text("SESSION_KEY=session-before-0123456789\n")
    app, count = snapshot_app(tmp_path, monkeypatch, tmp_path)
    assert snap_secrets(snap_compare, app, count, size, keys=("down",))


def test_snapshot_rotation_summary(snap_compare, tmp_path, monkeypatch):
    # A relative base directory: the plan names its .env file the same on every machine. The file must exist:
    # rotating a secret into a file that is not there is refused.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "srv" / "shop").mkdir(parents=True)
    (tmp_path / "srv" / "shop" / ".env.staging").write_text(
        "JWT_SECRET=jwt-before-0123456789\nSESSION_KEY=session-before-0123456789\nWEBHOOK_TOKEN=hook-0123456789\n")
    for name in ("JWT_SECRET", "SESSION_KEY", "WEBHOOK_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    app, count = snapshot_app(Path("srv/shop"), monkeypatch, tmp_path)
    assert snap_secrets(snap_compare, app, count, (100, 32), keys=("enter",), summary=True)


async def test_x_and_the_palette_open_the_rotation_flow_and_read_only_hides_rotation(home):
    app = make_app(home)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, SecretsScreen), what="the secrets screen")
        await pilot.press("escape")
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Rotate secret: JWT_SECRET", "Rotate secret: API_TOKEN", "Secrets"} <= set(titles)
        assert not any(t.startswith("Action: rotate-secret") for t in titles)  # one flow for rotation
        [entry] = [c for c in app.get_system_commands(app.screen) if c.title == "Rotate secret: API_TOKEN"]
        assert "(api)" in entry.help
        entry.callback()
        await wait_until(pilot, lambda: isinstance(app.screen, SecretsScreen) and app.screen.loads >= 1,
                         what="the secrets screen on API_TOKEN")
        table = app.screen.query_one("#secrets", DataTable)
        assert str(table.get_row_at(table.cursor_row)[0]) == "API_TOKEN"
    quiet = make_app(home, read_only=True)
    async with quiet.run_test(size=(140, 30)) as pilot:
        titles = [c.title for c in quiet.get_system_commands(quiet.screen)]
        assert "Secrets" in titles and not any(t.startswith(("Rotate secret", "Action:", "Run runbook"))
                                                 for t in titles)
