"""Invisible and bidi characters in a runbook, through the real CLI.

A zero-width space before `#` in `rm -rf ./cache \u200b# never ./data` makes every screen show a comment while bash
reads `\u200b#` as a word and deletes ./data. What must hold: `runbooks validate` names the file, the line and the
character; `plan`, `run` output and `runbooks show` print it as a visible `\\u200b`, never raw; a run on a `typed`
environment is refused before anything runs, even with --yes and --confirm-env; the journal display escapes it.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest

from tests.security.conftest import assert_user_error

ZWSP = "\u200b"
LYING = f"## Clean the cache\n```sh\nrm -rf ./cache {ZWSP}# never ./data\n```\n"  # the block's body is line 3
ECHO = "## Greet\n```sh\nprintf 'a\u202eb\\n'\n```\n"  # prints a right-to-left override


@pytest.fixture
def home(tmp_path: Path, write_config) -> Path:
    write_config('[environments.local]\nprovider = "local"\n\n'
                 '[environments.production]\nprovider = "local"\nprotection = "typed"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "clean.md").write_text(LYING)
    (tmp_path / "runbooks" / "greet.md").write_text(ECHO)
    for name in ("cache", "data"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "keep.txt").write_text(name)
    return tmp_path


def raw_invisible(text: str) -> str | None:
    """The first format character (Cf), line or paragraph separator, or space but U+0020 printed raw."""
    return next((c for c in text if unicodedata.category(c) in ("Cf", "Zl", "Zp")
                 or (unicodedata.category(c) == "Zs" and c != " ")), None)


def test_validate_names_the_file_line_and_character(home, run_cli):
    proc = run_cli("runbooks", "validate", stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert "runbooks/clean.md:3: U+200B ZERO WIDTH SPACE in a sh block" in proc.stdout, proc.stdout
    assert "runbooks/greet.md:3: U+202E RIGHT-TO-LEFT OVERRIDE in a sh block" in proc.stdout, proc.stdout
    assert raw_invisible(proc.stdout) is None


def test_plan_shows_the_hidden_character(home, run_cli):
    proc = run_cli("plan", "clean", stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "rm -rf ./cache \\u200b# never ./data" in proc.stdout
    assert raw_invisible(proc.stdout) is None


def test_run_output_and_show_escape_it(home, run_cli):
    run = run_cli("run", "greet", "--yes", stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr
    assert "a\\u202eb" in run.stdout and raw_invisible(run.stdout + run.stderr) is None
    show = run_cli("runbooks", "show", "clean", stdin=subprocess.DEVNULL)
    assert "./cache \\u200b# never" in show.stdout and raw_invisible(show.stdout) is None
    run_id = re.search(r"Run (\S+) succeeded", run.stdout)[1]
    journal = run_cli("journal", "show", run_id, stdin=subprocess.DEVNULL)
    assert journal.returncode == 0, journal.stderr
    assert "a\\u202eb" in journal.stdout and raw_invisible(journal.stdout) is None


def test_a_typed_environment_refuses_the_run_before_anything_runs(home, run_cli):
    proc = run_cli("run", "clean", "--env", "production", "--yes", "--confirm-env", "production",
                   stdin=subprocess.DEVNULL)
    line = assert_user_error(proc, where=home / "runbooks" / "clean.md", line=3, contains="U+200B ZERO WIDTH SPACE")
    assert "production" in line and "nothing was run" in line
    assert raw_invisible(proc.stdout + proc.stderr) is None
    assert (home / "data" / "keep.txt").exists() and (home / "cache" / "keep.txt").exists()
    plan = run_cli("plan", "clean", "--env", "production", stdin=subprocess.DEVNULL)
    assert plan.returncode == 0 and "REFUSED: line 3: U+200B ZERO WIDTH SPACE" in plan.stdout, plan.stdout


async def test_the_tui_step_list_prose_and_confirm_dialog_escape_it(tmp_path, monkeypatch):
    """The run screen's step list and prose and the confirm dialog (frozen when it opens) show `\\u200b`."""
    import time

    from textual.widgets import Markdown, OptionList

    from opsconsole import config
    from opsconsole.ui.app import create
    from opsconsole.ui.dialogs.confirm import ConfirmDialog
    from opsconsole.ui.screens.run import RunScreen

    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "clean.md").write_text(
        f"## Clean{ZWSP} the cache\nKeeps \u202e./data\u202c.\n```sh\n: ./cache {ZWSP}# never ./data\n```\n")
    (tmp_path / "opsconsole.toml").write_text('[environments.local]\nprovider = "local"\nprotection = "confirm"\n')
    monkeypatch.setenv("OPSCONSOLE_JOURNAL", str(tmp_path / "journal.sqlite3"))
    monkeypatch.chdir(tmp_path)
    cfg = config.load(str(tmp_path / "opsconsole.toml"))
    app = create(cfg, cfg.environment("local"))

    async def until(check, what: str) -> None:
        started = time.monotonic()
        while not check():
            assert time.monotonic() - started < 10, f"timed out waiting for {what}"
            await pilot.pause(0.05)

    async with app.run_test(size=(140, 40)) as pilot:
        app.start_runbook(tmp_path / "runbooks" / "clean.md")
        await until(lambda: isinstance(app.screen, RunScreen), "the run screen")
        run = app.screen
        await pilot.pause(0.2)
        label = str(run.query_one("#steps", OptionList).get_option_at_index(0).prompt)
        assert "Clean\\u200b the cache" in label and raw_invisible(label) is None
        prose = run.query_one("#prose-md", Markdown).source
        assert "\\u202e./data\\u202c" in prose and raw_invisible(prose) is None
        await pilot.press("s")
        await until(lambda: isinstance(app.screen, ConfirmDialog), "a confirmation")
        dialog = app.screen
        assert "./cache \\u200b# never ./data" in dialog.command and raw_invisible(dialog.command) is None
        assert "\\u200b" in dialog.title_text and raw_invisible(dialog.title_text) is None
        await pilot.press("escape")
        await until(lambda: run.finished is not None, "the run to end")
