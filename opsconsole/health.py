"""Health readings, the one function that judges them, and probe rounds.

A probe observes (latency, metrics, an error); `judge` turns an observation into a status using
the target's thresholds; `Monitor.round` probes every target concurrently, each bounded by the
timeout, so a round lasts about as long as its slowest probe.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from opsconsole import masking
from opsconsole.config import Environment, Target
from opsconsole.thresholds import Threshold


class Status(enum.Enum):
    OK = "ok"
    WARN = "warn"
    UNKNOWN = "unknown"
    CRIT = "crit"

    @property
    def rank(self) -> int:
        # Unknown ranks above warn: a target we cannot see may be as bad as down.
        return _RANK[self]

    @property
    def exit_code(self) -> int:
        """Nagios plugin exit codes."""
        return {Status.OK: 0, Status.WARN: 1, Status.CRIT: 2, Status.UNKNOWN: 3}[self]


_RANK = {Status.OK: 0, Status.WARN: 1, Status.UNKNOWN: 2, Status.CRIT: 3}


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=lambda s: s.rank, default=Status.UNKNOWN)


@dataclass(frozen=True)
class Child:
    """A sub-service a health endpoint reports about itself (a check of its health body)."""

    name: str
    status: Status
    latency_ms: float | None = None
    detail: str | None = None  # the check's own message (output, message, error), already masked and escaped
    metrics: Mapping[str, Any] = field(default_factory=dict)  # its figures (depth, observedValue ...)


@dataclass(frozen=True)
class Observation:
    """What a probe saw, before any judgement."""

    latency_ms: float | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None  # the target could not be probed: crit
    findings: tuple[tuple[Status, str], ...] = ()  # what the probe itself judged, e.g. HTTP 503
    children: tuple[Child, ...] = ()
    unknown: str | None = None  # the probe could not run (missing credentials, missing tool)


def timed_out(seconds: float) -> Observation:
    """What a probe that ran out of time reports, wherever the timeout was noticed."""
    return Observation(error=f"timed out after {seconds:g} s")


@dataclass(frozen=True)
class Reading:
    """A judged observation of one target (or of a sub-service, with `parent`)."""

    name: str
    kind: str
    group: str
    status: Status
    latency_ms: float | None
    metrics: Mapping[str, Any]
    error: str | None
    reasons: tuple[str, ...]
    checked_at: datetime
    consecutive_failures: int = 0  # rounds in a row this member was crit, this one included
    parent: str | None = None
    alert_after: int | None = None  # the `failures` threshold: alert once more checks than this failed in a row

    @property
    def failing(self) -> bool:
        return self.error is not None

    @classmethod
    def stamped(cls, fields: dict[str, Any], checked_at: datetime) -> Reading:
        """A reading of `fields` (every field but checked_at) at `checked_at`, without the dataclass __init__:
        Monitor stamps thousands of unchanged sub-service readings a round. `metrics` is shared, never changed."""
        values = fields.copy()
        values["checked_at"] = checked_at
        reading = object.__new__(cls)
        object.__setattr__(reading, "__dict__", values)
        return reading

    @property
    def alerting(self) -> bool:
        """Crit for more consecutive checks than the `failures` threshold allows: a hard state, in Nagios' words.

        The status is truthful from the first failed check; only the alert (bell, notification, the panel's mark)
        waits, so one lost packet does not wake anyone."""
        return self.alert_after is not None and self.consecutive_failures > self.alert_after


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.3g}"


def judge(target: Target, obs: Observation) -> tuple[Status, tuple[str, ...]]:
    """The one place a status is decided: an error is crit, then probe findings, then thresholds."""
    if obs.error is not None:
        return Status.CRIT, ()  # the error itself says why
    if obs.unknown is not None:
        return Status.UNKNOWN, (obs.unknown,)
    status = Status.OK
    reasons: list[str] = []
    for finding, reason in obs.findings:
        status = worst((status, finding))
        reasons.append(reason)
    values = dict(obs.metrics)
    if obs.latency_ms is not None:
        values["latency_ms"] = obs.latency_ms
    for metric, threshold in target.thresholds.items():
        value = values.get(metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        level = _level(value, threshold)
        if level is not None:
            limit = threshold.crit if level is Status.CRIT else threshold.warn
            reasons.append(f"{metric} {_fmt(value)} above {level.value} {_fmt(limit)}")
            status = worst((status, level))
    return status, tuple(reasons)


SUB_REASONS = 5  # sub-services named in a member's reasons; the rest are counted
SUB_SERVICE = "sub-service "  # how such a reason starts


def worst_of(status: Status, reasons: tuple[str, ...], children: Iterable[Reading]) -> tuple[Status, tuple[str, ...]]:
    """A member's status is the worst of its own and its sub-services', with a reason naming each sub-service
    that is not ok (worst first): the word, the colour, `--json` and the exit code all read this one status."""
    bad = sorted((c for c in children if c.status is not Status.OK), key=lambda c: -c.status.rank)
    if not bad:
        return status, reasons
    named = []
    for child in bad[:SUB_REASONS]:
        why = f": {child.reasons[0]}" if child.reasons else ""
        named.append(f"{SUB_SERVICE}{child.name.split('/', 1)[1]} {child.status.value}{why}")
    if len(bad) > SUB_REASONS:
        named.append(f"{len(bad) - SUB_REASONS} more sub-services not ok")
    return worst((status, bad[0].status)), (*reasons, *named)


def _level(value: float, threshold: Threshold) -> Status | None:
    if threshold.crit is not None and value > threshold.crit:
        return Status.CRIT
    if threshold.warn is not None and value > threshold.warn:
        return Status.WARN
    return None


@dataclass(frozen=True)
class Round:
    """One probe round over an environment."""

    environment: str
    started_at: datetime
    duration_s: float
    readings: tuple[Reading, ...]

    @property
    def status(self) -> Status:
        return worst(r.status for r in self.readings)

    def reading(self, name: str) -> Reading | None:
        return self._by_name.get(name)

    @cached_property
    def _by_name(self) -> dict[str, Reading]:
        # An index, not a scan per lookup: the dashboard looks up every member of the last round, and a health body
        # with 20 000 sub-services made that 400 million comparisons, seconds of a frozen UI every round.
        index: dict[str, Reading] = {}
        for r in self.readings:
            index.setdefault(r.name, r)
        return index


TREND_WINDOW_S = 300.0  # the trend looks back this far (and at least at the previous round)


def trend(history: Iterable[Reading], at: datetime, depth: float) -> tuple[float | None, float | None]:
    """Depth change per second (negative: draining) by least squares over recent rounds, and
    the seconds until empty at that rate (None unless draining). None until two rounds exist."""
    points = [(r.checked_at, r.metrics["depth"]) for r in history
              if r.error is None and isinstance(r.metrics.get("depth"), (int, float))]
    recent = [(t, d) for t, d in points if (at - t).total_seconds() <= TREND_WINDOW_S] or points[-1:]
    recent.append((at, depth))
    if len(recent) < 2:
        return None, None
    xs = [(t - recent[0][0]).total_seconds() for t, _ in recent]
    ys = [float(d) for _, d in recent]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return None, None
    rate = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var
    eta = depth / -rate if rate < 0 and depth > 0 else (0.0 if depth == 0 and rate < 0 else None)
    return round(rate, 3), None if eta is None else round(eta, 1)


class RoundInProgress(RuntimeError):
    """A round was asked for while one is still running; rounds never overlap."""


class Monitor:
    """Probes one environment, keeps history and consecutive failures across rounds.

    Clients (HTTP, Redis) are kept between rounds and closed by `aclose`.
    """

    def __init__(self, environment: Environment, timeout: float, history: int = 120) -> None:
        from opsconsole.probes import Clients

        self.environment = environment
        self.timeout = timeout
        self.clients = Clients(timeout)
        self.history: dict[str, deque[Reading]] = {}
        self._history_len = history
        self._failures: dict[str, int] = {}
        # member -> (its last body's children, their reading fields in the same order): see _children
        self._child_fields: dict[str, tuple[tuple[Child, ...], list[dict[str, Any]]]] = {}
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    async def round(self) -> Round:
        if self._running:
            raise RoundInProgress("a probe round is already running")
        self._running = True
        try:
            started = datetime.now(timezone.utc)
            t0 = time.perf_counter()
            from opsconsole.probes import units

            groups = units(self.environment.targets)
            results = await asyncio.gather(*(self._observe(g) for g in groups))
            duration = time.perf_counter() - t0
            seen = {t.name: obs for group, observations in zip(groups, results) for t, obs in zip(group, observations)}
            readings: list[Reading] = []
            for target in self.environment.targets:  # config order, whatever the grouping
                readings.extend(self._record(target, seen[target.name], started))
            return Round(self.environment.name, started, duration, tuple(readings))
        finally:
            self._running = False

    async def _observe(self, group: list[Target]) -> list[Observation]:
        from opsconsole.probes import probe_unit

        try:
            return await asyncio.wait_for(probe_unit(group, self.clients), self.timeout)
        except (TimeoutError, asyncio.TimeoutError):
            return [timed_out(self.timeout)] * len(group)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a probe bug must not take the round down; show it on the target
            return [Observation(error=f"probe failed: {type(exc).__name__}: {exc}")] * len(group)

    def _record(self, target: Target, obs: Observation, at: datetime) -> list[Reading]:
        if target.group == "queue" and obs.error is None and obs.metrics.get("depth") is not None:
            rate, eta = trend(self.history.get(target.name, ()), at, obs.metrics["depth"])
            if rate is not None:  # a trend needs two rounds
                obs = replace(obs, metrics={**obs.metrics, "rate_per_s": rate, "eta_s": eta})
        status, reasons = judge(target, obs)
        children = self._children(target, obs.children, at)
        status, reasons = worst_of(status, reasons, children)
        failures = self._failures.get(target.name, 0) + 1 if status is Status.CRIT else 0
        self._failures[target.name] = failures
        limit = target.thresholds.get("failures")
        alert_after = None if limit is None else limit.crit if limit.crit is not None else limit.warn
        main = Reading(
            name=target.name,
            kind=target.kind or "",
            group=target.group,
            status=status,
            latency_ms=obs.latency_ms,
            metrics=dict(obs.metrics),
            error=masking.mask(obs.error) if obs.error else None,
            reasons=tuple(masking.mask(r) for r in reasons),
            checked_at=at,
            consecutive_failures=failures,
            alert_after=None if alert_after is None else int(alert_after),
        )
        # History is kept for members only: a panel and the detail view draw it. Sub-services are in each round;
        # 120 rounds of 10,000 of them would hold a million readings for nothing.
        self.history.setdefault(target.name, deque(maxlen=self._history_len)).append(main)
        return [main, *children]

    def _children(self, target: Target, children: tuple[Child, ...], at: datetime) -> list[Reading]:
        """The readings of a member's sub-services for this round.

        probes.http keeps the checks of a health body that did not change (the same Child objects), so a child's
        reading differs from the last round's only in `checked_at`: it is stamped from fields kept per child. At 200
        members of 50 checks that is 10,000 readings a round; building each afresh cost more than the round's probes."""
        kept = self._child_fields.get(target.name)
        if kept is None or kept[0] is not children:  # a changed body: most of its checks are still the same objects
            by_id = {id(c): (c, f) for c, f in zip(*kept)} if kept is not None else {}
            fields = []
            for child in children:
                known = by_id.get(id(child))
                fields.append(known[1] if known is not None and known[0] is child else {
                    "name": f"{target.name}/{child.name}", "kind": target.kind or "", "group": target.group,
                    "status": child.status, "latency_ms": child.latency_ms, "metrics": dict(child.metrics),
                    "error": None, "reasons": (child.detail,) if child.detail else (),  # masked where it was read
                    "consecutive_failures": 0, "parent": target.name, "alert_after": None,
                })
            kept = (children, fields)
            self._child_fields[target.name] = kept
        return [Reading.stamped(fields, at) for fields in kept[1]]

    async def aclose(self) -> None:
        await self.clients.aclose()
