"""The journal screen, driven with Pilot against a real SQLite journal filled by real `opsconsole run` processes
(one of them killed with SIGKILL mid-step), and SVG snapshots of runs recorded through the Journal API."""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, OptionList, Static

from opsconsole import config, resume
from opsconsole.journal import RunRecord, StepRecord, open_journal
from opsconsole.ui.app import OpsConsole, create
from opsconsole.ui.dialogs.params import ParamsDialog
from opsconsole.ui.screens.journal import JournalScreen, RunDetailScreen, announce_interrupted, resume_run
from opsconsole.ui.screens.run import RunScreen
from tests.demo import round_from_json
from tests.ui.replay import RECORDINGS, Replay, play_all
from tests.ui.test_app import wait_until

CONFIG = """\
[environments.local]
provider = "local"
protection = "open"

[environments.other]
provider = "local"
[environments.other.services.api]
deploy = "[ ! -e deploy.fail ] && echo deployed >> deploy.log"
"""

QUICK = """\
# Quick

## Only
```sh
echo only >> only.log
```
"""

SLOW = """\
# Slow

## Quick
```sh
echo quick >> quick.log
echo quick output
```

## Wait for release
```sh
echo $$ > slow.pid
echo started >> slow.log
while [ ! -e release ]; do sleep 0.05; done
echo done >> slow.log
```

## After
```sh
echo after >> after.log
```
"""

TOKEN = """\
---
params:
  token: {type: secret}
  region: {type: str}
---
## First
```sh
echo first >> first.log
```
## Use it
```sh
[ -e tok.fail ] && exit 9
printf '%s %s' {{ token }} {{ region }} > used.out
```
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "opsconsole.toml").write_text(CONFIG)
    (tmp_path / "runbooks").mkdir()
    for name, text in (("quick", QUICK), ("slow", SLOW), ("tok", TOKEN)):
        (tmp_path / "runbooks" / f"{name}.md").write_text(text)
    monkeypatch.setenv("OPSCONSOLE_JOURNAL", str(tmp_path / "journal.sqlite3"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path


def environ(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
    env.update(OPSCONSOLE_JOURNAL=str(home / "journal.sqlite3"), XDG_STATE_HOME=str(home / "state"))
    return env


def opsconsole(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True,
                          env=environ(home), cwd=home, stdin=subprocess.DEVNULL, timeout=60)


def wait_for(path: Path, timeout: float = 20) -> None:
    """Until the file holds a whole line (a shell creates it before it writes to it)."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().endswith("\n")):
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def interrupt_slow(home: Path) -> str:
    """`opsconsole run slow` killed with SIGKILL in its second step; returns the run id."""
    proc = subprocess.Popen([sys.executable, "-m", "opsconsole", "run", "slow", "--yes"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environ(home), cwd=home,
                            stdin=subprocess.DEVNULL)
    wait_for(home / "slow.log")
    wait_for(home / "slow.pid")
    proc.send_signal(signal.SIGKILL)  # opsconsole only: its command lives on in its own process group
    proc.communicate(timeout=10)
    os.killpg(int((home / "slow.pid").read_text()), signal.SIGKILL)  # end the orphan so it cannot finish late
    (home / "slow.log").unlink()
    with open_journal(str(home / "journal.sqlite3")) as store:
        [run] = [r for r in store.runs() if r.runbook_name == "slow"]
    assert run.status == "interrupted"
    return run.run_id


def make_app(home: Path, read_only: bool = False, env: str = "local") -> OpsConsole:
    cfg = config.load(str(home / "opsconsole.toml"))
    return create(cfg, cfg.environment(env), read_only=read_only)


async def open_journal_screen(app: OpsConsole, pilot, **kw) -> JournalScreen:
    screen = JournalScreen(**kw)
    app.push_screen(screen)
    await wait_until(pilot, lambda: screen.loads >= 1, what="the journal to load")
    return screen


def rows(screen: JournalScreen) -> list[list[str]]:
    table = screen.query_one("#runs", DataTable)
    return [[str(cell).strip() for cell in table.get_row_at(i)] for i in range(table.row_count)]


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# --- against runs made by real processes ---------------------------------------------------------------------

async def test_lists_runs_with_the_interrupted_one_highlighted_and_shows_its_steps(home):
    done = opsconsole(home, "run", "quick", "--yes")
    assert done.returncode == 0, done.stderr
    run_id = interrupt_slow(home)
    app = make_app(home)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await open_journal_screen(app, pilot)
        listed = rows(screen)
        assert [r[-1] for r in listed][0] == run_id  # newest first
        interrupted, succeeded = listed
        assert interrupted[1:4] == ["slow", "interrupted", "1/3"] and succeeded[1:4] == ["quick", "succeeded", "1/1"]
        assert interrupted[4].startswith(getpass.getuser()) and interrupted[5] == socket.gethostname()
        status_cell = screen.query_one("#runs", DataTable).get_row_at(0)[2]
        assert " on " in str(status_cell.style)  # a background: it stands out
        assert "2 runs, 1 interrupted" in text_of(screen, "#journal-title")
        assert "press u" in text_of(screen, "#journal-status")
        assert "u" in app.screen.active_bindings

        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run's detail")
        detail = app.screen
        steps = detail.query_one("#detail-steps", OptionList)
        labels = [str(steps.get_option_at_index(i).prompt) for i in range(steps.option_count)]
        assert labels == ["✔ 1. Quick", "▶ 2. Wait for release", "· 3. After not run", "events (1)"]
        shown = text_of(detail, "#step-detail")
        assert "$ echo quick >> quick.log" in shown and "exit status 0" in shown and "quick output" in shown
        await pilot.press("down")
        shown = text_of(detail, "#step-detail")
        assert "2. Wait for release  running · attempt 1" in shown and "while [ ! -e release ]" in shown
        assert "exit status —" in shown
        await pilot.press("down", "down")
        assert "started: runbook slow on local" in text_of(detail, "#step-detail")
        assert f"run {run_id} ·  interrupted  · slow on local" in text_of(detail, "#detail-title")
        await pilot.press("escape")
        assert app.screen is screen


async def test_resume_continues_the_interrupted_run_in_a_run_screen(home):
    run_id = interrupt_slow(home)
    app = make_app(home)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_journal_screen(app, pilot)
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
        run_screen = app.screen
        assert run_screen.resume is not None and run_screen.resume.run_id == run_id
        assert run_screen.plan.runbook.name == "slow"
        (home / "release").touch()
        await pilot.press("s")
        await wait_until(pilot, lambda: run_screen.finished is not None, 30, "the resumed run to finish")
        assert run_screen.finished == "succeeded"
        assert lines(home / "quick.log") == ["quick"]  # the finished step did not run again
        assert lines(home / "slow.log") == ["started", "done"] and lines(home / "after.log") == ["after"]
        loads = screen.loads
        await pilot.press("escape")
        await wait_until(pilot, lambda: screen.loads > loads, what="the list to reload")
        assert rows(screen)[0][-1] == run_id and rows(screen)[0][1:4] == ["slow", "succeeded", "3/3"]
        assert "u" in app.screen.active_bindings and not app.screen.active_bindings["u"].enabled


async def test_resume_is_refused_when_the_runbook_changed_or_is_gone(home):
    interrupt_slow(home)
    (home / "runbooks" / "slow.md").write_text(SLOW.replace("echo after >> after.log", "echo later >> after.log"))
    app = make_app(home)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_journal_screen(app, pilot)
        await pilot.press("u")
        await wait_until(pilot, lambda: "differs" in text_of(screen, "#journal-status"), what="the refusal")
        assert "runbook slow changed since it ran (step 3 (After) differs); start a new run instead" in \
            text_of(screen, "#journal-status")
        assert app.screen is screen
        (home / "runbooks" / "slow.md").unlink()
        await pilot.press("u")
        await wait_until(pilot, lambda: "is gone" in text_of(screen, "#journal-status"), what="the refusal")
        assert f"its runbook slow is gone ({home}/runbooks/slow.md no longer exists)" in \
            text_of(screen, "#journal-status")
        assert app.screen is screen
        assert not (home / "after.log").exists()


async def test_resume_asks_again_only_for_the_secret_params(home):
    (home / "tok.fail").touch()
    failed = opsconsole(home, "run", "tok", "--yes", "-p", "token=resume-s3cret", "-p", "region=eu-1")
    assert failed.returncode == 1
    (home / "tok.fail").unlink()
    app = make_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_journal_screen(app, pilot)
        assert rows(screen)[0][2] == "aborted"  # headless: a failure aborts, resumable
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, ParamsDialog), what="the params form")
        dialog = app.screen
        assert dialog.query_one("#param-region", Input).value == "eu-1"
        token = dialog.query_one("#param-token", Input)
        assert token.value == "" and token.password
        # A changed non-secret param is refused: a resumed run keeps its params.
        dialog.query_one("#param-region", Input).value = "us-2"
        token.value = "resume-s3cret"
        await pilot.click("#ok")
        await wait_until(pilot, lambda: "keeps its params" in text_of(screen, "#journal-status"), what="the refusal")
        assert "ran with region=eu-1; a resumed run keeps its params" in text_of(screen, "#journal-status")
        assert app.screen is screen

        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, ParamsDialog), what="the params form again")
        app.screen.query_one("#param-token", Input).value = "resume-s3cret"
        await pilot.click("#ok")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen), what="the run screen")
        run_screen = app.screen
        await pilot.press("s")
        await wait_until(pilot, lambda: run_screen.finished is not None, 30, "the resumed run to finish")
        assert run_screen.finished == "succeeded"
        assert (home / "used.out").read_text() == "resume-s3cret eu-1"
        assert lines(home / "first.log") == ["first"]
        assert "resume-s3cret" not in app.export_screenshot()
        await pilot.press("escape")
        await wait_until(pilot, lambda: rows(screen)[0][2] == "succeeded", what="the list to show it succeeded")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run's detail")
        assert "resume-s3cret" not in app.export_screenshot()
        assert "token=***" in text_of(app.screen, "#detail-info")


async def test_read_only_hides_resume_and_refuses_it(home):
    run_id = interrupt_slow(home)
    app = make_app(home, read_only=True)
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await open_journal_screen(app, pilot)
        assert rows(screen)[0][2] == "interrupted"
        assert "u" not in screen.active_bindings
        assert "press u" not in text_of(screen, "#journal-status")
        await pilot.press("u")
        await pilot.pause(0.3)
        assert app.screen is screen
        resume_run(screen, screen.selected, screen._status)  # a palette entry or another path: still refused
        assert "local is read-only here: runs cannot be resumed" in text_of(screen, "#journal-status")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run's detail")
        assert "u" not in app.screen.active_bindings
        await pilot.press("u")
        await pilot.pause(0.3)
        assert isinstance(app.screen, RunDetailScreen)
    with open_journal(str(home / "journal.sqlite3")) as store:
        assert store.get(run_id).status == "interrupted"


async def test_all_environments_and_a_run_of_another_environment(home):
    (home / "deploy.fail").touch()
    deployed = opsconsole(home, "deploy", "api", "--env", "other", "--yes")
    assert deployed.returncode == 1, deployed.stderr
    (home / "tok.fail").touch()
    assert opsconsole(home, "run", "tok", "--yes", "-p", "token=x-s3cret", "-p", "region=eu-1").returncode == 1
    app = make_app(home)
    async with app.run_test(size=(160, 36)) as pilot:
        screen = await open_journal_screen(app, pilot)
        assert [r[1] for r in rows(screen)] == ["tok"]
        await pilot.press("a")
        await wait_until(pilot, lambda: screen.loads >= 2, what="all environments")
        table = screen.query_one("#runs", DataTable)
        assert [str(c.label) for c in table.columns.values()][:3] == ["STARTED", "ENV", "RUNBOOK"]
        assert [(r[1], r[2], r[3]) for r in rows(screen)] == [("local", "tok", "aborted"), ("other", "deploy", "aborted")]
        assert "Journal · all environments · 2 runs" in text_of(screen, "#journal-title")
        # A stopped run of another environment: resuming it here is refused, naming where it ran.
        await pilot.press("down", "u")
        await pilot.pause(0.2)
        assert "ran on other, not local: switch to other to resume it" in text_of(screen, "#journal-status")
        assert app.screen is screen and not (home / "deploy.log").exists()
        await pilot.press("a")
        await wait_until(pilot, lambda: screen.loads >= 3, what="this environment again")
        assert [r[1] for r in rows(screen)] == ["tok"]


async def test_interrupted_runs_and_the_banner_at_start(home):
    assert opsconsole(home, "run", "quick", "--yes").returncode == 0
    run_id = interrupt_slow(home)
    with open_journal(str(home / "journal.sqlite3")) as store:
        found = resume.interrupted_runs(store, "local")
        assert [r.run_id for r in found] == [run_id]
        assert resume.interrupted_runs(store, "other") == []
    text = resume.banner(found, "local")
    assert text == (f"local: run {run_id} of slow by {found[0].user}"
                    + (f" ({found[0].git_identity})" if found[0].git_identity else "")
                    + " was interrupted at step 2/3; open the journal to resume it")
    assert resume.banner([], "local") is None
    app = make_app(home)
    async with app.run_test(size=(120, 36)) as pilot:  # the app announces when it starts watching
        await wait_until(pilot, lambda: any(run_id in n.message for n in app._notifications),
                         what="the banner")
        [note] = [n for n in app._notifications if run_id in n.message]
        assert note.severity == "warning" and note.message == text
        # Opened on a given run (the banner's, or any other): that run is highlighted.
        with open_journal(str(home / "journal.sqlite3")) as store:
            quick = next(r.run_id for r in store.runs() if r.runbook_name == "quick")
        screen = await open_journal_screen(app, pilot, select=quick)
        assert screen.selected.run_id == quick and "quick (" in text_of(screen, "#run-summary")
    quiet = make_app(home, env="other")
    async with quiet.run_test(size=(120, 36)) as pilot:
        announce_interrupted(quiet)  # once more by hand: still nothing for an environment with no such run
        await pilot.pause(0.5)
        assert not [n for n in quiet._notifications if "interrupted" in n.message]



async def test_the_app_warns_at_start_and_j_opens_the_journal(home):
    run_id = interrupt_slow(home)
    app = make_app(home)
    async with app.run_test(size=(120, 36)) as pilot:
        # Nobody calls announce_interrupted here: the app does it when it starts watching the environment.
        await wait_until(pilot, lambda: any(run_id in n.message for n in app._notifications),
                         what="the banner at start")
        await pilot.press("j")
        await wait_until(pilot, lambda: isinstance(app.screen, JournalScreen) and app.screen.loads >= 1,
                         what="the journal screen")
        assert any(run_id in " ".join(row) for row in rows(app.screen))
        await pilot.press("j")  # already there: no second journal on the stack
        assert sum(isinstance(s, JournalScreen) for s in app.screen_stack) == 1
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Journal" in titles


# --- snapshots: fixed runs written through the Journal API -------------------------------------------------------

T0 = datetime(2026, 11, 21, 9, 14, 5, tzinfo=UTC)


def _plan(*titles: str) -> dict:
    return {"steps": [{"index": i, "title": t, "fingerprint": f"fp{i}"} for i, t in enumerate(titles, 1)]}


def _step(run_id: str, index: int, title: str, status: str, start: int, end: int | None, commands: tuple[str, ...],
          exit_status: int | None, output: str = "", verification: str = "", note: str = "", attempt: int = 1,
          recorded: dict | None = None) -> StepRecord:
    return StepRecord(run_id=run_id, index=index, title=title, status=status, started_at=T0 + timedelta(seconds=start),
                      ended_at=None if end is None else T0 + timedelta(seconds=end), commands=commands,
                      exit_status=exit_status, output_tail=output, verification=verification, note=note,
                      attempt=attempt, recorded=recorded or {}, fingerprint=f"fp{index}")


def fill_fixed_journal(path: Path) -> None:
    """Four runs with fixed times and identities; the "running" one has no live lock, so it reads interrupted."""
    def run(run_id: str, name: str, env: str, minutes: int, status: str, plan: dict, params: dict,
            user: str = "alice", git: str = "Alice Ng <alice@example.com>") -> RunRecord:
        return RunRecord(run_id=run_id, runbook_path=f"runbooks/{name}.md", runbook_name=name, content_hash="c0ffee",
                         plan_fingerprint="f00d", environment=env, params=params, user=user, git_identity=git,
                         host="ops-laptop", pid=4242, started_at=T0 + timedelta(minutes=minutes), ended_at=None,
                         status="running", plan=plan)

    with open_journal(str(path)) as store:
        a = run("20261121-091405-a1b2c3", "scale-workers", "staging", 0, "succeeded",
                _plan("Check the backlog", "Scale the worker service"), {"replicas": "6"})
        store.start_run(a)
        store.record_step(_step(a.run_id, 1, "Check the backlog", "succeeded", 0, 1, (), None,
                                verification="check ok: emails.depth 1412 > 1000"))
        store.record_step(_step(a.run_id, 2, "Scale the worker service", "succeeded", 1, 40,
                                ("docker compose -f compose.yml -p shop up -d --no-recreate --scale worker=6 worker",),
                                0, "Container shop-worker-6  Started", "verified: emails.depth 310 < 1000 (attempt 4)",
                                recorded={"replicas": 3}))
        store.finish_run(a.run_id, "succeeded")
        c = run("20261121-095510-d4e5f6", "deploy", "staging", 41, "failed",
                _plan("Deploy the API", "Smoke test"), {"service": "api"}, user="bob", git="")
        store.start_run(c)
        store.record_step(_step(c.run_id, 1, "Deploy the API", "failed", 2460, 2490, ("railway up --service api",), 1,
                                "Build failed: npm ERR! missing script: build\nexit status 1", attempt=1))
        store.record_step(_step(c.run_id, 1, "Deploy the API", "succeeded", 2500, 2580, ("railway up --service api",),
                                0, "Deployment live: api-7f9c", attempt=2))
        store.record_step(_step(c.run_id, 2, "Smoke test", "skipped", 2580, 2590, ("curl -fsS https://api/health",),
                                7, "curl: (7) Failed to connect", note="health endpoint moved; checked by hand"))
        store.finish_run(c.run_id, "failed")
        b = run("20261121-101502-0a9b8c", "restore-backup", "staging", 61, "running",
                _plan("Take a safety backup", "Stop the workers", "Restore", "Verify the row counts"),
                {"database": "db", "backup": "/var/backups/db-20261121.dump"})
        store.start_run(b)
        store.record_step(_step(b.run_id, 1, "Take a safety backup", "succeeded", 3662, 3700,
                                ("pg_dump -Fc --file /var/backups/db-safety.dump postgresql://app:***@db:5432/app",),
                                0, "dumped 48 tables (212 MB)", recorded={"backup": "/var/backups/db-safety.dump"}))
        store.record_step(_step(b.run_id, 2, "Stop the workers", "running", 3700, None, ("scale worker --replicas 0",),
                                None))
        d = run("20261121-102000-123abc", "rotate-secret", "production", 66, "succeeded",
                _plan("rotate-secret JWT_SECRET"), {})
        store.start_run(d)
        store.finish_run(d.run_id, "succeeded")
    # finish_run stamps the time it is called: fix those stamps too, so the snapshots never move.
    with sqlite3.connect(path) as db:
        for run_id, seconds in ((a.run_id, 40), (c.run_id, 2590), (d.run_id, 3990)):
            db.execute("UPDATE opsconsole_runs SET ended_at = ? WHERE run_id = ?",
                       ((T0 + timedelta(seconds=seconds)).isoformat(timespec="microseconds"), run_id))


def snapshot_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool = False) -> tuple[OpsConsole, int]:
    """The replayed healthy dashboard (fixed rounds, clock and time zone) over a journal with fixed runs."""
    monkeypatch.setenv("HOME", str(tmp_path))  # the title shows the journal as ~/journal.sqlite3
    monkeypatch.setenv("OPSCONSOLE_JOURNAL", str(tmp_path / "journal.sqlite3"))
    fill_fixed_journal(tmp_path / "journal.sqlite3")
    data = json.loads((RECORDINGS / "healthy.json").read_text())
    rounds = [round_from_json(r) for r in data["rounds"]]
    cfg = config.parse(data["config"], None, tmp_path)
    app = create(cfg, cfg.environment("staging"), read_only,
                 monitor_factory=lambda env, timeout: Replay(rounds), clock=lambda: 0.0, tz=UTC)
    return app, len(rounds)


def snap_journal(snap_compare, tmp_path, monkeypatch, size, *, detail: bool = False, keys: tuple[str, ...] = (),
                 read_only: bool = False) -> bool:
    app, count = snapshot_app(tmp_path, monkeypatch, read_only)

    async def run_before(pilot) -> None:
        await play_all(app, pilot, count)
        screen = await open_journal_screen(app, pilot)
        if detail:
            await pilot.press("down", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), what="the run's detail")
        if keys:
            await pilot.press(*keys)
        if "a" in keys:
            await wait_until(pilot, lambda: screen.loads >= 2, what="all environments")
        await pilot.pause(0.2)

    return snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])
def test_snapshot_journal_list(snap_compare, tmp_path, monkeypatch, size):
    assert snap_journal(snap_compare, tmp_path, monkeypatch, size)


def test_snapshot_run_detail_failed_attempt(snap_compare, tmp_path, monkeypatch):
    assert snap_journal(snap_compare, tmp_path, monkeypatch, (80, 24), detail=True)


def test_snapshot_run_detail_skipped_step_200x50(snap_compare, tmp_path, monkeypatch):
    assert snap_journal(snap_compare, tmp_path, monkeypatch, (200, 50), detail=True, keys=("down", "down"))


def test_snapshot_journal_all_environments_read_only(snap_compare, tmp_path, monkeypatch):
    assert snap_journal(snap_compare, tmp_path, monkeypatch, (120, 30), keys=("a",), read_only=True)
