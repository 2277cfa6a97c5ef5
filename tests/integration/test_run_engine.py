"""The Engine in-process, as the TUI will drive it: a Prompter that records what it is asked and told."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from opsconsole import config
from opsconsole.engine import Decision, Engine, Failure, build_plan
from opsconsole.errors import UserError
from opsconsole.journal import open_journal
from opsconsole.runbook import parse
from opsconsole.terminal import TerminalPrompter

RUNBOOK = """\
# Engine

## First
```sh
echo first >> first.log
```

## Second
```sh {"confirm": "yes"}
echo second >> second.log
exit 5
```
```sh {"role": "rollback"}
echo undo >> second.log
```
"""


class Recorder:
    def __init__(self, decisions: list[Decision], confirm: bool = True) -> None:
        self.decisions = decisions
        self.answer = confirm
        self.asked: list[tuple[int, str]] = []
        self.failures: list[Failure] = []
        self.events: list[tuple[str, int | None, str | None]] = []
        self.lines: list[str] = []

    def confirm(self, step, block, level):
        self.asked.append((step.index, level))
        return self.answer

    def on_failure(self, step, error):
        self.failures.append(error)
        return self.decisions.pop(0)

    def output(self, line):
        self.lines.append(line)

    def event(self, event):
        self.events.append((event.kind, event.step.index if event.step else None, event.status))


@pytest.fixture
def setup(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = config.parse('[environments.local]\nprovider = "local"\n', tmp_path / "opsconsole.toml", tmp_path)
    book, problems = parse(RUNBOOK, tmp_path / "engine.md")
    assert problems == ()
    store = open_journal(str(tmp_path / "journal.sqlite3"))
    yield cfg, book, store, tmp_path
    store.close()


def test_the_engine_reports_through_its_prompter(setup):
    cfg, book, store, home = setup
    plan = build_plan(cfg, "local", book, {})
    prompter = Recorder([Decision("retry"), Decision("rollback")])
    record = Engine(plan, store, cfg, "local", prompter).run()
    assert record.status == "failed"
    assert prompter.asked == [(2, "yes"), (2, "yes")]  # the y/N block on each attempt; the rollback needs none
    assert [f.phase for f in prompter.failures] == ["run", "run"]
    assert prompter.failures[0].message == "echo second >> second.log ...: exit 5"
    assert prompter.failures[1].attempt == 2
    assert (home / "second.log").read_text() == "second\nsecond\nundo\n"
    kinds = [k for k, _, _ in prompter.events]
    assert kinds[0] == "run-started" and kinds[-1] == "run-finished"
    assert ("step-finished", 1, "succeeded") in prompter.events
    assert ("rollback-finished", 2, "rolled-back") in prompter.events
    assert [(s.index, s.attempt, s.status) for s in record.steps] == [
        (1, 1, "succeeded"), (2, 1, "failed"), (2, 2, "rolled-back")]


def test_declining_a_confirmation_aborts_without_running_the_block(setup):
    cfg, book, store, home = setup
    plan = build_plan(cfg, "local", book, {})
    record = Engine(plan, store, cfg, "local", Recorder([], confirm=False)).run()
    assert record.status == "aborted" and not (home / "second.log").exists()
    assert record.latest_steps()[2].commands == ("(not confirmed) echo second >> second.log\nexit 5",)


def test_a_plan_that_does_not_match_its_fingerprint_never_runs(setup):
    cfg, book, store, home = setup
    plan = build_plan(cfg, "local", book, {})
    tampered = dataclasses.replace(plan, fingerprint="0" * 64)
    with pytest.raises(UserError, match="the plan changed while running"):
        Engine(tampered, store, cfg, "local", Recorder([])).run()
    assert not (home / "first.log").exists()
    [run] = store.runs()
    assert run.status == "aborted" and run.latest_steps()[1].note.startswith("the plan changed while running")


def test_the_terminal_prompter_offers_every_decision_and_cancels_by_default(setup):
    cfg, book, store, home = setup
    plan = build_plan(cfg, "local", book, {})
    step = plan.steps[1]
    failure = Failure(step, step.blocks[0], "run", "exit 5", 1)
    for answers, expected in ((["r"], Decision("retry")), (["t"], Decision("rollback")),
                              (["a"], Decision("rollback-all")), ([""], Decision("abort")),
                              (["x", "q"], Decision("abort")), (["s", "", "s", "known flaky"], Decision("skip", "known flaky"))):
        pending = list(answers)
        prompter = TerminalPrompter("local", read=lambda prompt: pending.pop(0), write=lambda line: None)
        assert prompter.on_failure(step, failure) == expected, answers

    def eof(prompt):
        raise EOFError
    prompter = TerminalPrompter("local", read=eof, write=lambda line: None)
    assert prompter.confirm(step, step.blocks[0], "yes") is False
    assert prompter.on_failure(step, failure) == Decision("abort")
    flagged = TerminalPrompter("local", on_failure="rollback", read=eof, write=lambda line: None)
    assert flagged.on_failure(step, failure) == Decision("rollback")


def test_a_rollback_needing_a_value_never_recorded_fails_clearly(tmp_path, monkeypatch):
    import shutil

    from tests.servers import missing

    if shutil.which("pg_dump") is None:
        missing("pg_dump is not installed")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    cfg = config.parse('[environments.local]\nprovider = "local"\n[environments.local.services.db]\n'
                       'url = "postgresql://nobody@127.0.0.1:1/none"\n', tmp_path / "opsconsole.toml", tmp_path)
    book, problems = parse("## Back up\n```ops\nbackup db\n```\n```ops {\"role\": \"rollback\"}\n"
                           "restore-backup db --from {{ previous.backup }}\n```\n", tmp_path / "b.md")
    assert problems == ()
    with open_journal(str(tmp_path / "journal.sqlite3")) as store:
        prompter = Recorder([Decision("rollback")])
        record = Engine(build_plan(cfg, "local", book, {}), store, cfg, "local", prompter).run()
    assert record.status == "failed"
    step = record.latest_steps()[1]
    assert step.status == "rollback-failed"
    assert step.note.startswith("rollback failed: ") and "nothing recorded backup yet" in step.note
    assert "pg_dump" in prompter.failures[0].message  # the backup itself failed: the server is not there


def test_a_shell_block_without_a_timeout_is_stopped_at_its_default(setup, monkeypatch):
    """`tail -f` in a doc never exits: without its own `timeout`, a shell block still ends, at the default plan
    shows (an hour for a change, five minutes for a check; shortened here)."""
    from opsconsole import engine

    cfg, _, store, home = setup
    book, problems = parse("# Hang\n\n## Follow\n```sh\ntouch started; sleep 30\n```\n", home / "hang.md")
    assert problems == ()
    monkeypatch.setitem(engine.SH_TIMEOUTS_S, "run", 0.5)
    plan = build_plan(cfg, "local", book, {})
    (block,) = plan.steps[0].blocks
    assert (block.timeout_s, block.timeout_is_default, block.to_json()["timeout_default"]) == (0.5, True, True)
    prompter = Recorder([Decision("abort")])
    record = Engine(plan, store, cfg, "local", prompter).run()
    assert record.status == "aborted" and (home / "started").exists()
    assert prompter.failures[0].message.endswith("timed out after 0.5 s"), prompter.failures[0].message


FOLLOW = """\
# Ship

## Deploy and watch
```sh
echo deployed >> deploys.log
: > app.log
(i=0; while true; do i=$((i+1)); echo "log line $i" >> app.log; sleep 0.05; done) &
tail -n +1 -f app.log
```

## After
```sh
echo after >> after.log
```
"""


def test_a_follow_command_ends_as_a_success_when_nobody_can_go_on(setup, monkeypatch):
    """Headless, `tail -f` is watched for a bounded time, then the step succeeds with its output kept and the run
    goes on."""
    from opsconsole import engine

    cfg, _, store, home = setup
    book, problems = parse(FOLLOW, home / "ship.md")
    assert problems == () and book.steps[0].blocks[0].follows and not book.steps[1].blocks[0].follows
    monkeypatch.setattr(engine, "FOLLOW_HEADLESS_S", 0.6)
    plan = build_plan(cfg, "local", book, {})
    assert plan.steps[0].blocks[0].to_json()["follows"] is True
    prompter = Recorder([])
    record = Engine(plan, store, cfg, "local", prompter).run()
    assert record.status == "succeeded", prompter.failures
    assert (home / "after.log").read_text() == "after\n"
    assert any(line.startswith("log line ") for line in prompter.lines)


class GoesOn(Recorder):
    """Presses 'go on' once the stream has shown a few lines, as the engineer would."""

    def follow(self, step, block, stop):
        self.stop = stop
        return lambda: None

    def output(self, line):
        super().output(line)
        if line == "log line 5":
            self.stop.set()


def test_a_follow_command_ends_when_the_engineer_goes_on_and_an_abort_still_aborts(setup):
    import threading
    import time

    cfg, _, store, home = setup
    book, _ = parse(FOLLOW, home / "ship.md")
    plan = build_plan(cfg, "local", book, {})
    started = time.monotonic()
    prompter = GoesOn([])
    record = Engine(plan, store, cfg, "local", prompter).run()
    assert record.status == "succeeded" and time.monotonic() - started < 20
    assert (home / "after.log").exists()

    (home / "after.log").unlink()
    cancel = threading.Event()

    class Aborts(Recorder):
        def follow(self, step, block, stop):
            return lambda: None

        def output(self, line):
            super().output(line)
            if line == "log line 3":
                cancel.set()

    aborted = Engine(build_plan(cfg, "local", book, {}), store, cfg, "local", Aborts([]), cancel=cancel).run()
    assert aborted.status == "aborted" and not (home / "after.log").exists()


def test_a_generated_secret_never_reaches_the_screen_or_the_journal(setup):
    """`openssl rand -hex 32` in a doc prints the new secret: its output is hidden, and the value is masked where
    a later block prints it again."""
    cfg, _, store, home = setup
    book, problems = parse("# Rotate\n\n## Generate\n```bash\n# a new secret\nopenssl rand -hex 16 | tee token.txt\n"
                           "echo generated\n```\n\n## Use\n```bash\necho \"using $(cat token.txt)\"\n```\n",
                           home / "rotate.md")
    assert problems == () and book.steps[0].blocks[0].generates_secret and not book.steps[1].blocks[0].generates_secret
    plan = build_plan(cfg, "local", book, {})
    assert plan.steps[0].blocks[0].to_json()["generates_secret"] is True
    prompter = Recorder([])
    record = Engine(plan, store, cfg, "local", prompter).run()
    assert record.status == "succeeded", prompter.failures
    token = (home / "token.txt").read_text().strip()
    assert len(token) == 32
    shown = "\n".join(prompter.lines)
    assert token not in shown and "generated" not in shown  # the generating block shows nothing
    assert "using ***" in shown  # and the value is masked where it shows again
    assert token.encode() not in b"".join(p.read_bytes() for p in home.glob("journal.sqlite3*"))


@pytest.mark.parametrize(("source", "generates"), [
    ("openssl rand -hex 32\n", True), ("NEW=$(openssl rand -base64 24)\n", True), ("pwgen -s 32 1\n", True),
    ("uuidgen\n", True), ("head -c 32 /dev/urandom | base64\n", True),
    ("python3 -c 'import secrets; print(secrets.token_urlsafe(32))'\n", True),
    ("# openssl rand -hex 32 would print one\necho hi\n", False), ("openssl x509 -in cert.pem -noout\n", False),
    ("echo random\n", False),
])
def test_what_generates_a_secret(source, generates):
    from opsconsole import runbook

    assert runbook.generates_secret(source) is generates


def test_a_session_block_notes_in_the_journal_when_its_output_differs_from_the_doc(setup):
    cfg, _, store, home = setup
    book, problems = parse("# Session\n\n## Same\n```console\n$ echo ready\nready\n```\n\n## Different\n"
                           "```console\n$ echo 'pods: 2'\npods: 3\n```\n", home / "session.md")
    assert problems == ()
    prompter = Recorder([])
    record = Engine(build_plan(cfg, "local", book, {}), store, cfg, "local", prompter).run()
    assert record.status == "succeeded"  # a note, never a failure
    same, different = record.latest_steps()[1], record.latest_steps()[2]
    assert not any("differs" in v for v in same.verification.split("\n"))
    assert "output differs from what the doc shows: 0 of 1 line(s) seen; first missing: pods: 3" in \
        different.verification


def test_a_generated_secret_registers_its_tokens_not_its_words():
    from opsconsole.engine import _token_like

    assert [_token_like(w) for w in ("9f86d081884c7d659a2feaa0c55ad015", "Xk3v9Lq2", "done", "configured",
                                     "550e8400-e29b-41d4-a716-446655440000", "aB+/cD=eFgHiJkLmNoPqRs")] == [
        True, True, False, False, True, True]
