"""The terminal of a TUI run closes (SSH drops, the laptop lid shuts) or a supervisor sends SIGTERM mid-step.

A real opsconsole process on a real pseudo-terminal: closing the terminal's master side makes the kernel send
SIGHUP, as a dropped SSH session does. The step's command must not live on, orphaned, changing things behind a
journal that calls the run over; it is stopped the way `a` stops it, the journal says so, and the process exits
130 once that is recorded. The run then resumes at that step.

A terminal closed while the TUI starts (the SSH session drops as it draws) must end it too: Textual's driver left
about one process in three hung for ever with 50 members to show, its writer waiting on a terminal that was gone.
"""

from __future__ import annotations

import fcntl
import os
import pty
import random
import select
import signal
import socket
import struct
import sys
import termios
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from opsconsole.journal import open_journal
from tests.fault.test_journal_lost import environ, lines, opsconsole
from tests.servers import Blackhole, HTTPServer

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
        self.started = time.monotonic()
        self.code: int | None = None
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
        self.screen = bytearray()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closing.is_set():
            if not select.select([self.fd], [], [], 0.02)[0]:
                continue
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
        # The reader lets go first: a read in progress holds the master open, and the hang-up would wait for
        # opsconsole's next write instead of happening now.
        self._closing.set()
        self._reader.join()
        os.close(self.fd)  # the last handle on the master: the kernel hangs the terminal up (SIGHUP, SIGCONT)

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.exit_code()) is None:
            assert time.monotonic() < deadline, "opsconsole did not exit"
            time.sleep(0.02)
        return code

    def exit_code(self) -> int | None:
        """How it ended, or None while it runs (it is reaped once, here)."""
        if self.code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
        return self.code

    def kill(self) -> None:
        """Leave nothing behind, whatever the test found."""
        if self.exit_code() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.wait()


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
    assert run.status == "interrupted"  # as a crash leaves it: the next start says so
    assert {i: s.status for i, s in run.latest_steps().items()} == {1: "succeeded", 2: "failed"}
    assert lines(home / "slow.log") == []

    (home / "release").touch()
    resumed = opsconsole(home, "run", "slow", "--yes", "--resume", run.run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert lines(home / "quick.log") == ["quick"] and lines(home / "slow.log") == ["done"]


ALT_SCREEN = b"\x1b[?1049h"  # what entering application mode writes first
MEMBERS = 50
HANG_UPS = 24
GONE_WITHIN_S = 5.0  # it ends in well under a second; the margin is for a loaded machine, a hang is for ever


@pytest.fixture
def dashboard(tmp_path: Path, http_server: HTTPServer, blackhole: Blackhole) -> Path:
    """Fifty members, as a real stack shows them: healthy, refused, and silent ones whose probes are in flight."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = closed.getsockname()[1]
    kinds = [("http", http_server.url("/healthy")), ("http", f"http://127.0.0.1:{blackhole.port}/health"),
             ("tcp", f"127.0.0.1:{blackhole.port}"), ("tcp", f"127.0.0.1:{refused}"),
             ("http", f"http://127.0.0.1:{refused}/health")]
    members = ""
    for i in range(MEMBERS):
        kind, url = kinds[i % len(kinds)]
        members += f'\n[environments.local.services.m{i:02d}]\nkind = "{kind}"\nurl = "{url}"\n'
    (tmp_path / "opsconsole.toml").write_text(
        f'[opsconsole]\njournal = "{tmp_path / "journal.sqlite3"}"\n\n'
        f'[environments.local]\nprovider = "local"\nprotection = "open"\n{members}')
    return tmp_path


def hang_up_after(home: Path, delay: float) -> tuple[int | None, float]:
    """Launch the TUI and hang its terminal up `delay` s later: (its exit code, or None if it still lives
    GONE_WITHIN_S later; the seconds it took to go)."""
    term = Terminal(home)
    time.sleep(max(0.0, term.started + delay - time.monotonic()))
    term.hang_up()
    hung_up = time.monotonic()
    while (code := term.exit_code()) is None and time.monotonic() - hung_up < GONE_WITHIN_S:
        time.sleep(0.02)
    took = time.monotonic() - hung_up
    term.kill()
    return code, took


def test_a_terminal_closed_at_any_moment_of_start_up_leaves_no_process(dashboard):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    delays = [rng.uniform(0.1, 3.0) for _ in range(HANG_UPS)]
    with ThreadPoolExecutor(2) as pool:
        ends = list(pool.map(lambda delay: hang_up_after(dashboard, delay), delays))
    survivors = sorted(f"{delay:.2f}" for delay, (code, _) in zip(delays, ends) if code is None)
    assert not survivors, f"{len(survivors)}/{HANG_UPS} alive {GONE_WITHIN_S} s after a hang-up {survivors} s after " \
                          f"launch (seed {seed})"
    # 130 once the dashboard handles the hang-up; killed by SIGHUP itself before it is up, with nothing to record.
    assert {code for code, _ in ends} <= {130, -signal.SIGHUP}, (list(zip(delays, ends)), seed)


def test_the_tui_resumes_after_a_suspension_only_and_a_stray_sigcont_changes_nothing(home):
    """The kernel's SIGCONT that follows every hang-up must not start the screen again: Textual's driver did so on
    any SIGCONT, and after a stray one `q` no longer ended the app."""
    term = Terminal(home)
    try:
        term.wait_for(b"Runbooks")
        os.kill(term.pid, signal.SIGTSTP)  # a supervisor stops it: the screen is handed back, then taken again
        deadline = time.monotonic() + 10
        while Path(f"/proc/{term.pid}/stat").read_text().split()[2] != "T":
            assert time.monotonic() < deadline, "not stopped"
            time.sleep(0.02)
        suspended = len(term.screen)
        os.kill(term.pid, signal.SIGCONT)
        deadline = time.monotonic() + 10
        while ALT_SCREEN not in term.screen[suspended:]:
            assert time.monotonic() < deadline, "the screen was not taken again after SIGCONT"
            time.sleep(0.05)
        os.kill(term.pid, signal.SIGCONT)  # nothing was suspended: nothing to resume
        time.sleep(0.5)
        term.press(b"q")
        assert term.wait(timeout=10) == 0
    finally:
        term.kill()
