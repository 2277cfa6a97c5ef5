"""A PostgreSQL journal lost in the middle of a run: the run stops safely and says so.

"Safely" means: no step starts once the journal cannot record it (finished steps must never run twice, and a step
the journal never heard of could not be resumed); the engineer is told in one message which step was running, what
is known about it and how to go on; the exit is non-zero; and once the journal is back the run shows as interrupted
and resumes at that step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from opsconsole import masking
from opsconsole.journal import open_journal
from tests.servers import PostgresServer

pytestmark = pytest.mark.integration

RUNBOOK = """\
# Three steps

## One
```sh
echo one >> one.log
```

## Two
```sh
echo started >> two.started
while [ ! -e release ]; do sleep 0.05; done
echo two >> two.log
```

## Three
```sh
echo three >> three.log
```
"""


@pytest.fixture
def home(tmp_path: Path, doomed_pg_running: PostgresServer) -> Path:
    (tmp_path / "opsconsole.toml").write_text(
        f'[opsconsole]\njournal = "{doomed_pg_running.url()}"\njournal_retry = 1\n\n'
        '[environments.local]\nprovider = "local"\nprotection = "open"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "three.md").write_text(RUNBOOK)
    return tmp_path


def environ(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
    env["XDG_STATE_HOME"] = str(home / "state")
    return env


def start(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "opsconsole", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environ(home), cwd=home, stdin=subprocess.DEVNULL)


def opsconsole(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True,
                          env=environ(home), cwd=home, stdin=subprocess.DEVNULL, timeout=120)


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().endswith("\n")):
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["shut-down", "crashed"])
def test_the_journal_lost_mid_step_stops_the_run_and_says_so(home, doomed_pg, how):
    proc = start(home, "run", "three", "--yes")
    wait_for(home / "two.started")
    doomed_pg.stop(how)  # the journal goes away while step 2 runs
    (home / "release").touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, (out, err)
    # Step 2 finished its command; step 3 never started: nothing can be journaled, so nothing more is done.
    assert lines(home / "two.log") == ["two"] and lines(home / "three.log") == []
    assert "Traceback" not in err and doomed_pg.password not in out + err
    run_id = next(line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("Run "))
    message = err.strip().splitlines()
    assert len(message) == 1, err
    assert message[0].startswith(f"run {run_id} stopped: the journal {masking.redact_url(doomed_pg.url())} "
                                 "cannot be written")
    assert ("could not record that step 2 (Two) succeeded: it ran, but the journal still shows it running, so "
            "resuming runs it again; no further step was started; once the journal is back, resume it with "
            f"`opsconsole run three --resume {run_id}`") in message[0]

    # Back up: the journal shows the run interrupted at step 2, and resuming runs 2 (again) and 3, never 1.
    doomed_pg.start()
    shown = opsconsole(home, "journal", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    with open_journal(doomed_pg.url()) as store:
        run = store.get(run_id)
        assert run.status == "interrupted"
        assert {i: s.status for i, s in run.latest_steps().items()} == {1: "succeeded", 2: "running"}
    resumed = opsconsole(home, "run", "three", "--yes", "--resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    assert lines(home / "one.log") == ["one"] and lines(home / "two.log") == ["two", "two"]
    assert lines(home / "three.log") == ["three"]


def test_a_journal_back_within_journal_retry_loses_nothing_and_the_run_goes_on(home, doomed_pg):
    config = home / "opsconsole.toml"
    config.write_text(config.read_text().replace("journal_retry = 1", "journal_retry = 20"))
    proc = start(home, "run", "three", "--yes")
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    wait_for(home / "two.started")
    doomed_pg.stop(signal.SIGKILL)
    (home / "release").touch()
    deadline = time.monotonic() + 30
    while not any("The journal cannot be written" in line for line in seen):
        assert time.monotonic() < deadline and proc.poll() is None, seen
        time.sleep(0.05)
    assert lines(home / "three.log") == []  # waiting for the journal, not running ahead of it
    doomed_pg.start()
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    reader.join(timeout=10)
    out = "".join(seen)
    assert "retrying for up to 20 s before stopping" in out and "The journal is back; going on" in out
    assert (lines(home / "two.log"), lines(home / "three.log")) == (["two"], ["three"])
    with open_journal(doomed_pg.url()) as store:
        run = store.runs(environment="local")[0]
        assert run.status == "succeeded"
        assert {i: s.status for i, s in run.latest_steps().items()} == {1: "succeeded", 2: "succeeded", 3: "succeeded"}


async def test_the_run_screen_says_the_run_stopped_and_how_to_resume(home, doomed_pg):
    from opsconsole import config, runbook
    from opsconsole.ui.app import create
    from opsconsole.ui.screens.run import RunScreen
    from tests.ui.test_app import wait_until

    cfg = config.load(str(home / "opsconsole.toml"))
    app = create(cfg, cfg.environment("local"))
    async with app.run_test(size=(140, 40)) as pilot:
        app.plan_runbook(runbook.load(home / "runbooks" / "three.md"), {})
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and bool(app.screen.statuses), 10,
                         "the run screen")
        run = app.screen
        await pilot.press("s")
        await wait_until(pilot, lambda: (home / "two.started").exists(), 20, "step 2 to start")
        doomed_pg.stop(signal.SIGKILL)
        (home / "release").touch()
        await wait_until(pilot, lambda: run.finished is not None, 30, "the run to stop")
        assert run.finished == "stopped" and not run.running
        state = str(run.query_one("#state").render())
        assert "stopped: run " in state and "could not record that step 2 (Two) succeeded" in state
        assert "once the journal is back, resume it from the journal (j)" in state
        assert doomed_pg.password not in state
    assert lines(home / "three.log") == []
