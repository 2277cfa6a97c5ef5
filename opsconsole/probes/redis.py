"""redis: PING latency, memory against maxmemory, evictions, clients, ops/s, role."""

from __future__ import annotations

import time

from opsconsole.config import Target
from opsconsole.health import Observation
from opsconsole.probes import Clients, describe, host_port


async def probe_redis(target: Target, clients: Clients) -> Observation:
    import redis.exceptions

    client = clients.redis(target.url or "")
    try:
        await client.ping()  # connects if needed, so the timed PING below is a pure round trip
        t0 = time.perf_counter()
        await client.ping()
        latency = (time.perf_counter() - t0) * 1000
        info = await client.info()
    except (redis.exceptions.RedisError, OSError) as exc:
        return Observation(error=describe(exc, where=host_port(target.url or "", default_port=6379)))
    used = int(info.get("used_memory", 0))
    maxmemory = int(info.get("maxmemory", 0))
    metrics = {
        "used_memory": used,
        "maxmemory": maxmemory,
        "evicted_keys": int(info.get("evicted_keys", 0)),
        "connected_clients": int(info.get("connected_clients", 0)),
        "ops_per_sec": int(info.get("instantaneous_ops_per_sec", 0)),
        "role": "replica" if info.get("role") == "slave" else info.get("role", "unknown"),
        "version": str(info.get("redis_version", "")),
    }
    if maxmemory:
        metrics["memory_pct"] = round(100.0 * used / maxmemory, 1)
    findings = []
    if metrics["role"] == "replica":
        link = info.get("master_link_status")
        if link != "up":
            from opsconsole.health import Status

            findings.append((Status.CRIT, f"replica link to primary is {link or 'unknown'}"))
        if "master_last_io_seconds_ago" in info:
            metrics["replication_lag_s"] = int(info["master_last_io_seconds_ago"])
    return Observation(latency_ms=round(latency, 3), metrics=metrics, findings=tuple(findings))
