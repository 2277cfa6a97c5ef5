"""An SQLite journal whose disk fills up in the middle of a run: the run stops safely and says so, and resumes
once there is room again. The disk is a small tmpfs of its own (mounting one needs root, as in CI)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.journal import open_journal
from tests.fault.test_journal_lost import environ, lines

RUNBOOK = """\
# Fill the disk

## One
```sh
echo one >> one.log
```

## Fill
```sh
if [ ! -e filled.once ]; then touch filled.once; head -c 4M /dev/zero > "$DISK/filler" 2>/dev/null || true; fi
echo two >> two.log
```

## Three
```sh
echo three >> three.log
```
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the journal needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs under CI: {mounted.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_journal_disk_stops_the_run_and_a_resume_finishes_it(tmp_path, small_disk):
    (tmp_path / "opsconsole.toml").write_text(
        f'[opsconsole]\njournal = "{small_disk}/journal.sqlite3"\njournal_retry = 1\n\n'
        '[environments.local]\nprovider = "local"\nprotection = "open"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "fill.md").write_text(RUNBOOK)
    env = environ(tmp_path) | {"DISK": str(small_disk)}

    def opsconsole(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opsconsole", *args],
                              capture_output=True, text=True, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                              timeout=120)

    first = opsconsole("run", "fill", "--yes")
    assert first.returncode == 1, (first.stdout, first.stderr)
    assert "Traceback" not in first.stderr and len(first.stderr.strip().splitlines()) == 1, first.stderr
    assert f"the journal {small_disk}/journal.sqlite3 cannot be written (database or disk is full)" in first.stderr
    assert "could not record that step 2 (Fill) succeeded" in first.stderr
    assert lines(tmp_path / "two.log") == ["two"] and lines(tmp_path / "three.log") == []
    run_id = first.stderr.split()[1]

    (small_disk / "filler").unlink()  # room again
    with open_journal(str(small_disk / "journal.sqlite3")) as store:
        assert {i: s.status for i, s in store.get(run_id).latest_steps().items()} == {1: "succeeded", 2: "running"}
    resumed = opsconsole("run", "fill", "--yes", "--resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert lines(tmp_path / "one.log") == ["one"] and lines(tmp_path / "two.log") == ["two", "two"]
    assert lines(tmp_path / "three.log") == ["three"]
