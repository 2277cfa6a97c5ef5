"""postgres: round-trip latency, connections, longest query, replication lag, size (psycopg async)."""

from __future__ import annotations

import time

from opsconsole.config import Target
from opsconsole.health import Observation
from opsconsole.probes import Clients, describe

# One statement for everything but latency. Lag on a replica is 0 while it has replayed all it
# received; otherwise the age of the last replayed transaction.
_METRICS_SQL = """
SELECT
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections,
  current_setting('max_connections')::int AS max_connections,
  (SELECT coalesce(max(extract(epoch FROM clock_timestamp() - query_start)), 0)::float8
     FROM pg_stat_activity
    WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()) AS longest_query_s,
  pg_is_in_recovery() AS replica,
  CASE WHEN NOT pg_is_in_recovery() THEN NULL
       WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
       ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END AS replication_lag_s,
  pg_database_size(current_database()) AS size_bytes,
  current_setting('server_version') AS version
"""


async def probe_postgres(target: Target, clients: Clients) -> Observation:
    import psycopg

    t0 = time.perf_counter()
    try:
        conn = await psycopg.AsyncConnection.connect(target.url or "", autocommit=True,
                                                      connect_timeout=max(2, int(clients.timeout + 0.999)),
                                                      application_name="opsconsole")
    except psycopg.Error as exc:
        return Observation(error=describe(exc))
    connect_ms = (time.perf_counter() - t0) * 1000
    try:
        async with conn:
            t1 = time.perf_counter()
            await conn.execute("SELECT 1")
            latency = (time.perf_counter() - t1) * 1000
            cur = await conn.execute(_METRICS_SQL)
            row = await cur.fetchone()
            names = [c.name for c in cur.description or ()]
    except psycopg.Error as exc:
        return Observation(error=describe(exc))
    metrics = dict(zip(names, row or ()))
    metrics["connect_ms"] = round(connect_ms, 2)
    if metrics.get("max_connections"):
        metrics["connections_pct"] = round(100.0 * metrics["connections"] / metrics["max_connections"], 1)
    metrics["role"] = "replica" if metrics.pop("replica", False) else "primary"
    if metrics.get("replication_lag_s") is None:
        metrics.pop("replication_lag_s", None)
    metrics["longest_query_s"] = round(float(metrics.get("longest_query_s") or 0), 3)
    return Observation(latency_ms=round(latency, 3), metrics=metrics)
