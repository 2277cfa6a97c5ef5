"""Secret params without putting them in opsconsole's argv: `-p KEY=-` reads stdin; on a terminal a missing
`secret` param is asked for at a hidden prompt (getpass). Real processes; the terminal is a real pty."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

RUNBOOK = """\
---
params:
  token: {type: secret}
  region: {type: str, default: eu}
---
# Use a token

## Write where the token arrived
```sh
printf %s {{ token }} > got.txt
```
"""


@pytest.fixture
def home(tmp_path: Path, write_config) -> Path:
    write_config('[opsconsole]\njournal = "journal.sqlite3"\n\n[environments.local]\nprovider = "local"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "token.md").write_text(RUNBOOK)
    return tmp_path


def opsconsole(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=home, timeout=60, stdin=None if stdin is not None else subprocess.DEVNULL)


def test_dash_reads_the_value_from_stdin(home):
    value = "from-stdin-Secret-7731 with space"
    proc = opsconsole(home, "run", "token", "-p", "token=-", "--yes", stdin=value + "\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (home / "got.txt").read_text() == value  # one trailing newline dropped, the rest kept
    journal = b"".join(p.read_bytes() for p in home.glob("journal.sqlite3*"))
    assert value not in proc.stdout + proc.stderr and value.encode() not in journal
    assert "printf %s '***' > got.txt" in proc.stdout


def test_dash_twice_or_empty_stdin_is_refused(home):
    twice = opsconsole(home, "plan", "token", "-p", "token=-", "-p", "region=-", stdin="a\nb\n")
    assert twice.returncode == 3 and "only one -p KEY=- can read stdin (got token, region)" in twice.stderr
    empty = opsconsole(home, "plan", "token", "-p", "token=-", stdin="")
    assert empty.returncode == 2 and "-p token=-: no value given on stdin" in empty.stderr


def test_a_missing_secret_without_a_terminal_is_named_not_asked(home):
    proc = opsconsole(home, "plan", "token")
    assert proc.returncode == 2 and "param 'token' is required" in proc.stderr


def _in_pty(home: Path, args: list[str], answer: str) -> str:
    """Run opsconsole with a pty as its terminal; type `answer` at the first prompt; return all it printed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its stdin, stdout, stderr and /dev/tty
        os.chdir(home)
        os.execve(sys.executable, [sys.executable, "-m", "opsconsole", *args],
                  {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")})
    out = b""
    answered = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal: it has exited
            break
        if not chunk:
            break
        out += chunk
        if not answered and b"not shown): " in out:
            os.write(fd, answer.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    assert answered, out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def test_on_a_terminal_a_missing_secret_is_asked_for_hidden(home):
    value = "typed-at-the-prompt-4242"
    out = _in_pty(home, ["plan", "token"], value)
    assert "token (secret, not shown): " in out
    assert "Params: token=*** region=eu" in out
    assert value not in out  # getpass turned echo off, and the plan masks it
