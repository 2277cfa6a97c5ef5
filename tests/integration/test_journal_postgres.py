"""The PostgreSQL journal against the throwaway cluster: same records and behaviour as SQLite, jsonb/timestamptz
columns, secrets never in the tables, the URL's password never shown, durability and concurrent writers across
processes, and the CLI reading it through the config."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from opsconsole import journal, masking
from opsconsole.errors import UserError
from opsconsole.lock import LockHolder
from tests.integration.test_journal_durability import check_concurrent_writers, check_survived
from tests.servers import PostgresServer
from tests.unit.test_journal import make_run, make_step

pytestmark = pytest.mark.integration

TABLES = ("opsconsole_runs", "opsconsole_steps", "opsconsole_events", "opsconsole_locks", "opsconsole_schema")


def fresh_database(pg: PostgresServer) -> str:
    name = f"journal_{secrets.token_hex(4)}"
    pg.psql(f"CREATE DATABASE {name}")
    return pg.url(database=name)


@pytest.fixture(scope="module")
def pg_url(pg: PostgresServer) -> Iterator[str]:
    """A database of our own for this module, created in the session's cluster."""
    pg.start()
    yield fresh_database(pg)


@pytest.fixture
def store(pg: PostgresServer, pg_url: str):
    pg.start()  # another module may have stopped the shared cluster
    j = journal.open_journal(pg_url, heartbeat_s=0.1)
    yield j
    j.close()


def table_text(url: str) -> str:
    """Every row of every journal table as text, as psql would show it."""
    with psycopg.connect(url) as conn:
        return "\n".join(str(row[0]) for table in TABLES for row in conn.execute(f"SELECT t::text FROM {table} t"))


def test_every_field_round_trips(store):
    run = make_run("pg-roundtrip")
    with store.lock("pg-roundtrip", LockHolder.for_run(run.run_id, run.runbook_name)):
        store.start_run(run)
        store.record_step(make_step(run.run_id, 1, status="running", ended_at=None, exit_status=None))
        store.record_step(make_step(run.run_id, 1))
        store.record_step(make_step(run.run_id, 2, status="failed", exit_status=3))
        store.record_step(make_step(run.run_id, 2, attempt=2, status="skipped", note="fine already"))
        assert store.get(run.run_id).status == "running"
        store.finish_run(run.run_id, "succeeded")
    got = store.get(run.run_id)
    assert got.steps[0] == make_step(run.run_id, 1)
    assert got.started_at == run.started_at and got.started_at.utcoffset().total_seconds() == 0
    assert (got.params, got.plan, got.user, got.git_identity, got.host, got.pid) == (
        {"replicas": "4"}, run.plan, run.user, run.git_identity, run.host, run.pid)
    assert [(s.index, s.attempt, s.status) for s in got.steps] == [(1, 1, "succeeded"), (2, 1, "failed"),
                                                                   (2, 2, "skipped")]
    assert (got.status, got.steps_done, got.steps_total) == ("succeeded", 2, 2)
    assert [e.kind for e in got.events] == ["started", "finished"]
    assert store.runs(environment="pg-roundtrip")[0].run_id == run.run_id


def test_columns_are_jsonb_and_timestamptz_and_the_schema_is_versioned(store, pg_url):
    with psycopg.connect(pg_url) as conn:
        types = dict(conn.execute("SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                                  "WHERE table_name LIKE 'opsconsole_%'").fetchall())
        assert conn.execute("SELECT version FROM opsconsole_schema").fetchall() == [(journal.SCHEMA_VERSION,)]
    assert types["opsconsole_runs.params"] == types["opsconsole_steps.commands"] == "jsonb"
    assert types["opsconsole_runs.started_at"] == types["opsconsole_locks.heartbeat_at"] == "timestamp with time zone"


def test_registered_secrets_never_reach_the_tables(store, pg_url):
    secret = 'pg"Tok\\en-ü-5c1e'
    masking.register(secret)
    run = make_run("pg-secrets", params={"token": secret}, plan={"steps": [{"title": f"set {secret}"}]})
    with store.lock("pg-secrets", LockHolder.for_run(run.run_id, f"rotate {secret}")):
        store.start_run(run)
        store.record_step(make_step(run.run_id, commands=(f"echo {secret}",), output_tail=f"got {secret}\n",
                                    verification=secret, note=secret, recorded={"old": secret}))
        text = table_text(pg_url)
    assert "5c1e" not in text and "***" in text
    assert store.get(run.run_id).steps[0].recorded == {"old": "***"}


def test_unknown_runs_and_a_newer_schema_are_user_errors(store, pg, pg_url):
    with pytest.raises(UserError, match="no run 'nope' in the journal postgresql://postgres:\\*\\*\\*@"):
        store.get("nope")
    url = fresh_database(pg)
    journal.open_journal(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE opsconsole_schema SET version = 7")
    with pytest.raises(UserError, match="schema version 7, newer"):
        journal.open_journal(url)


def test_first_users_create_the_schema_once(pg):
    url = fresh_database(pg)
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            journal.open_journal(url).close()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM opsconsole_schema").fetchone() == (1,)


def test_a_wrong_password_is_one_line_without_the_password(pg):
    url = pg.url(password="wr0ng-Pass-77")
    with pytest.raises(UserError) as err:
        journal.open_journal(url)
    message = str(err.value)
    assert "wr0ng-Pass-77" not in message and "\n" not in message
    assert message.startswith(f"cannot open the journal postgresql://postgres:***@127.0.0.1:{pg.port}/postgres: ")
    assert "password authentication failed" in message


def test_a_step_survives_sigkill(pg_url):
    check_survived(pg_url)


def test_concurrent_writers_lose_nothing(pg_url):
    check_concurrent_writers(pg_url)


def test_the_cli_reads_the_team_journal_from_the_config(store, pg, pg_url, write_config, run_cli):
    run = make_run("pg-cli")
    store.start_run(run)
    store.record_step(make_step(run.run_id))
    store.finish_run(run.run_id, "failed")
    cfg = write_config(f'[opsconsole]\njournal = "{pg_url}"\n[environments.local]\n')
    listed = run_cli("--config", str(cfg), "journal", "list", "--env", "pg-cli", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert data["journal"] == masking.redact_url(pg_url) and pg.password not in listed.stdout
    assert [(r["run_id"], r["status"], r["steps_done"]) for r in data["runs"]] == [(run.run_id, "failed", 1)]
    shown = run_cli("--config", str(cfg), "journal", "show", run.run_id)
    assert shown.returncode == 0 and "$ scale worker --replicas 4" in shown.stdout
    missing = run_cli("--config", str(cfg), "journal", "show", "no-such-run")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == f"no run 'no-such-run' in the journal {masking.redact_url(pg_url)}\n"


def test_the_journal_and_the_lock_survive_a_server_restart(store, pg, pg_url):
    run = make_run("pg-restart")
    with store.lock("pg-restart", LockHolder.for_run(run.run_id, run.runbook_name)) as held:
        store.start_run(run)
        store.record_step(make_step(run.run_id, 1))
        pg.stop()
        pg.start()
        store.record_step(make_step(run.run_id, 2))  # a fresh session, no error for the caller
        before = store._query("SELECT heartbeat_at FROM opsconsole_locks WHERE environment = 'pg-restart'")[0][0]
        deadline = time.monotonic() + 10  # the heartbeat reconnects too
        while store._query("SELECT heartbeat_at FROM opsconsole_locks WHERE environment = 'pg-restart'")[0][0] == before:
            assert time.monotonic() < deadline, "no heartbeat after the restart"
            time.sleep(0.05)
        assert not held.lost
        store.finish_run(run.run_id, "succeeded")
    assert [s.index for s in store.get(run.run_id).steps] == [1, 2]
    assert store.holder("pg-restart") is None
