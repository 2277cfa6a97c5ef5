"""Health bodies as the frameworks write them (tests/fixtures/health, sources in SOURCES.md), served by a real HTTP
server with the status code and content type each framework sends, probed and judged end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opsconsole.health import Status
from tests.integration.conftest import probe_once

BODIES = Path(__file__).parent.parent / "fixtures" / "health"
ACTUATOR = "application/vnd.spring-boot.actuator.v3+json"
NEST = "application/json; charset=utf-8"
HEALTH_JSON = "application/health+json"
QUARKUS = "application/json; charset=UTF-8"

# The draft's example: one node per entry of a check, two nodes sharing one componentId named by their place
DRAFT_WARNS = {"cassandra:connections": Status.WARN, "cpu:utilization/1": Status.WARN,
               "cpu:utilization/2": Status.WARN, "memory:utilization/1": Status.WARN}

# file, HTTP code and content type the framework sends it with, the member's status, the sub-services not ok
CASES = [
    ("actuator-up", 200, ACTUATOR, Status.OK, {}),
    ("actuator-down-diskspace", 503, ACTUATOR, Status.CRIT, {"diskSpace": Status.CRIT}),
    ("actuator-down-db-error", 503, ACTUATOR, Status.CRIT, {"db": Status.CRIT}),
    ("actuator-nested-down", 503, ACTUATOR, Status.CRIT, {"broker/us1": Status.CRIT}),
    ("actuator-out-of-service", 503, ACTUATOR, Status.CRIT, {"broker/us2": Status.CRIT}),
    ("actuator-unknown-component", 200, ACTUATOR, Status.UNKNOWN, {"db": Status.UNKNOWN}),
    ("actuator-groups", 200, ACTUATOR, Status.CRIT, {"db2": Status.CRIT}),  # Spring's own test: DOWN under UP
    ("actuator-v2-details", 200, "application/vnd.spring-boot.actuator.v2+json;charset=UTF-8", Status.OK, {}),
    ("actuator-v1-flat", 200, "application/vnd.spring-boot.actuator.v1+json;charset=UTF-8", Status.OK, {}),
    ("actuator-v1-summary-down", 503, "application/vnd.spring-boot.actuator.v1+json;charset=UTF-8", Status.CRIT, {}),
    ("terminus-ok", 200, NEST, Status.OK, {}),
    ("terminus-ok-typeorm", 200, NEST, Status.OK, {}),
    ("terminus-error-redis", 503, NEST, Status.CRIT, {"redis": Status.CRIT}),
    ("terminus-error-memory-heap", 503, NEST, Status.CRIT, {"memory_heap": Status.CRIT}),
    ("terminus-error-disk", 503, NEST, Status.CRIT, {"disk": Status.CRIT}),
    ("terminus-error-http-404", 503, NEST, Status.CRIT, {"http": Status.CRIT}),
    ("terminus-shutting-down", 503, NEST, Status.CRIT, {}),
    ("terminus-legacy-v6-error-dog", 503, NEST, Status.CRIT, {"dog": Status.CRIT}),
    # The draft's own example says pass over warn checks: the member is the worst of them, warn.
    ("healthjson-pass", 200, HEALTH_JSON, Status.WARN, DRAFT_WARNS),
    ("healthjson-warn", 200, HEALTH_JSON, Status.WARN, DRAFT_WARNS),
    ("healthjson-fail", 503, HEALTH_JSON, Status.CRIT, {**DRAFT_WARNS, "cassandra:responseTime": Status.CRIT}),
    ("healthjson-legacy-draft01", 200, HEALTH_JSON, Status.WARN, DRAFT_WARNS),
    ("microprofile-up", 200, "application/json", Status.OK, {}),
    ("microprofile-down", 503, "application/json", Status.CRIT, {"firstCheck": Status.CRIT}),
    ("microprofile-down-500", 500, "application/json", Status.CRIT, {"example.health.FirstCheck": Status.CRIT}),
    ("microprofile-empty-up", 200, "application/json", Status.OK, {}),
    ("microprofile-empty-down", 503, "application/json", Status.CRIT, {}),
    ("microprofile-legacy-v1-down", 503, "application/json", Status.CRIT, {"firstCheck": Status.CRIT}),
    ("microprofile-quarkus-live-up", 200, QUARKUS, Status.OK, {}),
    ("microprofile-quarkus-ready-down", 503, QUARKUS, Status.CRIT, {"Database connection health check": Status.CRIT}),
]
FORMATS = {"actuator": "actuator", "terminus": "terminus", "healthjson": "health+json", "microprofile": "microprofile"}


def test_every_fixture_is_covered():
    assert {p.stem for p in BODIES.glob("*.json")} == {c[0] for c in CASES}


@pytest.mark.parametrize("name, code, content_type, status, failing", CASES, ids=[c[0] for c in CASES])
def test_framework_bodies(http_server, name, code, content_type, status, failing):
    url = http_server.serve(f"/{name}", code, (BODIES / f"{name}.json").read_bytes(), content_type)
    rnd = probe_once({"api": {"kind": "http", "url": url}})
    api = rnd.reading("api")
    assert api.status is status, api.reasons
    assert api.metrics["health_format"] == FORMATS[name.split("-")[0]]
    subs = {r.name.split("/", 1)[1]: r for r in rnd.readings if r.parent == "api"}
    assert {n: r.status for n, r in subs.items() if r.status is not Status.OK} == failing
    for sub in failing:  # every failing check is named in the member's reasons
        assert any(reason.startswith(f"sub-service {sub} ") for reason in api.reasons), api.reasons
    if status is not Status.OK and code < 400 and not failing:
        pytest.fail("a fixture that is not ok behind a 2xx must say why through a check")


def test_a_status_in_the_body_counts_whatever_the_http_code(http_server):
    down = {"status": "DOWN", "components": {"db": {"status": "UP"}}}
    r = probe_once({"api": {"kind": "http", "url": http_server.serve("/d", 200, json.dumps(down), ACTUATOR)}})
    assert r.reading("api").status is Status.CRIT and "reports status DOWN" in r.reading("api").reasons
    warn = {"status": "warn", "output": "replica lag 40 s"}
    r = probe_once({"api": {"kind": "http", "url": http_server.serve("/w", 200, json.dumps(warn), HEALTH_JSON)}})
    assert r.reading("api").status is Status.WARN
    assert r.reading("api").reasons == ("reports status warn: replica lag 40 s",)
    # 503 with a body that says UP: the code still counts
    up = {"status": "UP"}
    r = probe_once({"api": {"kind": "http", "url": http_server.serve("/u", 503, json.dumps(up), ACTUATOR)}})
    assert r.reading("api").status is Status.CRIT and r.reading("api").reasons[0].startswith("HTTP 503")


def test_terminus_failure_message_and_figures(http_server):
    url = http_server.serve("/t", 503, (BODIES / "terminus-error-redis.json").read_bytes(), NEST)
    rnd = probe_once({"api": {"kind": "http", "url": url}})
    redis = rnd.reading("api/redis")
    assert redis.status is Status.CRIT and redis.reasons == ("Could not connect",)
    assert "sub-service redis crit: Could not connect" in rnd.reading("api").reasons
    heap = http_server.serve("/h", 503, (BODIES / "terminus-error-http-404.json").read_bytes(), NEST)
    assert probe_once({"api": {"kind": "http", "url": heap}}).reading("api/http").metrics == {"statusCode": 404}


def test_health_json_figures_and_latency(http_server):
    url = http_server.serve("/hj", 200, (BODIES / "healthjson-pass.json").read_bytes(), HEALTH_JSON)
    rnd = probe_once({"api": {"kind": "http", "url": url}})
    rt = rnd.reading("api/cassandra:responseTime")
    assert rt.latency_ms == 250 and rt.metrics["observedValue"] == 250 and rt.metrics["observedUnit"] == "ms"
    assert rnd.reading("api/uptime").metrics["componentType"] == "system"


def test_the_stacks_own_format_keeps_figures(http_server):
    body = {"healthy": True, "services": {"queue": {"status": "healthy", "depth": 47}, "db": {"status": "ok"}}}
    rnd = probe_once({"api": {"kind": "http", "url": http_server.serve("/s", 200, json.dumps(body))}})
    assert rnd.reading("api/queue").metrics == {"depth": 47} and rnd.reading("api").status is Status.OK


def test_unknown_shape_is_judged_by_the_code_and_says_so(http_server):
    r = probe_once({"api": {"kind": "http", "url": http_server.serve("/x", 200, '{"uptime": 12, "ready": "yes"}')}})
    api = r.reading("api")
    assert api.status is Status.OK and api.metrics["health_format"].startswith("unknown shape")
    r = probe_once({"api": {"kind": "http", "url": http_server.serve("/y", 503, '{"uptime": 12}')}})
    assert r.reading("api").status is Status.CRIT


def test_a_body_that_lies_about_its_content_type(http_server):
    # Actuator's body sent as text/plain, and a Terminus body labelled health+json: the shape decides.
    body = (BODIES / "actuator-down-diskspace.json").read_bytes()
    r = probe_once({"api": {"kind": "http", "url": http_server.serve("/p", 200, body, "text/plain")}})
    assert r.reading("api").status is Status.CRIT and r.reading("api").metrics["health_format"] == "actuator"
    body = (BODIES / "terminus-error-redis.json").read_bytes()
    r = probe_once({"api": {"kind": "http", "url": http_server.serve("/q", 200, body, HEALTH_JSON)}})
    assert r.reading("api").metrics["health_format"] == "terminus" and r.reading("api").status is Status.CRIT


def _check(tmp_path: Path, url: str) -> tuple[int, dict]:
    config = tmp_path / "opsconsole.toml"
    config.write_text(f'[environments.local.services.api]\nkind = "http"\nurl = "{url}"\n')
    done = subprocess.run([sys.executable, "-m", "opsconsole", "check", "--json", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.stderr == ""
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("name, code, content_type, status, sub, message, exit_code", [
    ("actuator-down-diskspace", 200, ACTUATOR, "crit", "diskSpace", "sub-service diskSpace crit", 2),
    ("healthjson-warn", 200, HEALTH_JSON, "warn", "cassandra:connections", "reports status warn", 1),
    ("terminus-error-redis", 503, NEST, "crit", "redis", "sub-service redis crit: Could not connect", 2),
    ("stack-crit-sub", 200, "application/json", "crit", "search", "sub-service search crit: connection refused", 2),
])
def test_check_json_and_exit_code(http_server, tmp_path, name, code, content_type, status, sub, message, exit_code):
    """The issue's four bodies: the right member status, the failing sub-service by name with its message, and the
    Nagios exit code, through the real CLI. The Actuator body is served with 200 on purpose: the body decides."""
    if name == "stack-crit-sub":
        body = json.dumps({"healthy": True, "services": {"db": {"status": "ok"},
                                                         "search": {"status": "down", "error": "connection refused"}}})
    else:
        body = (BODIES / f"{name}.json").read_text()
    rc, out = _check(tmp_path, http_server.serve(f"/{name}", code, body, content_type))
    api = next(s for s in out["services"] if s["name"] == "api")
    assert api["status"] == status and out["status"] == status
    assert any(message in reason for reason in api["reasons"]), api["reasons"]
    assert any(s["name"] == f"api/{sub}" and s["status"] != "ok" for s in out["services"])
    assert api["failed_checks"] == (1 if status == "crit" else 0) and api["alert"] is False
    assert rc == exit_code


def test_a_secret_registered_after_a_body_was_read_is_masked_from_the_next_round(http_server):
    """The last body of each member is kept (an unchanged body is not parsed again): a secret registered since (a
    rotation, a secret param) must still be masked in what was kept, in the sub-service and in the member's reasons."""
    import asyncio

    from opsconsole import masking
    from opsconsole.health import Monitor
    from tests.integration.conftest import environment

    body = {"status": "error", "info": {}, "error": {"redis": {"status": "down", "message": "auth failed: hunter3x"}},
            "details": {"redis": {"status": "down", "message": "auth failed: hunter3x"}}}
    url = http_server.serve("/secret", 503, json.dumps(body), NEST)

    async def rounds():
        monitor = Monitor(environment({"api": {"kind": "http", "url": url}}), 2.0)
        try:
            first = await monitor.round()
            masking.register("hunter3x")
            return first, await monitor.round()
        finally:
            await monitor.aclose()

    first, second = asyncio.run(rounds())
    assert first.reading("api/redis").reasons == ("auth failed: hunter3x",)  # not a secret yet
    assert second.reading("api/redis").reasons == ("auth failed: ***",)
    assert "hunter3x" not in " ".join(second.reading("api").reasons)
