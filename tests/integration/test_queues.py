"""Queue depth equals what the queue system itself reports: BullMQ v5 and v6, Bull, RabbitMQ, SQS."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from opsconsole.health import Monitor, Status
from tests.integration.conftest import environment, probe_once
from tests.servers import free_port, missing

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
READ_COMMANDS = {"llen", "lindex", "zcard", "hmget", "exists", "ping", "info", "client", "hello", "config"}


def node_queues(spec: dict) -> dict:
    """Build queues with the real library; returns its own getJobCounts(), count(), isPaused()."""
    if shutil.which("node") is None:
        missing("node is not installed")
    if not (NODE_DIR / "node_modules" / "bullmq").is_dir():
        missing("tests/node/node_modules is missing: run `make test` (it installs them)")
    out = subprocess.run(["node", str(NODE_DIR / "queues.mjs"), json.dumps(spec)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def redis_db(redis_running):
    """The throwaway Redis, emptied: each test starts from nothing."""
    redis_running.cli("FLUSHALL")
    return redis_running


EVERY_STATE = {"name": "emails", "completed": 2, "failed": 3, "active": 2, "waiting": 4, "delayed": 5,
               "prioritized": 6, "children": 2}


def snapshot(redis) -> dict:
    keys = sorted(redis.cli("--scan").split())
    return {k: redis.cli("--no-raw", "DUMP", k) for k in keys}


@pytest.mark.parametrize("lib", ["bullmq", "bullmq6"])
def test_bullmq_counts_equal_bullmqs_own(redis_db, lib):
    spec = {"lib": lib, "url": redis_db.url, "queues": [EVERY_STATE, {"name": "paused-q", "waiting": 3,
                                                                      "delayed": 1, "paused": True}]}
    theirs = node_queues(spec)
    before = snapshot(redis_db)
    redis_db.cli("CONFIG", "RESETSTAT")
    rnd = probe_once({}, queues={"emails": {"kind": "bullmq", "url": redis_db.url},
                                 "paused-q": {"kind": "bullmq", "url": redis_db.url}})
    for name in ("emails", "paused-q"):
        ours = rnd.reading(name)
        expected = theirs[name]
        counts = dict(ours.metrics["counts"])
        if lib == "bullmq6":
            assert counts.pop("paused") == 0  # v6 has no paused list: paused jobs stay in wait
        assert counts == expected["counts"], name
        assert ours.metrics["depth"] == expected["count"]
        assert ours.metrics["paused"] is expected["paused"]
    # strictly read-only: nothing changed, and only read commands reached Redis
    assert snapshot(redis_db) == before
    stats = redis_db.cli("INFO", "commandstats")
    used = {line.split(":")[0].removeprefix("cmdstat_").split("|")[0] for line in stats.splitlines() if line.startswith("cmdstat_")}
    assert used <= READ_COMMANDS | {"dump", "scan", "resetstat"}, used - READ_COMMANDS


def test_legacy_marker_is_discounted_not_popped(redis_db):
    node_queues({"lib": "bullmq", "url": redis_db.url, "queues": [{"name": "old", "waiting": 3}]})
    redis_db.cli("RPUSH", "bull:old:wait", "0:1700000000000")  # a pre-v5 marker at the tail
    r = probe_once({}, queues={"old": {"kind": "bullmq", "url": redis_db.url}}).reading("old")
    assert r.metrics["counts"]["waiting"] == 3
    assert redis_db.cli("LLEN", "bull:old:wait") == "4"  # still there: we never write
    theirs = node_queues({"lib": "bullmq", "url": redis_db.url, "queues": [{"name": "old"}]})
    assert theirs["old"]["counts"]["waiting"] == 3


def test_bull_counts_equal_bulls_own(redis_db):
    spec = {"lib": "bull", "url": redis_db.url, "queues": [
        {"name": "legacy", "waiting": 3, "completed": 1, "failed": 2, "delayed": 1, "prioritized": 2},
        {"name": "legacy-paused", "waiting": 4, "delayed": 2, "paused": True},
    ]}
    theirs = node_queues(spec)
    rnd = probe_once({}, queues={n: {"kind": "bull", "url": redis_db.url} for n in theirs})
    for name, expected in theirs.items():
        ours = rnd.reading(name)
        assert ours.metrics["counts"] == expected["counts"], name
        assert ours.metrics["depth"] == expected["count"]
        assert ours.metrics["paused"] is expected["paused"]


def test_custom_prefix_and_queue_name(redis_db):
    theirs = node_queues({"lib": "bullmq", "url": redis_db.url, "prefix": "myapp",
                          "queues": [{"name": "mail.v2", "waiting": 2, "delayed": 1}]})
    spec = {"kind": "bullmq", "url": redis_db.url, "prefix": "myapp", "queue": "mail.v2"}
    r = probe_once({}, queues={"mail": spec}).reading("mail")
    assert r.metrics["depth"] == theirs["mail.v2"]["count"] == 3


def test_missing_queue_and_wrong_db_are_unknown_with_a_hint(redis_db):
    # Not ok at depth 0: `expect jobs.depth < 1000` on a queue that is not there would pass without testing anything.
    node_queues({"lib": "bullmq", "url": redis_db.url, "queues": [{"name": "jobs", "waiting": 2}]})
    wrong_db = redis_db.url.rsplit("/", 1)[0] + "/5"
    r = probe_once({}, queues={"jobs": {"kind": "bullmq", "url": wrong_db}}).reading("jobs")
    assert r.status is Status.UNKNOWN and "depth" not in r.metrics
    assert r.reasons == ("no bullmq queue bull:jobs in this Redis (check name, prefix and db)",)
    r = probe_once({}, queues={"jobs": {"kind": "bull", "url": wrong_db}}).reading("jobs")
    assert r.status is Status.UNKNOWN and r.reasons[0].startswith("no bull queue bull:jobs")
    # A plain list is the exception: Redis deletes a list when it empties, so a missing one is a drained queue as
    # often as a wrong key; unknown would fail every verify that waits for the queue to drain.
    r = probe_once({}, queues={"jobs": {"kind": "redis-list", "url": wrong_db}}).reading("jobs")
    assert r.status is Status.OK and r.metrics["depth"] == 0
    assert r.reasons == ("no list queue 'jobs' in this Redis: empty (Redis keeps no empty list) or a wrong key or db",)


def test_an_emptied_bullmq_queue_still_exists(redis_db):
    # Jobs removed on completion leave the queue's meta and id keys: empty, not missing.
    node_queues({"lib": "bullmq", "url": redis_db.url, "queues": [{"name": "drained", "waiting": 1}]})
    redis_db.cli("DEL", "bull:drained:wait")
    r = probe_once({}, queues={"drained": {"kind": "bullmq", "url": redis_db.url}}).reading("drained")
    assert r.status is Status.OK and r.metrics["depth"] == 0


def test_redis_list_and_wrong_type(redis_db):
    redis_db.cli("RPUSH", "plain", "a", "b", "c")
    redis_db.cli("SET", "bull:strange:wait", "not a list")
    rnd = probe_once({}, queues={"plain": {"kind": "redis-list", "url": redis_db.url},
                                 "strange": {"kind": "bullmq", "url": redis_db.url}})
    assert rnd.reading("plain").metrics["depth"] == 3
    strange = rnd.reading("strange")
    assert strange.status is Status.CRIT and strange.error.startswith("not a bullmq queue")


def test_many_queues_in_one_redis_cost_one_round_trip(redis_db):
    names = [f"q{i}" for i in range(30)]
    redis_db.cli("CONFIG", "RESETSTAT")
    rnd = probe_once({}, queues={n: {"kind": "bullmq", "url": redis_db.url} for n in names})
    assert len(rnd.readings) == 30
    stats = redis_db.cli("INFO", "commandstats")
    llen = int(stats.split("cmdstat_llen:calls=")[1].split(",")[0])
    assert llen == 30 * 3  # wait, paused and active of every queue, in one pipeline
    # one connection did it all: the pipeline is per Redis URL, not per queue
    clients = int(redis_db.cli("INFO", "stats").split("total_connections_received:")[1].split()[0])
    assert clients >= 1


def test_depth_above_threshold_is_crit_and_check_exits_2(redis_db, write_config, run_cli):
    node_queues({"lib": "bullmq", "url": redis_db.url, "queues": [{"name": "emails", "waiting": 12}]})
    path = write_config(f"""
        [environments.local.queues.emails]
        kind = "bullmq"
        url = "{redis_db.url}"
        thresholds = {{ depth = {{ warn = 5, crit = 10 }} }}
    """)
    proc = run_cli("check", "--json", "--config", str(path))
    assert proc.returncode == 2, proc.stderr
    queue = json.loads(proc.stdout)["queues"][0]
    assert queue["status"] == "crit" and queue["depth"] == 12
    assert queue["reasons"] == ["depth 12 above crit 10"]


def test_trend_and_time_to_empty(redis_db, write_config, run_cli):
    redis_db.cli("RPUSH", "work", *[str(i) for i in range(200)])
    env = environment({}, queues={"work": {"kind": "redis-list", "url": redis_db.url}})

    async def scenario():
        monitor = Monitor(env, timeout=1.0)
        rounds = []
        try:
            for _ in range(4):
                rounds.append(await monitor.round())
                redis_db.cli("LPOP", "work", "20")
                await asyncio.sleep(0.5)
        finally:
            await monitor.aclose()
        return rounds

    rounds = asyncio.run(scenario())
    first, last = rounds[0].reading("work"), rounds[-1].reading("work")
    assert "rate_per_s" not in first.metrics and "eta_s" not in first.metrics
    rate, eta = last.metrics["rate_per_s"], last.metrics["eta_s"]
    assert -60 < rate < -20  # 20 popped every ~0.5 s
    # eta_s is reported to 0.1 s (rate_per_s to 0.001/s), so it matches depth / -rate within that rounding
    assert eta == pytest.approx(last.metrics["depth"] / -rate, abs=0.05 + 1e-3)
    # check --watch reports the trend from the second round on
    path = write_config(f'[environments.local.queues.work]\nkind = "redis-list"\nurl = "{redis_db.url}"\n')
    proc = run_cli("check", "--json", "--watch", "0.2", "--rounds", "2", "--config", str(path))
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert "rate_per_s" not in lines[0]["queues"][0]
    assert lines[1]["queues"][0]["rate_per_s"] == 0 and lines[1]["queues"][0]["eta_s"] is None


# --- RabbitMQ -------------------------------------------------------------------------------

# `rabbitmq` (the management API's URL) is a fixture of tests/conftest.py.


def management(url: str, path: str) -> dict:
    import urllib.request
    import base64

    request = urllib.request.Request(url.replace("guest:guest@", "") + path)
    request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def test_rabbitmq_counts_equal_the_management_api(rabbitmq):
    import pika

    name = f"opsconsole-test-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672))
    channel = connection.channel()
    channel.queue_declare(queue=name, auto_delete=False)
    try:
        for i in range(7):
            channel.basic_publish(exchange="", routing_key=name, body=f"m{i}".encode())
        for _ in range(2):  # in flight: fetched, not acknowledged
            assert channel.basic_get(name, auto_ack=False)[0] is not None
        deadline = time.monotonic() + 30  # the management API refreshes its figures every few seconds
        while True:
            api = management(rabbitmq, f"/api/queues/%2F/{name}")
            if api.get("messages_ready") == 5 and api.get("messages_unacknowledged") == 2:
                break
            assert time.monotonic() < deadline, api
            time.sleep(0.5)
        r = probe_once({}, queues={"jobs": {"kind": "rabbitmq", "url": rabbitmq, "queue": name}}).reading("jobs")
        assert r.metrics["counts"] == {"messages": api["messages"], "ready": 5, "unacknowledged": 2}
        assert r.metrics["depth"] == 5 and r.metrics["consumers"] == api["consumers"] == 0
        assert r.status is Status.WARN and r.reasons == ("no consumers while 5 messages are ready",)
    finally:
        channel.queue_delete(name)
        connection.close()


def test_rabbitmq_failures(rabbitmq):
    bad = probe_once({}, queues={"q": {"kind": "rabbitmq", "url": "http://guest:not-it@127.0.0.1:15672"}})
    r = bad.reading("q")
    assert r.status is Status.CRIT and "HTTP 401" in r.error and "not-it" not in r.error
    gone = probe_once({}, queues={"q": {"kind": "rabbitmq", "url": rabbitmq, "queue": "no-such-queue-x"}}).reading("q")
    assert gone.status is Status.UNKNOWN and "depth" not in gone.metrics
    assert "no queue 'no-such-queue-x'" in gone.reasons[0]
    port = free_port()
    down = probe_once({}, queues={"q": {"kind": "rabbitmq", "url": f"http://guest:guest@127.0.0.1:{port}"}}).reading("q")
    assert down.status is Status.CRIT and "rabbitmq_management plugin" in down.error


# --- SQS (moto server: real HTTP, real boto3) ----------------------------------------------

@pytest.fixture(scope="module")
def moto_sqs(moto_server):
    # The session's moto server (tests/conftest.py); its credentials for this module's tests.
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED")}
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_EC2_METADATA_DISABLED": "true"})
    yield moto_server
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_sqs_counts_equal_sqs_own(moto_sqs):
    import boto3

    sqs = boto3.client("sqs", region_name="eu-west-1", endpoint_url=moto_sqs)
    url = sqs.create_queue(QueueName=f"jobs-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    for i in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
    for i in range(2):
        sqs.send_message(QueueUrl=url, MessageBody=f"later{i}", DelaySeconds=600)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    spec = {"kind": "sqs", "url": url, "region": "eu-west-1", "endpoint_url": moto_sqs}
    r = probe_once({}, queues={"jobs": spec}).reading("jobs")
    assert r.status is Status.OK, r.error
    assert r.metrics["counts"] == {"visible": int(attrs["ApproximateNumberOfMessages"]),
                                   "not_visible": int(attrs["ApproximateNumberOfMessagesNotVisible"]),
                                   "delayed": int(attrs["ApproximateNumberOfMessagesDelayed"])} == \
        {"visible": 4, "not_visible": 1, "delayed": 2}
    assert r.metrics["depth"] == 6  # visible + delayed


def test_sqs_settings_come_from_provider_options(moto_sqs):
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-2", endpoint_url=moto_sqs)
    url = sqs.create_queue(QueueName="from-provider")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="x")
    from opsconsole import config

    text = f"""
[environments.aws]
provider = "aws"
[environments.aws.provider_options]
region = "us-east-2"
endpoint_url = "{moto_sqs}"
[environments.aws.queues.q]
kind = "sqs"
url = "{url}"
"""
    env = config.parse(text, None, Path.cwd()).environment("aws")

    async def run():
        monitor = Monitor(env, timeout=5)
        try:
            return await monitor.round()
        finally:
            await monitor.aclose()

    assert asyncio.run(run()).reading("q").metrics["depth"] == 1


def test_sqs_failures(moto_sqs, monkeypatch):
    missing_queue = f"{moto_sqs}/123456789012/nope"
    spec = {"kind": "sqs", "url": missing_queue, "region": "eu-west-1", "endpoint_url": moto_sqs}
    r = probe_once({}, queues={"q": spec}).reading("q")
    assert r.status is Status.UNKNOWN and "depth" not in r.metrics
    assert r.reasons == ("no such SQS queue (check the queue URL)",)
    # no region anywhere: a clear error before any network call
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    spec = {"kind": "sqs", "url": missing_queue, "endpoint_url": moto_sqs}
    r = probe_once({}, queues={"q": spec}).reading("q")
    assert r.status is Status.CRIT and r.error.startswith("no AWS region")
    # no credentials: the probe cannot run, so the status is unknown, not a guess
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    spec = {"kind": "sqs", "url": missing_queue, "region": "eu-west-1", "endpoint_url": moto_sqs}
    r = probe_once({}, queues={"q": spec}).reading("q")
    assert r.status is Status.UNKNOWN and r.reasons[0].startswith("no AWS credentials")


def test_rabbitmq_password_from_the_keyring(rabbitmq):
    import keyring
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1
        store: dict = {}

        def get_password(self, service, username):
            return self.store.get((service, username))

        def set_password(self, service, username, password):
            self.store[(service, username)] = password

        def delete_password(self, service, username):
            self.store.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        spec = {"kind": "rabbitmq", "url": "http://guest@127.0.0.1:15672", "queue": "no-such-queue-y"}
        r = probe_once({}, queues={"q": spec}).reading("q")
        assert r.status is Status.UNKNOWN and "OS keyring" in r.reasons[0]
        keyring.set_password("opsconsole", "rabbitmq/guest@127.0.0.1", "guest")
        r = probe_once({}, queues={"q": spec}).reading("q")
        assert r.status is Status.UNKNOWN and "no queue 'no-such-queue-y'" in r.reasons[0]
    finally:
        keyring.set_keyring(previous)


# --- what `plan` may expect of each kind ------------------------------------------------------------

def test_every_kind_reports_only_the_fields_plan_knows(redis_db, pg_running, http_server, rabbitmq, moto_sqs):
    """`plan` refuses an expect on a field a kind never reports (probes.FIELDS, probes.COUNTS): every real probe, two
    rounds (so queues have their trend), must stay inside those lists, or plan would refuse a valid expect."""
    import boto3
    import pika

    from opsconsole.probes import COUNTS, FIELDS

    node_queues({"lib": "bullmq", "url": redis_db.url, "queues": [EVERY_STATE]})
    node_queues({"lib": "bull", "url": redis_db.url, "prefix": "legacy", "queues": [{"name": "old", "waiting": 2}]})
    redis_db.cli("RPUSH", "plain", "a")
    sqs = boto3.client("sqs", region_name="eu-west-1", endpoint_url=moto_sqs)
    queue_url = sqs.create_queue(QueueName=f"fields-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    name = f"fields-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1"))
    channel = connection.channel()
    channel.queue_declare(name)
    services = {"db": {"kind": "postgres", "url": pg_running.url()}, "cache": {"kind": "redis", "url": redis_db.url},
                "api": {"kind": "http", "url": http_server.url("/health")},
                "port": {"kind": "tcp", "url": f"tcp://127.0.0.1:{redis_db.port}"}}
    queues = {"emails": {"kind": "bullmq", "url": redis_db.url}, "plain": {"kind": "redis-list", "url": redis_db.url},
              "old": {"kind": "bull", "url": redis_db.url, "prefix": "legacy"},
              "rabbit": {"kind": "rabbitmq", "url": rabbitmq, "queue": name},
              "jobs": {"kind": "sqs", "url": queue_url, "region": "eu-west-1", "endpoint_url": moto_sqs}}

    async def two_rounds():
        monitor = Monitor(environment(services, queues), 5.0)
        try:
            await monitor.round()
            return await monitor.round()
        finally:
            await monitor.aclose()

    try:
        rnd = asyncio.run(two_rounds())
    finally:
        channel.queue_delete(name)
        connection.close()
    for reading in rnd.readings:
        if reading.parent:
            continue
        assert reading.status is not Status.UNKNOWN and reading.error is None, (reading.name, reading.reasons)
        reported = set(reading.metrics) | ({"latency_ms"} if reading.latency_ms is not None else set())
        assert reported <= set(FIELDS[reading.kind]), (reading.kind, reported - set(FIELDS[reading.kind]))
        counts = set(reading.metrics.get("counts") or {})
        assert counts <= set(COUNTS.get(reading.kind, ())), (reading.kind, counts)
        if reading.group == "queue":
            assert "rate_per_s" in reading.metrics  # the second round's trend is in the lists too
