"""Faults in the middle of a runbook: the service a step restarts dies under it, opsconsole itself is killed or
loses its terminal. A verify passes only once the service really is back; a run that cannot verify stops, is
journaled as such and resumes at that step; finished steps never run twice."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

from opsconsole.journal import open_journal
from tests.fault.test_journal_lost import environ, lines, opsconsole, start, wait_for  # noqa: F401 - environ used by start
from tests.servers import PostgresServer, RedisServer

pytestmark = pytest.mark.integration

RESTART = """\
# Restart the cache

## Prepare
```sh
echo prepared >> prepare.log
```

## Restart the cache
```sh
echo started >> restart.started
while [ ! -e release ]; do sleep 0.05; done
echo restarted >> restart.log
```
```ops {{"role": "verify", "timeout": "{verify}"}}
expect cache is ok
```

## Announce
```sh
echo announced >> announce.log
```
"""


def project(home: Path, pg: PostgresServer, redis: RedisServer, verify: str) -> Path:
    database = f"journal_{uuid.uuid4().hex[:12]}"  # the server is shared by the module; each test its own journal
    pg.psql(f"CREATE DATABASE {database}")
    (home / "journal.url").write_text(pg.url(database=database))
    (home / "opsconsole.toml").write_text(
        f'[opsconsole]\nrefresh = 0.5\ntimeout = 0.5\njournal = "{pg.url(database=database)}"\n\n'
        '[environments.local]\nprovider = "local"\nprotection = "open"\n'
        f'[environments.local.services.cache]\nkind = "redis"\nurl = "{redis.url}"\n')
    (home / "runbooks").mkdir(exist_ok=True)
    (home / "runbooks" / "restart.md").write_text(RESTART.format(verify=verify))
    return home


def reader(proc) -> list[str]:
    seen: list[str] = []
    threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    return seen


def wait_line(seen: list[str], text: str, proc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in seen):
        assert time.monotonic() < deadline and proc.poll() is None, "".join(seen)
        time.sleep(0.05)


def the_run(home: Path):
    with open_journal((home / "journal.url").read_text()) as store:
        [run] = store.runs(environment="local")
        return run


def test_a_service_killed_during_its_step_verifies_only_once_it_is_back(tmp_path, doomed_pg_running,
                                                                         doomed_redis_running):
    home = project(tmp_path, doomed_pg_running, doomed_redis_running, verify="60s")
    proc = start(home, "run", "restart", "--yes")
    seen = reader(proc)
    wait_for(home / "restart.started")
    doomed_redis_running.stop(signal.SIGKILL)
    (home / "release").touch()
    wait_line(seen, "not yet: cache is crit", proc)  # the truth: down, however the step itself ended
    time.sleep(1.0)
    assert proc.poll() is None and lines(home / "announce.log") == []  # nothing runs past an unverified step
    doomed_redis_running.start()
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    out = "".join(seen)
    assert "holds: cache is ok" in out
    run = the_run(home)
    assert run.status == "succeeded"
    step = run.latest_steps()[2]
    assert step.status == "succeeded" and step.verification.startswith("verified: cache is ok (attempt ")
    assert int(step.verification.rsplit("attempt ", 1)[1].rstrip(")")) >= 3
    assert lines(home / "announce.log") == ["announced"]


def test_a_service_that_stays_down_fails_the_step_and_resumes_there_once_back(tmp_path, doomed_pg_running,
                                                                                doomed_redis_running):
    home = project(tmp_path, doomed_pg_running, doomed_redis_running, verify="3s")
    proc = start(home, "run", "restart", "--yes")
    wait_for(home / "restart.started")
    doomed_redis_running.stop(signal.SIGKILL)
    (home / "release").touch()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "Step 2 failed: verification failed: cache is crit" in out and "Traceback" not in err
    run = the_run(home)
    assert run.status in ("aborted", "failed")
    step = run.latest_steps()[2]
    assert step.status == "failed" and step.verification.startswith("not verified: cache is crit")
    assert lines(home / "announce.log") == []

    doomed_redis_running.start()
    resumed = opsconsole(home, "run", "restart", "--yes", "--resume", run.run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Step 1/3: Prepare: succeeded before, not run again" in resumed.stdout
    assert lines(home / "prepare.log") == ["prepared"]
    assert lines(home / "restart.log") == ["restarted", "restarted"]  # the failed step ran again, in full
    assert lines(home / "announce.log") == ["announced"]
    assert the_run(home).status == "succeeded"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["kill-9", "terminal-closed"])
def test_opsconsole_killed_mid_step_resumes_at_that_step(tmp_path, doomed_pg_running, doomed_redis_running, sig):
    home = project(tmp_path, doomed_pg_running, doomed_redis_running, verify="30s")
    proc = start(home, "run", "restart", "--yes")
    wait_for(home / "restart.started")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert "Traceback" not in err
    if sig == signal.SIGHUP:  # like SIGTERM: the step's command goes with it, the run is left resumable
        assert proc.returncode == 130, err
        assert "resume it with `opsconsole run restart --resume" in err
    (home / "release").touch()  # an orphaned step command would now finish
    time.sleep(0.3)
    run = the_run(home)
    assert run.status == "interrupted"
    assert run.latest_steps()[1].status == "succeeded"
    # Stopped with its group (by opsconsole on SIGHUP, by its guard on kill -9), never finished behind our back
    assert lines(home / "restart.log") == []
    # Its own run, and its holder is dead: resuming takes the lock back without --take-over.
    resumed = opsconsole(home, "run", "restart", "--yes", "--resume", run.run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert lines(home / "prepare.log") == ["prepared"]
    assert lines(home / "restart.started")[-1] == "started" and len(lines(home / "restart.started")) == 2
    assert lines(home / "announce.log") == ["announced"]
    assert the_run(home).status == "succeeded"
