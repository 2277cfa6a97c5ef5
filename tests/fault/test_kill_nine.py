"""opsconsole killed with SIGKILL (by hand, or by the OOM killer) in the middle of a step.

It gets no chance to stop the step's command, so a guard process it started does: the command's whole process
group is stopped within moments, it never finishes behind a journal that calls the run interrupted, and the lock
stays taken while the guard works, so neither `run --resume` nor `--take-over` can start beside it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from opsconsole.journal import open_journal
from tests.fault.test_journal_lost import opsconsole, start, wait_for

pytestmark = pytest.mark.integration

RUNBOOK = """\
# Slow

## Slow
```sh
echo "start $$" >> steps.log
echo $$ > step.pid
if [ -e quick ]; then t=0; else t=5; fi
sleep "$t"
echo "end $$" >> steps.log
```
"""

OTHER = """\
# Other

## Other
```sh
echo "other $$" >> steps.log
```
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "opsconsole.toml").write_text(
        '[opsconsole]\njournal = "journal.db"\n\n[environments.local]\nprovider = "local"\nprotection = "open"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "slow.md").write_text(RUNBOOK)
    (tmp_path / "runbooks" / "other.md").write_text(OTHER)
    return tmp_path


def group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                return True
    return False


def kill_mid_step(home: Path) -> int:
    """Start the slow runbook, SIGKILL opsconsole once its step runs; the step's process group id."""
    (home / "step.pid").unlink(missing_ok=True)
    proc = start(home, "run", "slow", "--yes")
    wait_for(home / "step.pid")
    pgid = int((home / "step.pid").read_text())
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    return pgid


def last_run(home: Path):
    with open_journal(str(home / "journal.db")) as store:
        return store.runs(limit=1)[0]


def log(home: Path) -> list[tuple[str, str]]:
    """(what, pid) per line of steps.log: "start", "end" or "other"."""
    path = home / "steps.log"
    return [tuple(line.split()) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process groups from /proc")
def test_twenty_kills_leave_no_step_process_and_no_resume_overlaps_it(home):
    started = time.monotonic()
    for trial in range(20):
        pgid = kill_mid_step(home)
        if trial % 2 == 0:  # watch the step's processes go
            deadline = time.monotonic() + 3
            while group_alive(pgid):
                assert time.monotonic() < deadline, f"trial {trial}: the step's processes outlived opsconsole"
                time.sleep(0.02)
        # odd trials resume at once, while the guard may still be at work: the resume waits, never runs beside it
        (home / "quick").touch()
        resumed = opsconsole(home, "run", "slow", "--yes", "--resume", last_run(home).run_id)
        (home / "quick").unlink()
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert not group_alive(pgid), f"trial {trial}: the step's processes outlived opsconsole"
    assert time.monotonic() - started < 60
    time.sleep(5.5)  # as long as a killed step would have taken to finish on its own
    entries = log(home)
    starts = [pid for what, pid in entries if what == "start"]
    ends = [pid for what, pid in entries if what == "end"]
    assert len(starts) == 40 and len(ends) == 20, entries  # 20 killed attempts and 20 resumes: only these ended
    for i, (what, pid) in enumerate(entries):
        if pid in ends and what == "start":  # a resumed attempt: nothing else starts before it ends
            assert entries[i + 1] == ("end", pid), entries


def test_a_take_over_right_after_a_kill_does_not_overlap_the_dying_step(home):
    pgid = kill_mid_step(home)
    other = opsconsole(home, "run", "other", "--yes", "--take-over")
    assert other.returncode == 0, other.stdout + other.stderr
    assert not group_alive(pgid)
    time.sleep(5.5)
    assert [what for what, _ in log(home)] == ["start", "other"], log(home)
    assert last_run(home).status == "succeeded"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process groups from /proc")
def test_with_its_guard_killed_too_the_journal_keeps_the_lock_while_the_step_runs(home):
    """The second line: the lock's row records the step's process group, so a holder whose process and guard were
    both killed is not called dead while that group lives, for a resume or a take-over."""
    from opsconsole.lock import GROUPS_BATCH_S
    from opsconsole.runner import guards_of

    (home / "step.pid").unlink(missing_ok=True)
    proc = start(home, "run", "slow", "--yes")
    wait_for(home / "step.pid")
    pgid = int((home / "step.pid").read_text())
    time.sleep(GROUPS_BATCH_S + 0.5)  # the group reaches the journal within GROUPS_BATCH_S of its start
    for guard in guards_of(proc.pid):
        os.kill(guard, signal.SIGKILL)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    try:
        assert group_alive(pgid)  # orphaned: nothing was left to stop it
        run_id = last_run(home).run_id
        for args in (("run", "slow", "--yes", "--resume", run_id), ("run", "other", "--yes", "--take-over")):
            refused = opsconsole(home, *args)
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert (f"processes of its step still run (process group {pgid}): let them finish, or stop them with "
                    f"`kill -- -{pgid}`") in refused.stderr
    finally:
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    (home / "quick").touch()
    resumed = opsconsole(home, "run", "slow", "--yes", "--resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
