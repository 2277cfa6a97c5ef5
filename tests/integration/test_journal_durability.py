"""Nothing recorded is lost: a process killed with SIGKILL right after `record_step` returns, processes writing at
the same time, processes opening a brand-new journal at the same instant. SQLite here; the same children run against
PostgreSQL in test_journal_postgres.py."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from opsconsole import journal

ROOT = Path(__file__).resolve().parents[2]

# Start a run, record a finished step 1 and a running step 2, then SIGKILL ourselves at the very next instruction.
RECORD_THEN_DIE = r"""
import os, signal, sys
from opsconsole import journal
store = journal.open_journal(sys.argv[1])
run = journal.new_run(runbook_path="runbooks/migrate.md", runbook_name="migrate", content_hash="c" * 64,
                      plan_fingerprint="f" * 64, environment="staging", params={"target": "head"},
                      plan={"steps": [{"title": "Migrate"}, {"title": "Verify"}]}, run_id=sys.argv[2])
store.start_run(run)
t = journal.datetime(2026, 11, 21, 13, 2, 11, tzinfo=journal.UTC)
store.record_step(journal.StepRecord(run.run_id, 1, "Migrate", "succeeded", t, t, ("alembic upgrade head",), 0,
                                     "Running upgrade a1 -> b2\n", "schema at b2", "", 1, {"revision": "a1"}, "s" * 64))
store.record_step(journal.StepRecord(run.run_id, 2, "Verify", "running", t, None, ("psql -c 'select 1'",), None,
                                     "", "", "", 1, {}, "v" * 64))
os.kill(os.getpid(), signal.SIGKILL)
"""

# Write N steps as fast as possible, each its own commit, alongside other writers.
WRITER = r"""
import sys, time
from opsconsole import journal
spec, run_id, count, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
store = journal.open_journal(spec)
while time.time() < start_at:
    time.sleep(0.001)
run = journal.new_run(runbook_path="runbooks/x.md", runbook_name="x", content_hash="c" * 64, plan_fingerprint="f" * 64,
                      environment="load", params={}, plan={"steps": []}, run_id=run_id)
store.start_run(run)
t = journal.datetime.now(journal.UTC)
for i in range(1, count + 1):
    store.record_step(journal.StepRecord(run_id, i, f"step {i}", "succeeded", t, t, (f"echo {i}",), 0, f"{i}\n", "",
                                         "", 1, {}, "s"))
store.finish_run(run_id, "succeeded")
print("done", flush=True)
"""


def run_child(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def check_survived(spec: str) -> None:
    child = run_child(RECORD_THEN_DIE, spec, "20261121-130211-d1ed00")
    assert child.returncode == -signal.SIGKILL, child.stderr
    with journal.open_journal(spec) as store:
        run = store.get("20261121-130211-d1ed00")
        assert run.status == "interrupted"  # running, and nobody holds its environment
        assert [(s.index, s.status) for s in run.steps] == [(1, "succeeded"), (2, "running")]
        step = run.steps[0]
        assert (step.commands, step.exit_status, step.output_tail, step.verification, step.recorded) == (
            ("alembic upgrade head",), 0, "Running upgrade a1 -> b2\n", "schema at b2", {"revision": "a1"})
        assert run.params == {"target": "head"} and run.steps[1].commands == ("psql -c 'select 1'",)


def check_concurrent_writers(spec: str, writers: int = 3, steps: int = 60) -> None:
    at = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, spec, f"writer-{i}", str(steps), str(at)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for i in range(writers)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out == "done\n", err
    with journal.open_journal(spec) as store:
        runs = store.runs(environment="load")
        assert sorted(r.run_id for r in runs) == [f"writer-{i}" for i in range(writers)]
        for run in runs:
            assert [s.index for s in run.steps] == list(range(1, steps + 1))
            assert run.status == "succeeded"


def test_a_step_survives_sigkill_at_the_next_instruction(tmp_path: Path):
    check_survived(str(tmp_path / "journal.sqlite3"))
    # The WAL was recovered into a journal that opens and writes normally.
    with journal.open_journal(str(tmp_path / "journal.sqlite3")) as store:
        store.finish_run("20261121-130211-d1ed00", "aborted")
        assert store.get("20261121-130211-d1ed00").status == "aborted"


def test_concurrent_writers_lose_nothing(tmp_path: Path):
    check_concurrent_writers(str(tmp_path / "journal.sqlite3"))


def test_processes_opening_a_new_journal_together_all_succeed(tmp_path: Path):
    # Each of the racers creates the file, switches it to WAL and creates the schema at the same instant.
    check_concurrent_writers(str(tmp_path / "fresh" / "journal.sqlite3"), writers=4, steps=2)
