from __future__ import annotations

from opsconsole.config import Target
from opsconsole.health import Observation, Status, judge, worst
from opsconsole.thresholds import DEFAULTS, Threshold


def target(kind: str = "postgres", **thresholds: Threshold) -> Target:
    return Target(name="t", group="service", kind=kind, url="x", thresholds={**DEFAULTS[kind], **thresholds})


def test_error_is_crit():
    assert judge(target(), Observation(error="connection refused")) == (Status.CRIT, ())


def test_unknown_when_probe_cannot_run():
    status, reasons = judge(target(), Observation(unknown="no credentials"))
    assert status is Status.UNKNOWN and reasons == ("no credentials",)


def test_latency_thresholds_are_strictly_above():
    t = target("postgres")
    assert judge(t, Observation(latency_ms=200.0))[0] is Status.WARN
    status, reasons = judge(t, Observation(latency_ms=200.1))
    assert status is Status.CRIT and reasons == ("latency_ms 200 above crit 200",)
    assert judge(t, Observation(latency_ms=100.0))[0] is Status.OK
    assert judge(target("redis"), Observation(latency_ms=100.5))[0] is Status.CRIT


def test_metric_thresholds_and_findings_combine_to_the_worst():
    t = target("redis")
    obs = Observation(latency_ms=1.0, metrics={"memory_pct": 75.0}, findings=((Status.OK, "fine"),))
    assert judge(t, obs)[0] is Status.WARN
    obs = Observation(latency_ms=1.0, metrics={"memory_pct": 81.0})
    assert judge(t, obs) == (Status.CRIT, ("memory_pct 81 above crit 80",))
    obs = Observation(latency_ms=1.0, findings=((Status.CRIT, "HTTP 503"),))
    assert judge(target("http"), obs) == (Status.CRIT, ("HTTP 503",))


def test_non_numeric_metrics_are_ignored():
    t = target("redis", role=Threshold(crit=1))
    assert judge(t, Observation(latency_ms=1.0, metrics={"role": "master", "memory_pct": True}))[0] is Status.OK


def test_worst_ranks_unknown_between_warn_and_crit():
    assert worst([Status.OK, Status.WARN]) is Status.WARN
    assert worst([Status.WARN, Status.UNKNOWN]) is Status.UNKNOWN
    assert worst([Status.UNKNOWN, Status.CRIT, Status.OK]) is Status.CRIT
    assert worst([]) is Status.UNKNOWN
    assert [s.exit_code for s in (Status.OK, Status.WARN, Status.CRIT, Status.UNKNOWN)] == [0, 1, 2, 3]
