"""tcp: can a connection be opened, and how long does it take."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

from opsconsole.config import Target
from opsconsole.health import Observation
from opsconsole.probes import Clients, describe


async def probe_tcp(target: Target, clients: Clients) -> Observation:
    url = target.url or ""
    parts = urlsplit(url if "://" in url else "tcp://" + url)
    t0 = time.perf_counter()
    try:
        _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    except OSError as exc:
        return Observation(error=describe(exc, where=f"{parts.hostname}:{parts.port}"))
    latency = (time.perf_counter() - t0) * 1000
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return Observation(latency_ms=latency)
