"""Queue probes. Reading queue systems exactly is the queue issue's work; until it lands a queue
reads `unknown` with that reason rather than a made-up number."""

from __future__ import annotations

from opsconsole.config import Target
from opsconsole.health import Observation
from opsconsole.probes import Clients


async def probe_queue(target: Target, clients: Clients) -> Observation:
    return Observation(unknown=f"{target.kind} queues are not probed by this version")
