"""Reading health bodies: shapes that are broken, hostile or huge get a clear status, never a traceback."""

from __future__ import annotations

import json
import time

import pytest

from opsconsole.health import Status
from opsconsole.probes import health_formats as hf
from opsconsole.probes.http import body_findings


@pytest.mark.parametrize("word, status", [
    ("UP", Status.OK), ("pass", Status.OK), ("ok", Status.OK), ("up", Status.OK), (True, Status.OK),
    ("warn", Status.WARN), ("WARNING", Status.WARN), ("degraded", Status.WARN),
    ("DOWN", Status.CRIT), ("fail", Status.CRIT), ("error", Status.CRIT), ("OUT_OF_SERVICE", Status.CRIT),
    ("out-of-service", Status.CRIT), ("shutting_down", Status.CRIT), (False, Status.CRIT),
    ("UNKNOWN", Status.UNKNOWN), ("purple", Status.UNKNOWN), (None, Status.UNKNOWN), (3, Status.UNKNOWN),
])
def test_status_words(word, status):
    assert hf.status_of(word) is status


def test_not_an_object_is_no_format():
    for body in ([1, 2], "UP", 3, None):
        assert hf.read(body).format is None


def test_unknown_status_word_in_a_check():
    got = hf.read({"status": "UP", "components": {"db": {"status": "MAYBE"}}})
    (db,) = got.children
    assert db.status is Status.UNKNOWN and db.detail == "status 'MAYBE' is not one opsconsole knows"


def test_checks_that_are_not_arrays():
    got = hf.read({"status": "pass", "checks": {"db": 7, "cache": {"status": "fail", "output": "gone"}}},
                  "application/health+json")
    by = {c.name: c for c in got.children}
    assert by["db"].status is Status.UNKNOWN and "not an array" in by["db"].detail
    assert by["cache"].status is Status.CRIT and by["cache"].detail == "gone"  # one object read as a one-item array
    got = hf.read({"status": "pass", "checks": "all good"}, "application/health+json")
    assert got.problems == ("checks is not an object of arrays",)
    assert (Status.WARN, "health body: checks is not an object of arrays") in body_findings(got)


def test_nesting_ten_thousand_deep_is_cut_not_a_crash():
    node: dict = {"status": "DOWN"}
    for _ in range(10_000):
        node = {"status": "UP", "components": {"x": node}}
    got = hf.read(node)
    assert got.format == "actuator" and got.problems
    assert "nested deeper than 32" in got.problems[0]


def test_a_hundred_thousand_checks_keep_the_worst_and_count_the_rest():
    checks = [{"name": f"c{i}", "status": "UP"} for i in range(100_000)]
    checks[77_777]["status"] = "DOWN"
    body = json.loads(json.dumps({"status": "DOWN", "checks": checks}))
    t0 = time.perf_counter()
    got = hf.read(body)
    elapsed = time.perf_counter() - t0
    assert len(got.children) == hf.MAX_CHECKS and got.total == 100_000
    assert any(c.name == "c77777" and c.status is Status.CRIT for c in got.children)  # the failing one is kept
    assert got.dropped_worst is Status.OK
    assert (Status.OK, "99800 of 100000 checks not shown (the worst of them ok)") in body_findings(got)
    assert elapsed < 5, elapsed  # generous: a bound against quadratic work, not a benchmark


def test_hostile_names_and_messages_are_escaped():
    body = {"status": "error", "details": {"\x1b]0;owned\x07": {"status": "down", "message": "a\nb\x1b[2J"}},
            "error": {}, "info": {}}
    got = hf.read(body)
    (child,) = got.children
    assert "\x1b" not in child.name and "\x1b" not in child.detail and "\n" not in child.detail


def test_nested_components_are_named_by_their_path():
    got = hf.read({"status": "UP", "components": {"db": {"status": "UP", "components": {"primary": {"status": "UP"}}}}})
    assert [c.name for c in got.children] == ["db/primary"]


def test_figures_skip_what_is_not_a_finite_number():
    got = hf.read({"healthy": True, "services": {"q": {"status": "ok", "depth": 47, "x": float("nan"),
                                                        "big": 10 ** 400, "flag": True, "name": "n"}}})
    assert dict(got.children[0].metrics) == {"depth": 47}


def test_terminus_without_details_reads_info_and_error():
    got = hf.read({"status": "error", "info": {"db": {"status": "up"}},
                   "error": {"redis": {"status": "down", "message": "connect ECONNREFUSED 127.0.0.1:6379"}}})
    assert got.format == "terminus" and got.status is Status.CRIT
    assert {c.name: c.status for c in got.children} == {"db": Status.OK, "redis": Status.CRIT}
    assert got.message == "failing: redis"


def test_actuator_composite_kept_only_when_it_says_more():
    body = {"status": "DOWN", "components": {"db": {"status": "DOWN", "components": {
        "primary": {"status": "UP"}, "replica": {"status": "UP"}}}}}
    names = {c.name: c.status for c in hf.read(body).children}
    assert names == {"db": Status.CRIT, "db/primary": Status.OK, "db/replica": Status.OK}
    body["components"]["db"]["components"]["replica"]["status"] = "DOWN"
    names = {c.name: c.status for c in hf.read(body).children}
    assert names == {"db/primary": Status.OK, "db/replica": Status.CRIT}


def test_a_plain_status_body():
    assert hf.read({"status": "ok"}).status is Status.OK
    got = hf.read({"status": "DOWN", "groups": ["liveness", "readiness"]})
    assert got.format == "actuator" and got.status is Status.CRIT and got.children == ()


def test_a_changed_body_rereads_only_the_checks_that_changed():
    body = {"status": "UP", "components": {
        "db": {"status": "UP", "details": {"database": "PostgreSQL"}},
        "diskSpace": {"status": "UP", "details": {"total": 100, "free": 60, "threshold": 10}}}}
    first = hf.read(json.loads(json.dumps(body)))
    body["components"]["diskSpace"]["details"]["free"] = 5
    body["components"]["diskSpace"]["status"] = "DOWN"
    second = hf.read(json.loads(json.dumps(body)), previous=first)
    by_first = {c.name: c for c in first.children}
    by_second = {c.name: c for c in second.children}
    assert by_second["db"] is by_first["db"]  # the same object in, the same check out
    assert by_second["diskSpace"] is not by_first["diskSpace"]
    assert by_second["diskSpace"].status is Status.CRIT and by_second["diskSpace"].metrics["free"] == 5
    body["components"]["db"]["status"] = "DOWN"
    third = hf.read(json.loads(json.dumps(body)), previous=second)
    assert {c.name: c.status for c in third.children} == {"db": Status.CRIT, "diskSpace": Status.CRIT}


def test_hostile_shapes_found_in_review():
    # a message nested deeper than the stack: read with a bound, never a RecursionError
    node: dict = {"output": "x"}
    for _ in range(5000):
        node = {"output": node}
    got = hf.read({"status": "UP", **node})
    assert got.status is Status.OK
    # a leaf's details holding {"status": 200} is a figure, not an Actuator component
    got = hf.read({"status": "UP", "details": {"response": {"status": 200}}})
    assert got.format == "actuator" and got.status is Status.OK and got.children == ()
    # Actuator's own UNKNOWN is a word it uses, not one opsconsole does not know
    got = hf.read({"status": "UP", "components": {"db": {"status": "UNKNOWN"}}})
    assert got.children[0].detail == "reports UNKNOWN"


def test_a_secret_crossing_the_cut_is_masked_whole():
    from opsconsole import masking

    masking.register("SuperSecretPassw0rd")
    text = "x" * 190 + "SuperSecretPassw0rd and more"
    assert hf.shown(text, 200) == "x" * 190 + "*** and mo"  # cut at 200 first, it showed "SuperSecre"
