"""http: status code and latency; the stack's health JSON is unfolded into its sub-services.

The stack's format: {"healthy": bool, "services": {name: {"status": ..., "latency": ms}}}.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

from opsconsole import masking
from opsconsole.config import Target
from opsconsole.health import Child, Observation, Status, timed_out
from opsconsole.probes import Clients, WireTiming, describe, host_port

_MAX_BODY = 1 << 20  # a health body larger than 1 MiB is cut, not read whole

_OK = {"ok", "healthy", "up", "pass", "passing", "green", "true"}
_WARN = {"warn", "warning", "degraded", "slow", "yellow"}
_CRIT = {"crit", "critical", "down", "fail", "failed", "failing", "error", "unhealthy", "red", "false"}


def sub_status(value: Any) -> Status:
    if isinstance(value, bool):
        return Status.OK if value else Status.CRIT
    text = str(value).strip().lower()
    if text in _OK:
        return Status.OK
    if text in _WARN:
        return Status.WARN
    if text in _CRIT:
        return Status.CRIT
    return Status.UNKNOWN


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None  # NaN and 1e400 (inf) would make `check --json` invalid JSON


def _shown(value: Any, limit: int) -> str:
    """Text from the server (body, reason phrase, Location) as it may be shown: the server chose it, so its
    control characters are escaped, line breaks too (one member, one line)."""
    return masking.printable(str(value)[:limit], one_line=True)


def unfold(body: Any) -> tuple[list[tuple[Status, str]], tuple[Child, ...]]:
    """Findings and sub-services from a health JSON body; anything else yields nothing."""
    findings: list[tuple[Status, str]] = []
    children: list[Child] = []
    if not isinstance(body, dict):
        return findings, ()
    if body.get("healthy") is False:
        findings.append((Status.CRIT, "reports healthy: false"))
    services = body.get("services")
    if isinstance(services, dict):
        for name, sub in services.items():
            if isinstance(sub, dict):
                raw = sub.get("status", sub.get("healthy"))
                status = sub_status(raw)
                detail = sub.get("error") or sub.get("message")
                children.append(Child(
                    name=_shown(name, 80),
                    status=status,
                    latency_ms=_number(sub.get("latency", sub.get("latency_ms"))),
                    detail=_shown(detail, 200) if detail else (_shown(f"status {raw!r}", 200) if status is Status.UNKNOWN else None),
                ))
            else:
                children.append(Child(name=_shown(name, 80), status=sub_status(sub)))
    return findings, tuple(children)


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
        findings.append((Status.CRIT, f"HTTP {code} {_shown(reason, 200)}".strip()))
    elif code >= 300:
        findings.append((Status.WARN, f"HTTP {code} redirect to {_shown(location, 200)}"))
    children: tuple[Child, ...] = ()
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
            if "json" in content_type:
                findings.append((Status.WARN, "health body is not valid JSON"))
        else:
            more, children = unfold(body)
            findings.extend(more)
    return Observation(latency_ms=round(latency, 3), metrics={"status_code": code},
                       findings=tuple(findings), children=children)
