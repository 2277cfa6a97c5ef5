"""Targets that die, hang or crawl while opsconsole watches them: the health shown is the truth at every round.

A killed server is `crit` with an error a human can act on, within one probe timeout, while the members that are
fine stay `ok`; once it is back, the next rounds say `ok` again with no restart of opsconsole (its pooled clients
reconnect). A port that accepts and never answers costs one timeout per round, not one per target; a slow HTTP
endpoint times out alone. Rounds never overlap.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from opsconsole.health import Monitor, Round, RoundInProgress, Status
from tests.integration.conftest import environment
from tests.servers import Blackhole, HTTPServer, PostgresServer, RedisServer

pytestmark = pytest.mark.integration

TIMEOUT = 1.0


def members(pg: PostgresServer, redis: RedisServer, http: HTTPServer) -> tuple[dict, dict]:
    services = {
        "db": {"kind": "postgres", "url": pg.url(password=pg.password)},
        "cache": {"kind": "redis", "url": redis.url},
        "api": {"kind": "http", "url": http.url("/healthy")},
    }
    queues = {
        "emails": {"kind": "bullmq", "url": redis.url, "queue": "emails"},
        "legacy": {"kind": "redis-list", "url": redis.url, "key": "legacy:jobs"},
    }
    return services, queues


async def rounds_until(monitor: Monitor, check, limit: int, what: str) -> list[Round]:
    """Probe round after round (no overlap: each awaited) until `check(round)` holds; at most `limit` rounds."""
    seen: list[Round] = []
    for _ in range(limit):
        rnd = await monitor.round()
        seen.append(rnd)
        if check(rnd):
            return seen
        await asyncio.sleep(0.2)
    statuses = [{r.name: (r.status.value, r.error) for r in rnd.readings} for rnd in seen]
    raise AssertionError(f"{what} not seen in {limit} rounds: {statuses}")


def statuses(rnd: Round) -> dict[str, Status]:
    return {r.name: r.status for r in rnd.readings if r.parent is None}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_servers_killed_and_restarted_while_monitored(doomed_pg_running, doomed_redis_running, http_server, sig):
    pg, redis = doomed_pg_running, doomed_redis_running
    redis.cli("RPUSH", "legacy:jobs", "a", "b", "c")
    redis.cli("HSET", "bull:emails:meta", "opts.maxLenEvents", "10000")  # what BullMQ's new Queue() writes
    services, queues = members(pg, redis, http_server)

    async def scenario() -> None:
        monitor = Monitor(environment(services, queues), TIMEOUT)
        try:
            first = await monitor.round()
            assert set(statuses(first).values()) == {Status.OK}, [(r.name, r.error) for r in first.readings]
            assert first.reading("legacy").metrics["depth"] == 3

            pg.stop(sig)
            redis.stop(sig)
            down = await monitor.round()
            # The truth within one round, bounded by the timeout: never the last good value.
            assert down.duration_s < TIMEOUT + 0.5, down.duration_s
            got = statuses(down)
            assert got["api"] is Status.OK
            for name in ("db", "cache", "emails", "legacy"):
                reading = down.reading(name)
                assert got[name] is Status.CRIT, (name, reading.error)
                assert reading.error and "\n" not in reading.error
                assert reading.metrics.get("depth") is None  # no stale depth on a dead queue
            assert f"127.0.0.1:{redis.port}" in down.reading("cache").error
            assert pg.password not in down.reading("db").error
            again = await monitor.round()
            assert again.reading("db").consecutive_failures == 2
            assert again.reading("api").consecutive_failures == 0

            pg.start()
            redis.start()
            redis.cli("RPUSH", "legacy:jobs", "x")
            redis.cli("HSET", "bull:emails:meta", "opts.maxLenEvents", "10000")  # a fresh server: the app makes it again
            back = await rounds_until(monitor, lambda r: set(statuses(r).values()) == {Status.OK}, 5,
                                      "every member ok after the restart")
            assert len(back) <= 2, "pooled clients must reconnect at once, not after several bad rounds"
            assert back[-1].reading("legacy").metrics["depth"] == 1  # a fresh server, read fresh
            assert back[-1].reading("db").consecutive_failures == 0
        finally:
            await monitor.aclose()

    asyncio.run(scenario())


def test_every_kind_against_a_port_that_accepts_and_never_answers(blackhole: Blackhole, http_server):
    url = f"127.0.0.1:{blackhole.port}"
    services = {
        "db": {"kind": "postgres", "url": f"postgresql://ops@{url}/app"},
        "cache": {"kind": "redis", "url": f"redis://{url}/0"},
        "api": {"kind": "http", "url": f"http://{url}/health"},
        "fine": {"kind": "http", "url": http_server.url("/healthy")},
    }
    queues = {
        "emails": {"kind": "bullmq", "url": f"redis://{url}/1", "queue": "emails"},
        "old": {"kind": "bull", "url": f"redis://{url}/2", "queue": "old"},
        "list": {"kind": "redis-list", "url": f"redis://{url}/3", "key": "jobs"},
        "rabbit": {"kind": "rabbitmq", "url": f"http://guest:guest@{url}", "queue": "jobs"},
    }

    async def scenario() -> Round:
        monitor = Monitor(environment(services, queues), TIMEOUT)
        try:
            return await monitor.round()
        finally:
            await monitor.aclose()

    started = time.monotonic()
    rnd = asyncio.run(scenario())
    elapsed = time.monotonic() - started
    hung = [n for n in (*services, *queues) if n != "fine"]
    # Seven targets hang for a full timeout each: together they cost one timeout, not seven.
    assert elapsed < TIMEOUT * 2.5, elapsed
    for name in hung:
        reading = rnd.reading(name)
        assert reading.status is Status.CRIT, (name, reading.status, reading.error)
        assert "timed out" in reading.error, (name, reading.error)
    assert rnd.reading("fine").status is Status.OK
    assert rnd.reading("fine").latency_ms < TIMEOUT * 1000 / 2  # not held back by the hung ones
    assert "guest:guest" not in rnd.reading("rabbit").error


def test_slow_http_times_out_alone(http_server):
    services = {
        "slow": {"kind": "http", "url": http_server.url("/slow?s=5")},
        "crawl": {"kind": "http", "url": http_server.url("/slow?s=0.4"),
                  "thresholds": {"latency_ms": {"warn": 200, "crit": 4000}}},
        "fast": {"kind": "http", "url": http_server.url("/healthy")},
    }

    async def scenario() -> Round:
        monitor = Monitor(environment(services), TIMEOUT)
        try:
            return await monitor.round()
        finally:
            await monitor.aclose()

    started = time.monotonic()
    rnd = asyncio.run(scenario())
    assert time.monotonic() - started < TIMEOUT + 1.0
    assert (rnd.reading("slow").status, rnd.reading("slow").error) == (Status.CRIT, f"timed out after {TIMEOUT:g} s")
    assert rnd.reading("crawl").status is Status.WARN and rnd.reading("crawl").latency_ms >= 400
    assert rnd.reading("fast").status is Status.OK


def test_a_round_asked_for_while_one_hangs_is_refused_not_stacked(blackhole: Blackhole):
    services = {"api": {"kind": "http", "url": f"http://127.0.0.1:{blackhole.port}/health"}}

    async def scenario() -> None:
        monitor = Monitor(environment(services), TIMEOUT)
        try:
            first = asyncio.create_task(monitor.round())
            await asyncio.sleep(0.1)
            assert monitor.running
            with pytest.raises(RoundInProgress):
                await monitor.round()
            rnd = await first
            assert rnd.reading("api").status is Status.CRIT and not monitor.running
            assert (await monitor.round()).reading("api").consecutive_failures == 2
        finally:
            await monitor.aclose()

    asyncio.run(scenario())
