"""`opsconsole run` as real processes against a `local` environment and a real SQLite journal.

Markers written by the runbooks' own commands prove what ran, how often and in which order.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsconsole.journal import open_journal

CONFIG = """\
[environments.local]
provider = "local"
protection = "open"

[environments.local.services.api]
deploy = "echo deployed >> deploy.log"

[environments.careful]
provider = "local"
protection = "confirm"

[environments.prod]
provider = "local"
protection = "typed"

[environments.frozen]
provider = "local"
read_only = true
"""

STEPS = """\
---
title: Three steps
---

# Three steps

## One
The first step.
```sh
echo one >> one.log
```
```sh {"role": "rollback"}
echo undo-one >> undo.log
```

## Two
```sh
echo two >> two.log
[ -e two.fail ] && { echo "two is failing"; exit 3; }
true
```
```sh {"role": "verify"}
test -s two.log
```
```sh {"role": "rollback"}
echo undo-two >> undo.log
```

## Three
```sh
echo three >> three.log
if [ -e three.fail ]; then rm three.fail; echo "three fails once"; exit 4; fi
```
```sh {"role": "rollback"}
echo undo-three >> undo.log
```
"""

SLOW = """\
# Slow

## Quick
```sh
echo quick >> quick.log
```

## Wait for release
```sh
echo $$ > slow.pid
echo started >> slow.log
while [ ! -e release ]; do sleep 0.05; done
echo done >> slow.log
```

## After
```sh
echo after >> after.log
```
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "opsconsole.toml").write_text(CONFIG)
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "steps.md").write_text(STEPS)
    (tmp_path / "runbooks" / "slow.md").write_text(SLOW)
    return tmp_path


def environ(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
    env.update(OPSCONSOLE_JOURNAL=str(home / "journal.sqlite3"), XDG_STATE_HOME=str(home / "state"))
    return env


def opsconsole(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True,
                          env=environ(home), cwd=home, stdin=subprocess.DEVNULL, timeout=timeout)


def start(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "opsconsole", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environ(home), cwd=home, stdin=subprocess.DEVNULL)


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def run_id(output: str) -> str:
    return re.search(r"^Run (\S+): ", output, re.M).group(1)


def journal(home: Path):
    return open_journal(str(home / "journal.sqlite3"))


def wait_for(path: Path, timeout: float = 20) -> None:
    """Until the file holds a whole line (a shell creates it before it writes to it)."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().endswith("\n")):
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def test_a_run_executes_verifies_and_journals_every_step(home):
    proc = opsconsole(home, "run", "steps", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert (lines(home / "one.log"), lines(home / "two.log"), lines(home / "three.log")) == (["one"], ["two"], ["three"])
    assert "Step 1/3: One\n  run (sh):\n    $ echo one >> one.log\nStep 1 succeeded\n" in proc.stdout
    assert "  verify (sh):\n    $ test -s two.log\n    attempt 1: holds: exit 0\n" in proc.stdout
    with journal(home) as store:
        run = store.get(run_id(proc.stdout))
    assert run.status == "succeeded" and run.environment == "local" and run.runbook_name == "steps"
    assert run.plan_fingerprint in proc.stdout
    steps = run.latest_steps()
    assert [steps[i].status for i in (1, 2, 3)] == ["succeeded"] * 3
    assert steps[1].commands == ("echo one >> one.log",) and steps[1].exit_status == 0
    assert steps[2].verification == "verified: exit 0"
    assert steps[2].commands[-1] == "test -s two.log"


def test_shell_metacharacters_in_params_are_inert(home):
    value = "a'b\"c; touch pwned1 && $(touch pwned2) `touch pwned3` | tee pwned4 > pwned5 \\ $HOME *"
    (home / "runbooks" / "echo.md").write_text(
        "---\nparams:\n  value: {type: str}\n---\n## Echo\n"
        "```sh\nprintf '%s' {{ value }} > plain.out\nprintf '%s' \"{{ value }}\" > quoted.out\n"
        "printf '%s' '{{ value }}' > single.out\n```\n")
    proc = opsconsole(home, "run", "echo", "--yes", "-p", f"value={value}")
    assert proc.returncode == 0, proc.stderr
    for name in ("plain.out", "quoted.out", "single.out"):
        assert (home / name).read_text() == value
    assert not list(home.glob("pwned*"))


def test_a_secret_param_never_shows_anywhere(home):
    secret = "Sup3r-s3cret-run-value"
    (home / "runbooks" / "secret.md").write_text(
        "---\nparams:\n  token: {type: secret}\n---\n## Use the token\n"
        "```sh\necho \"token is {{ token }}\"\necho {{ token }} >&2\ncat /proc/$$/cmdline > cmdline.bin\n"
        "printf '%s' {{ token }} > token.out\nexit 1\n```\n")
    proc = opsconsole(home, "run", "secret", "--yes", "-p", f"token={secret}")
    assert proc.returncode == 1  # it fails, so the output tail is journaled too
    assert (home / "token.out").read_text() == secret  # the command did get the real value
    assert "token is ***" in proc.stdout
    assert secret.encode() not in (home / "cmdline.bin").read_bytes()  # not in the shell's argv
    shown = opsconsole(home, "journal", "show", run_id(proc.stdout))
    assert "token is ***" in shown.stdout
    listing = opsconsole(home, "journal", "list", "--json")
    for text in (proc.stdout, proc.stderr, shown.stdout, shown.stderr, listing.stdout):
        assert secret not in text
    stored = [p for p in home.rglob("*") if p.is_file() and p.name not in ("token.out",)]
    assert any(p.name.startswith("journal.sqlite3") for p in stored)
    for path in stored:
        assert secret.encode() not in path.read_bytes(), path


def test_retry_after_a_failure_runs_the_step_again(home):
    (home / "three.fail").touch()
    proc = opsconsole(home, "run", "steps", "--yes", "--on-failure", "retry")
    assert proc.returncode == 0, proc.stderr
    assert lines(home / "three.log") == ["three", "three"] and lines(home / "one.log") == ["one"]
    assert "Step 3 failed: echo three >> three.log ...: exit 4" in proc.stdout
    assert "Step 3/3: Three (attempt 2)" in proc.stdout
    with journal(home) as store:
        run = store.get(run_id(proc.stdout))
    three = [s for s in run.steps if s.index == 3]
    assert [(s.attempt, s.status, s.exit_status) for s in three] == [(1, "failed", 4), (2, "succeeded", 0)]
    assert "three fails once" in three[0].output_tail


def test_a_failing_retry_aborts_headless(home):
    (home / "two.fail").touch()
    proc = opsconsole(home, "run", "steps", "--yes", "--on-failure", "retry")
    assert proc.returncode == 1
    assert lines(home / "two.log") == ["two", "two"] and not (home / "three.log").exists()
    assert "run " in proc.stderr and " aborted; see `opsconsole journal show" in proc.stderr


def test_rollback_all_undoes_finished_steps_in_reverse(home):
    (home / "three.fail").touch()
    proc = opsconsole(home, "run", "steps", "--yes", "--on-failure", "rollback-all")
    assert proc.returncode == 1
    assert lines(home / "undo.log") == ["undo-three", "undo-two", "undo-one"]
    with journal(home) as store:
        run = store.get(run_id(proc.stdout))
    assert run.status == "failed"
    latest = run.latest_steps()
    assert [latest[i].status for i in (1, 2, 3)] == ["rolled-back"] * 3
    # The journal keeps what the step ran and what undid it.
    assert latest[1].commands == ("echo one >> one.log", "echo undo-one >> undo.log")


def test_rollback_undoes_only_the_failed_step(home):
    (home / "three.fail").touch()
    proc = opsconsole(home, "run", "steps", "--yes", "--on-failure", "rollback")
    assert proc.returncode == 1
    assert lines(home / "undo.log") == ["undo-three"]


def test_skip_needs_a_note_and_journals_it(home):
    (home / "two.fail").touch()
    refused = opsconsole(home, "run", "steps", "--yes", "--on-failure", "skip")
    assert refused.returncode == 2 and "needs --note" in refused.stderr and not (home / "one.log").exists()
    proc = opsconsole(home, "run", "steps", "--yes", "--on-failure", "skip", "--note", "two is known flaky (OPS-12)")
    assert proc.returncode == 0, proc.stderr
    assert lines(home / "three.log") == ["three"]
    with journal(home) as store:
        run = store.get(run_id(proc.stdout))
    two = run.latest_steps()[2]
    assert (two.status, two.note) == ("skipped", "two is known flaky (OPS-12)")
    assert run.status == "succeeded"


@pytest.mark.parametrize("env,args,message", [
    ("local", (), "stdin is not a terminal and this plan has 7 change block(s) for 'local': pass --yes"),
    ("careful", (), "pass --yes"),
    ("prod", ("--yes",), "pass --confirm-env prod as well as --yes"),
    ("prod", ("--yes", "--confirm-env", "production"), "--confirm-env 'production' does not match"),
    ("frozen", ("--yes",), "environment 'frozen' is read-only: step 1 (One) would change it; nothing was run"),
])
def test_headless_runs_are_refused_before_anything_runs(home, env, args, message):
    proc = opsconsole(home, "run", "steps", "--env", env, *args)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1
    assert not (home / "one.log").exists()
    with journal(home) as store:
        assert store.runs() == []


def test_read_only_flag_refuses_too(home):
    proc = opsconsole(home, "--read-only", "run", "steps", "--yes")
    assert proc.returncode == 2 and "is read-only" in proc.stderr and not (home / "one.log").exists()


def test_typed_environment_runs_headless_with_yes_and_its_name(home):
    proc = opsconsole(home, "run", "steps", "--env", "prod", "--yes", "--confirm-env", "prod")
    assert proc.returncode == 0, proc.stderr
    assert "  run (sh, asks for the environment's name):" in proc.stdout
    assert lines(home / "three.log") == ["three"]


def tty_run(home: Path, answers: list[str], *args: str) -> tuple[int, str]:
    """Run with a terminal on stdin; answer each prompt in turn."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "opsconsole", *args], stdin=slave, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=environ(home), cwd=home)
    os.close(slave)
    out = b""
    pending = list(answers)
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            out += chunk
            if pending and re.search(rb"(\[y/N\] |cancels: )$", out):
                os.write(master, pending.pop(0).encode() + b"\n")
    if proc.poll() is None:  # still waiting for an answer nobody will give: fail, do not hang the suite
        proc.kill()
    out += proc.stdout.read()
    proc.wait(timeout=10)
    os.close(master)
    return proc.returncode, out.decode()


def test_with_a_terminal_typed_confirmation_asks_for_the_name(home):
    code, out = tty_run(home, ["prod", "prod", "prod"], "run", "steps", "--env", "prod")
    assert code == 0, out
    # once per step: step 2's shell verify is a change too, confirmed with its run block, shown before asking
    assert out.count("Type the environment name (prod) to run this, anything else cancels: ") == 3
    assert "This also confirms the rest of step 2:\n    $ test -s two.log" in out.replace("\r\n", "\n")
    assert lines(home / "three.log") == ["three"]


def test_with_a_terminal_a_wrong_name_cancels(home):
    code, out = tty_run(home, ["prod", "production"], "run", "steps", "--env", "prod")
    assert code == 1, out
    assert lines(home / "one.log") == ["one"] and not (home / "two.log").exists()
    with journal(home) as store:
        run = store.runs()[0]
    assert run.status == "aborted" and run.latest_steps()[2].note == "not confirmed: cancelled"


def test_with_a_terminal_enter_is_no(home):
    code, out = tty_run(home, [""], "run", "steps", "--env", "careful")
    assert code == 1 and "Run this on careful? [y/N] " in out and not (home / "one.log").exists()
    code, out = tty_run(home, ["y", "yes", "Y"], "run", "steps", "--env", "careful")
    assert code == 0, out


def test_fingerprint_from_plan_must_match(home):
    plan = opsconsole(home, "plan", "steps")
    fingerprint = plan.stdout.rsplit("Fingerprint: ", 1)[1].strip()
    (home / "runbooks" / "steps.md").write_text(STEPS.replace("echo one >>", "echo uno >>"))
    refused = opsconsole(home, "run", "steps", "--yes", "--fingerprint", fingerprint)
    assert refused.returncode == 2 and "the plan differs from the one you reviewed" in refused.stderr
    assert not (home / "one.log").exists()
    (home / "runbooks" / "steps.md").write_text(STEPS)
    proc = opsconsole(home, "run", "steps", "--yes", "--fingerprint", fingerprint[:16])
    assert proc.returncode == 0, proc.stderr


def test_killed_mid_step_then_resumed_never_repeats_finished_steps(home):
    first = start(home, "run", "slow", "--yes")
    wait_for(home / "slow.log")
    wait_for(home / "slow.pid")
    first.send_signal(signal.SIGKILL)  # opsconsole only: its command lives on in its own process group
    first.wait(timeout=10)
    os.killpg(int((home / "slow.pid").read_text()), signal.SIGKILL)  # end the orphan so it cannot finish late
    with journal(home) as store:
        [run] = store.runs()
    assert run.status == "interrupted"
    assert {i: s.status for i, s in run.latest_steps().items()} == {1: "succeeded", 2: "running"}

    (home / "release").touch()
    proc = opsconsole(home, "run", "slow", "--yes", "--resume", run.run_id)
    assert proc.returncode == 0, proc.stderr
    assert "Step 1/3: Quick: succeeded before, not run again" in proc.stdout
    assert lines(home / "quick.log") == ["quick"]
    assert lines(home / "slow.log") == ["started", "started", "done"]
    assert lines(home / "after.log") == ["after"]
    with journal(home) as store:
        resumed = store.get(run.run_id)
    assert resumed.status == "succeeded"
    assert [(s.index, s.attempt, s.status) for s in resumed.steps] == [
        (1, 1, "succeeded"), (2, 1, "running"), (2, 2, "succeeded"), (3, 1, "succeeded")]
    again = opsconsole(home, "run", "slow", "--yes", "--resume", run.run_id)
    assert again.returncode == 2 and "already succeeded" in again.stderr


def test_resume_is_refused_after_the_runbook_changed(home):
    (home / "two.fail").touch()
    failed = opsconsole(home, "run", "steps", "--yes")
    assert failed.returncode == 1
    (home / "runbooks" / "steps.md").write_text(STEPS.replace("echo three >> three.log", "echo 3 >> three.log"))
    proc = opsconsole(home, "run", "steps", "--yes", "--resume", run_id(failed.stdout))
    assert proc.returncode == 2
    assert "runbook steps changed since it ran (step 3 (Three) differs); start a new run instead" in proc.stderr
    assert lines(home / "one.log") == ["one"]


def test_resume_continues_a_failed_run_at_its_first_unfinished_step(home):
    (home / "two.fail").touch()
    failed = opsconsole(home, "run", "steps", "--yes")
    (home / "two.fail").unlink()
    proc = opsconsole(home, "run", "steps", "--yes", "--resume", run_id(failed.stdout))
    assert proc.returncode == 0, proc.stderr
    assert (lines(home / "one.log"), lines(home / "two.log"), lines(home / "three.log")) == (
        ["one"], ["two", "two"], ["three"])


def test_two_runs_race_for_one_environment_and_the_loser_names_the_holder(home):
    first = start(home, "run", "slow", "--yes")
    try:
        wait_for(home / "slow.log")
        with journal(home) as store:
            [holder] = store.runs()
        second = opsconsole(home, "run", "steps", "--yes")
        assert second.returncode == 2
        assert f"environment 'local' is locked by run {holder.run_id} of runbook slow" in second.stderr
        assert f"(pid {first.pid})" in second.stderr
        assert not (home / "one.log").exists()
        other_env = opsconsole(home, "run", "steps", "--yes", "--env", "careful")
        assert other_env.returncode == 0, other_env.stderr  # another environment is free
    finally:
        (home / "release").touch()
        out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err


def test_action_verbs_run_as_one_step_plans_through_the_journal(home):
    proc = opsconsole(home, "deploy", "api", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert lines(home / "deploy.log") == ["deployed"]
    assert "  run (ops): deploy api\n    -> echo deployed >> deploy.log\n" in proc.stdout
    with journal(home) as store:
        [run] = store.runs()
    assert run.runbook_name == "deploy" and run.status == "succeeded"
    assert run.latest_steps()[1].commands == ("echo deployed >> deploy.log",)
    scale = opsconsole(home, "scale", "api", "--replicas", "3", "--yes")
    assert scale.returncode == 2 and "the local provider cannot scale services" in scale.stderr
    headless = opsconsole(home, "deploy", "api")
    assert headless.returncode == 2 and "pass --yes" in headless.stderr


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_block_timeout_kills_the_command_tree(home):
    (home / "runbooks" / "hang.md").write_text(
        "## Hang\n```sh {\"timeout\": \"1s\"}\nsleep 30 & echo $! > bg.pid\nsleep 30\n```\n")
    t0 = time.monotonic()
    proc = opsconsole(home, "run", "hang", "--yes")
    assert proc.returncode == 1 and time.monotonic() - t0 < 15
    assert "Step 1 failed: sleep 30 & echo $! > bg.pid ...: timed out after 1 s" in proc.stdout
    assert not pid_alive(int((home / "bg.pid").read_text()))


def test_sigterm_stops_the_run_and_leaves_it_resumable(home):
    first = start(home, "run", "slow", "--yes")
    wait_for(home / "slow.pid")
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=20)
    assert first.returncode == 130
    with journal(home) as store:
        [run] = store.runs()
    assert f"interrupted: run {run.run_id} stopped: resume it with `opsconsole run slow --resume {run.run_id}`" in err
    assert not pid_alive(int((home / "slow.pid").read_text()))  # its command went with it
    assert run.status == "interrupted"
    assert (run.latest_steps()[2].status, run.latest_steps()[2].note) == ("failed", "interrupted")


def test_a_dead_holder_is_only_replaced_with_take_over(home):
    first = start(home, "run", "slow", "--yes")
    wait_for(home / "slow.pid")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    os.killpg(int((home / "slow.pid").read_text()), signal.SIGKILL)
    refused = opsconsole(home, "run", "steps", "--yes")
    assert refused.returncode == 2 and "but its holder is gone" in refused.stderr and "--take-over" in refused.stderr
    assert not (home / "one.log").exists()
    proc = opsconsole(home, "run", "steps", "--yes", "--take-over")
    assert proc.returncode == 0, proc.stderr
    assert lines(home / "three.log") == ["three"]


def test_resuming_needs_secret_params_again_and_keeps_the_others(home):
    (home / "runbooks" / "tok.md").write_text(
        "---\nparams:\n  token: {type: secret}\n  region: {type: str}\n---\n"
        "## First\n```sh\necho first >> first.log\n```\n"
        "## Use it\n```sh\n[ -e tok.fail ] && exit 9\nprintf '%s %s' {{ token }} {{ region }} > used.out\n```\n")
    (home / "tok.fail").touch()
    failed = opsconsole(home, "run", "tok", "--yes", "-p", "token=resume-s3cret", "-p", "region=eu-1")
    assert failed.returncode == 1
    (home / "tok.fail").unlink()
    rid = run_id(failed.stdout)
    missing = opsconsole(home, "run", "tok", "--yes", "--resume", rid)
    assert missing.returncode == 2
    assert "param 'token' is a secret and the journal keeps it masked: give it again with -p token=VALUE" in missing.stderr
    changed = opsconsole(home, "run", "tok", "--yes", "--resume", rid, "-p", "token=resume-s3cret", "-p", "region=us-2")
    assert changed.returncode == 2 and "a resumed run keeps its params" in changed.stderr
    proc = opsconsole(home, "run", "tok", "--yes", "--resume", rid, "-p", "token=resume-s3cret")
    assert proc.returncode == 0, proc.stderr
    assert (home / "used.out").read_text() == "resume-s3cret eu-1"
    assert lines(home / "first.log") == ["first"]
    assert "resume-s3cret" not in proc.stdout + proc.stderr + failed.stdout
