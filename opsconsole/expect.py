"""`expect` assertions on live health, as written in `ops` blocks.

    expect db is ok                  expect emails.depth < 1000
    expect db is not crit            expect emails.counts.failed == 0
    expect api/db is ok              expect api.latency_ms < 200
    expect api/db/primary is ok      expect api/redis.depth < 100     (sub-services of a health body)

`evaluate` never raises: a member that is missing, down or silent about a field makes the
expectation false with a reason an on-call engineer can act on.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsconsole.errors import UserError

if TYPE_CHECKING:
    from opsconsole.config import Environment
    from opsconsole.health import Reading, Round

STATUSES = ("ok", "warn", "crit", "unknown")
OPERATORS = ("<", "<=", ">", ">=", "==", "!=", "is", "is not")
_NUMERIC = ("<", "<=", ">", ">=")

_LINE = re.compile(
    r"expect\s+(?P<target>[^\s<>=!]+)\s*(?P<op><=|>=|==|!=|<|>|\bis\s+not\b|\bis\b)\s*(?P<value>.*?)\s*\Z",
    re.DOTALL,
)
# member ("emails", "api/db") then optional field path ("depth", "counts.waiting-children")
_TARGET = re.compile(r"(?P<member>[A-Za-z0-9_][A-Za-z0-9_\-]*(?:/[^./\s]+)*)"
                     r"(?:\.(?P<field>[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*))?\Z")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")


@dataclass(frozen=True)
class Expectation:
    member: str  # "emails", "db", "api/db"
    field: str  # "status", "latency_ms", a metric name, or a path into one ("counts.failed")
    op: str  # one of OPERATORS
    value: object  # a number, a bool, or a status name
    text: str  # as written
    line: int | None = None

    @property
    def target(self) -> str:
        return self.member if self.field == "status" else f"{self.member}.{self.field}"


def parse(line: str, path: Any = None, lineno: int | None = None) -> Expectation:
    text = line.strip()

    def fail(message: str) -> UserError:
        return UserError(f"{message}: {text!r}", path, lineno)

    m = _LINE.match(text)
    if m is None:
        if not re.match(r"expect\b", text):
            raise fail("an expectation starts with `expect`")
        raise fail("cannot read expectation (write e.g. `expect emails.depth < 1000` or `expect db is ok`)")
    target = _TARGET.match(m["target"])
    if target is None:
        raise fail(f"not a member or member.field: {m['target']!r}")
    op = "is not" if m["op"].startswith("is") and m["op"] != "is" else m["op"]
    try:
        words = shlex.split(m["value"])
    except ValueError:
        words = []
    if len(words) != 1:
        raise fail(f"`{op}` needs one value after it")
    value = _value(words[0])
    if value is None:
        raise fail(f"not a number, a status ({', '.join(STATUSES)}) or true/false: {words[0]!r}")
    member, field = target["member"], target["field"]
    if isinstance(value, str):  # a status name
        if field not in (None, "status"):
            raise fail(f"{value!r} is a status; write `expect {member} is {value}`")
        if op not in ("is", "is not", "==", "!="):
            raise fail(f"a status is compared with `is` or `is not`, not {op!r}")
        field = "status"
    elif field is None:
        raise fail(f"say which field of {member} to compare, e.g. {member}.depth or {member}.latency_ms")
    elif op in _NUMERIC and isinstance(value, bool):
        raise fail(f"{op!r} compares numbers, not true/false")
    elif op in ("is", "is not") and not isinstance(value, bool):
        raise fail(f"use == or != to compare with a number, not {op!r}")
    return Expectation(member=member, field=field, op=op, value=value, text=text, line=lineno)


def _value(word: str) -> object | None:
    lower = word.lower()
    if lower in STATUSES:
        return lower
    if lower in ("true", "false"):
        return lower == "true"
    if _NUMBER.match(word):
        number = float(word)
        if not math.isfinite(number):
            return None
        return int(number) if re.fullmatch(r"[+-]?\d+", word) else number
    return None


def unknowable(exp: Expectation, environment: Environment) -> str | None:
    """Why `exp` can never hold in `environment` — it names a member the environment does not probe, or a field
    that member's kind never reports — or None. Sub-services (api/db) exist only once their body is read, so only
    their member is checked here."""
    from opsconsole.probes import COUNTS, FIELDS

    probed = {t.name: t for t in environment.targets}
    name, _, sub = exp.member.partition("/")
    target = probed.get(name)
    if target is None:
        have = ", ".join(probed) or "none"
        return f"{exp.member} is not a probed member of environment {environment.name} (members: {have})"
    if sub:
        if target.kind != "http":
            return f"{name} is a {target.kind}; only http members report sub-services like {exp.member}"
        return None
    if exp.field == "status":
        return None
    head, _, rest = exp.field.partition(".")
    fields = FIELDS.get(target.kind or "", ())
    counts = COUNTS.get(target.kind or "", ())
    if head not in fields:
        return f"{name} ({target.kind}) never reports {exp.field}; it reports: status, {', '.join(fields)}"
    if head == "counts" and rest not in counts:
        return f"{name} ({target.kind}) has no count {rest or '(none named)'}; its counts: {', '.join(counts)}"
    if head != "counts" and rest:
        return f"{name} ({target.kind}): {head} is a single figure, not a table"
    return None


def evaluate(exp: Expectation, rnd: Round) -> tuple[bool, str]:
    """Whether `exp` holds in `rnd`, and why (one line, for the step's verification result)."""
    reading = rnd.reading(exp.member)
    wanted = f"wanted {exp.op} {_show(exp.value)}"
    if reading is None:
        members = ", ".join(r.name for r in rnd.readings) or "none"
        return False, f"{exp.member} is not a member of environment {rnd.environment} (members: {members})"
    if reading.status.value == "unknown" and not (exp.field == "status" and exp.op in ("is", "==")
                                                   and exp.value == "unknown"):
        # Nothing is known of it (a queue that does not exist, a probe that cannot run): no expectation about it
        # may pass, `is not crit` included.
        why = "; ".join(reading.reasons) or "not probed"
        return False, f"{exp.member} is unknown ({why}), so `{exp.text}` cannot hold"
    if exp.field == "status":
        actual: object = reading.status.value
        holds = _compare(actual, exp.op, exp.value)
        if reading.error:
            detail = f": {reading.error}"
        else:
            detail = f" ({'; '.join(reading.reasons)})" if reading.reasons else ""
        return holds, f"{exp.member} is {actual}{detail}" + ("" if holds else f", {wanted}")
    if reading.error is not None:
        return False, f"{exp.member} is down ({reading.status.value}: {reading.error}), so {exp.target} cannot be read"
    found, actual = _lookup(reading, exp.field)
    if not found:
        available = ", ".join(_fields(reading)) or "nothing"
        return False, f"{exp.member} reports no {exp.field}; it reports: {available}"
    holds = _compare(actual, exp.op, exp.value)
    shown = f"{exp.target} is {_show(actual)}"
    return holds, f"{shown} ({exp.op} {_show(exp.value)})" if holds else f"{shown}, {wanted}"


def _lookup(reading: Reading, field: str) -> tuple[bool, object]:
    if field == "latency_ms":
        return reading.latency_ms is not None, reading.latency_ms
    node: object = reading.metrics
    for part in field.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _fields(reading: Reading) -> list[str]:
    names = ["status"] + (["latency_ms"] if reading.latency_ms is not None else [])

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            if isinstance(value, Mapping):
                walk(f"{prefix}{key}.", value)
            else:
                names.append(f"{prefix}{key}")

    walk("", reading.metrics)
    return names


def _compare(actual: object, op: str, wanted: object) -> bool:
    if op in ("is", "=="):
        return _same(actual, wanted)
    if op in ("is not", "!="):
        return not _same(actual, wanted)
    if isinstance(actual, bool) or not isinstance(actual, (int, float)):
        return False
    if isinstance(wanted, bool) or not isinstance(wanted, (int, float)):
        return False
    return {"<": actual < wanted, "<=": actual <= wanted, ">": actual > wanted, ">=": actual >= wanted}[op]


def _same(actual: object, wanted: object) -> bool:
    # True == 1 in Python; an expectation about a flag must not pass on a count.
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return isinstance(actual, bool) and isinstance(wanted, bool) and actual == wanted
    return actual == wanted


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}" if not value.is_integer() else str(int(value))
    if value is None:
        return "nothing"
    return str(value)
