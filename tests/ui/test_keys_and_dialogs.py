"""Keys, dialogs and toasts at 80x24, the size of a laptop terminal at 3 a.m.

Every dialog's buttons are on the screen however long what it shows; a repeated toast replaces the last of its
kind; the footer offers what can be done on each screen and nothing stale; the palette puts what only reads
before what destroys data, and marks the latter; home (or esc twice) goes back to the dashboard from any depth
but never past a running run; the secrets screen tells a user of the built-in config what file to create.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from textual.errors import NoWidget
from textual.widgets import Button, Footer, Input, OptionList, Static
from textual.widgets._footer import FooterKey, FooterLabel, KeyGroup  # what the footer shows, item by item

from opsconsole import config, runbook
from opsconsole.ui.app import BACK_TWICE_S, OpsConsole, create
from opsconsole.ui.dialogs.confirm import ConfirmDialog
from opsconsole.ui.dialogs.environments import EnvironmentPicker
from opsconsole.ui.dialogs.failure import CHOICES, FailureDialog
from opsconsole.ui.dialogs.keys import KeysDialog
from opsconsole.ui.dialogs.params import ParamsDialog
from opsconsole.ui.screens.journal import JournalScreen
from opsconsole.ui.screens.run import RunScreen
from opsconsole.ui.screens.runbooks import RunbooksScreen
from opsconsole.ui.screens.secrets import SecretsScreen
from tests.ui.replay import play_all, replay_app
from tests.ui.test_app import wait_until

SIZE = (80, 24)
BACK_PAUSE = BACK_TWICE_S + 0.2  # esc, then this long: the next esc is one more screen back, not home
LONG_MESSAGE = "\n".join(f"psql: error: connection to server at 10.0.3.{i} failed: timeout expired" for i in range(30))
LONG_TAIL = "\n".join(f"pg_restore: processing item {i} TABLE DATA public.events_{i} (a long line of output) " * 2
                      for i in range(40))


def fully_shown(app: OpsConsole, widget) -> bool:
    """The whole widget is drawn: on the screen, not clipped by a container around it, and not covered by another
    widget (a docked one over a scrolled one): every row's first and last cell is the widget or inside it."""
    try:
        geometry = app.screen.find_widget(widget)
    except NoWidget:
        return False
    region = geometry.region
    if not (geometry.clip.contains_region(region) and app.screen.region.contains_region(region)):
        return False
    for y in range(region.y, region.bottom):
        for x in (region.x, region.right - 1):
            try:
                hit, _ = app.screen.get_widget_at(x, y)
            except NoWidget:
                return False
            if hit is not widget and widget not in hit.ancestors:
                return False
    return True


def footer(app: OpsConsole) -> dict[str, bool]:
    """What the footer of the current screen offers, "key description" -> shown in full and enabled."""
    out: dict[str, bool] = {}
    items = list(app.screen.query_one(Footer).children)
    for item, after in zip(items, items[1:] + [None]):
        if isinstance(item, FooterKey):
            out[f"{item.key_display} {item.description}"] = fully_shown(app, item) and not item.has_class("-disabled")
        elif isinstance(item, KeyGroup) and isinstance(after, FooterLabel):  # "+- Interval": keys, then their label
            keys = list(item.query(FooterKey))
            out["".join(k.key_display for k in keys) + f" {after.render()}"] = \
                all(fully_shown(app, k) for k in keys) and fully_shown(app, after)
    return out


def toasts(app: OpsConsole, text: str) -> int:
    """Toasts on the screen now whose message holds `text` (the app runs with `notifications=True`)."""
    return sum(1 for toast in app.screen.query("Toast") if text in str(toast.render()))


async def replayed(pilot, app: OpsConsole, count: int) -> None:
    await play_all(app, pilot, count)


# --- 1. every dialog's buttons fit ---------------------------------------------------------------------------


async def test_the_failure_dialog_shows_all_five_choices_at_80x24_however_long_the_message():
    app, count = replay_app("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot, app, count)
        dialog = FailureDialog("3. Restore the dump", LONG_MESSAGE, LONG_TAIL, rollback_available=True)
        app.push_screen(dialog)
        await pilot.pause(0.2)
        buttons = [dialog.query_one(f"#{key}", Button) for key, _, _ in CHOICES]
        assert [b.label.plain for b in buttons] == ["Abort", "Retry", "Roll back step", "Roll back all", "Skip…"]
        hidden = [b.label.plain for b in buttons if not fully_shown(app, b)]
        assert not hidden, f"cut off at 80x24: {hidden}"
        assert dialog.focused is buttons[0]  # Abort: the safe default
        focused = []
        for _ in range(4):  # Tab walks the choices from the keyboard (no global key acts, Tab still does)
            await pilot.press("tab")
            focused.append(dialog.focused.id)
        assert focused == ["retry", "rollback", "rollback-all", "skip"]
        await pilot.press("enter")
        note = dialog.query_one("#note", Input)
        await pilot.pause(0.1)
        assert dialog.focused is note and fully_shown(app, note)  # the note a skip needs is in sight too
        assert all(fully_shown(app, b) for b in buttons)


async def test_confirm_params_and_environment_dialogs_keep_their_buttons_at_80x24():
    app, count = replay_app("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot, app, count)
        long_command = "\n".join(f"pg_restore --clean --if-exists --dbname=app /backups/db-{i}.dump" for i in range(40))
        wrapping = "\n".join(f"kubectl -n app scale deployment/worker-{i} --replicas=6 --current-replicas=4"
                             for i in range(12))
        for title, command, params in (("Step 3: Restore " + "the events table " * 8, long_command,
                                        {f"param{i}": "x" * 30 for i in range(6)}),
                                       ("Step 2: Scale", wrapping, {"replicas": "6"})):
            dialog = ConfirmDialog(app.environment, "typed", title, command, params, destructive=True)
            app.push_screen(dialog)
            await pilot.pause(0.2)
            for selector in ("#cancel", "#confirm", "#typed", "#match"):  # and whether the name typed matches
                assert fully_shown(app, dialog.query_one(selector)), selector
            for _ in range(3):  # from the name's input, past the long command's scroll box, to the buttons
                await pilot.press("tab")
                if dialog.focused is dialog.query_one("#cancel"):
                    break
            assert dialog.focused is dialog.query_one("#cancel")
            app.pop_screen()
            await pilot.pause(0.1)

        text = "---\ntitle: Many questions\nparams:\n" + "".join(
            f"  p{i}: {{type: str, default: v{i}, description: \"what the {i}th value changes, said at length so it "
            f"wraps at eighty columns\"}}\n" for i in range(9)) + "---\n# Many\n## Step\n```sh\necho {{ p0 }}\n```\n"
        book, problems = runbook.parse(text, Path("many.md"))
        assert not problems and book is not None
        form = ParamsDialog(book, "staging", {})
        app.push_screen(form)
        await pilot.pause(0.2)
        assert fully_shown(app, form.query_one("#ok", Button)) and fully_shown(app, form.query_one("#cancel", Button))
        form.query_one("#param-p8", Input).focus()  # the last field scrolls into view above the buttons
        await pilot.pause(0.2)
        assert fully_shown(app, form.query_one("#param-p8", Input)) and fully_shown(app, form.query_one("#ok"))
        app.pop_screen()

        picker = EnvironmentPicker([(f"env{i:02}", {"provider": "local"}) for i in range(40)], "env35")
        app.push_screen(picker)
        await pilot.pause(0.2)
        options = picker.query_one(OptionList)
        assert options.highlighted == 35
        assert fully_shown(app, options)  # the list scrolls inside the box, not past its bottom edge
        assert "env35" in app.export_screenshot()


# --- 2. toasts replace rather than stack ---------------------------------------------------------------------


async def test_repeated_toasts_replace_the_last_of_their_kind():
    app, count = replay_app("healthy")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await replayed(pilot, app, count)
        assert app.refresh_s == 5
        await pilot.press(*["plus"] * 5)
        await pilot.pause(0.2)
        assert app.refresh_s == 60
        shown = [n.message for n in app._notifications if n.message.startswith("refresh every")]
        assert shown == ["refresh every 60s"]
        assert toasts(app, "refresh every") == 1 and toasts(app, "refresh every 60s") == 1
        await pilot.press("minus")
        await pilot.pause(0.2)
        assert [n.message for n in app._notifications if n.message.startswith("refresh every")] == \
            ["refresh every 30s"]

        app.monitor.running = True  # a round still waiting on the network
        await pilot.press("r", "r", "r")
        await pilot.pause(0.2)
        assert toasts(app, "a probe round is already running") == 1
        app.monitor.running = False


# --- the run screen, with real runs through the local provider --------------------------------------------------

FAILS = """\
---
title: Fails at once
---
# Fails at once

## Look around
```sh
echo looking
```

## Break
```sh
echo "{message}"; false
```
"""

SLEEPS = """\
---
title: Sleeps
---
# Sleeps

## Sleep a while
```sh
sleep 30
```
"""

WORKS = "# Works\n\n## Say hello\n```sh\necho hello\n```\n"

RESTORE = """\
---
title: Restore a database backup
summary: Replace the database with a backup.
---
# Restore

## Restore
```ops {"confirm": "typed"}
restore-backup db --from latest
```
"""

DRILL = """\
---
title: Restore drill into scratch
summary: Restore the latest backup into a scratch database, then drop it.
---
# Drill

## Drill
```ops
restore-backup db --from latest --scratch-only
```
"""

BACKUP_LIST = """\
---
title: List the backups
summary: What backups exist, newest first.
---
# List

## List
```sh
ls -l backups
```
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A config dir with runbooks that pass, fail, sleep and destroy, a local environment, a journal of its own."""
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "fails.md").write_text(FAILS.format(message=("the migration left the schema half applied; " * 3)))
    (books / "sleeps.md").write_text(SLEEPS)
    (books / "works.md").write_text(WORKS)
    (books / "restore.md").write_text(RESTORE)
    (books / "drill.md").write_text(DRILL)
    (books / "backup-list.md").write_text(BACKUP_LIST)
    (books / "broken.md").write_text("# Broken\n\n## Say\n```sh\necho {{ nobody_declared_this }}\n```\n")
    monkeypatch.setenv("OPSCONSOLE_JOURNAL", str(tmp_path / "journal.sqlite3"))
    monkeypatch.chdir(tmp_path)

    def make(read_only: bool = False) -> OpsConsole:
        (tmp_path / "opsconsole.toml").write_text(textwrap.dedent("""
            [opsconsole]
            refresh = 30
            timeout = 0.5
            [environments.local]
            provider = "local"
            protection = "open"
            [environments.local.services.db]
            kind = "postgres"
            url = "postgresql://postgres@127.0.0.1:1/postgres"
            [environments.local.secrets.JWT_SECRET]
            restart = ["db"]
        """))
        cfg = config.load(str(tmp_path / "opsconsole.toml"))
        return create(cfg, cfg.environment("local"), read_only=read_only)

    make.dir = tmp_path  # type: ignore[attr-defined]
    return make


async def open_run(app: OpsConsole, pilot, name: str) -> RunScreen:
    app.start_runbook(app.config.base_dir / "runbooks" / f"{name}.md")
    await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), 10, "the run screen")
    run = app.screen
    await wait_until(pilot, lambda: bool(run.query("#run-title")) and bool(run.query_one("#run-title").render().plain),
                     5, "the plan shown")
    return run


async def test_a_real_failure_offers_every_choice_at_80x24(workspace):
    app = workspace()
    async with app.run_test(size=SIZE) as pilot:
        run = await open_run(app, pilot, "fails")
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, FailureDialog) and bool(app.screen.query("#abort")), 20,
                         "the failure dialog")
        await pilot.pause(0.1)
        dialog = app.screen
        assert "the migration left the schema half applied" in str(dialog.query_one("#tail", Static).render())
        assert all(fully_shown(app, dialog.query_one(f"#{key}", Button)) for key, _, _ in CHOICES)
        await pilot.click("#abort")
        await wait_until(pilot, lambda: run.finished is not None, 20, "the abort")


async def test_enter_on_an_invalid_runbook_again_and_again_shows_one_toast(workspace):
    app = workspace()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, RunbooksScreen), 5, "the runbooks")
        await pilot.press("slash", *"broken", "enter")  # filter, then back to the list
        await pilot.pause(0.2)
        await pilot.press("enter", "enter", "enter")
        await pilot.pause(0.3)
        assert toasts(app, "nobody_declared_this") == 1


async def test_the_run_footer_offers_start_then_abort_then_neither(workspace):
    app = workspace()
    async with app.run_test(size=SIZE) as pilot:
        run = await open_run(app, pilot, "sleeps")
        await pilot.pause(0.2)
        offered = footer(app)
        assert offered.get("s Start") and "a Abort" not in offered  # nothing runs yet: nothing to abort
        assert all(offered.get(entry) for entry in ("esc Back", "home Dashboard", "? Keys", "q Quit")), offered
        assert not {"e Env", "b Runbooks", "x Secrets"} & set(offered)  # the dashboard's keys stay there
        await pilot.press("s")
        await wait_until(pilot, lambda: run.statuses.get(1) == "running", 20, "the sleeping step")
        await pilot.pause(0.2)
        offered = footer(app)
        assert offered.get("a Abort") and "s Start" not in offered
        await pilot.press("a")
        await wait_until(pilot, lambda: run.finished is not None, 20, "the abort")
        await pilot.pause(0.2)
        offered = footer(app)
        assert "s Start" not in offered and "a Abort" not in offered, offered
        notes = len(app._notifications)
        await pilot.press("s")  # a stale key does nothing, not even a toast
        await pilot.pause(0.1)
        assert len(app._notifications) == notes and run.finished == "aborted"


async def test_run_in_progress_warnings_replace_each_other_and_home_never_leaves_a_running_run(workspace):
    app = workspace()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        run = await open_run(app, pilot, "sleeps")
        await pilot.press("s")
        await wait_until(pilot, lambda: run.statuses.get(1) == "running", 20, "the sleeping step")
        await pilot.press("escape", "escape", "escape")
        await pilot.pause(0.2)
        assert app.screen is run and toasts(app, "a run is in progress") == 1

        await pilot.press("j")  # the journal over the running run
        await wait_until(pilot, lambda: isinstance(app.screen, JournalScreen), 5, "the journal")
        await pilot.press("home")
        await pilot.pause(0.2)
        assert app.screen is run and run.running  # home stopped at the run; it still runs
        assert toasts(app, "a run is in progress") == 1
        assert any("home stops at its screen" in n.message for n in app._notifications)
        await pilot.press("a")
        await wait_until(pilot, lambda: run.finished is not None, 20, "the abort")
        await pilot.press("home")
        await pilot.pause(0.2)
        assert len(app.screen_stack) == 1  # the run ended: home goes all the way


async def test_home_and_esc_twice_go_home_from_any_depth(workspace):
    app = workspace()
    async with app.run_test(size=SIZE) as pilot:
        assert "home Dashboard" not in footer(app)  # on the dashboard there is nowhere to go
        run = await open_run(app, pilot, "works")
        await pilot.press("s")
        await wait_until(pilot, lambda: run.finished == "succeeded", 20, "the run")
        await pilot.press("j")
        await wait_until(pilot, lambda: isinstance(app.screen, JournalScreen) and app.screen.loads >= 1, 5, "journal")
        await pilot.press("enter")  # the run's steps
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunDetailScreen", 5, "the run's detail")
        assert len(app.screen_stack) == 4
        assert footer(app).get("home Dashboard")
        await pilot.press("home")  # one key, wherever the list's own home would have gone
        await pilot.pause(0.2)
        assert len(app.screen_stack) == 1

        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, RunbooksScreen), 5, "the runbooks")
        run = await open_run(app, pilot, "works")
        await pilot.press("s")
        await wait_until(pilot, lambda: run.finished == "succeeded", 20, "the run")
        await pilot.press("j")
        await wait_until(pilot, lambda: isinstance(app.screen, JournalScreen), 5, "the journal")
        assert len(app.screen_stack) == 4  # dashboard, runbooks, run, journal
        await pilot.press("escape")
        await pilot.pause(0.1)
        await pilot.press("escape")  # again within a second: home, not one more screen back (the runbooks)
        await pilot.pause(0.2)
        assert len(app.screen_stack) == 1

        app.push_screen(RunbooksScreen())
        await pilot.pause(0.1)
        await pilot.press("j")
        await wait_until(pilot, lambda: isinstance(app.screen, JournalScreen), 5, "the journal")
        await pilot.press("escape")
        await pilot.pause(BACK_PAUSE)
        assert isinstance(app.screen, RunbooksScreen)  # esc once, then a pause: one screen back each time
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert len(app.screen_stack) == 1


async def test_j_goes_back_to_an_open_journal_instead_of_stacking_another(workspace):
    app = workspace()
    async with app.run_test(size=SIZE) as pilot:
        run = await open_run(app, pilot, "works")
        await pilot.press("s")
        await wait_until(pilot, lambda: run.finished == "succeeded", 20, "the run")
        await pilot.press("j")
        await wait_until(pilot, lambda: isinstance(app.screen, JournalScreen) and app.screen.loads >= 1, 5, "journal")
        journal = app.screen
        assert "j Journal" not in footer(app)  # already there
        await pilot.press("enter")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "RunDetailScreen", 5, "the run's detail")
        await pilot.press("j")
        await pilot.pause(0.2)
        assert app.screen is journal and sum(isinstance(s, JournalScreen) for s in app.screen_stack) == 1


# --- 3. the footer at 80 columns ------------------------------------------------------------------------------


async def test_the_dashboard_footer_fits_its_keys_at_80_columns_and_question_mark_lists_the_rest():
    app, count = replay_app("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot, app, count)
        offered = footer(app)
        for entry in ("e Env", "b Runbooks", "j Journal", "x Secrets", "+- Interval", "? Keys", "q Quit"):
            assert offered.get(entry), f"{entry!r} not shown in full at 80 columns: {offered}"
        assert "home Dashboard" not in offered
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert isinstance(app.screen, KeysDialog), "? lists every key"
        listed = str(app.screen.query_one("#keys", Static).render())
        for line in ("⏎  Details", "r  Refresh — probe everything now", "^p  Palette — every action by name",
                     "+  Probe less often", "-  Probe more often", "e  Env — switch the environment watched"):
            assert line in listed, line  # what the footer leaves out, or shortens, the list says in full
        assert listed.index("On this screen") < listed.index("Details") < listed.index("Everywhere")
        assert fully_shown(app, app.screen.query_one("#keys"))  # all of it, at 80x24
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert len(app.screen_stack) == 1

        app.push_screen(JournalScreen())
        await pilot.pause(0.3)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        listed = str(app.screen.query_one("#keys", Static).render())
        here = listed[:listed.index("Everywhere")]
        assert "r  Refresh" in here and "u  Resume" in here and "esc  Back" in here
        assert "home  Dashboard — from any depth (or esc twice)" in listed
        assert "Env" not in listed  # the dashboard's keys do not act here, so they are not listed
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert isinstance(app.screen, JournalScreen)


async def test_the_footers_of_the_other_screens_fit_80_columns():
    app, count = replay_app("healthy")
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot, app, count)
        expected = {
            RunbooksScreen: ("home Dashboard", "esc Back", "/ Filter", "j Journal", "? Keys", "q Quit"),
            JournalScreen: ("home Dashboard", "esc Back", "a All environments", "? Keys", "q Quit"),
            SecretsScreen: ("home Dashboard", "esc Back", "j Journal", "? Keys", "q Quit"),
        }
        for kind, entries in expected.items():
            app.push_screen(kind())
            await pilot.pause(0.5)
            offered = footer(app)
            for entry in entries:
                assert offered.get(entry), f"{kind.__name__}: {entry!r} not shown in full: {offered}"
            assert not {"e Env", "b Runbooks", "x Secrets", "+- Interval"} & set(offered), offered
            await pilot.press("escape")
            await pilot.pause(BACK_PAUSE)
            assert len(app.screen_stack) == 1
        # The dashboard's keys act on the dashboard only: x on the journal opens no secrets screen on top.
        app.push_screen(JournalScreen())
        await pilot.pause(0.2)
        await pilot.press("x", "b", "e")
        await pilot.pause(0.2)
        assert isinstance(app.screen, JournalScreen) and len(app.screen_stack) == 2


# --- 4. the palette: safe first, destructive marked ------------------------------------------------------------


async def palette_options(app: OpsConsole, pilot, query: str) -> list[str]:
    await pilot.press("ctrl+p")
    await pilot.press(*query)

    def listed() -> list[str]:
        lists = app.screen.query("CommandList")
        return [str(o.prompt).split("\n")[0] for o in lists.first().options] if lists else []  # titles, not help

    await wait_until(pilot, lambda: any("backup" in p.lower() for p in listed()), 5, "the palette's matches")
    await pilot.pause(0.4)  # the palette adds matches in batches
    return listed()


async def test_the_palette_puts_safe_entries_first_and_marks_the_destructive(workspace):
    app = workspace()
    async with app.run_test(size=(120, 36)) as pilot:
        options = await palette_options(app, pilot, "backup")
        lists = app.screen.query("CommandList")
        highlighted = str(lists.first().highlighted_option.prompt).split("\n")[0]
        assert highlighted in ("Action: backup db", "Run runbook: List the backups"), options
        destroying = [i for i, o in enumerate(options) if o.startswith("⚠ ")]
        safe = [i for i, o in enumerate(options) if not o.startswith("⚠ ")]
        assert destroying and safe and max(safe) < min(destroying), options
        assert "⚠ Run runbook: Restore a database backup — changes data" in options
        assert "⚠ Action: restore-backup db --from latest — changes data" in options
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Run runbook: Restore drill into scratch" in titles  # a scratch-only drill destroys nothing
        assert "⚠ Run runbook: Restore drill into scratch — changes data" not in titles
        await pilot.press("enter")  # the highlighted, safe one: a backup, or a listing
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), 10, "the plan of the safe entry")
        assert not app.screen.plan.runbook.title.startswith("Restore a database")

    quiet = workspace(read_only=True)
    async with quiet.run_test(size=(120, 36)):
        titles = [c.title for c in quiet.get_system_commands(quiet.screen)]
        assert not [t for t in titles if t.startswith(("⚠", "Run runbook", "Action:", "Rotate secret"))], titles


# --- 6. the secrets screen with the built-in config -------------------------------------------------------------


async def test_secrets_on_the_built_in_config_say_which_file_to_create(tmp_path: Path):
    cfg = config.parse(config.BUILTIN_TOML, None, tmp_path)
    app = create(cfg, cfg.environment("local"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, SecretsScreen) and app.screen.loads >= 1, 5, "secrets")
        screen = app.screen
        status = str(screen.query_one("#secrets-status", Static).render())
        example = str(screen.query_one("#secret-about", Static).render())
        assert "<built-in config>" not in status
        assert f"create {tmp_path / 'opsconsole.toml'}" in " ".join(status.split())
        assert "[environments.local.secrets.NAME]" in " ".join(status.split())
        assert "[environments.local.secrets.JWT_SECRET]" in example and 'restart = ["api"]' in example
        parsed = config.parse(example + "\n", tmp_path / "opsconsole.toml", tmp_path)  # the example is valid
        assert "JWT_SECRET" in parsed.environment("local").secrets
        assert all(fully_shown(app, screen.query_one(part)) for part in ("#secret-about", "#secrets-status"))
        offered = footer(app)
        assert "⏎ Rotate…" not in offered and "u Roll back…" not in offered  # nothing to rotate yet


async def test_secrets_with_a_config_file_name_it(tmp_path: Path):
    path = tmp_path / "opsconsole.toml"
    path.write_text('[environments.staging]\nprovider = "local"\n')
    cfg = config.load(str(path))
    app = create(cfg, cfg.environment("staging"))
    async with app.run_test(size=(120, 30)) as pilot:
        app.action_secrets()
        await wait_until(pilot, lambda: isinstance(app.screen, SecretsScreen) and app.screen.loads >= 1, 5, "secrets")
        status = " ".join(str(app.screen.query_one("#secrets-status", Static).render()).split())
        assert f"add [environments.staging.secrets.NAME] with restart = [\"service\", ...] to {path}" in status
        assert str(app.screen.query_one("#secret-about", Static).render()) == ""
