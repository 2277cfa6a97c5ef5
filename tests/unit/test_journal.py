"""The SQLite journal in one process: every field round-trips, secrets never reach the file, statuses, the schema
version, where the journal lives, who is recorded, and the lock's rules (the multi-process cases are in
tests/integration/test_lock_sqlite.py)."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsconsole import config, journal, masking
from opsconsole.errors import ConfigError, UserError
from opsconsole.journal import RunRecord, StepRecord
from opsconsole.lock import LockHeld, LockHolder, decide, flock_held, lock_path, pid_alive

T0 = datetime(2026, 11, 21, 13, 2, 11, 123456, tzinfo=UTC)


def make_run(environment: str = "staging", run_id: str | None = None, **kw: object) -> RunRecord:
    fields: dict = dict(runbook_path="runbooks/scale-workers.md", runbook_name="scale-workers", content_hash="c" * 64,
                        plan_fingerprint="f" * 64, environment=environment, params={"replicas": "4"},
                        plan={"steps": [{"index": 1, "title": "Check"}, {"index": 2, "title": "Scale"}]}, run_id=run_id)
    fields.update(kw)
    return journal.new_run(**fields)


def make_step(run_id: str, index: int = 1, attempt: int = 1, status: str = "succeeded", **kw: object) -> StepRecord:
    fields: dict = dict(run_id=run_id, index=index, title=f"Step {index}", status=status, started_at=T0,
                        ended_at=T0 + timedelta(seconds=2), commands=("scale worker --replicas 4",), exit_status=0,
                        output_tail="scaled worker to 4\n", verification="emails.depth is 120, wanted < 1000",
                        note="", attempt=attempt, recorded={"replicas": 2}, fingerprint="s" * 64)
    fields.update(kw)
    return StepRecord(**fields)


@pytest.fixture
def store(tmp_path: Path):
    j = journal.open_journal(str(tmp_path / "journal.sqlite3"), heartbeat_s=0.05)
    yield j
    j.close()


def holder_for(run: RunRecord) -> LockHolder:
    return LockHolder.for_run(run.run_id, run.runbook_name)


def test_every_field_round_trips(store):
    run = make_run()
    with store.lock("staging", holder_for(run)):
        store.start_run(run)
        store.record_step(make_step(run.run_id, 1, status="running", ended_at=None, exit_status=None))
        store.record_step(make_step(run.run_id, 1))  # the same attempt, finished: an update, not a new row
        store.record_step(make_step(run.run_id, 2, status="failed", exit_status=3, note="", recorded={}))
        store.record_step(make_step(run.run_id, 2, attempt=2, status="skipped", note="depth was fine already"))
        got = store.get(run.run_id)
        assert got.status == "running"  # its lock is held, by us
        store.finish_run(run.run_id, "succeeded")

    got = store.get(run.run_id)
    assert (got.run_id, got.runbook_path, got.runbook_name, got.content_hash, got.plan_fingerprint) == (
        run.run_id, "runbooks/scale-workers.md", "scale-workers", "c" * 64, "f" * 64)
    assert (got.environment, dict(got.params), got.user, got.git_identity, got.host, got.pid) == (
        "staging", {"replicas": "4"}, run.user, run.git_identity, socket.gethostname(), os.getpid())
    assert got.started_at == run.started_at and got.started_at.tzinfo is not None
    assert got.ended_at is not None and got.ended_at >= got.started_at
    assert got.status == "succeeded"
    assert got.plan == {"steps": [{"index": 1, "title": "Check"}, {"index": 2, "title": "Scale"}]}
    assert [(s.index, s.attempt, s.status) for s in got.steps] == [(1, 1, "succeeded"), (2, 1, "failed"),
                                                                   (2, 2, "skipped")]
    first = got.steps[0]
    assert first == make_step(run.run_id, 1)
    assert got.steps[1].exit_status == 3
    assert got.latest_steps()[2].note == "depth was fine already"
    assert (got.steps_done, got.steps_total) == (2, 2)
    assert [e.kind for e in got.events] == ["started", "finished"]


def test_unknown_statuses_are_programming_errors(store):
    run = make_run()
    store.start_run(run)
    with pytest.raises(ValueError, match="unknown step status"):
        store.record_step(make_step(run.run_id, status="done"))
    with pytest.raises(ValueError, match="finishes as one of"):
        store.finish_run(run.run_id, "running")


def test_a_step_of_an_unknown_run_is_refused(store):
    with pytest.raises(UserError, match="no run 'nope'"):
        store.record_step(make_step("nope"))


def test_registered_secrets_never_reach_the_file(tmp_path: Path):
    secret = 'Tok"en\\ünï-7f3a9'  # json.dumps would escape it: masking must happen before serialising
    masking.register(secret)
    path = tmp_path / "journal.sqlite3"
    store = journal.open_journal(str(path))
    run = make_run(params={"token": secret, "replicas": "4"}, runbook_path=f"runbooks/{secret}.md",
                   plan={"steps": [{"title": "Rotate", "commands": [f"rotate --value {secret}"]}], secret: secret})
    store.start_run(run)
    store.record_step(make_step(run.run_id, title=f"rotate {secret}", commands=(f"echo {secret}",),
                                output_tail=f"line\nsecret is {secret}\n", verification=f"saw {secret}",
                                note=f"skipped {secret}", recorded={"old": secret, secret: [secret]}))
    # While open (data still in the WAL) and after close (checkpointed into the main file).
    files = lambda: b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("journal.sqlite3"))
    for variant in (secret, secret.encode("unicode_escape").decode(), "ünï-7f3a9"):
        assert variant.encode() not in files()
    got = store.get(run.run_id)
    store.close()
    assert b"7f3a9" not in files()
    assert got.params["token"] == "***" and got.steps[0].commands == ("echo ***",)
    assert got.steps[0].recorded == {"old": "***", "***": ["***"]}
    assert "secret is ***" in got.steps[0].output_tail


def test_output_is_masked_before_it_is_cut(store):
    secret = "cut-here-secret-0042"
    masking.register(secret)
    run = make_run()
    store.start_run(run)
    # The secret straddles the cut: masking after cutting would leave its tail in the journal.
    tail = "x" * 10 + secret + "y" * (journal.OUTPUT_TAIL_MAX - 10)
    store.record_step(make_step(run.run_id, output_tail=tail))
    kept = store.get(run.run_id).steps[0].output_tail
    assert len(kept) == journal.OUTPUT_TAIL_MAX and "0042" not in kept and kept.endswith("y")


def test_running_without_a_live_lock_reads_as_interrupted(store):
    run = make_run()
    store.start_run(run)
    assert store.get(run.run_id).status == "interrupted"  # nobody holds staging
    held = store.lock("staging", holder_for(run))
    assert store.get(run.run_id).status == "running"
    other = make_run(run_id="20261121-000000-other0")
    store.start_run(other)  # a second "running" run on staging that does not hold the lock
    assert store.get(other.run_id).status == "interrupted"
    held.release()
    assert [r.status for r in store.runs()] == ["interrupted", "interrupted"]


def test_runs_are_listed_most_recent_first_and_filtered(store):
    ids = []
    for i, env in enumerate(["staging", "production", "staging"]):
        run = make_run(env)
        run = RunRecord(**{**run.__dict__, "started_at": T0 + timedelta(minutes=i)})
        store.start_run(run)
        store.finish_run(run.run_id, "failed")
        ids.append(run.run_id)
    assert [r.run_id for r in store.runs()] == ids[::-1]
    assert [r.run_id for r in store.runs(environment="staging")] == [ids[2], ids[0]]
    assert [r.run_id for r in store.runs(limit=1)] == [ids[2]]
    assert store.runs(environment="nowhere") == []


def test_get_by_unique_prefix_and_errors(store):
    a, b = make_run(run_id="20261121-130211-aaaa01"), make_run(run_id="20261121-130211-aaab02")
    store.start_run(a)
    store.start_run(b)
    assert store.get("20261121-130211-aaab").run_id == b.run_id
    with pytest.raises(UserError, match="ambiguous: 20261121-130211-aaaa01, 20261121-130211-aaab02"):
        store.get("20261121-130211-aa")
    with pytest.raises(UserError, match="no run 'zzz' in the journal"):
        store.get("zzz")


def test_starting_a_known_run_again_is_a_resume(store):
    run = make_run()
    store.start_run(run)
    store.record_step(make_step(run.run_id))
    store.finish_run(run.run_id, "failed")
    store.start_run(run)
    got = store.get(run.run_id)
    assert got.ended_at is None and len(got.steps) == 1
    assert [e.kind for e in got.events] == ["started", "finished", "resumed"]
    assert "was failed" in got.events[-1].detail


def test_schema_version_is_recorded_and_a_newer_one_refused(tmp_path: Path):
    path = tmp_path / "j.sqlite3"
    journal.open_journal(str(path)).close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM opsconsole_schema").fetchall() == [(journal.SCHEMA_VERSION,)]
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.execute("UPDATE opsconsole_schema SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(UserError, match="schema version 99, newer than this opsconsole understands"):
        journal.open_journal(str(path))


def test_synchronous_full_and_busy_timeout_are_set(store):
    assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert store._conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10000


def test_an_unusable_location_is_one_user_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot open the journal"):
        journal.open_journal(str(blocker / "sub" / "j.sqlite3"))


# --- where the journal lives ---------------------------------------------------------------------------------------

def test_default_location_is_the_user_state_dir(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(journal.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    store = journal.open_journal(None)
    store.close()
    assert store.location == str(tmp_path / "state" / "opsconsole" / "journal.sqlite3")
    assert (tmp_path / "state" / "opsconsole" / "journal.sqlite3").is_file()
    assert (tmp_path / "state" / "opsconsole").stat().st_mode & 0o777 == 0o700


def test_env_var_overrides_the_default(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(journal.ENV_VAR, str(tmp_path / "from-env.sqlite3"))
    with journal.open_journal(None) as store:
        assert store.location == str(tmp_path / "from-env.sqlite3")


def test_config_value_wins_over_the_env_var_and_is_relative_to_the_config(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(journal.ENV_VAR, str(tmp_path / "from-env.sqlite3"))
    (tmp_path / "cfg").mkdir()
    cfg_path = tmp_path / "cfg" / "opsconsole.toml"
    cfg_path.write_text('[opsconsole]\njournal = "state/team.sqlite3"\n[environments.local]\n')
    cfg = config.load(str(cfg_path))
    with journal.open_for_config(cfg) as store:
        assert store.location == str((tmp_path / "cfg").resolve() / "state" / "team.sqlite3")
    # No journal in the config: the env var.
    cfg_path.write_text("[environments.local]\n")
    with journal.open_for_config(config.load(str(cfg_path))) as store:
        assert store.location == str(tmp_path / "from-env.sqlite3")


def test_config_value_takes_variables_from_dotenv(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("JOURNAL_DB", raising=False)
    cfg_path = tmp_path / "opsconsole.toml"
    cfg_path.write_text('[opsconsole]\njournal = "${JOURNAL_DB}"\n[environments.local]\n')
    (tmp_path / ".env").write_text(f"JOURNAL_DB={tmp_path / 'dot.sqlite3'}\n")
    assert journal.spec_for(config.load(str(cfg_path))) == str(tmp_path / "dot.sqlite3")
    (tmp_path / ".env").unlink()
    with pytest.raises(ConfigError) as err:
        journal.spec_for(config.load(str(cfg_path)))
    assert str(err.value) == (f"{cfg_path}:2: journal: ${{JOURNAL_DB}} is not set (define it in the environment or "
                              f"in .env beside the config)")


def test_postgres_spec_registers_its_password_and_never_shows_it(monkeypatch):
    url = "postgresql://ops:Jr9-pg-secret@127.0.0.1:1/journal"
    with pytest.raises(UserError) as err:
        journal.open_journal(url)  # nothing listens on port 1
    assert "Jr9-pg-secret" not in str(err.value)
    assert "postgresql://ops:***@127.0.0.1:1/journal" in str(err.value)
    assert masking.mask("auth Jr9-pg-secret") == "auth ***"


# --- who ---------------------------------------------------------------------------------------------------------

def test_identity_reads_git_without_a_shell_and_tolerates_git_missing(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside any repository: only the global config counts
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    monkeypatch.setenv("USER", "oncall-ann")
    (tmp_path / ".gitconfig").write_text('[user]\n\tname = "Ann $(whoami) O\'Call"\n\temail = ann@example.com\n')
    journal._who.cache_clear()
    try:
        user, git, host, pid = journal.identity()
        assert (user, git, host, pid) == ("oncall-ann", "Ann $(whoami) O'Call <ann@example.com>",
                                          socket.gethostname(), os.getpid())
        monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
        journal._who.cache_clear()
        assert journal.identity()[:2] == ("oncall-ann", "")
    finally:
        journal._who.cache_clear()


def test_run_ids_are_short_sortable_and_distinct():
    ids = {journal.new_run_id(T0) for _ in range(200)}
    assert len(ids) == 200
    assert all(i.startswith("20261121-130211-") and len(i) == 22 for i in ids)


# --- the lock's rules ------------------------------------------------------------------------------------------

def test_a_second_holder_is_told_who_holds_the_environment(tmp_path: Path):
    path = str(tmp_path / "j.sqlite3")
    with journal.open_journal(path) as a, journal.open_journal(path) as b:
        run = make_run()
        held = a.lock("staging", holder_for(run))
        other = make_run()
        for take_over in (False, True):  # a live holder is never taken over
            with pytest.raises(LockHeld) as err:
                b.lock("staging", holder_for(other), take_over=take_over)
            assert err.value.holder is not None and err.value.holder.run_id == run.run_id
            assert err.value.stale is False
        message = str(err.value)
        assert message.startswith(f"environment 'staging' is locked by run {run.run_id} of runbook scale-workers by ")
        assert f"on {socket.gethostname()} (pid {os.getpid()}) since " in message and "UTC" in message
        assert "\n" not in message and "--take-over" in message
        assert b.lock("production", holder_for(other)).held  # another environment is free
        held.release()
        held.release()  # idempotent
        with b.lock("staging", holder_for(other)) as second:
            assert second.previous is None  # a clean release leaves nothing to take over
            assert b.holder("staging").run_id == other.run_id
        assert b.holder("staging") is None


def test_the_heartbeat_moves_and_a_stolen_lock_is_noticed(store):
    run = make_run()
    held = store.lock("staging", holder_for(run))
    first = store._query("SELECT heartbeat_at FROM opsconsole_locks")[0][0]
    time.sleep(0.3)
    assert store._query("SELECT heartbeat_at FROM opsconsole_locks")[0][0] > first
    held.ensure_held()
    store._query("UPDATE opsconsole_locks SET token = 'someone-else'")
    deadline = time.monotonic() + 5
    while not held.lost and time.monotonic() < deadline:
        time.sleep(0.02)
    assert held.lost
    with pytest.raises(UserError, match="was taken over by another run"):
        held.ensure_held()
    held.release()
    assert store.holder("staging").run_id == run.run_id  # not ours to delete any more
    assert not flock_held(lock_path(store.path, "staging"))  # but our flock is let go


def test_heartbeat_must_be_well_inside_the_stale_timeout(tmp_path: Path):
    with pytest.raises(ValueError, match="at least twice heartbeat_s"):
        journal.open_journal(str(tmp_path / "j.sqlite3"), heartbeat_s=20, stale_after_s=30)


def test_lock_files_are_beside_the_journal_and_filename_safe(tmp_path: Path):
    j = tmp_path / "journal.sqlite3"
    assert lock_path(j, "production") == tmp_path / "journal.sqlite3.production.lock"
    odd = lock_path(j, "../etc/x y")
    assert odd.parent == tmp_path and "/" not in odd.name and " " not in odd.name
    assert lock_path(j, "a/b") != lock_path(j, "a_b")


def test_decide_rules():
    me = LockHolder("new", "bob", "h", 1, "rb", T0)
    dead = LockHolder("old", "ann", "h", 2, "rb", T0)
    assert decide("e", None, False, "", None, me, False) == "acquire"
    with pytest.raises(LockHeld) as err:
        decide("e", dead, True, "", "running", me, True)
    assert not err.value.stale
    with pytest.raises(LockHeld) as err:
        decide("e", dead, False, "process 2 no longer exists", "running", me, False)
    assert err.value.stale and "holder is gone (process 2 no longer exists)" in str(err.value)
    assert decide("e", dead, False, "gone", "running", me, True) == "take-over"
    assert decide("e", dead, False, "gone", "succeeded", me, False) == "replace"  # it only missed its release
    assert decide("e", dead, False, "gone", None, me, False) == "replace"  # it died before start_run
    assert decide("e", LockHolder("new", "ann", "h", 2, "rb", T0), False, "gone", "running", me, False) == "replace"


def test_pid_alive_sees_exited_and_zombie_processes():
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while pid_alive(child.pid) and time.monotonic() < deadline:  # exited but not reaped: a zombie
        time.sleep(0.01)
    assert not pid_alive(child.pid)
    child.wait()
    assert not pid_alive(child.pid)


def test_a_version_1_journal_is_migrated_and_keeps_its_rows(tmp_path):
    """Version 2 records the lock holder's process groups; a journal written by version 1 gains the column."""
    from opsconsole.journal import _SQLITE_V1, SCHEMA_VERSION, open_journal

    path = tmp_path / "v1.sqlite3"
    conn = sqlite3.connect(path)
    for statement in _SQLITE_V1:
        conn.execute(statement)
    conn.execute("CREATE TABLE opsconsole_schema (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO opsconsole_schema (version) VALUES (1)")
    conn.execute("INSERT INTO opsconsole_locks VALUES ('prod', 'r1', 'ann', 'h', 12, 'deploy', "
                 "'2026-12-01T00:00:00+00:00', '', 'tok', '2026-12-01T00:00:00+00:00')")
    conn.commit()
    conn.close()
    with open_journal(str(path)) as store:
        holder = store.holder("prod")
        assert holder is not None and holder.run_id == "r1" and holder.groups == ()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM opsconsole_schema").fetchall() == [(SCHEMA_VERSION,)] == [(2,)]
