"""Thresholds: their defaults, how config layers them, and the one function that judges a reading.

Defaults follow the stack's ADRs: database latency alerts above 200 ms, Redis above 100 ms, queue
depth above 1000, memory above 80 %, more than 3 consecutive failed checks. The warn levels are ours.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsconsole.config_schema import close_match

SERVICE_KINDS = ("postgres", "redis", "http", "tcp")
QUEUE_KINDS = ("bullmq", "bull", "rabbitmq", "sqs", "redis-list")
ALL_KINDS = SERVICE_KINDS + QUEUE_KINDS


@dataclass(frozen=True)
class Threshold:
    """A metric is `warn` above `warn` and `crit` above `crit` (strictly above)."""

    warn: float | None = None
    crit: float | None = None

    def merged(self, other: Threshold) -> Threshold:
        return Threshold(
            warn=other.warn if other.warn is not None else self.warn,
            crit=other.crit if other.crit is not None else self.crit,
        )


_QUEUE_METRICS = ("depth", "failed", "delayed", "unacknowledged", "eta_s")

# The metrics a threshold may name, per kind. `failures` (consecutive failed checks) is for all.
METRICS: dict[str, tuple[str, ...]] = {
    "postgres": ("latency_ms", "connections_pct", "longest_query_s", "replication_lag_s", "size_bytes"),
    "redis": ("latency_ms", "memory_pct", "evicted_keys", "connected_clients", "replication_lag_s"),
    "http": ("latency_ms",),
    "tcp": ("latency_ms",),
    **{kind: _QUEUE_METRICS for kind in QUEUE_KINDS},
}
for _kind in METRICS:
    METRICS[_kind] = METRICS[_kind] + ("failures",)

_COMMON = {"failures": Threshold(crit=3)}
_QUEUE_DEFAULTS = {"depth": Threshold(warn=500, crit=1000)}

DEFAULTS: dict[str, dict[str, Threshold]] = {
    "postgres": {
        "latency_ms": Threshold(warn=100, crit=200),
        "connections_pct": Threshold(warn=80, crit=90),
        "longest_query_s": Threshold(warn=60, crit=300),
        "replication_lag_s": Threshold(warn=10, crit=60),
    },
    "redis": {
        "latency_ms": Threshold(warn=50, crit=100),
        "memory_pct": Threshold(warn=70, crit=80),
    },
    "http": {"latency_ms": Threshold(warn=500, crit=1000)},
    "tcp": {"latency_ms": Threshold(warn=200, crit=1000)},
    **{kind: dict(_QUEUE_DEFAULTS) for kind in QUEUE_KINDS},
}
for _kind in DEFAULTS:
    DEFAULTS[_kind] = {**DEFAULTS[_kind], **_COMMON}

ALL_METRICS = frozenset(m for metrics in METRICS.values() for m in metrics)

Layer = Mapping[str, Any]


class ThresholdError(ValueError):
    """A threshold table is wrong; `path` is the key path inside the table at fault."""

    def __init__(self, message: str, path: tuple[str, ...]) -> None:
        super().__init__(message)
        self.path = path


def parse_threshold(value: Any, path: tuple[str, ...]) -> Threshold:
    """`1000` means crit above 1000; `{warn = 500, crit = 1000}` sets both."""
    def number(v: Any, where: tuple[str, ...]) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:  # nan: nothing is ever above it
            raise ThresholdError(f"threshold must be a number, not {v!r}", where)
        if v < 0:
            raise ThresholdError(f"threshold must not be negative, got {v}", where)
        if isinstance(v, int) and v > sys.float_info.max:  # float() would raise OverflowError
            raise ThresholdError(f"threshold is too large ({len(str(v))} digits)", where)
        return float(v)

    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"warn", "crit"})
        if unknown:
            raise ThresholdError(f"unknown threshold level {unknown[0]!r} (use warn and crit)", path + (unknown[0],))
        if not value:
            raise ThresholdError("threshold needs warn, crit or both", path)
        warn = number(value["warn"], path + ("warn",)) if "warn" in value else None
        crit = number(value["crit"], path + ("crit",)) if "crit" in value else None
        if warn is not None and crit is not None and warn > crit:
            raise ThresholdError(f"warn ({warn:g}) is above crit ({crit:g})", path)
        return Threshold(warn=warn, crit=crit)
    return Threshold(crit=number(value, path))


def validate_layer(layer: Any, path: tuple[str, ...], kind: str | None = None) -> None:
    """Check a `thresholds` table. Global and environment tables may hold per-kind sub-tables;
    a member's table (`kind` given) may only name that kind's metrics."""
    if not isinstance(layer, Mapping):
        raise ThresholdError("thresholds must be a table", path)
    for key, value in layer.items():
        here = path + (key,)
        if kind is None and key in ALL_KINDS:
            validate_layer(value, here, kind=key)
            continue
        allowed = METRICS[kind] if kind else ALL_METRICS
        if key not in allowed:
            hint = ", ".join(sorted(allowed))
            what = f"for {kind}" if kind else ""
            close = close_match(key, allowed)
            mean = f"did you mean {close!r}?; " if close else ""
            raise ThresholdError(f"unknown threshold {key!r} {what} ({mean}known: {hint})".replace("  ", " "), here)
        parse_threshold(value, here)


def resolve(kind: str, layers: list[Layer], own: Layer | None) -> dict[str, Threshold]:
    """The thresholds for one member: defaults, then each layer (global, environment), then its own.

    Layers are assumed validated. A level left out of a layer keeps the value from below.
    """
    result = dict(DEFAULTS.get(kind, _COMMON))
    allowed = METRICS.get(kind, ("failures",))

    def apply(table: Layer) -> None:
        for metric, value in table.items():
            if metric in allowed:
                result[metric] = result.get(metric, Threshold()).merged(parse_threshold(value, (metric,)))

    for layer in layers:
        apply({k: v for k, v in layer.items() if k not in ALL_KINDS})
        per_kind = layer.get(kind)
        if isinstance(per_kind, Mapping):
            apply(per_kind)
    if own:
        apply(own)
    return result
