"""Probes: one async function per kind, each returning an Observation.

Client libraries are imported inside the probe that needs them, so starting opsconsole (and
probing only HTTP, say) never pays for psycopg or redis.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from opsconsole import masking

if TYPE_CHECKING:
    from opsconsole.config import Target
    from opsconsole.health import Observation


class Clients:
    """Connections kept between rounds: one HTTP client, one Redis client per URL."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._http: dict[Any, Any] = {}
        self._redis: dict[str, Any] = {}

    def http(self, verify: bool | str = True) -> Any:
        """An httpx.AsyncClient; one per TLS setting (True, False, or a CA file path)."""
        key = verify
        client = self._http.get(key)
        if client is None:
            import httpx

            if isinstance(verify, str):
                import ssl

                verify = ssl.create_default_context(cafile=verify)

            # No pool limit: a round over hundreds of HTTP targets must not queue behind 100 sockets.
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=50)
            client = httpx.AsyncClient(timeout=self.timeout, limits=limits, verify=verify,
                                       follow_redirects=False, headers={"User-Agent": "opsconsole"})
            self._http[key] = client
        return client

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

    async def aclose(self) -> None:
        for client in self._http.values():
            await client.aclose()
        for client in self._redis.values():
            await client.aclose()
        self._http.clear()
        self._redis.clear()


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


def describe(exc: BaseException, where: str | None = None) -> str:
    """One line a tired human can act on, with any password masked. `where` is host:port."""
    chain = _chain(exc)
    if where and any(isinstance(e, ConnectionRefusedError) for e in chain):
        return f"connection refused by {where}"
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = _REFUSED.sub(lambda m: f"connection refused by {m['where']}", text)
    text = _NAME_UNKNOWN.sub(lambda m: f"unknown host {m['where']}: {m['why']}", text)
    if not text:
        text = type(exc).__name__
    if text == "All connection attempts failed" and len(chain) > 1:
        text = " ".join(str(chain[-1]).split()) or text  # the OS error says more than httpx's summary
    if len(text) > 300:
        text = text[:297] + "..."
    return masking.mask(text)


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
