"""A script holding a secret param is not in the environment of the step's process.

It used to travel in OPSCONSOLE_SCRIPT: `unset` hid it from children, but /proc/PID/environ keeps a process's
first environment for its whole life, readable by any process of the user. It now travels on stdin.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

TOKEN = "EnvLeakToken-7d1e9c4b2a"
RUNBOOK = """\
---
title: Use a token
params:
  token: {type: secret}
---
# Use a token

## Use it
```sh
tr '\\0' '\\n' < /proc/$$/environ > environ.txt
echo "using {{ token }}" > /dev/null
read -r line || echo "stdin is empty" > stdin.txt
```
"""


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc/PID/environ")
def test_a_secret_script_is_not_in_the_steps_environment(tmp_path):
    (tmp_path / "opsconsole.toml").write_text(
        '[opsconsole]\njournal = "journal.db"\n\n[environments.local]\nprovider = "local"\nprotection = "open"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "token.md").write_text(RUNBOOK)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-m", "opsconsole", "run", "token", "--yes", "-p", f"token={TOKEN}"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    environ = (tmp_path / "environ.txt").read_text()
    assert "PATH=" in environ and TOKEN not in environ
    assert (tmp_path / "stdin.txt").read_text() == "stdin is empty\n"  # the script's own stdin is /dev/null


def test_a_short_secret_is_no_secret_and_one_inside_the_wrapper_trips_nothing(tmp_path, monkeypatch):
    """A value under masking.MIN_LENGTH is not masked (an `x` secret would hide every x); one that happens to be
    a word of the wrapper reading secret scripts from stdin (`exec`) does not trip the argv guard: it is ours."""
    from opsconsole import masking
    from opsconsole.providers.local import bash

    monkeypatch.setattr(masking, "_secrets", set(masking._secrets))  # these secrets, in this test only
    monkeypatch.setattr(masking, "_index", None)
    masking.register("x")
    assert masking.mask("exit x") == "exit x"
    masking.register("exec")
    command = bash("echo exec", tmp_path)
    assert command.stdin == "echo exec" and command.display == "echo ***"
    monkeypatch.undo()
    masking._index = None
