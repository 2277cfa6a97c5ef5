"""A run whose plain (non-secret) param held a password can be resumed.

The journal keeps params masked (`postgresql://app:***@db/app`), so resuming with the journal's value would run
with `***` as the password, and giving the value again was refused as "different from the run's". Now such a
param is asked for again like a secret, and the same value given again is taken as the run's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from opsconsole.journal import open_journal

pytestmark = pytest.mark.integration

URL = "postgresql://app:Pw-resume-9f3k2@db.internal/app"
RUNBOOK = """\
---
title: Use a URL
params:
  url: {type: str}
---
# Use a URL

## Note it
```sh
echo noted
```

## Use it
```sh
test -e ok
printf '%s\\n' {{ url }} > used.txt
```
"""


def opsconsole(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_STATE_HOME": str(home / "state")}
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True, cwd=home,
                          env=env, stdin=subprocess.DEVNULL, timeout=60)


def test_a_param_holding_a_password_is_given_again_to_resume(tmp_path):
    (tmp_path / "opsconsole.toml").write_text(
        '[opsconsole]\njournal = "journal.db"\n\n[environments.local]\nprovider = "local"\nprotection = "open"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "url.md").write_text(RUNBOOK)
    failed = opsconsole(tmp_path, "run", "url", "--yes", "-p", f"url={URL}")
    assert failed.returncode == 1 and "Pw-resume-9f3k2" not in failed.stdout + failed.stderr
    with open_journal(str(tmp_path / "journal.db")) as store:
        run = store.runs(limit=1)[0]
    assert run.params["url"] == "postgresql://app:***@db.internal/app"
    (tmp_path / "ok").touch()

    bare = opsconsole(tmp_path, "run", "url", "--yes", "--resume", run.run_id)
    assert bare.returncode == 2
    assert ("param 'url' held a password (postgresql://app:***@db.internal/app) and the journal keeps it masked: "
            f"give it again with -p url=VALUE to resume run {run.run_id}") in bare.stderr
    other = opsconsole(tmp_path, "run", "url", "--yes", "--resume", run.run_id, "-p",
                       "url=postgresql://app:Pw-resume-9f3k2@elsewhere/app")
    assert other.returncode == 2 and "a resumed run keeps its params" in other.stderr
    assert not (tmp_path / "used.txt").exists()

    resumed = opsconsole(tmp_path, "run", "url", "--yes", "--resume", run.run_id, "-p", f"url={URL}")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (tmp_path / "used.txt").read_text() == URL + "\n"  # the real value ran, not the masked one
    assert "Step 1/2: Note it: succeeded before, not run again" in resumed.stdout
