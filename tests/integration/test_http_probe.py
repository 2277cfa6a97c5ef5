from __future__ import annotations

import time

import pytest

from opsconsole.health import Status
from tests.integration.conftest import probe_once
from tests.servers import free_port


def http(url: str, **extra) -> dict:
    return {"kind": "http", "url": url, **extra}


def test_health_json_is_unfolded_into_sub_services(http_server):
    rnd = probe_once({"api": http(http_server.url("/health"))})
    api = rnd.reading("api")
    # The endpoint answered 200 healthy, but search is down: the member is the worst of its sub-services.
    assert api.status is Status.CRIT and api.metrics["status_code"] == 200 and api.latency_ms > 0
    assert api.reasons == ("sub-service search crit: connection refused", "sub-service cache warn")
    subs = {r.name: r for r in rnd.readings if r.parent == "api"}
    assert set(subs) == {"api/database", "api/cache", "api/search"}
    assert subs["api/database"].status is Status.OK and subs["api/database"].latency_ms == 3.5
    assert subs["api/cache"].status is Status.WARN
    assert subs["api/search"].status is Status.CRIT and subs["api/search"].reasons == ("connection refused",)
    assert rnd.status is Status.CRIT  # the environment is its worst member


@pytest.mark.parametrize("path, status, reason", [
    ("/unhealthy", Status.CRIT, "HTTP 503 Service Unavailable"),
    ("/reports-unhealthy", Status.CRIT, "reports healthy: false"),
    ("/500", Status.CRIT, "HTTP 500 Internal Server Error"),
    ("/missing", Status.CRIT, "HTTP 404 Not Found"),
    ("/redirect", Status.WARN, "HTTP 302 redirect to /login"),
    ("/garbage", Status.WARN, "health body is not valid JSON"),
])
def test_failure_modes(http_server, path, status, reason):
    r = probe_once({"api": http(http_server.url(path))}).reading("api")
    assert r.status is status and r.reasons[0] == reason


def test_plain_text_health_is_ok(http_server):
    r = probe_once({"api": http(http_server.url("/plain"))}).reading("api")
    assert r.status is Status.OK and r.reasons == ()


def test_slow_response_times_out(http_server):
    t0 = time.monotonic()
    r = probe_once({"api": http(http_server.url("/slow?s=3"))}, timeout=0.5).reading("api")
    assert r.status is Status.CRIT and r.error == "timed out after 0.5 s"
    assert time.monotonic() - t0 < 2.5


def test_latency_threshold(http_server):
    spec = http(http_server.url("/slow?s=0.3"), thresholds={"latency_ms": {"warn": 100, "crit": 5000}})
    r = probe_once({"api": spec}).reading("api")
    assert r.status is Status.WARN and r.reasons[0].startswith("latency_ms ")


def test_connection_that_never_answers(blackhole):
    r = probe_once({"api": http(f"http://127.0.0.1:{blackhole.port}/health")}, timeout=0.5).reading("api")
    assert r.status is Status.CRIT and "timed out" in r.error


def test_connection_refused():
    r = probe_once({"api": http(f"http://127.0.0.1:{free_port()}/health")}).reading("api")
    assert r.status is Status.CRIT and "refused" in r.error.lower()


def test_tls_verification(https_server, tls):
    bad = probe_once({"api": http(https_server.url("/healthy"))}).reading("api")
    assert bad.status is Status.CRIT and "certificate verify failed" in bad.error.lower()
    ok = probe_once({"api": http(https_server.url("/healthy"), ca_file=str(tls.ca))}).reading("api")
    assert ok.status is Status.OK, ok.error


def test_tcp(blackhole):
    assert probe_once({"p": {"kind": "tcp", "url": f"tcp://127.0.0.1:{blackhole.port}"}}).reading("p").status is Status.OK
    r = probe_once({"p": {"kind": "tcp", "url": f"127.0.0.1:{free_port()}"}}).reading("p")
    assert r.status is Status.CRIT and "refused" in r.error.lower()


def test_round_is_concurrent_not_a_sum(http_server):
    # 20 targets that each take 0.3 s: in sequence that would be 6 s.
    members = {f"s{i}": http(http_server.url(f"/slow?s=0.3&i={i}")) for i in range(20)}
    rnd = probe_once(members)
    assert all(r.status is not Status.CRIT for r in rnd.readings)
    assert rnd.duration_s < 3.0
