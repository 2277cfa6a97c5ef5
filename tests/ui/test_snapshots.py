"""The dashboard as SVG snapshots: readings recorded from real probes (tests/ui/record.py), a fixed clock.

After a deliberate change: `pytest tests/ui/test_snapshots.py --snapshot-update`, then look at the
report of what changed before committing.
"""

from __future__ import annotations

import pytest

from tests.ui.replay import play_all, replay_app


def snap(snap_compare, recording: str, size: tuple[int, int], press: tuple[str, ...] = (), **kw) -> bool:
    app, count = replay_app(recording, **kw)

    async def run_before(pilot) -> None:
        await play_all(app, pilot, count)
        if press:
            await pilot.press(*press)
            await pilot.pause(0.2)

    return snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])
def test_healthy(snap_compare, size):
    assert snap(snap_compare, "healthy", size)


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_degraded(snap_compare, size):
    assert snap(snap_compare, "degraded", size)


def test_production_badge(snap_compare):
    assert snap(snap_compare, "healthy", (100, 30), environment="production")


def test_light_theme(snap_compare):
    assert snap(snap_compare, "degraded", (100, 30), theme="opsconsole-light")


def test_high_contrast_theme(snap_compare):
    assert snap(snap_compare, "degraded", (100, 30), theme="opsconsole-high-contrast")


def test_detail_view(snap_compare):
    assert snap(snap_compare, "degraded", (100, 30), press=("down", "down", "enter"))


def test_environment_picker_over_production(snap_compare):
    assert snap(snap_compare, "healthy", (80, 24), press=("e",), environment="production", read_only=True)


# -- runbooks ----------------------------------------------------------------------------------------------------

def test_runbooks_screen(snap_compare):
    assert snap(snap_compare, "healthy", (100, 30), press=("b",))


def test_params_dialog(snap_compare):
    assert snap(snap_compare, "healthy", (100, 30), press=("b", "enter"))


def _run_screen(snap_compare, size, dialog=None, **kw) -> bool:
    """The run screen of the fixed scale-workers runbook, planned for real against the replayed environment."""
    from opsconsole import runbook
    from opsconsole.engine import build_plan
    from opsconsole.ui.screens.run import RunScreen
    from tests.ui.replay import RUNBOOKS

    app, count = replay_app("healthy", **kw)

    async def run_before(pilot) -> None:
        await play_all(app, pilot, count)
        book = runbook.load(RUNBOOKS / "scale-workers.md")
        plan = build_plan(app.config, app.environment, book, {"replicas": "6"})
        await app.push_screen(RunScreen(plan))
        await pilot.pause(0.2)
        if dialog is not None:
            await app.push_screen(dialog(app, plan))
            await pilot.pause(0.2)

    return snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])
def test_run_screen(snap_compare, size):
    assert _run_screen(snap_compare, size)


def test_confirm_dialog_typed_on_production(snap_compare):
    from opsconsole.ui.dialogs.confirm import ConfirmDialog

    def dialog(app, plan):
        step = plan.steps[1]
        block = step.changes[0]
        return ConfirmDialog(app.environment, "typed", f"Step {step.index}: {step.title}", block.text,
                             plan.params, destructive=False)

    assert _run_screen(snap_compare, (100, 30), dialog, environment="production")


def test_failure_dialog(snap_compare):
    from opsconsole.ui.dialogs.failure import FailureDialog

    def dialog(app, plan):
        return FailureDialog("2. Note the change", "exit status 3 after 0.1 s", "first attempt fails\n",
                             rollback_available=False)

    assert _run_screen(snap_compare, (100, 30), dialog)


# -- dialogs at 80x24: every button on the screen however long what they show ---------------------------------------

LONG_OUTPUT = "\n".join(f"pg_restore: error: could not execute query: ERROR: relation \"events_{i}\" already exists"
                        for i in range(12))


def test_failure_dialog_80x24_long_message(snap_compare):
    from opsconsole.ui.dialogs.failure import FailureDialog

    def dialog(app, plan):
        message = "pg_restore --clean --if-exists --dbname=app /backups/db-latest.dump: exit 1 after 12.4 s; " * 3
        return FailureDialog("2. Note the change", message, LONG_OUTPUT, rollback_available=True)

    assert _run_screen(snap_compare, (80, 24), dialog)


def test_confirm_dialog_80x24_long_command(snap_compare):
    from opsconsole.ui.dialogs.confirm import ConfirmDialog

    def dialog(app, plan):
        command = "\n".join(f"kubectl -n app scale deployment/worker-{i} --replicas=6 --current-replicas=4"
                            for i in range(12))
        return ConfirmDialog(app.environment, "typed", "Step 2: Note the change", command, plan.params,
                             destructive=True)

    assert _run_screen(snap_compare, (80, 24), dialog, environment="production")


def test_params_dialog_80x24_many_params(snap_compare):
    from pathlib import Path

    from opsconsole import runbook
    from opsconsole.ui.dialogs.params import ParamsDialog

    text = "---\ntitle: Many questions\nparams:\n" + "".join(
        f"  p{i}: {{type: str, default: v{i}, description: \"what the {i}th value changes, said at length so "
        f"it wraps at eighty columns\"}}\n" for i in range(9)) + "---\n# Many\n## Step\n```sh\necho {{ p0 }}\n```\n"
    book, problems = runbook.parse(text, Path("many.md"))
    assert book is not None and not problems
    app, count = replay_app("healthy")

    async def run_before(pilot) -> None:
        await play_all(app, pilot, count)
        await app.push_screen(ParamsDialog(book, app.environment.name, {}))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_keys_dialog(snap_compare):
    assert snap(snap_compare, "healthy", (80, 24), press=("question_mark",))
