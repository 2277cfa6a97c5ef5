"""Numbers as a tired engineer reads them: bytes in KiB/MiB/GiB, durations in ms/s/min, shares in %.

One formatter for every front end (the TUI's detail view today; the CLI's tables should use the same). Which unit a
metric has is read from its name, the names the probes in opsconsole/probes/ give (`size_bytes`, `used_memory`,
`latency_ms`, `longest_query_s`, `memory_pct`, `ops_per_sec` ...). Plain Python: no textual, no rich.
"""

from __future__ import annotations

import math
from typing import Any

_BYTE_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")
# Metrics named for bytes without saying so: Redis' used_memory and maxmemory, a health body's `size` or `memory`.
_BYTE_NAMES = frozenset({"memory", "size", "used_memory", "maxmemory", "used_memory_rss", "used_memory_peak"})
# 0 means "no limit" for these, not "nothing allowed".
_ZERO_IS_UNLIMITED = frozenset({"maxmemory"})


def human_bytes(n: float) -> str:
    """1023 → "1023 B", 7_759_663 → "7.4 MiB", 2**31 → "2.0 GiB" (binary units, named as such)."""
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in _BYTE_UNITS:
        n /= 1024
        if abs(n) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{n:.1f} {unit}" if abs(n) < 100 else f"{n:.0f} {unit}"
    raise AssertionError("unreachable")  # the loop returns at its last unit


def human_duration(seconds: float) -> str:
    """0.00348 → "3.48 ms", 0.129 → "129 ms", 1.25 → "1.2 s", 12.34 → "12 s", 272 → "4 min 32 s", 7260 → "121 min"."""
    if seconds < 0:
        return "-" + human_duration(-seconds)
    if seconds < 1:
        ms = seconds * 1000
        if ms == 0:
            return "0 s"
        return f"{_trim(ms, 2 if ms < 10 else 1 if ms < 100 else 0)} ms"
    if seconds < 60:
        return f"{_trim(seconds, 1 if seconds < 10 else 0)} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 10 and rest:
        return f"{minutes} min {rest} s"
    return f"{round(seconds / 60)} min"


def _trim(value: float, places: int) -> str:
    """`value` to `places` decimals, without trailing zeros: 4.0 → "4", 3.480 → "3.48"."""
    shown = f"{value:.{places}f}"
    return shown.rstrip("0").rstrip(".") if "." in shown else shown


def percent(value: float) -> str:
    """12.345 → "12.3%", 100 → "100%" (a value already in percent)."""
    return f"{_trim(value, 1)}%"


def number(value: Any) -> str:
    """A plain figure: 3.0 → "3", 3.14159 → "3.142", True → "yes", None → "-"."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def unit_of(key: str) -> str | None:
    """The unit a metric's name implies: "bytes", "ms", "s", "pct", "ratio", "rate", or None for a plain figure.

    Only the last part of a dotted name counts (`counts.waiting` is a count; `disk.size` is bytes)."""
    name = key.rsplit(".", 1)[-1].lower()
    if name.endswith(("_pct", "_percent")) or name in ("pct", "percent"):
        return "pct"
    if name.endswith("_ratio") or name == "ratio":
        return "ratio"
    if name.endswith(("_per_sec", "_per_s", "_rate")) or name == "rate":
        return "rate"
    if name.endswith("_bytes") or name in _BYTE_NAMES:
        return "bytes"
    if name.endswith("_ms"):
        return "ms"
    if name.endswith(("_s", "_seconds", "_secs", "_sec")):
        return "s"
    return None


def metric(key: str, value: Any) -> str:
    """A metric's value with the unit its name implies: ("size_bytes", 7759663) → "7.4 MiB",
    ("longest_query_s", 272.0) → "4 min 32 s", ("memory_pct", 81.25) → "81.3%", ("maxmemory", 0) → "no limit".

    Anything that is not a finite number (a version string, a role, a flag) is shown as it is."""
    try:
        finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an int too large for a float, from a health body: shown as the digits it is
        finite = False
    if not finite:
        return number(value) if not isinstance(value, int) or isinstance(value, bool) else str(value)
    unit = unit_of(key)
    if unit == "bytes":
        if value == 0 and key.rsplit(".", 1)[-1] in _ZERO_IS_UNLIMITED:
            return "no limit"
        return human_bytes(value)
    if unit == "ms":
        return "0 ms" if value == 0 else human_duration(value / 1000)
    if unit == "s":
        return human_duration(value)
    if unit == "pct":
        return percent(value)
    if unit == "ratio":
        return percent(value * 100)
    if unit == "rate":
        return f"{number(float(value))}/s"
    return number(value)
