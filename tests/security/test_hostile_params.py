"""Hostile `-p KEY=VALUE` values through the real CLI. A str, secret or choice value reaches the shell as exactly
one word, whatever surrounds the placeholder (bare, in double quotes, in single quotes, glued to text): `printf '%s'`
writes it to a file byte for byte, and nothing in it runs (every value tries to `touch PWNED`). An int, bool or
choice value that is not one is refused in one `path:line:` line before anything runs. Escape sequences in a value
are never printed raw by `plan`, `run` or `journal show`; a secret value shows in no form. (A NUL cannot be in argv.)"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.security.conftest import assert_clean, assert_nowhere, assert_user_error

RUNBOOK = """\
---
title: Hostile value
params:
  v: {type: str, default: plain}
  n: {type: int, min: 1, max: 100, default: 5}
  b: {type: bool, default: false}
  c: {type: choice, choices: [gold, "a; touch PWNED", "$(touch PWNED)", "`touch PWNED`"], default: gold}
  t: {type: secret, required: false}
---
# Hostile value

## Write it
```sh
touch ran.txt
printf '%s' {{ v }} > bare.bin
printf '%s' "in double {{ v }} quotes" > double.bin
printf '%s' 'in single {{ v }} quotes' > single.bin
printf '%s' pre{{ v }}post > glued.bin
printf '%s' {{ c }} > choice.bin
printf '%s' {{ n }} > int.bin
printf 'out:%s\\n' {{ v }}
```
"""
PARAM_LINE = {"v": 4, "n": 5, "b": 6, "c": 7, "t": 8}  # front-matter line of each param

VALUES = {
    "command_substitution": "$(touch PWNED)",
    "semicolon": "x; touch PWNED; echo",
    "backticks": "`touch PWNED`",
    "quotes": "it's \"quoted\" '' \"\" \\' \\\" '$(touch PWNED)'",
    "newlines": "line1\nline2\n; touch PWNED\n\n",
    "carriage_return": "a\r\nb\rtouch PWNED",
    "ansi": "\x1b[2J\x1b[H\x1b]0;owned\x07\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\\x9b31m red \x7f",
    "osc52_clipboard": "\x1b]52;c;dG91Y2ggUFdORUQ=\x07",
    "expansions": "$HOME ${PATH} $((1+1)) !! !$ \\ $'\\x41' ~ ~root",
    "globs": "* ? [a-z]* {a,b} /*",
    "dash": "--help -rf /",
    "redirections": "> PWNED < /etc/passwd 2>&1 | touch PWNED &",
    "unicode": "ünïcødé 🚀 \u202eevil\u202c \u200b zero-width \u00a0nbsp \u2028sep",
    "long": "A" * 20_000 + "$(touch PWNED)",
}


@pytest.fixture
def home(tmp_path: Path, write_config) -> Path:
    write_config('[opsconsole]\njournal = "journal.sqlite3"\n\n[environments.local]\nprovider = "local"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "value.md").write_text(RUNBOOK)
    return tmp_path


def cli(run_cli, *args: str, **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("stdin", subprocess.DEVNULL)
    proc = run_cli(*args, **kw)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    assert_clean(proc.stdout, f"{args[0]} stdout")
    assert_clean(proc.stderr, f"{args[0]} stderr")
    return proc


def last_run_id(run_cli) -> str | None:
    proc = cli(run_cli, "journal", "--json")
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)["runs"]
    return runs[0]["run_id"] if runs else None


@pytest.mark.parametrize("name", sorted(VALUES))
def test_a_str_value_reaches_the_shell_literally_and_never_runs(home, run_cli, name):
    value = VALUES[name]
    plan = cli(run_cli, "plan", "value", "-p", f"v={value}")
    assert plan.returncode == 0, plan.stderr[-2000:]
    run = cli(run_cli, "run", "value", "-p", f"v={value}", "--yes")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    raw = value.encode()
    assert (home / "bare.bin").read_bytes() == raw
    assert (home / "double.bin").read_bytes() == b"in double " + raw + b" quotes"
    assert (home / "single.bin").read_bytes() == b"in single " + raw + b" quotes"
    assert (home / "glued.bin").read_bytes() == b"pre" + raw + b"post"
    shown = cli(run_cli, "journal", "show", last_run_id(run_cli))
    assert shown.returncode == 0 and "succeeded" in shown.stdout
    as_json = cli(run_cli, "journal", "show", last_run_id(run_cli), "--json")
    assert json.loads(as_json.stdout)["params"]["v"] == value  # kept exactly, escaped only by JSON
    assert not (home / "PWNED").exists()


def test_what_the_shell_printed_of_a_value_is_shown_escaped(home, run_cli):
    value = VALUES["ansi"]
    run = cli(run_cli, "run", "value", "-p", f"v={value}", "--yes")
    assert run.returncode == 0
    assert "out:\\x1b[2J\\x1b[H\\x1b]0;owned\\x07" in run.stdout  # the step's output, as visible escapes
    shown = cli(run_cli, "journal", "show", last_run_id(run_cli))
    assert "out:\\x1b[2J" in shown.stdout


@pytest.mark.parametrize("value", ["gold", "a; touch PWNED", "$(touch PWNED)", "`touch PWNED`"])
def test_a_hostile_choice_is_still_one_literal_word(home, run_cli, value):
    run = cli(run_cli, "run", "value", "-p", f"c={value}", "--yes")
    assert run.returncode == 0, run.stdout[-2000:]
    assert (home / "choice.bin").read_bytes() == value.encode()
    assert not (home / "PWNED").exists()


@pytest.mark.parametrize("name", ["command_substitution", "quotes", "newlines", "ansi", "unicode"])
def test_a_hostile_secret_is_passed_literally_and_shown_in_no_form(home, run_cli, name):
    value = VALUES[name] + "-Secret-4471"
    (home / "runbooks" / "secret.md").write_text(
        "---\nparams:\n  t: {type: secret}\n---\n## Use it\n```sh\nprintf '%s' {{ t }} > secret.bin\n```\n")
    plan = cli(run_cli, "plan", "secret", "-p", f"t={value}")
    run = cli(run_cli, "run", "secret", "-p", f"t={value}", "--yes")
    assert plan.returncode == 0 and run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (home / "secret.bin").read_bytes() == value.encode()
    assert "printf '%s' " in plan.stdout and "Params: t=***\n" in plan.stdout and "***" in run.stdout
    run_id = last_run_id(run_cli)
    shown = cli(run_cli, "journal", "show", run_id)
    shown_json = cli(run_cli, "journal", "show", run_id, "--json")
    journal = b"".join(p.read_bytes() for p in home.glob("journal.sqlite3*"))
    assert_nowhere(value, {"plan": plan.stdout + plan.stderr, "run": run.stdout + run.stderr,
                           "journal show": shown.stdout, "journal show --json": shown_json.stdout, "journal": journal})
    assert not (home / "PWNED").exists()


# param -> values that are not one: each refused, naming the param at its front-matter line, before anything runs.
INVALID = {
    "n": ["5; touch PWNED", "$(touch PWNED)", "`touch PWNED`", "1e3", "0x10", "5 5", "", "99999999999999999999999",
          "\x1b[2J5", "5\x9b", "101", "0", "-1"],
    "b": ["yes; touch PWNED", "$(touch PWNED)", "\x1b[31mtrue", "tru", "y\ne\ns", ""],
    "c": ["gold; touch PWNED", "GOLD", "gold\n", " gold", "$(touch PWNED) ", "\x1b[2Jgold", "a;touch PWNED"],
}


@pytest.mark.parametrize("param, value", [(p, v) for p, values in INVALID.items() for v in values])
def test_an_invalid_value_is_refused_in_one_line_before_anything_runs(home, run_cli, param, value):
    started = time.monotonic()
    for command in ("plan", "run") if value == INVALID[param][0] else ("run",):  # plan checks them the same way
        proc = run_cli(command, "value", "-p", f"{param}={value}", *(["--yes"] if command == "run" else []),
                       stdin=subprocess.DEVNULL)
        line = assert_user_error(proc, where=home / "runbooks" / "value.md", line=PARAM_LINE[param],
                                 contains=f"param {param!r}: ")
        assert proc.returncode == 2, line
    assert time.monotonic() - started < 15
    assert not (home / "ran.txt").exists() and not (home / "PWNED").exists()
    assert last_run_id(run_cli) is None  # nothing reached the journal either


@pytest.mark.parametrize("arg", ["$(touch PWNED)=1", "\x1b[2J\x1b]0;x\x07=1", "v", "\x1b[31m", "=x", "v\x1b[2J=1"])
def test_a_malformed_or_unknown_param_is_one_line(home, run_cli, arg):
    proc = run_cli("run", "value", "-p", arg, "--yes", stdin=subprocess.DEVNULL)
    line = assert_user_error(proc)
    assert "unknown param" in line or "expected KEY=VALUE" in line, line
    assert not (home / "ran.txt").exists() and not (home / "PWNED").exists()


def test_a_megabyte_value_is_planned_in_linear_time_and_its_run_fails_in_one_line(home, run_cli):
    # Too big for one argv word (128 KB): given on stdin with -p v=-. bash cannot be handed a 5 MB script either.
    value = "B" * 1_000_000 + "$(touch PWNED)"
    started = time.monotonic()
    plan = subprocess_with_stdin(run_cli, home, ("plan", "value", "-p", "v=-"), value + "\n")
    assert plan.returncode == 0 and value in plan.stdout
    run = subprocess_with_stdin(run_cli, home, ("run", "value", "-p", "v=-", "--yes"), value + "\n")
    assert run.returncode == 1 and "Step 1 failed: " in run.stdout and "Argument list too long" in run.stdout
    assert time.monotonic() - started < 30
    assert not (home / "ran.txt").exists() and not (home / "PWNED").exists()


def subprocess_with_stdin(run_cli, home: Path, args: tuple[str, ...], text: str) -> subprocess.CompletedProcess[str]:
    """run_cli takes a file descriptor for stdin: hand it a file holding `text`."""
    path = home / "stdin.txt"
    path.write_text(text)
    with path.open() as f:
        proc = run_cli(*args, stdin=f.fileno())
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    assert_clean(proc.stdout + proc.stderr)
    return proc


async def test_the_journal_screen_shows_a_hostile_runbook_and_user_name_as_text(home, run_cli):
    # The runbook's file name and the git user.name are anyone's text: `[/]` in a DataTable cell raised MarkupError.
    from textual.widgets import DataTable

    from opsconsole import config
    from opsconsole.ui.app import create
    from opsconsole.ui.screens.journal import JournalScreen, RunDetailScreen
    from tests.ui.test_app import wait_until

    (home / "runbooks" / "x[reverse]y.md").write_text("## Step [/] one\n```sh\necho '[/]\x1b[2J'\n```\n")
    git_user = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "user.name", "GIT_CONFIG_VALUE_0": "[/]ann\x1b[2J"}
    run = cli(run_cli, "run", "x[reverse]y", "--yes", env=git_user)
    assert run.returncode == 0, run.stdout[-2000:]
    shown = cli(run_cli, "journal", "show", last_run_id(run_cli))
    assert "[/]ann\\x1b[2J" in shown.stdout
    cfg = config.load(str(home / "opsconsole.toml"))
    app = create(cfg, cfg.environment("local"))
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("j")
        await wait_until(pilot, lambda: isinstance(app.screen, JournalScreen)
                         and app.screen.query_one("#runs", DataTable).row_count == 1, what="the journal")
        cells = [str(c) for c in app.screen.query_one("#runs", DataTable).get_row_at(0)]
        assert "x[reverse]y" in cells and any(c.endswith(" / [/]ann\\x1b[2J") for c in cells), cells
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run's detail")
        await pilot.pause(0.2)
        assert_clean(app.export_screenshot(), "the run's detail")
    assert app._exception is None


async def test_the_runbooks_screen_shows_a_hostile_runbook_as_text(home):
    # A runbook's title and its problems are its author's text: markup raised in the notification, escapes went raw.
    from textual.widgets._toast import Toast

    from opsconsole import config
    from opsconsole.ui.app import create
    from opsconsole.ui.screens.runbooks import RunbooksScreen
    from tests.ui.test_app import wait_until

    for path in (home / "runbooks").iterdir():
        path.unlink()
    (home / "runbooks" / "bad.md").write_text('---\ntitle: "\\e[2J[bold red]Bad[/] \\e]0;owned\\a"\n---\n'
                                             "## Step\n```sh {\"role\": \"x[/]\\u001b[2J\"}\ntrue\n```\n")
    cfg = config.load(str(home / "opsconsole.toml"))
    app = create(cfg, cfg.environment("local"))
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, RunbooksScreen), 3, "the runbooks screen")
        await pilot.pause(0.3)
        assert_clean(app.export_screenshot(), "the runbooks screen")
        await pilot.press("enter")  # an invalid runbook: its first problem is notified
        await wait_until(pilot, lambda: bool(app.screen.query(Toast)), 3, "the problem notified")
        toast = " ".join(str(t.render()) for t in app.screen.query(Toast))
        assert "role must be one of run, check, verify, rollback, watch, got 'x[/]\\x1b[2J'" in toast, toast
        assert_clean(app.export_screenshot(), "the notification")
    assert app._exception is None
