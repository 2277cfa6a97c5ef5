"""The environment lock between real processes sharing an SQLite journal: a race has one winner and a loser that
names it; a holder killed with SIGKILL is seen as dead and taken over only when asked, never while alive."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsconsole import journal
from opsconsole.errors import UserError
from opsconsole.lock import LockHeld, LockHolder

ROOT = Path(__file__).resolve().parents[2]

# A run in its own process: takes the lock at START_AT (so racers try together), starts the run, records step 1,
# says so on stdout, then holds the lock until stdin closes; then finishes and releases.
CHILD = r"""
import json, os, sys, time
from opsconsole import journal
from opsconsole.lock import LockHeld, LockHolder

spec, env, runbook, start_at, heartbeat, stale_after = sys.argv[1:7]
run_id = sys.argv[7] if len(sys.argv) > 7 else None
store = journal.open_journal(spec, heartbeat_s=float(heartbeat), stale_after_s=float(stale_after))
run = journal.new_run(runbook_path=f"runbooks/{runbook}.md", runbook_name=runbook, content_hash="c" * 64,
                      plan_fingerprint="f" * 64, environment=env, params={"replicas": "4"},
                      plan={"steps": [{"title": "Scale"}, {"title": "Verify"}]}, run_id=run_id)
while time.time() < float(start_at):
    time.sleep(0.001)
try:
    held = store.lock(env, LockHolder.for_run(run.run_id, runbook))
except LockHeld as exc:
    print(json.dumps({"won": False, "run_id": run.run_id, "message": str(exc), "stale": exc.stale,
                      "holder": exc.holder.run_id if exc.holder else None}), flush=True)
    sys.exit(3)
store.start_run(run)
now = journal.datetime.now(journal.UTC)
store.record_step(journal.StepRecord(run.run_id, 1, "Scale", "succeeded", now, now, ("scale worker --replicas 4",),
                                     0, "scaled\n", "", "", 1, {"replicas": 2}, "s" * 64))
print(json.dumps({"won": True, "run_id": run.run_id, "pid": os.getpid(), "runbook": runbook}), flush=True)
sys.stdin.read()
time.sleep(3 * float(heartbeat))  # let the heartbeat notice a takeover, if there was one
lost = held.lost
if not lost:
    store.finish_run(run.run_id, "succeeded")
held.release()
store.close()
print(json.dumps({"lost": lost}), flush=True)
"""


class Child:
    """A CHILD process and its stdout lines."""

    def __init__(self, spec: str, env: str, runbook: str, start_at: float | None = None, heartbeat: float = 0.2,
                 stale_after: float = 30.0, run_id: str | None = None) -> None:
        args = [spec, env, runbook, str(start_at or 0), str(heartbeat), str(stale_after)] + ([run_id] if run_id else [])
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)

    def line(self, timeout: float = 20.0) -> dict:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.kill()
            raise AssertionError(f"child said nothing in {timeout}s; stderr: {self.proc.stderr.read()}")
        text = self.proc.stdout.readline()
        if not text:
            raise AssertionError(f"child exited ({self.proc.wait()}) silently; stderr: {self.proc.stderr.read()}")
        return json.loads(text)

    def finish(self) -> dict:
        self.proc.stdin.close()
        out = self.line()
        assert self.proc.wait(timeout=20) == 0, self.proc.stderr.read()
        return out

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=20)  # reaped: its pid is really gone


@pytest.fixture
def spec(tmp_path: Path) -> str:
    return str(tmp_path / "journal.sqlite3")


@pytest.fixture
def children():
    started: list[Child] = []

    def start(*args, **kw) -> Child:
        child = Child(*args, **kw)
        started.append(child)
        return child
    yield start
    for child in started:
        child.kill()
        for stream in (child.proc.stdin, child.proc.stdout, child.proc.stderr):
            if not stream.closed:
                stream.close()


def race(start, spec: str, env: str = "staging", **kw) -> tuple[Child, dict, dict]:
    """Two processes reach for `env` at the same instant; returns (winner process, winner line, loser line)."""
    at = time.time() + 1.5  # both are imported and waiting by then
    a, b = start(spec, env, "scale-workers", at, **kw), start(spec, env, "deploy", at, **kw)
    lines = [a.line(), b.line()]
    assert sorted(line["won"] for line in lines) == [False, True], lines
    (winner, won), (loser_child, lost) = sorted(zip((a, b), lines), key=lambda x: not x[1]["won"])
    assert loser_child.proc.wait(timeout=20) == 3
    return winner, won, lost


def test_two_processes_race_and_exactly_one_wins(spec, children):
    winner, won, lost = race(children, spec)
    assert lost["holder"] == won["run_id"] and lost["stale"] is False
    assert (f"environment 'staging' is locked by run {won['run_id']} of runbook {won['runbook']} by "
            in lost["message"])
    assert f"(pid {won['pid']}) since " in lost["message"] and "\n" not in lost["message"]
    with journal.open_journal(spec) as store:
        assert store.get(won["run_id"]).status == "running"
        with pytest.raises(UserError):
            store.get(lost["run_id"])  # the loser never started
        assert winner.finish() == {"lost": False}
        assert store.get(won["run_id"]).status == "succeeded"
        assert store.holder("staging") is None


def test_a_killed_holder_is_dead_and_taken_over_only_when_asked(spec, children):
    child = children(spec, "production", "restore-backup")
    first = child.line()
    store = journal.open_journal(spec)
    mine = journal.new_run(runbook_path="runbooks/deploy.md", runbook_name="deploy", content_hash="d" * 64,
                           plan_fingerprint="e" * 64, environment="production", params={}, plan={"steps": []})
    me = LockHolder.for_run(mine.run_id, "deploy")
    # Alive: no takeover, even when asked.
    with pytest.raises(LockHeld) as err:
        store.lock("production", me, take_over=True)
    assert err.value.stale is False and err.value.holder.run_id == first["run_id"]

    child.kill(signal.SIGKILL)
    assert store.get(first["run_id"]).status == "interrupted"  # the kernel dropped its flock
    with pytest.raises(LockHeld) as err:
        store.lock("production", me)  # dead, but its run was in progress: not silently
    assert err.value.stale is True and err.value.holder.pid == first["pid"]
    assert f"locked by run {first['run_id']} of runbook restore-backup" in str(err.value)
    assert f"its holder is gone (process {first['pid']} no longer exists on " in str(err.value)
    assert "take it over with --take-over" in str(err.value)

    with store.lock("production", me, take_over=True) as held:
        assert held.previous is not None and held.previous.run_id == first["run_id"]
        store.start_run(mine)
        assert store.get(mine.run_id).status == "running"
        old = store.get(first["run_id"])
        assert old.status == "interrupted" and old.ended_at is not None
        assert old.steps[0].commands == ("scale worker --replicas 4",)  # what it did is kept
        assert old.events[-1].kind == "taken-over" and mine.run_id in old.events[-1].detail
        assert [e.kind for e in store.get(mine.run_id).events] == ["took-over", "started"]
        store.finish_run(mine.run_id, "succeeded")
    assert store.get(first["run_id"]).status == "interrupted"  # stays interrupted: resumable later
    store.close()


def test_resuming_the_dead_run_itself_needs_no_takeover(spec, children):
    child = children(spec, "staging", "scale-workers")
    first = child.line()
    child.kill(signal.SIGKILL)
    again = children(spec, "staging", "scale-workers", run_id=first["run_id"])
    assert again.line()["won"] is True
    assert again.finish() == {"lost": False}
    with journal.open_journal(spec) as store:
        run = store.get(first["run_id"])
        assert run.status == "succeeded"
        assert [e.kind for e in run.events] == ["started", "resumed", "finished"]


def test_a_stopped_holder_is_alive(spec, children):
    child = children(spec, "staging", "scale-workers")
    first = child.line()
    child.kill(signal.SIGSTOP)  # frozen, not dead: its flock holds
    try:
        with journal.open_journal(spec, heartbeat_s=0.02, stale_after_s=0.1) as store:
            time.sleep(0.3)
            with pytest.raises(LockHeld) as err:
                store.lock("staging", LockHolder.for_run("someone", "deploy"), take_over=True)
            assert not err.value.stale
            assert store.get(first["run_id"]).status == "running"
    finally:
        child.kill(signal.SIGCONT)
    assert child.finish() == {"lost": False}


def test_the_lock_file_sits_beside_the_journal(spec, children):
    child = children(spec, "prod-eu_1", "deploy")
    child.line()
    assert Path(spec + ".prod-eu_1.lock").exists()
    assert child.finish() == {"lost": False}


def test_two_spellings_of_one_journal_race_for_one_lock(tmp_path, children):
    """One journal reached through a symlinked folder or a symlink to the file: 20 races, each with one winner."""
    spec = tmp_path / "journal.sqlite3"
    journal.open_journal(str(spec)).close()
    (tmp_path / "team").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "mine.sqlite3").symlink_to(spec)
    spellings = [str(tmp_path / "team" / "journal.sqlite3"), str(tmp_path / "mine.sqlite3")]
    for batch in range(4):
        at = time.time() + 3
        pairs = [(children(str(spec), f"sym{batch}-{i}", "scale-workers", at),
                  children(spellings[i % 2], f"sym{batch}-{i}", "deploy", at)) for i in range(5)]
        winners = []
        for a, b in pairs:
            lines = [a.line(), b.line()]
            assert sorted(line["won"] for line in lines) == [False, True], lines
            loser = next(line for line in lines if not line["won"])
            assert loser["stale"] is False and "it is still alive" in loser["message"]
            winners.append(a if lines[0]["won"] else b)
        for winner in winners:
            winner.proc.stdin.close()  # all at once: each lingers a few heartbeats before it finishes
        for winner in winners:
            assert winner.line() == {"lost": False} and winner.proc.wait(timeout=20) == 0
