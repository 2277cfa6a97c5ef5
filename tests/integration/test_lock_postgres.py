"""The environment lock between real processes sharing a PostgreSQL journal: one race winner; a killed holder is
dead at once (same host, pid gone); a frozen holder (SIGSTOP: alive, silent) is alive until its heartbeat is older
than the stale timeout, then it can be taken over, and on waking it finds the lock gone."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from opsconsole import journal
from opsconsole.lock import LockHeld, LockHolder
from tests.integration.test_journal_postgres import fresh_database
from tests.integration.test_lock_sqlite import Child, race
from tests.servers import PostgresServer

pytestmark = pytest.mark.integration

HEARTBEAT = 0.2
STALE_AFTER = 1.5


@pytest.fixture(scope="module")
def pg_url(pg: PostgresServer) -> Iterator[str]:
    pg.start()
    yield fresh_database(pg)


@pytest.fixture
def children(pg: PostgresServer):
    pg.start()
    started: list[Child] = []

    def start(*args, **kw) -> Child:
        child = Child(*args, heartbeat=HEARTBEAT, stale_after=STALE_AFTER, **kw)
        started.append(child)
        return child
    yield start
    for child in started:
        child.kill(signal.SIGCONT)
        child.kill()
        for stream in (child.proc.stdin, child.proc.stdout, child.proc.stderr):
            stream.close()


def me(environment: str, runbook: str = "deploy") -> tuple[journal.RunRecord, LockHolder]:
    run = journal.new_run(runbook_path=f"runbooks/{runbook}.md", runbook_name=runbook, content_hash="d" * 64,
                          plan_fingerprint="e" * 64, environment=environment, params={}, plan={"steps": []})
    return run, LockHolder.for_run(run.run_id, runbook)


def test_two_processes_race_and_exactly_one_wins(pg_url, children):
    winner, won, lost = race(children, pg_url, "pg-race")
    assert lost["holder"] == won["run_id"] and lost["stale"] is False
    assert f"locked by run {won['run_id']} of runbook {won['runbook']} by " in lost["message"]
    assert f"(pid {won['pid']}) since " in lost["message"]
    assert winner.finish() == {"lost": False}
    with journal.open_journal(pg_url) as store:
        assert store.get(won["run_id"]).status == "succeeded"
        assert store.holder("pg-race") is None


def test_a_killed_holder_is_dead_at_once_and_taken_over_only_when_asked(pg_url, children):
    child = children(pg_url, "pg-kill", "restore-backup")
    first = child.line()
    with journal.open_journal(pg_url, stale_after_s=60) as store:
        run, holder = me("pg-kill")
        with pytest.raises(LockHeld) as err:
            store.lock("pg-kill", holder, take_over=True)
        assert not err.value.stale
        assert store.get(first["run_id"]).status == "running"

        child.kill(signal.SIGKILL)
        # Long before any heartbeat timeout: same host, and its pid is gone.
        assert store.get(first["run_id"]).status == "interrupted"
        with pytest.raises(LockHeld) as err:
            store.lock("pg-kill", holder)
        assert err.value.stale and f"process {first['pid']} no longer exists" in str(err.value)
        with store.lock("pg-kill", holder, take_over=True) as held:
            assert held.previous.run_id == first["run_id"]
            store.start_run(run)
            assert store.get(run.run_id).status == "running"
            assert store.get(first["run_id"]).events[-1].kind == "taken-over"
        assert store.get(first["run_id"]).status == "interrupted"


def test_a_stopped_holder_of_this_host_is_never_called_dead(pg_url, children):
    child = children(pg_url, "pg-stopped", "scale-workers")
    first = child.line()
    child.kill(signal.SIGSTOP)
    with journal.open_journal(pg_url, heartbeat_s=HEARTBEAT, stale_after_s=STALE_AFTER) as store:
        run, holder = me("pg-stopped")
        time.sleep(STALE_AFTER + 3 * HEARTBEAT)  # its heartbeat is long stale, but its process is right here
        with pytest.raises(LockHeld) as err:
            store.lock("pg-stopped", holder, take_over=True)
        assert not err.value.stale
        assert f"its process {first['pid']} is stopped, not gone: `kill -CONT {first['pid']}`" in str(err.value)
        assert store.get(first["run_id"]).status == "running"
        child.kill(signal.SIGCONT)
        assert child.finish() == {"lost": False}
        assert store.get(first["run_id"]).status == "succeeded"


def test_a_silent_holder_goes_stale_after_the_timeout(pg_url, children):
    child = children(pg_url, "pg-stall", "scale-workers")
    first = child.line()
    child.kill(signal.SIGSTOP)  # silent; and as if it ran on a host that dropped off the network:
    with journal.open_journal(pg_url) as store:  # only the heartbeat can tell
        store._query("UPDATE opsconsole_locks SET host = 'gone.example' WHERE environment = 'pg-stall'", ())
    stopped = time.monotonic()
    with journal.open_journal(pg_url, heartbeat_s=HEARTBEAT, stale_after_s=STALE_AFTER) as store:
        run, holder = me("pg-stall")
        with pytest.raises(LockHeld) as err:
            store.lock("pg-stall", holder, take_over=True)
        assert not err.value.stale  # well within the timeout
        assert time.monotonic() - stopped < STALE_AFTER

        time.sleep(STALE_AFTER + 3 * HEARTBEAT)
        assert store.get(first["run_id"]).status == "interrupted"
        with pytest.raises(LockHeld) as err:
            store.lock("pg-stall", holder)
        assert err.value.stale and "no heartbeat for" in str(err.value)
        with store.lock("pg-stall", holder, take_over=True) as held:
            assert held.previous.run_id == first["run_id"]
            child.kill(signal.SIGCONT)
            # Waking up, the old holder's heartbeat finds the lock is no longer its own.
            assert child.finish() == {"lost": True}
            assert store.holder("pg-stall").run_id == run.run_id  # its release did not remove ours
            store.start_run(run)
            store.finish_run(run.run_id, "succeeded")
        old = store.get(first["run_id"])
        assert old.status == "interrupted" and old.steps[0].recorded == {"replicas": 2}


def test_a_live_heartbeat_keeps_the_lock(pg_url, children):
    child = children(pg_url, "pg-alive", "scale-workers")
    first = child.line()
    with journal.open_journal(pg_url, heartbeat_s=HEARTBEAT, stale_after_s=STALE_AFTER) as store:
        time.sleep(STALE_AFTER + 3 * HEARTBEAT)  # far longer than the timeout, but the child keeps beating
        assert store.get(first["run_id"]).status == "running"
        with pytest.raises(LockHeld) as err:
            store.lock("pg-alive", me("pg-alive")[1], take_over=True)
        assert not err.value.stale
    assert child.finish() == {"lost": False}
