"""http: status code and latency; a JSON health body (the stack's, Terminus, Actuator, health+json,
MicroProfile: see health_formats) is unfolded into sub-services, and its own status counts for the member."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from opsconsole import masking
from opsconsole.config import Target
from opsconsole.health import Child, Observation, Status, timed_out
from opsconsole.probes import Clients, WireTiming, describe, health_formats, host_port

_MAX_BODY = 1 << 20  # a health body larger than 1 MiB is cut, not read whole

def body_findings(body: health_formats.BodyHealth) -> list[tuple[Status, str]]:
    """What a health body says about the member itself: its own status (whatever the HTTP code), checks left
    out, and what was malformed."""
    findings: list[tuple[Status, str]] = []
    if body.status is not None and body.status is not Status.OK:
        said = body.said if body.said.startswith("healthy") else f"status {body.said}"
        message = f": {body.message}" if body.message else ""
        findings.append((body.status, f"reports {said}{message}"))
    if body.dropped_worst is not None:
        # The worst checks are the ones kept, so this never hides a failure; it says the list is cut.
        findings.append((body.dropped_worst, f"{body.total - len(body.children)} of {body.total} checks not "
                                             f"shown (the worst of them {body.dropped_worst.value})"))
    for problem in body.problems:
        findings.append((Status.WARN, f"health body: {problem}"))
    return findings


def _read_body(clients: Clients, name: str, raw: bytes, content_type: str) -> health_formats.BodyHealth | str | None:
    """The health a body reports; "invalid" for JSON that does not parse, None for a body that is not JSON.

    A service answers the same body round after round: the last body read for each member is kept with what it
    said, so an unchanged body costs one comparison, not a parse (10,000 checks a round at 200 members)."""
    kept = clients.bodies.get(name)
    if kept is not None and kept[3] != masking.generation():
        kept = None  # a secret was registered since: what was kept was masked without it, read it all again
    if kept is not None and kept[0] == raw and kept[1] == content_type:
        return kept[2]
    text = raw.decode("utf-8", errors="replace")
    health: health_formats.BodyHealth | str | None = None
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
            health = "invalid" if "json" in content_type else None
        else:
            previous = kept[2] if kept is not None and isinstance(kept[2], health_formats.BodyHealth) else None
            health = health_formats.read(body, content_type, previous)
    clients.bodies[name] = (raw, content_type, health, masking.generation())
    return health


async def _read_at_most(stream: Any, limit: int) -> bytes:
    """The body up to `limit` bytes. One `read(limit)` returns what has arrived so far (often 64 KiB), which cut a
    valid 100 KB health body into "not valid JSON"."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def probe_http(target: Target, clients: Clients) -> Observation:
    import aiohttp

    verify = target.options.get("ca_file") or bool(target.options.get("tls_verify", True))
    try:
        session = clients.http(verify)
    except OSError as exc:  # an unreadable ca_file
        return Observation(error=f"cannot load ca_file: {describe(exc)}")
    timing = WireTiming()
    t0 = time.perf_counter()
    try:
        async with session.get(target.url or "", allow_redirects=False, trace_request_ctx=timing) as response:
            raw = await _read_at_most(response.content, _MAX_BODY)
            code, reason = response.status, response.reason or ""
            content_type = response.headers.get("Content-Type", "")
            location = response.headers.get("Location", "?")
    except (TimeoutError, asyncio.TimeoutError):
        return timed_out(clients.timeout)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return Observation(error=describe(exc, where=host_port(target.url or "")))
    latency = timing.latency_ms() or (time.perf_counter() - t0) * 1000
    findings: list[tuple[Status, str]] = []
    if code >= 400:
        findings.append((Status.CRIT, f"HTTP {code} {health_formats.shown(reason, 200)}".strip()))
    elif code >= 300:
        findings.append((Status.WARN, f"HTTP {code} redirect to {health_formats.shown(location, 200)}"))
    children: tuple[Child, ...] = ()
    metrics: dict[str, Any] = {"status_code": code}
    health = _read_body(clients, target.name, raw, content_type)
    if health == "invalid":
        findings.append((Status.WARN, "health body is not valid JSON"))
    elif health is not None:
        findings.extend(body_findings(health))
        children = health.children
        metrics["health_format"] = health.format or "unknown shape: judged by the HTTP code alone"
    return Observation(latency_ms=round(latency, 3), metrics=metrics, findings=tuple(findings), children=children)
