"""How a probe round is shown: the `check --json` object (docs/health.md#opsconsole-check) and a readable table."""

from __future__ import annotations

import json
from typing import Any

from opsconsole import masking, text
from opsconsole.health import Reading, Round

_QUEUE_LIFTED = ("depth", "paused", "counts", "rate_per_s", "eta_s")


def reading_json(r: Reading) -> dict[str, Any]:
    metrics = {k: v for k, v in r.metrics.items() if not (r.group == "queue" and k in _QUEUE_LIFTED)}
    item: dict[str, Any] = {
        "name": r.name,
        "kind": r.kind,
        "status": r.status.value,
        "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 3),
    }
    if r.group == "queue":
        item["depth"] = r.metrics.get("depth")
        item["paused"] = r.metrics.get("paused")
        item["counts"] = r.metrics.get("counts")
        if "rate_per_s" in r.metrics:  # once a second round exists
            item["rate_per_s"] = r.metrics["rate_per_s"]
            item["eta_s"] = r.metrics["eta_s"]
    item["metrics"] = metrics
    item["error"] = r.error
    item["reasons"] = list(r.reasons)
    if r.parent is not None:
        item["parent"] = r.parent
    else:
        # Consecutive crit checks, and whether that is past the `failures` threshold (a hard state: alert).
        item["failed_checks"] = r.consecutive_failures
        item["alert"] = r.alerting
    return item


def round_json(rnd: Round) -> dict[str, Any]:
    return {
        "environment": rnd.environment,
        "status": rnd.status.value,
        "checked_at": rnd.started_at.isoformat(timespec="seconds"),
        "duration_ms": round(rnd.duration_s * 1000, 1),
        "services": [reading_json(r) for r in rnd.readings if r.group == "service"],
        "queues": [reading_json(r) for r in rnd.readings if r.group == "queue"],
    }


def dumps(obj: Any) -> str:
    return masking.mask(json.dumps(obj, indent=None, default=str))


def figures(r: Reading) -> list[str]:
    """The key figures of a reading as short phrases (the table's detail column, the TUI's panels)."""
    m = r.metrics
    parts: list[str] = []
    if r.parent is not None:  # a check of a health body: whatever figures it gave
        if "observedValue" in m:  # application/health+json
            parts.append(f"{_figure(m['observedValue'])} {m.get('observedUnit', '')}".rstrip())
        parts.extend(f"{k} {_figure(v)}" for k, v in m.items()
                     if k not in ("observedValue", "observedUnit", "componentType") and not isinstance(v, str))
        return parts[:6]
    if r.kind == "postgres":
        if "connections" in m:
            parts.append(f"{m['connections']}/{m.get('max_connections', '?')} conns")
        if m.get("longest_query_s"):
            parts.append(f"longest query {m['longest_query_s']:.1f}s")
        if "replication_lag_s" in m:
            parts.append(f"lag {m['replication_lag_s']:.1f}s")
        if "size_bytes" in m:
            parts.append(text.human_bytes(m["size_bytes"]))
    elif r.kind == "redis":
        if "used_memory" in m:
            mem = text.human_bytes(m["used_memory"])
            if m.get("maxmemory"):
                mem += f" / {text.human_bytes(m['maxmemory'])} ({m.get('memory_pct', 0):.0f}%)"
            parts.append(mem)
        if "connected_clients" in m:
            parts.append(f"{m['connected_clients']} clients")
        if "ops_per_sec" in m:
            parts.append(f"{m['ops_per_sec']} ops/s")
        if m.get("evicted_keys"):
            parts.append(f"{m['evicted_keys']} evicted")
        if "role" in m:
            parts.append(str(m["role"]))
    elif r.kind == "http" and "status_code" in m:
        parts.append(f"HTTP {m['status_code']}")
    elif r.group == "queue" and m.get("depth") is not None:
        parts.append(f"depth {m['depth']}")
        if m.get("paused"):
            parts.append("paused")
        counts = m.get("counts") or {}
        failed = counts.get("failed", m.get("failed"))
        if failed:
            parts.append(f"{failed} failed")
        if "consumers" in m:
            parts.append(f"{m['consumers']} consumers")
        parts.append(trend_text(m.get("rate_per_s"), m.get("eta_s")))
    return parts


def _figure(value: object) -> str:
    """A number a health body gave, readable: 1209600.245 as 1209600, 8.5 as 8.5, never 1.2096e+06."""
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def failures_text(r: Reading) -> str:
    """How long a member has been crit against its `failures` threshold: "failed 2× in a row · alerts after 3"
    while it is a soft state, "ALERT: failed 5× in a row" once it alerts; "" while it is not crit."""
    if not r.consecutive_failures:
        return ""
    if r.alerting:
        return f"ALERT: failed {r.consecutive_failures}× in a row"
    if r.alert_after is None:
        return f"failed {r.consecutive_failures}× in a row"
    return f"failed {r.consecutive_failures}× in a row · alerts after {r.alert_after}"


def summary(r: Reading) -> str:
    """The key figures of a reading in a few words, after what is wrong."""
    if r.error:
        return r.error
    text = ", ".join(figures(r))
    if r.reasons:
        text = "; ".join(r.reasons) + (f" — {text}" if text else "")
    return text


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def trend_text(rate: float | None, eta: float | None) -> str:
    if rate is None:
        return "trend after the next round"
    if rate < 0:
        return f"draining {-rate:.3g}/s" + (f", empty in {duration(eta)}" if eta is not None else "")
    if rate > 0:
        return f"growing {rate:.3g}/s"
    return "steady"


def _latency(r: Reading) -> str:
    return "-" if r.latency_ms is None else f"{r.latency_ms:.1f} ms"


def table(rnd: Round) -> str:
    """A plain table for terminals and logs; status words stay readable without colour."""
    header = (f"{rnd.environment}: {rnd.status.value.upper()}  "
              f"(checked {rnd.started_at.strftime('%Y-%m-%d %H:%M:%S %Z')}, round {rnd.duration_s * 1000:.0f} ms)")
    rows = [("STATUS", "NAME", "KIND", "LATENCY", "DETAIL")]
    for r in rnd.readings:
        name = f"  {r.name}" if r.parent else r.name
        detail = summary(r)
        if r.alerting or r.consecutive_failures > 1:  # `check --watch`: how long it has been down
            detail = f"{detail} [{failures_text(r)}]"
        rows.append(tuple(masking.printable(cell) for cell in (r.status.value, name, r.kind, _latency(r), detail)))
    if len(rows) == 1:
        return header + "\n(nothing to probe: add services or queues with a kind and url)"
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [header]
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(4)] + [row[4]]
        lines.append("  ".join(cells).rstrip())
    return masking.printable("\n".join(lines))
