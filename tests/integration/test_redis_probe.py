from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest

from opsconsole.health import Monitor, Status
from tests.integration.conftest import environment, probe_once
from tests.servers import RedisServer, tempdir, wait_port, free_port


def test_reports_real_metrics(redis_running):
    redis_running.cli("CONFIG", "SET", "maxmemory", "0")
    r = probe_once({"cache": {"kind": "redis", "url": redis_running.url}}).reading("cache")
    assert r.status is Status.OK, r
    m = r.metrics
    assert m["role"] == "master"
    assert m["used_memory"] > 0 and m["maxmemory"] == 0 and "memory_pct" not in m
    assert m["connected_clients"] >= 1
    assert m["evicted_keys"] == 0 and m["ops_per_sec"] >= 0
    assert 0 < r.latency_ms < 100


def test_memory_against_maxmemory_is_judged(redis_running):
    used = int(redis_running.cli("INFO", "memory").split("used_memory:")[1].split()[0])
    redis_running.cli("CONFIG", "SET", "maxmemory", str(int(used * 1.1)))  # about 90 % used
    try:
        r = probe_once({"cache": {"kind": "redis", "url": redis_running.url}}).reading("cache")
        assert 80 < r.metrics["memory_pct"] <= 100
        assert r.status is Status.CRIT and r.reasons[0].startswith("memory_pct ")
    finally:
        redis_running.cli("CONFIG", "SET", "maxmemory", "0")


def test_stop_turns_crit_and_restart_recovers(redis_running):
    env = environment({"cache": {"kind": "redis", "url": redis_running.url}})

    async def scenario() -> list:
        monitor = Monitor(env, timeout=1.0)
        try:
            rounds = [await monitor.round()]
            redis_running.stop(signal.SIGKILL)
            rounds.append(await monitor.round())
            redis_running.start()
            rounds.append(await monitor.round())  # the kept client must reconnect, not report stale errors
        finally:
            await monitor.aclose()
        return rounds

    up, down, back = asyncio.run(scenario())
    assert up.reading("cache").status is Status.OK
    assert down.reading("cache").status is Status.CRIT
    assert down.reading("cache").error  # says why
    assert back.reading("cache").status is Status.OK, back.reading("cache").error


def test_refused_names_the_target():
    port = free_port()
    r = probe_once({"cache": {"kind": "redis", "url": f"redis://127.0.0.1:{port}/0"}}).reading("cache")
    assert r.status is Status.CRIT and r.error == f"connection refused by 127.0.0.1:{port}"


def test_wrong_password_is_crit_and_never_shown(redis_running):
    redis_running.cli("ACL", "SETUSER", "alice", "on", ">right-Pw-1", "~*", "+@all")
    ok = probe_once({"cache": {"kind": "redis", "url": f"redis://alice:right-Pw-1@127.0.0.1:{redis_running.port}/0"}})
    assert ok.reading("cache").status is Status.OK
    bad = probe_once({"cache": {"kind": "redis", "url": f"redis://alice:wrong-Pw-2@127.0.0.1:{redis_running.port}/0"}})
    r = bad.reading("cache")
    assert r.status is Status.CRIT and "invalid username-password" in r.error
    assert "wrong-Pw-2" not in r.error


def test_unknown_host_is_crit():
    r = probe_once({"cache": {"kind": "redis", "url": "redis://no-such-host.invalid:6379/0"}}).reading("cache")
    assert r.status is Status.CRIT and r.error.startswith("unknown host no-such-host.invalid")


def test_tls(redis_running):
    ok = probe_once({"cache": {"kind": "redis", "url": redis_running.tls_url(verify=True)}}).reading("cache")
    assert ok.status is Status.OK, ok.error
    # Without our CA the certificate cannot be verified: crit, and the reason says so.
    url = f"rediss://127.0.0.1:{redis_running.tls_port}/0"
    bad = probe_once({"cache": {"kind": "redis", "url": url}}).reading("cache")
    assert bad.status is Status.CRIT and "certificate verify failed" in bad.error


@pytest.fixture
def replica(redis_running):
    server = RedisServer(tempdir("opsconsole-redis-replica-"))
    server.start()
    server.cli("REPLICAOF", "127.0.0.1", str(redis_running.port))
    yield server
    server.close()


def test_replica_role_and_broken_link(replica, redis_running):
    deadline = time.monotonic() + 10
    while "master_link_status:up" not in replica.cli("INFO", "replication"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    r = probe_once({"cache": {"kind": "redis", "url": replica.url}}).reading("cache")
    assert r.status is Status.OK and r.metrics["role"] == "replica"
    redis_running.stop(signal.SIGKILL)
    try:
        deadline = time.monotonic() + 10
        while "master_link_status:up" in replica.cli("INFO", "replication"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = probe_once({"cache": {"kind": "redis", "url": replica.url}}).reading("cache")
        assert r.status is Status.CRIT and r.reasons == ("replica link to primary is down",)
    finally:
        redis_running.start()
