"""The terminal of a TUI run closes (SSH drops, the laptop lid shuts) or a supervisor sends SIGTERM mid-step.

A real opsconsole process on a real pseudo-terminal: closing the terminal's master side makes the kernel send
SIGHUP, as a dropped SSH session does. The step's command must not live on, orphaned, changing things behind a
journal that calls the run over; it is stopped the way `a` stops it, the journal says so, and the process exits
130 once that is recorded. The run then resumes at that step.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from opsconsole.journal import open_journal
from tests.fault.test_journal_lost import environ, lines, opsconsole

pytestmark = pytest.mark.integration

RUNBOOK = """\
# Slow

## Quick
```sh
echo quick >> quick.log
```

## Slow
```sh
echo $$ > slow.pid
echo started >> slow.started
while [ ! -e release ]; do sleep 0.05; done
echo done >> slow.log
```
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "opsconsole.toml").write_text(
        f'[opsconsole]\njournal = "{tmp_path / "journal.sqlite3"}"\n\n'
        '[environments.local]\nprovider = "local"\nprotection = "open"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "slow.md").write_text(RUNBOOK)
    return tmp_path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Terminal:
    """opsconsole's TUI on a pseudo-terminal of its own (it is the session leader, as under a real terminal)."""

    def __init__(self, home: Path) -> None:
        env = {**environ(home), "TERM": "xterm-256color"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exec at once, nothing else
            os.chdir(home)
            os.execve(sys.executable, [sys.executable, "-m", "opsconsole", "--config", str(home / "opsconsole.toml")],
                      env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
        self.screen = bytearray()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            self.screen.extend(data)

    def wait_for(self, text: bytes, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            assert time.monotonic() < deadline, f"{text!r} never drawn"
            time.sleep(0.05)

    def press(self, key: bytes) -> None:
        os.write(self.fd, key)

    def hang_up(self) -> None:
        os.close(self.fd)  # the last handle on the master: the kernel hangs the terminal up (SIGHUP)

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            assert time.monotonic() < deadline, "opsconsole did not exit"
            time.sleep(0.05)


@pytest.mark.parametrize("how", ["hang-up", "sigterm"])
def test_a_tui_run_stopped_by_its_terminal_or_a_supervisor_leaves_nothing_running(home, how):
    term = Terminal(home)
    term.wait_for(b"Runbooks")
    term.press(b"b")
    term.wait_for(b"enter to plan")
    term.press(b"\r")
    term.wait_for(b"press s to start")
    term.press(b"s")
    deadline = time.monotonic() + 30
    while not lines(home / "slow.started"):
        assert time.monotonic() < deadline, bytes(term.screen[-2000:])
        time.sleep(0.05)
    command = int((home / "slow.pid").read_text())
    if how == "hang-up":
        term.hang_up()
    else:
        os.kill(term.pid, signal.SIGTERM)
    code = term.wait()
    assert code == 130, code
    assert not pid_alive(command), "the step's command outlived opsconsole"
    with open_journal(str(home / "journal.sqlite3")) as store:
        [run] = store.runs()
    assert run.status == "aborted"
    assert {i: s.status for i, s in run.latest_steps().items()} == {1: "succeeded", 2: "failed"}
    assert lines(home / "slow.log") == []

    (home / "release").touch()
    resumed = opsconsole(home, "run", "slow", "--yes", "--resume", run.run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert lines(home / "quick.log") == ["quick"] and lines(home / "slow.log") == ["done"]
