"""Fixtures of the fault suite: servers of its own, so a test can kill them without touching anyone else's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import PostgresServer, RedisServer, tempdir


@pytest.fixture(scope="module")
def doomed_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster this module may stop, crash and restart at will (plain TCP, password auth)."""
    server = PostgresServer(tempdir("opsconsole-fault-pg-"), None)
    server.start()
    yield server
    server.close()


@pytest.fixture
def doomed_pg_running(doomed_pg: PostgresServer) -> PostgresServer:
    doomed_pg.start()
    return doomed_pg


@pytest.fixture(scope="module")
def doomed_redis() -> Iterator[RedisServer]:
    """A redis-server this module may kill and restart (same port, nothing kept on disk)."""
    server = RedisServer(tempdir("opsconsole-fault-redis-"))
    server.start()
    yield server
    server.close()


@pytest.fixture
def doomed_redis_running(doomed_redis: RedisServer) -> RedisServer:
    doomed_redis.start()
    doomed_redis.cli("FLUSHALL")
    return doomed_redis
