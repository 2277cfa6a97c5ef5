"""Runbooks in the TUI, walked with Pilot against the local provider and the real PostgreSQL and Redis."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
from textual.widgets import Button, Input, Static

from opsconsole import config
from opsconsole.journal import open_journal
from opsconsole.ui.app import OpsConsole, create
from opsconsole.ui.dialogs.confirm import ConfirmDialog
from opsconsole.ui.dialogs.failure import FailureDialog
from opsconsole.ui.dialogs.params import ParamsDialog
from opsconsole.ui.screens.run import RunScreen
from opsconsole.ui.screens.runbooks import RunbooksScreen
from tests.ui.test_app import wait_until

pytestmark = pytest.mark.integration

DRILL = """\
---
title: Marker drill
summary: Write a marker, fail once, verify.
params:
  who: {type: str, default: "night shift"}
---

# Marker drill

## Check the database
```ops {"role": "check"}
expect db is ok
```

## Write the marker
Writes who is on call into marker.txt.
```sh
echo "{{ who }}" >> marker.txt
```
```sh {"role": "rollback"}
rm -f marker.txt
```

## Fail once
```sh
if [ ! -f tried.txt ]; then touch tried.txt; echo "first attempt fails"; exit 3; fi
echo "second attempt works"
```

## Wait a moment
```sh
sleep {{ pause }}
```

## Verify
```ops {"role": "verify", "timeout": "10s"}
expect cache is ok
```
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch, pg_running, redis_running):
    """A config dir with one runbook, a local environment on the real servers, and a journal of its own."""
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "drill.md").write_text(
        DRILL.replace("params:\n", "params:\n  pause: {type: int, min: 0, max: 30, default: 0}\n"))
    monkeypatch.setenv("OPSCONSOLE_JOURNAL", str(tmp_path / "journal.sqlite3"))

    def make(protection: str = "confirm", read_only: bool = False) -> OpsConsole:
        text = textwrap.dedent(f"""
            [opsconsole]
            refresh = 0.5
            [environments.local]
            provider = "local"
            protection = "{protection}"
            [environments.local.services.db]
            url = "{pg_running.url()}"
            [environments.local.services.cache]
            url = "{redis_running.url}"
        """)
        (tmp_path / "opsconsole.toml").write_text(text)
        cfg = config.load(str(tmp_path / "opsconsole.toml"))
        return create(cfg, cfg.environment("local"), read_only=read_only)

    make.dir = tmp_path  # type: ignore[attr-defined]
    return make


async def open_drill(app: OpsConsole, pilot, **params: str) -> RunScreen:
    await pilot.press("b")
    await wait_until(pilot, lambda: isinstance(app.screen, RunbooksScreen), 3, "the runbooks screen")
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, ParamsDialog), 3, "the params form")
    for name, value in params.items():
        app.screen.query_one(f"#param-{name}", Input).value = value
    app.screen.submit()
    await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), 5, "the run screen")
    await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.statuses and
                     bool(app.screen.query("#run-title")) and bool(app.screen.query_one("#run-title").render().plain),
                     5, "the plan shown")
    return app.screen


async def confirm(app: OpsConsole, pilot, typed: str | None = None) -> None:
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 10, "a confirmation")
    dialog = app.screen
    if dialog.level == "typed":  # the name can be typed at once; Enter on anything else cancels
        assert dialog.focused is dialog.query_one("#typed", Input)
    else:
        assert dialog.focused is dialog.query_one("#cancel", Button)  # Enter alone never confirms
    if typed is not None:
        dialog.query_one("#typed", Input).value = typed
        await pilot.pause()
    await pilot.click("#confirm")


async def decide(app: OpsConsole, pilot, choice: str, step: str = "Fail once") -> None:
    await wait_until(pilot, lambda: isinstance(app.screen, FailureDialog), 10, "the failure dialog")
    assert step in app.screen.title_text, f"unexpected failure: {app.screen.title_text}: {app.screen.message}"
    await pilot.click(f"#{choice}")


async def test_walk_a_runbook_confirm_fail_retry(workspace):
    app = workspace()
    async with app.run_test(size=(140, 40)) as pilot:
        run = await open_drill(app, pilot, who="ana; rm -rf /")
        assert "ana; rm -rf /" in app.screen.query_one("#run-title").render().plain
        await pilot.press("s")
        await confirm(app, pilot)  # step 2 writes the marker
        await confirm(app, pilot)  # step 3, first attempt
        await decide(app, pilot, "retry")
        await confirm(app, pilot)  # step 3 again
        await confirm(app, pilot)  # step 4 sleeps 0
        await wait_until(pilot, lambda: run.finished is not None, 20, "the run to finish")
        assert run.finished == "succeeded"
        assert run.statuses == {1: "succeeded", 2: "succeeded", 3: "succeeded", 4: "succeeded", 5: "succeeded"}
    assert (workspace.dir / "marker.txt").read_text() == "ana; rm -rf /\n"  # the value, inert
    journal = open_journal(str(workspace.dir / "journal.sqlite3"))
    record = journal.get(run.record.run_id)
    assert record.status == "succeeded"
    assert record.latest_steps()[3].attempt == 2


async def test_roll_back_all_after_a_failure(workspace):
    app = workspace(protection="open")  # open: plain changes run without asking
    async with app.run_test(size=(140, 40)) as pilot:
        run = await open_drill(app, pilot)
        await pilot.press("s")
        await decide(app, pilot, "rollback-all")
        await wait_until(pilot, lambda: run.finished is not None, 20, "the run to end")
        assert run.statuses[2] == "rolled-back", (run.statuses, run.finished, [str(l) for l in run.query_one("#output").lines])
    assert not (workspace.dir / "marker.txt").exists()


async def test_abort_then_resume_never_runs_a_finished_step_twice(workspace):
    (workspace.dir / "tried.txt").touch()  # step 3 passes at once
    app = workspace(protection="open")
    async with app.run_test(size=(140, 40)) as pilot:
        run = await open_drill(app, pilot, pause="30")
        await pilot.press("s")
        await wait_until(pilot, lambda: run.statuses.get(4) == "running", 20, "the sleeping step")
        await pilot.press("a")
        await wait_until(pilot, lambda: run.finished is not None, 20, "the abort")
        record = run.record
        assert record is not None and record.status == "aborted"
        await pilot.press("escape")  # back to the runbooks list
        await pilot.press("escape")
        from opsconsole import runbook

        app.plan_runbook(runbook.load(workspace.dir / "runbooks" / "drill.md"), {"pause": "30"}, resume=record)
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen is not run, 5, "a resume")
        resumed = app.screen
        # A resume must be the same plan: pause=30 again; the sleeping step is the first unfinished one.
        resumed.plan = resumed.plan  # frozen
        await pilot.press("s")
        await wait_until(pilot, lambda: resumed.statuses.get(4) == "running", 20, "step 4 again")
        resumed.cancel.set()  # no need to sleep 30 s: abort again, then check the journal
        await wait_until(pilot, lambda: resumed.finished is not None, 20, "the second abort")
        assert resumed.statuses[2] == "succeeded"  # shown as done before, not run again
    assert (workspace.dir / "marker.txt").read_text() == "night shift\n"  # written once
    journal = open_journal(str(workspace.dir / "journal.sqlite3"))
    steps = journal.get(record.run_id).latest_steps()
    assert steps[2].attempt == 1


async def test_typed_confirmation_refuses_a_wrong_name(workspace):
    app = workspace(protection="typed")
    async with app.run_test(size=(140, 40)) as pilot:
        run = await open_drill(app, pilot)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 10, "a confirmation")
        dialog = app.screen
        assert dialog.query_one("#confirm", Button).disabled
        await pilot.press(*"locl")
        assert dialog.query_one("#typed", Input).value == "locl"
        assert dialog.query_one("#confirm", Button).disabled
        assert str(dialog.query_one("#match", Static).render()) == "does not match local: Enter cancels"
        await pilot.press("enter")  # a wrong name does not confirm: it cancels, the step is not run
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmDialog), (app.screen, app.focused)
        await wait_until(pilot, lambda: run.finished is not None, 20, "the abort")  # declining ends the run
        assert run.finished == "aborted" and run.statuses[2] == "failed"
    assert not (workspace.dir / "marker.txt").exists()


async def test_typed_confirmation_takes_the_name_as_typed_and_nothing_else(workspace):
    """The input has the focus: typing the name and Enter confirms, with no other key. Letters that are global
    keys elsewhere (r refresh, e environments, q quit) go into the input, and act on nothing behind the dialog."""
    app = workspace(protection="typed")
    async with app.run_test(size=(80, 24)) as pilot:
        run = await open_drill(app, pilot)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 10, "a confirmation")
        dialog = app.screen
        rounds = app.rounds_shown
        await pilot.press(*"rqe")  # into the input, not refresh / quit / the environment picker
        assert dialog.query_one("#typed", Input).value == "rqe" and app.screen is dialog and app.is_running
        await pilot.press("ctrl+u")  # clears the input
        await pilot.press(*"local")
        assert str(dialog.query_one("#match", Static).render()) == "matches local: Enter confirms"
        assert not dialog.query_one("#confirm", Button).disabled
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is not dialog, 5, "the dialog closed")
        await wait_until(pilot, lambda: run.statuses[2] == "succeeded", 20, "the confirmed step")
        assert app.rounds_shown >= rounds
        # the drill's next change asks again; cancelling it ends the run
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 10, "the next confirmation")
        await pilot.press("escape")
        await wait_until(pilot, lambda: run.finished is not None, 20, "the run's end")


async def test_no_global_key_acts_behind_a_y_n_confirmation(workspace):
    app = workspace(protection="confirm")
    async with app.run_test(size=(140, 40)) as pilot:
        await open_drill(app, pilot)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 10, "a confirmation")
        dialog = app.screen
        assert dialog.focused is dialog.query_one("#cancel", Button)
        for key in ("r", "e", "b", "j", "x", "q", "ctrl+p"):
            await pilot.press(key)
            await pilot.pause(0.05)
            assert app.screen is dialog and app.is_running, key
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmDialog)


async def test_read_only_hides_and_refuses_runbooks(workspace):
    app = workspace(read_only=True)
    async with app.run_test(size=(140, 40)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert not any(t.startswith("Run runbook") for t in titles)
        assert "Runbooks" in titles  # browsing is fine
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, RunbooksScreen), 3, "the runbooks screen")
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, RunbooksScreen)  # no params form, no run
        assert any("read-only" in n.message for n in app._notifications)
    assert not (workspace.dir / "marker.txt").exists()


async def test_palette_action_backs_up_the_database(workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    app = workspace(protection="open")
    async with app.run_test(size=(140, 40)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        # A destructive entry is marked, and listed after the safe one for the same words.
        restore = "⚠ Action: restore-backup db --from latest — changes data"
        assert "Action: backup db" in titles and restore in titles
        assert titles.index("Action: backup db") < titles.index(restore)
        app.start_action("backup db")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), 10, "the run screen")
        run = app.screen
        await wait_until(pilot, lambda: bool(run.statuses), 5, "the plan shown")
        await pilot.press("s")
        await wait_until(pilot, lambda: run.finished is not None, 60, "the backup")
        assert run.finished == "succeeded", run.statuses
    dumps = list((tmp_path / "state").rglob("*.dump"))
    assert dumps and dumps[0].stat().st_size > 0


async def test_a_held_lock_says_who_holds_it(workspace):
    from opsconsole.lock import LockHolder

    app = workspace(protection="open")
    journal = open_journal(str(workspace.dir / "journal.sqlite3"))
    lock = journal.lock("local", LockHolder.for_run("20261121-0300-night", "restore-backup"))
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            run = await open_drill(app, pilot)
            await pilot.press("s")
            await wait_until(pilot, lambda: run.finished is not None, 10, "the refusal")
            state = str(run.query_one("#state").render())
            assert "20261121-0300-night" in state and "restore-backup" in state and "since" in state
    finally:
        lock.release()
        journal.close()
    assert not (workspace.dir / "marker.txt").exists()


async def test_quit_and_environment_switch_wait_for_a_running_step(workspace):
    (workspace.dir / "tried.txt").touch()  # step 3 passes at once
    app = workspace(protection="open")
    async with app.run_test(size=(140, 40)) as pilot:
        run = await open_drill(app, pilot, pause="30")
        await pilot.press("s")
        await wait_until(pilot, lambda: run.statuses.get(4) == "running", 20, "the sleeping step")
        await pilot.press("e")
        app.switch_environment("other")  # as the palette would
        await pilot.pause(0.2)
        assert any("before switching" in n.message for n in app._notifications)
        await pilot.press("q")
        await pilot.pause(0.2)
        assert app.is_running and app.screen is run and app.environment.name == "local"
        # One warning at a time: the quit warning replaces the switch warning instead of stacking on it.
        warnings = [n.message for n in app._notifications if "a run is in progress" in n.message]
        assert len(warnings) == 1 and "press q again" in warnings[0], warnings
        await pilot.press("a")
        await wait_until(pilot, lambda: run.finished is not None, 20, "the abort")
        await pilot.press("q")  # nothing runs now: one press quits
        await wait_until(pilot, lambda: not app.is_running, 5, "the app to quit")


async def test_quitting_mid_step_exits_130_and_journals_the_run_interrupted(workspace):
    """q twice during a step: the step's command is stopped, the run is `interrupted` (as a crash leaves it, so the
    next start says so, and it resumes), and the exit code says it was interrupted."""
    (workspace.dir / "tried.txt").touch()
    app = workspace(protection="open")
    async with app.run_test(size=(140, 40)) as pilot:
        run = await open_drill(app, pilot, pause="30")
        await pilot.press("s")
        await wait_until(pilot, lambda: run.statuses.get(4) == "running", 20, "the sleeping step")
        await pilot.press("q", "q")
        await wait_until(pilot, lambda: not app.is_running, 15, "the app to quit")
    assert app.return_code == 130
    store = open_journal(str(workspace.dir / "journal.sqlite3"))
    try:  # the engine's thread records the end once the step's command is stopped (the CLI waits for it)
        deadline = time.monotonic() + 15
        while store.runs()[0].status == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        [record] = store.runs()
        assert record.status == "interrupted" and record.latest_steps()[4].status == "failed"
    finally:
        store.close()


async def test_closing_the_app_at_a_confirmation_stops_the_run(workspace):
    app = workspace()  # confirm: step 2 asks
    async with app.run_test(size=(140, 40)) as pilot:
        run = await open_drill(app, pilot)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmDialog), 10, "a confirmation")
    # The app is gone with the dialog unanswered: the engine must not wait for it forever.
    try:
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline:
            with open_journal(str(workspace.dir / "journal.sqlite3")) as journal:
                [record] = journal.runs()
                status = record.status
            if status != "running":
                break
            time.sleep(0.05)
        assert status == "aborted"
        assert not (workspace.dir / "marker.txt").exists()  # the unconfirmed change never ran
    finally:
        run.cancel.set()  # should this regress, let the test end instead of hanging the loop's shutdown


async def test_member_params_are_chosen_from_the_environment(workspace):
    """A `member` param is a choice of the environment's members of its kind: the only postgres member is
    preselected; a service with two candidates starts blank and must be chosen — never guessed."""
    from textual.widgets import Select

    (workspace.dir / "runbooks" / "pick.md").write_text(textwrap.dedent("""\
        ---
        params:
          database: {type: member, kind: postgres}
          target: {type: member, kind: service}
        ---
        ## Look
        ```ops
        expect {{ database }} is ok
        expect {{ target }} is ok
        ```
        """))
    app = workspace()
    async with app.run_test(size=(80, 24)) as pilot:
        app.start_runbook(workspace.dir / "runbooks" / "pick.md")
        await wait_until(pilot, lambda: isinstance(app.screen, ParamsDialog), 3, "the params form")
        await pilot.pause()
        database = app.screen.query_one("#param-database", Select)
        target = app.screen.query_one("#param-target", Select)
        assert database.value == "db"
        assert [str(o[0]) for o in target._options if o[1] is not Select.NULL] == ["db", "cache"]
        assert target.is_blank()
        app.screen.submit()
        await pilot.pause()
        error = app.screen.query_one("#error-target", Static)
        assert "name the service with -p target=NAME (it has: db, cache)" in str(error.render())
        target.value = "cache"
        app.screen.submit()
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), 5, "the run screen")


async def test_a_follow_command_runs_until_go_on_then_the_run_goes_on(workspace):
    """`tail -f` in a step: the run screen offers `g` (go on); pressing it ends the step as a success with its
    output shown, and the next step runs."""
    (workspace.dir / "runbooks" / "follow.md").write_text(textwrap.dedent("""\
        # Follow

        ## Watch the log
        ```sh
        : > app.log
        (i=0; while true; do i=$((i+1)); echo "log line $i" >> app.log; sleep 0.1; done) &
        tail -n +1 -f app.log
        ```

        ## After
        ```sh
        echo after > after.txt
        ```
        """))
    app = workspace(protection="open")
    async with app.run_test(size=(80, 24)) as pilot:
        app.start_runbook(workspace.dir / "runbooks" / "follow.md")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), 5, "the run screen")
        run = app.screen
        assert not run.check_action("go_on", ())  # nothing to go on from yet
        await pilot.press("s")
        await wait_until(pilot, lambda: run.following is not None, 20, "the follow command")
        log = workspace.dir / "app.log"
        await wait_until(pilot, lambda: log.exists() and log.read_text().count("\n") >= 3, 20, "the streamed output")
        assert run.check_action("go_on", ()) and "g · go on" in str(run.query_one("#state", Static).render())
        await pilot.press("g")
        await wait_until(pilot, lambda: run.finished is not None, 20, "the run to finish")
        assert run.finished == "succeeded" and (workspace.dir / "after.txt").read_text() == "after\n"
