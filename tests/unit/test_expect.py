"""`expect` lines: parsing, and judging them against a probe round without ever raising."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsconsole import expect
from opsconsole.errors import UserError
from opsconsole.health import Reading, Round, Status
from tests.budget import examples

NOW = datetime(2026, 11, 21, 13, 0, tzinfo=timezone.utc)


def reading(name: str, status: Status = Status.OK, latency_ms: float | None = 2.0, metrics: dict | None = None,
            error: str | None = None, group: str = "service", reasons: tuple[str, ...] = ()) -> Reading:
    return Reading(name=name, kind="x", group=group, status=status, latency_ms=latency_ms, metrics=metrics or {},
                   error=error, reasons=reasons, checked_at=NOW)


ROUND = Round("staging", NOW, 0.05, (
    reading("db", metrics={"connections": 7, "max_connections": 100}, latency_ms=1.9),
    reading("cache", Status.CRIT, None, error="connection refused by 127.0.0.1:6390"),
    reading("emails", Status.CRIT, None, group="queue", reasons=("depth 1230 above crit 1000",), metrics={
        "depth": 1230, "paused": False,
        "counts": {"waiting": 1200, "active": 0, "delayed": 30, "waiting-children": 0, "failed": 5}}),
    reading("api", latency_ms=180.0),
    reading("api/db", Status.WARN, 120.0),
    reading("sqs-jobs", Status.UNKNOWN, None, group="queue", reasons=("no AWS credentials",)),
))


@pytest.mark.parametrize("line, member, field, op, value", [
    ("expect db is ok", "db", "status", "is", "ok"),
    ("expect db is not crit", "db", "status", "is not", "crit"),
    ("expect db   is   not   CRIT", "db", "status", "is not", "crit"),
    ("expect api/db is ok", "api/db", "status", "is", "ok"),
    ("expect db.status == warn", "db", "status", "==", "warn"),
    ("expect emails.depth < 1000", "emails", "depth", "<", 1000),
    ("expect emails.depth<1000", "emails", "depth", "<", 1000),
    ("expect api.latency_ms <= 200.5", "api", "latency_ms", "<=", 200.5),
    ("expect emails.counts.failed == 0", "emails", "counts.failed", "==", 0),
    ("expect emails.counts.waiting-children >= 0", "emails", "counts.waiting-children", ">=", 0),
    ("expect emails.paused is false", "emails", "paused", "is", False),
    ("expect emails.depth != '5'", "emails", "depth", "!=", 5),
    ("expect db.connections > -1", "db", "connections", ">", -1),
])
def test_parse(line, member, field, op, value):
    exp = expect.parse(line, "r.md", 7)
    assert (exp.member, exp.field, exp.op, exp.value, exp.line, exp.text) == (member, field, op, value, 7, line.strip())


@pytest.mark.parametrize("line, message", [
    ("expect", "cannot read expectation"),
    ("expect db", "cannot read expectation"),
    ("assert db is ok", "an expectation starts with `expect`"),
    ("expect db < 3", "say which field of db to compare"),
    ("expect db.depth is ok", "'ok' is a status; write `expect db is ok`"),
    ("expect db.depth is 3", "use == or != to compare with a number"),
    ("expect db > ok", "a status is compared with `is` or `is not`"),
    ("expect emails.depth < lots", "not a number, a status (ok, warn, crit, unknown) or true/false: 'lots'"),
    ("expect emails.depth < 1 2", "`<` needs one value after it"),
    ("expect emails.paused < true", "compares numbers, not true/false"),
    ("expect emails.depth < nan", "not a number"),
    ("expect emails..depth < 3", "not a member or member.field"),
])
def test_parse_errors(line, message):
    with pytest.raises(UserError) as err:
        expect.parse(line, "r.md", 9)
    assert str(err.value).startswith("r.md:9: ") and message in str(err.value)


@pytest.mark.parametrize("line, holds, reason", [
    ("expect db is ok", True, "db is ok"),
    ("expect db is not crit", True, "db is ok"),
    ("expect db.connections < 10", True, "db.connections is 7 (< 10)"),
    ("expect db.latency_ms < 200", True, "db.latency_ms is 1.9 (< 200)"),
    ("expect emails.depth < 1000", False, "emails.depth is 1230, wanted < 1000"),
    ("expect emails.depth > 1000", True, "emails.depth is 1230 (> 1000)"),
    ("expect emails.counts.failed == 0", False, "emails.counts.failed is 5, wanted == 0"),
    ("expect emails.paused is false", True, "emails.paused is false (is false)"),
    ("expect emails.paused == 0", False, "emails.paused is false, wanted == 0"),
    ("expect emails is ok", False, "emails is crit (depth 1230 above crit 1000), wanted is ok"),
    ("expect cache is not crit", False, "cache is crit: connection refused by 127.0.0.1:6390, wanted is not crit"),
    ("expect cache.latency_ms < 100", False,
     "cache is down (crit: connection refused by 127.0.0.1:6390), so cache.latency_ms cannot be read"),
    ("expect api.latency_ms < 200", True, "api.latency_ms is 180 (< 200)"),
    ("expect api/db is ok", False, "api/db is warn, wanted is ok"),
    ("expect api/db.latency_ms <= 120", True, "api/db.latency_ms is 120 (<= 120)"),
    ("expect db.depth < 5", False, "db reports no depth; it reports: status, latency_ms, connections, max_connections"),
    ("expect emails.counts.paused == 0", False, "emails reports no counts.paused; it reports: status, depth, paused, "
                                                "counts.waiting, counts.active, counts.delayed, "
                                                "counts.waiting-children, counts.failed"),
    ("expect sqs-jobs.depth < 10", False, "sqs-jobs is unknown (no AWS credentials), so "
                                          "`expect sqs-jobs.depth < 10` cannot hold"),
    # Nothing is known of an unknown member: no expectation about it passes but `is unknown` itself.
    ("expect sqs-jobs is not crit", False, "sqs-jobs is unknown (no AWS credentials), so "
                                           "`expect sqs-jobs is not crit` cannot hold"),
    ("expect sqs-jobs != ok", False, "sqs-jobs is unknown (no AWS credentials), so `expect sqs-jobs != ok` cannot hold"),
    ("expect sqs-jobs is unknown", True, "sqs-jobs is unknown (no AWS credentials)"),
    ("expect redis is ok", False, "redis is not a member of environment staging "
                                  "(members: db, cache, emails, api, api/db, sqs-jobs)"),
])
def test_evaluate(line, holds, reason):
    assert expect.evaluate(expect.parse(line), ROUND) == (holds, reason)


VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
                      lambda inner: st.dictionaries(st.sampled_from(["depth", "counts", "failed", "x"]), inner,
                                                    max_size=3), max_leaves=6)


@settings(max_examples=examples(200), deadline=None)
@given(st.sampled_from(["expect q.depth < 5", "expect q is ok", "expect q.counts.failed == 0", "expect q.x >= 1.5",
                        "expect q.latency_ms > 0", "expect q.failed is true", "expect q is not unknown"]),
       st.dictionaries(st.sampled_from(["depth", "counts", "failed", "x"]), VALUES, max_size=4),
       st.sampled_from(list(Status)), st.none() | st.floats(), st.none() | st.text(max_size=10))
def test_evaluate_never_raises(line, metrics, status, latency, error):
    rnd = Round("e", NOW, 0.0, (reading("q", status, latency, metrics, error),))
    holds, reason = expect.evaluate(expect.parse(line), rnd)
    assert isinstance(holds, bool) and isinstance(reason, str) and reason


@settings(max_examples=examples(200), deadline=None)
@given(st.text(max_size=50))
def test_any_line_parses_or_is_a_user_error(text):
    try:
        expect.parse("expect " + text, "r.md", 2)
    except UserError as exc:
        assert (exc.path, exc.line) == ("r.md", 2)
