"""Probes: one async function per kind, each returning an Observation.

Client libraries are imported inside the probe that needs them, so starting opsconsole (and
probing only HTTP, say) never pays for psycopg or redis.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from opsconsole import masking

if TYPE_CHECKING:
    from opsconsole.config import Target
    from opsconsole.health import Observation


class Clients:
    """What is kept between rounds: one HTTP client, one Redis client per URL, each member's last health body."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._http: dict[Any, Any] = {}
        self._redis: dict[str, Any] = {}
        self._sqs: dict[tuple[str | None, ...], Any] = {}
        # member -> (its last health body, content type, what it said, masking generation): see probes.http._read_body
        self.bodies: dict[str, tuple[bytes, str, Any, int]] = {}

    def http(self, verify: bool | str = True) -> Any:
        """An aiohttp.ClientSession per TLS setting (True, False, or a CA file path).

        aiohttp rather than httpx: at 180 concurrent health checks httpx spent ~2 s of CPU per
        round in its pool (and that time inflated every latency measured in the same loop);
        aiohttp's connector does the same round in a few tens of milliseconds.
        """
        session = self._http.get(verify)
        if session is None:
            import aiohttp

            if verify is True:
                ssl_arg: Any = True
            elif verify is False:
                ssl_arg = False
            else:
                import ssl

                ssl_arg = ssl.create_default_context(cafile=verify)
            trace = aiohttp.TraceConfig()
            trace.on_connection_create_start.append(_trace_start)
            trace.on_request_headers_sent.append(_trace_start)
            trace.on_request_end.append(_trace_end)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ssl=ssl_arg, ttl_dns_cache=60),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "opsconsole"},
                trace_configs=[trace],
            )
            self._http[verify] = session
        return session

    def redis(self, url: str) -> Any:
        """A redis.asyncio client per URL, shared by every target that names that URL."""
        client = self._redis.get(url)
        if client is None:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(url, socket_timeout=self.timeout,
                                             socket_connect_timeout=self.timeout,
                                             health_check_interval=30)
            self._redis[url] = client
        return client

    def sqs(self, region: str | None, endpoint_url: str | None, profile: str | None) -> Any:
        """A boto3 SQS client per (region, endpoint, profile). Blocking: call it in a thread."""
        key = (region, endpoint_url, profile)
        client = self._sqs.get(key)
        if client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            session = boto3.session.Session(profile_name=profile, region_name=region)
            config = BotoConfig(connect_timeout=self.timeout, read_timeout=self.timeout,
                                retries={"max_attempts": 1})
            client = session.client("sqs", endpoint_url=endpoint_url, config=config)
            self._sqs[key] = client
        return client

    async def aclose(self) -> None:
        for session in self._http.values():
            await session.close()
        for client in self._redis.values():
            await client.aclose()
        self._http.clear()
        self._redis.clear()
        self._sqs.clear()
        self.bodies.clear()


_REFUSED = re.compile(r"Error 111 connecting to (?P<where>\S+?)\.? Connect call failed.*")
_NAME_UNKNOWN = re.compile(r"Error -?\d+ connecting to (?P<where>\S+?)\.? (?P<why>(Name or service not known|"
                           r"Temporary failure in name resolution|nodename nor servname provided, or not known)).*")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


class WireTiming:
    """Latency on the wire: from connecting (or sending, on a kept connection) to the response
    headers. Time the client spends before that is not the target's latency."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.end: float | None = None

    def latency_ms(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start) * 1000


async def _trace_start(session: Any, ctx: Any, params: Any) -> None:
    timing = ctx.trace_request_ctx
    if isinstance(timing, WireTiming) and timing.start is None:
        timing.start = time.perf_counter()


async def _trace_end(session: Any, ctx: Any, params: Any) -> None:
    timing = ctx.trace_request_ctx
    if isinstance(timing, WireTiming):
        timing.end = time.perf_counter()


def host_port(url: str, default_port: int | None = None) -> str:
    """host:port of a URL, for error messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or default_port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def describe(exc: BaseException, where: str | None = None) -> str:
    """One line a tired human can act on, with any password masked. `where` is host:port."""
    chain = _chain(exc)
    if where and any(isinstance(e, ConnectionRefusedError) for e in chain):
        return f"connection refused by {where}"
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if where and text.rstrip(".").lower() == "connection closed by server":
        return f"connection closed by {where} (the server went away mid-conversation)"
    text = _REFUSED.sub(lambda m: f"connection refused by {m['where']}", text)
    text = _NAME_UNKNOWN.sub(lambda m: f"unknown host {m['where']}: {m['why']}", text)
    if not text:
        text = type(exc).__name__
    if len(text) > 300:
        text = text[:297] + "..."
    return masking.printable(text)


def _probe_for(kind: str) -> Callable[[Target, Clients], Awaitable[Observation]]:
    if kind == "postgres":
        from opsconsole.probes.postgres import probe_postgres as fn
    elif kind == "redis":
        from opsconsole.probes.redis import probe_redis as fn
    elif kind == "http":
        from opsconsole.probes.http import probe_http as fn
    elif kind == "tcp":
        from opsconsole.probes.tcp import probe_tcp as fn
    else:
        from opsconsole.probes.queues import probe_queue as fn
    return fn


async def probe(target: Target, clients: Clients) -> Observation:
    assert target.kind is not None
    return await _probe_for(target.kind)(target, clients)


# The client libraries each kind needs; `preload` imports them ahead of the first round.
_LIBRARIES = {
    "postgres": ("psycopg",),
    "redis": ("redis.asyncio",),
    "http": ("aiohttp",),
    "tcp": (),
    "bullmq": ("redis.asyncio",),
    "bull": ("redis.asyncio",),
    "redis-list": ("redis.asyncio",),
    "rabbitmq": ("aiohttp",),
    "sqs": ("boto3",),
}


_QUEUE_FIELDS = ("depth", "paused", "counts", "rate_per_s", "eta_s")

# What a reading of each kind can report, for checking an `expect` before a run: the metrics a probe sets (a test
# holds every real probe to this list), "status" and "latency_ms". `counts` is a table of the names below it.
FIELDS: dict[str, tuple[str, ...]] = {
    "postgres": ("latency_ms", "connections", "max_connections", "connections_pct", "longest_query_s",
                 "replication_lag_s", "size_bytes", "version", "connect_ms", "role"),
    "redis": ("latency_ms", "used_memory", "maxmemory", "memory_pct", "evicted_keys", "connected_clients",
              "ops_per_sec", "role", "version", "replication_lag_s"),
    "http": ("latency_ms", "status_code", "health_format"),
    "tcp": ("latency_ms",),
    "bullmq": _QUEUE_FIELDS + ("failed", "delayed", "version"),
    "bull": _QUEUE_FIELDS + ("failed", "delayed"),
    "redis-list": _QUEUE_FIELDS,
    "rabbitmq": _QUEUE_FIELDS + ("unacknowledged", "consumers", "publish_rate", "deliver_rate", "ack_rate", "state"),
    "sqs": _QUEUE_FIELDS + ("delayed",),
}
COUNTS: dict[str, tuple[str, ...]] = {
    "bullmq": ("active", "completed", "delayed", "failed", "paused", "prioritized", "waiting", "waiting-children"),
    "bull": ("waiting", "active", "completed", "failed", "delayed", "paused"),
    "redis-list": ("waiting",),
    "rabbitmq": ("messages", "ready", "unacknowledged"),
    "sqs": ("visible", "not_visible", "delayed"),
}


def preload(targets: Sequence[Target]) -> None:
    """Import the probe modules and client libraries `targets` need.

    Meant for a worker thread: the TUI draws its first frame while these load, instead of the
    first round importing them on the event loop.
    """
    import importlib

    for target in targets:
        _probe_for(target.kind or "")
        for name in _LIBRARIES.get(target.kind or "", ()):
            importlib.import_module(name)


def units(targets: Sequence[Target]) -> list[list[Target]]:
    """How a round is split: Redis-backed queues sharing a URL form one unit (one pipeline);
    every other target is a unit of its own."""
    from opsconsole.probes.queues import REDIS_QUEUE_KINDS

    grouped: dict[str, list[Target]] = {}
    out: list[list[Target]] = []
    for target in targets:
        if target.kind in REDIS_QUEUE_KINDS:
            group = grouped.get(target.url or "")
            if group is None:
                group = grouped[target.url or ""] = []
                out.append(group)
            group.append(target)
        else:
            out.append([target])
    return out


async def probe_unit(unit: Sequence[Target], clients: Clients) -> list[Observation]:
    if len(unit) == 1:
        return [await probe(unit[0], clients)]
    from opsconsole.probes.queues import probe_redis_queues

    return await probe_redis_queues(unit, clients)
