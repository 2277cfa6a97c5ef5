"""The health bodies frameworks answer with, read into one shape: the body's own status and its checks.

Recognised by shape first (a content type can lie or be generic), the content type breaking ties:

- the stack's own:   {"healthy": bool, "services": {name: {"status": ..., "latency": ms}}}
- NestJS Terminus:   {"status": "ok"|"error"|"shutting_down", "info": {...}, "error": {...}, "details": {name:
                     {"status": "up"|"down", "message": ...}}}
- Spring Actuator:   {"status": "UP"|"DOWN"|"OUT_OF_SERVICE"|"UNKNOWN", "components": {name: {"status", "details",
                     "components"...}}} (2.2+), components under "details" (2.0/2.1), or beside "status" (1.x)
- IETF health+json:  {"status": "pass"|"warn"|"fail", "output", "checks": {"component:measurement": [{"status",
                     "componentId", "componentType", "observedValue", "observedUnit", "output", "time"}]}}
- MicroProfile:      {"status": "UP"|"DOWN", "checks": [{"name", "status", "data": {...}}]}

Anything else is an unknown shape: the probe then judges by the HTTP code alone and says so. Every string the
server chose is escaped before it can be shown; nothing here raises on a hostile body. Bodies come from
json.loads, so objects are checked as `dict` (an ABC isinstance cost a quarter of reading a body).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from opsconsole import masking
from opsconsole.health import Child, Status, worst

MAX_CHECKS = 200  # sub-services kept per body; the rest are counted (worst first are kept)
MAX_DEPTH = 32  # Actuator composites nest; deeper than this is not a real health tree

_OK = {"ok", "healthy", "up", "pass", "passing", "passed", "green", "true", "success"}
_WARN = {"warn", "warning", "degraded", "slow", "yellow"}
_CRIT = {"crit", "critical", "down", "fail", "failed", "failing", "error", "unhealthy", "red", "false",
         "out_of_service", "shutting_down"}

_MESSAGE_KEYS = ("output", "message", "error", "reason", "rootCause")  # rootCause: MicroProfile's 500
_TERMINUS = {"ok", "error", "shutting_down"}
_HEALTH_JSON = {"pass", "warn", "fail"}


def status_of(value: Any) -> Status:
    """A framework's status word as ours: UP/pass/ok are ok, warn is warn, DOWN/fail/error/OUT_OF_SERVICE are
    crit, anything else (UNKNOWN included) is unknown."""
    if isinstance(value, bool):
        return Status.OK if value else Status.CRIT
    text = str(value).strip().lower().replace("-", "_")
    if text in _OK:
        return Status.OK
    if text in _WARN:
        return Status.WARN
    if text in _CRIT:
        return Status.CRIT
    return Status.UNKNOWN


@dataclass(frozen=True)
class BodyHealth:
    """What a health body says: its format, its own status and its checks (at most MAX_CHECKS kept)."""

    format: str | None  # None: not a shape we know; the HTTP code alone decides
    status: Status | None = None  # the body's own top-level status, if it has one
    said: str = ""  # that status as the body wrote it, for the reason ("reports DOWN")
    message: str | None = None  # the body's top-level output or error
    children: tuple[Child, ...] = ()
    total: int = 0  # checks found, kept or not
    dropped_worst: Status | None = None  # the worst status among the checks not kept
    problems: tuple[str, ...] = field(default_factory=tuple)  # what was malformed in a recognised body
    nodes: Mapping[Any, tuple[Any, Child]] = field(default_factory=dict, compare=False, repr=False)


_SHOWN: dict[tuple[str, int], str] = {}
_SHOWN_CAP = 20_000
_MASK_SPAN = 64 * 1024  # what is masked of a long text before it is cut to its limit
_shown_generation = -1


def shown(value: Any, limit: int = 200) -> str:
    """Text from the server as it may be shown: masked, its control characters escaped, one line.

    Remembered while no new secret is registered: the same few hundred names and keys come back in every body of
    every round, and masking each afresh was most of what reading a changed body cost."""
    global _shown_generation
    text = value if isinstance(value, str) else str(value)
    if masking.generation() != _shown_generation:
        _SHOWN.clear()
        _shown_generation = masking.generation()
    key = (text, limit)
    out = _SHOWN.get(key)
    if out is None:
        # masked before it is cut: a secret crossing the cut would show its first half
        out = masking.printable(text[:_MASK_SPAN], one_line=True)[:limit]
        if len(text) <= 2 * limit:
            if len(_SHOWN) >= _SHOWN_CAP:
                _SHOWN.clear()
            _SHOWN[key] = out
    return out


def number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):  # NaN and inf would make `check --json` invalid
        return None
    if isinstance(value, int) and abs(value) > 2 ** 63:  # not a figure anyone reads; float() could overflow
        return None
    return value


def _message(node: Mapping[str, Any], depth: int = 0) -> str | None:
    for key in _MESSAGE_KEYS:
        value = node.get(key)
        if isinstance(value, str) and value.strip():
            return shown(value)
        if isinstance(value, dict) and depth < 3:  # Terminus puts some errors as objects; Actuator nests them
            inner = _message(value, depth + 1)
            if inner:
                return inner
    return None


def _figures(node: Mapping[str, Any], keys: dict[str, str], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The numeric figures of a check (depth, free, observedValue ...), at most 20, keyed by escaped names.
    `keys` remembers the escaped names within one body: its checks repeat the same few (total, free ...)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in skip or len(out) >= 20:
            continue
        figure = number(value)
        if figure is not None:
            name = keys.get(key)
            if name is None:
                name = keys[key] = shown(key, 60)
            out[name] = figure
    return out


class _Checks:
    """Collects checks, keeping the worst MAX_CHECKS in body order and remembering what was left out."""

    def __init__(self, previous: BodyHealth | None) -> None:
        self.items: list[Child] = []
        self.names: set[str] = set()
        self.keys: dict[str, str] = {}  # figure names as shown, per body (see _figures)
        self.previous = previous.nodes if previous is not None else {}
        self.nodes: dict[Any, tuple[Any, Child]] = {}  # what each check was read from, for the next body

    def reuse(self, key: Any, node: Any) -> bool:
        """Keep the check read from the same object in the member's previous body: a body changes a figure or two
        between rounds (Actuator's free disk bytes), rarely all of its checks. Comparing is C-speed; reading is not."""
        kept = self.previous.get(key)
        if kept is None or kept[1].name in self.names or kept[0] != node:
            return False
        self.names.add(kept[1].name)
        self.items.append(kept[1])
        self.nodes[key] = kept
        return True

    def add(self, name: Any, status: Status, *, latency_ms: Any = None, detail: str | None = None,
            metrics: Mapping[str, Any] | None = None, said: Any = None, node: Any = None) -> None:
        base = "/".join(shown(part, 80) for part in name) if isinstance(name, tuple) else shown(name, 80)
        base = base or "(unnamed)"
        unique, n = base, 1
        while unique in self.names:  # two checks of one name (MicroProfile allows it) stay two rows
            n += 1
            unique = f"{base}#{n}"
        self.names.add(unique)
        if detail is None and status is Status.UNKNOWN:
            if isinstance(said, str) and said.strip().lower() == "unknown":
                detail = f"reports {shown(said, 60)}"  # Actuator's own word: the check could not tell
            else:
                detail = f"status {shown(said, 60)!r} is not one opsconsole knows" if said is not None else "no status"
        latency = number(latency_ms)
        child = Child(name=unique, status=status, latency_ms=None if latency is None else float(latency),
                      detail=detail, metrics=dict(metrics or {}))
        self.items.append(child)
        if node is not None:
            self.nodes[name] = (node, child)

    def result(self) -> tuple[tuple[Child, ...], int, Status | None]:
        total = len(self.items)
        if total <= MAX_CHECKS:
            return tuple(self.items), total, None
        order = sorted(range(total), key=lambda i: -self.items[i].status.rank)
        keep = set(order[:MAX_CHECKS])
        dropped = worst(self.items[i].status for i in order[MAX_CHECKS:])
        return tuple(c for i, c in enumerate(self.items) if i in keep), total, dropped


def read(body: Any, content_type: str = "", previous: BodyHealth | None = None) -> BodyHealth:
    """The health a JSON body reports, whichever of the known formats it is in. `previous`, the same member's last
    body, lets checks that did not change be kept rather than read again."""
    if not isinstance(body, dict):
        return BodyHealth(format=None)
    content_type = content_type.lower()
    status = body.get("status")
    said = status.strip().lower() if isinstance(status, str) else None
    if isinstance(body.get("healthy"), bool) or isinstance(body.get("services"), dict):
        return _stack(body, previous)
    if said in _TERMINUS and any(isinstance(body.get(k), dict) for k in ("info", "error", "details")):
        return _terminus(body, previous)
    if isinstance(body.get("checks"), list):
        return _microprofile(body, previous)
    if isinstance(body.get("outcome"), str) and "status" not in body:  # MicroProfile Health 1.0
        return _microprofile(body, previous)
    if "health+json" in content_type or isinstance(body.get("checks"), dict) or said in _HEALTH_JSON:
        return _health_json(body, previous)
    if said is not None:
        return _actuator(body, previous)
    return BodyHealth(format=None)


def _own(body: Mapping[str, Any], fmt: str, checks: _Checks, problems: list[str] | None = None,
         status: Any = None) -> BodyHealth:
    raw = body.get("status") if status is None else status
    children, total, dropped = checks.result()
    return BodyHealth(format=fmt, status=None if raw is None else status_of(raw),
                      said="" if raw is None else shown(raw, 40), message=_message(body), children=children,
                      total=total, dropped_worst=dropped, problems=tuple(problems or ()), nodes=checks.nodes)


def _stack(body: Mapping[str, Any], previous: BodyHealth | None = None) -> BodyHealth:
    checks = _Checks(previous)
    services = body.get("services")
    if isinstance(services, dict):
        for name, sub in services.items():
            if isinstance(sub, dict):
                if checks.reuse(name, sub):
                    continue
                raw = sub.get("status", sub.get("healthy"))
                checks.add(name, status_of(raw), latency_ms=sub.get("latency", sub.get("latency_ms")),
                           detail=_message(sub), metrics=_figures(sub, checks.keys, skip=("latency", "latency_ms")),
                           said=raw, node=sub)
            else:
                checks.add(name, status_of(sub), said=sub)
    healthy = body.get("healthy")
    status = body.get("status") if "status" in body else (None if healthy is None else healthy)
    result = _own(body, "opsconsole", checks, status=status)
    if healthy is False and result.status is not Status.CRIT:
        return replace(result, status=Status.CRIT, said="healthy: false")
    if isinstance(healthy, bool) and "status" not in body:
        return replace(result, said=f"healthy: {'true' if healthy else 'false'}")
    return result


def _terminus(body: Mapping[str, Any], previous: BodyHealth | None = None) -> BodyHealth:
    # `details` holds every indicator; `info` (up) and `error` (down) split the same ones. Older Terminus (v7)
    # and hand-written bodies may send only info/error.
    indicators: dict[str, Any] = {}
    for key in ("info", "error", "details"):
        part = body.get(key)
        if isinstance(part, dict):
            indicators.update(part)
    checks = _Checks(previous)
    for name, indicator in indicators.items():
        if isinstance(indicator, dict):
            if checks.reuse(name, indicator):
                continue
            raw = indicator.get("status")
            checks.add(name, status_of(raw), detail=_message(indicator), metrics=_figures(indicator, checks.keys),
                       said=raw, node=indicator)
        else:
            checks.add(name, status_of(indicator), said=indicator)
    result = _own(body, "terminus", checks)
    if result.message is None and isinstance(body.get("error"), dict) and body["error"]:
        # Terminus' top-level `error` is the failing indicators, not a message: name them.
        names = ", ".join(shown(n, 40) for n in list(body["error"])[:5])
        return replace(result, message=f"failing: {names}")
    return result


def _microprofile(body: Mapping[str, Any], previous: BodyHealth | None = None) -> BodyHealth:
    checks = _Checks(previous)
    problems: list[str] = []
    for item in body.get("checks") if isinstance(body.get("checks"), list) else ():
        if not isinstance(item, dict):
            problems.append("a check that is not an object")
            continue
        name = item.get("name", "(unnamed)")
        if checks.reuse((str(name), len(checks.items)), item):
            continue
        data = item.get("data") if isinstance(item.get("data"), dict) else {}
        raw = item.get("status", item.get("state"))  # `state` in MicroProfile Health 1.0
        checks.add(name, status_of(raw), detail=_message(data) or _message(item), metrics=_figures(data, checks.keys),
                   said=raw)
        checks.nodes[(str(name), len(checks.items) - 1)] = (item, checks.items[-1])
    return _own(body, "microprofile", checks, problems, status=body.get("status", body.get("outcome")))


def _health_json(body: Mapping[str, Any], previous: BodyHealth | None = None) -> BodyHealth:
    checks = _Checks(previous)
    problems: list[str] = []
    # `details` with metricValue/metricUnit: the draft's first versions, still what some services send
    raw_checks = body.get("checks", body.get("details"))
    if raw_checks is not None and not isinstance(raw_checks, dict):
        problems.append("checks is not an object of arrays")
        raw_checks = {}
    for key, entries in (raw_checks or {}).items():
        if isinstance(entries, dict):
            entries = [entries]  # one object where the draft wants an array: read it, do not drop it
        if not isinstance(entries, list):
            checks.add(key, Status.UNKNOWN, detail="not an array of checks (application/health+json)")
            continue
        measurement = str(key).rsplit(":", 1)[-1].lower()
        # One entry per node: named by its componentId (its first 8 characters) where those tell the nodes apart,
        # else by its place (the draft's own example gives two nodes one componentId).
        ids = [str(e.get("componentId"))[:8] if isinstance(e, dict) and e.get("componentId") is not None
               else None for e in entries]
        distinct = None not in ids and len(set(ids)) == len(ids)
        for index, entry in enumerate(entries):
            name = key if len(entries) == 1 else (key, ids[index] if distinct else str(index + 1))
            if not isinstance(entry, dict):
                checks.add(name, Status.UNKNOWN, detail="a check that is not an object")
                continue
            raw = entry.get("status")
            # A check without a status inherits the body's: the draft makes `status` optional on checks.
            status = status_of(raw) if raw is not None else status_of(body.get("status", "pass"))
            metrics: dict[str, Any] = {}
            value = number(entry.get("observedValue", entry.get("metricValue")))
            unit = entry.get("observedUnit", entry.get("metricUnit"))
            if value is not None:
                metrics["observedValue"] = value
            if isinstance(unit, str):
                metrics["observedUnit"] = shown(unit, 20)
            if isinstance(entry.get("componentType"), str):
                metrics["componentType"] = shown(entry["componentType"], 40)
            latency = None
            if value is not None and measurement == "responsetime" and unit in ("ms", "s"):
                latency = value * (1000 if unit == "s" else 1)
            checks.add(name, status, latency_ms=latency, detail=_message(entry), metrics=metrics, said=raw)
    return _own(body, "health+json", checks, problems)


def _actuator(body: Mapping[str, Any], previous: BodyHealth | None = None) -> BodyHealth:
    checks = _Checks(previous)
    problems: list[str] = []
    # (path, node, depth): walked with a stack, never recursion, so a hostile depth cannot overflow
    stack: list[tuple[tuple[str, ...], Mapping[str, Any], int]] = [((), body, 0)]
    found: list[tuple[tuple[str, ...], Mapping[str, Any]]] = []
    while stack:
        path, node, depth = stack.pop()
        parts = _actuator_parts(node)
        if path and not parts:
            found.append((path, node))
            continue
        if depth >= MAX_DEPTH:
            problems.append(f"components nested deeper than {MAX_DEPTH} levels were not read")
            found.append((path, node))
            continue
        if path:  # a composite: its own status is kept too when it is worse than what it holds
            found.append((path + ("",), node))
        for name, sub in reversed(list(parts.items())):
            stack.append((path + (str(name),), sub, depth + 1))
    leaves_below: dict[tuple[str, ...], Status] = {}
    for path, node in found:
        if path and path[-1] != "":
            status = status_of(node.get("status"))
            for i in range(1, len(path)):
                leaves_below[path[:i]] = worst((leaves_below.get(path[:i], Status.OK), status))
    for path, node in found:
        raw = node.get("status")
        # 2.x keeps a component's figures in `details`; 1.x writes them beside its status
        details = node.get("details") if isinstance(node.get("details"), dict) else node
        if path[-1] == "":  # a composite: shown only when its own status says more than its parts
            own = status_of(raw)
            if own.rank <= leaves_below.get(path[:-1], Status.OK).rank:
                continue
            path = path[:-1]
        if checks.reuse(path, node):
            continue
        checks.add(path, status_of(raw), detail=_message(details) or _message(node),
                   metrics=_figures(details, checks.keys), said=raw, node=node)
    return _own(body, "actuator", checks, problems)


def _actuator_parts(node: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    """The components a node holds: `components` (2.2+), `details` holding statuses (2.0/2.1), or, at 1.x, objects
    with a status beside the node's own."""
    # A component's status is a word: {"response": {"status": 200}} in a leaf's details is a figure, not a component.
    for key in ("components", "details"):
        part = node.get(key)
        if isinstance(part, dict) and part and all(isinstance(v, dict) and isinstance(v.get("status"), str)
                                                   for v in part.values()):
            return part
        if key == "components" and isinstance(part, dict):
            return {}  # 2.2+: `details` beside `components` holds figures, never components
    return {k: v for k, v in node.items()
            if k not in ("status", "details", "components") and isinstance(v, dict)
            and isinstance(v.get("status"), str)}
