"""Queue probes: depth exactly as the queue system itself reports it.

Redis-backed kinds (bullmq, bull, redis-list) that share a Redis URL are read together in one
pipeline — one round trip per Redis per round, however many queues. Every command is a read:
opsconsole never writes a queue's keys (BullMQ's own getCounts script pops a legacy marker; we
only discount it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from opsconsole import masking
from opsconsole.config import Target
from opsconsole.health import Observation, Status, timed_out
from opsconsole.probes import Clients, describe, host_port

REDIS_QUEUE_KINDS = ("bullmq", "bull", "redis-list")

# (commands to queue on the pipeline, how to read their replies)
Reader = tuple[list[tuple[Any, ...]], Callable[[list[Any]], Observation]]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _list_count(length: int, last: Any) -> int:
    """LLEN of wait/paused as BullMQ's getCounts sees it: a legacy "0:" marker at the tail does not count."""
    marker = _text(last)
    if marker is not None and marker.startswith("0:"):
        return length - 1 if length > 1 else 0
    return length


def _missing(kind: str, where: str) -> Observation:
    """A queue with no keys in that Redis DB: unknown, never `ok` at depth 0 (an `expect` on it must not pass).
    `where` is the configured name: escaped, so a line break in it cannot start a row of its own."""
    return Observation(unknown=f"no {kind} queue {masking.printable(where, one_line=True)} in this Redis (check "
                               "name, prefix and db)")


def _queue_key(target: Target) -> tuple[str, str]:
    """BullMQ and Bull share a key layout: `{prefix}:{queue}:<part>`. Returns (`prefix:queue`, key start)."""
    where = f"{target.options.get('prefix', 'bull')}:{target.options.get('queue', target.name)}"
    return where, where + ":"


def _bullmq(target: Target) -> Reader:
    where, key = _queue_key(target)
    commands = [
        ("LLEN", key + "wait"), ("LINDEX", key + "wait", -1),
        ("LLEN", key + "paused"), ("LINDEX", key + "paused", -1),
        ("LLEN", key + "active"),
        ("ZCARD", key + "delayed"), ("ZCARD", key + "prioritized"), ("ZCARD", key + "waiting-children"),
        ("ZCARD", key + "completed"), ("ZCARD", key + "failed"),
        ("HMGET", key + "meta", "paused", "version"),
        ("EXISTS", key + "meta", key + "id", key + "events"),
    ]

    def read(r: list[Any]) -> Observation:
        counts = {
            "active": int(r[4]),
            "completed": int(r[8]),
            "delayed": int(r[5]),
            "failed": int(r[9]),
            "paused": _list_count(int(r[2]), r[3]),
            "prioritized": int(r[6]),
            "waiting": _list_count(int(r[0]), r[1]),
            "waiting-children": int(r[7]),
        }
        depth = sum(counts[k] for k in ("waiting", "paused", "delayed", "prioritized", "waiting-children"))
        paused_field, version = r[10]
        metrics: dict[str, Any] = {"depth": depth, "paused": paused_field is not None, "counts": counts,
                                   "failed": counts["failed"], "delayed": counts["delayed"]}
        if version is not None:
            metrics["version"] = _text(version)
        if int(r[11]) == 0 and not any(counts.values()):
            return _missing("bullmq", where)
        return Observation(metrics=metrics)

    return commands, read


def _bull(target: Target) -> Reader:
    where, key = _queue_key(target)
    commands = [
        ("LLEN", key + "wait"), ("LLEN", key + "paused"), ("LLEN", key + "active"),
        ("ZCARD", key + "delayed"), ("ZCARD", key + "completed"), ("ZCARD", key + "failed"),
        ("EXISTS", key + "meta-paused"), ("EXISTS", key + "id"),
    ]

    def read(r: list[Any]) -> Observation:
        # Bull's getJobCounts(); prioritized jobs sit in wait (or paused) beside the priority set.
        counts = {"waiting": int(r[0]), "active": int(r[2]), "completed": int(r[4]), "failed": int(r[5]),
                  "delayed": int(r[3]), "paused": int(r[1])}
        depth = counts["waiting"] + counts["paused"] + counts["delayed"]  # Bull's Queue.count()
        metrics = {"depth": depth, "paused": int(r[6]) > 0, "counts": counts,
                   "failed": counts["failed"], "delayed": counts["delayed"]}
        if int(r[7]) == 0 and not any(counts.values()):
            return _missing("bull", where)
        return Observation(metrics=metrics)

    return commands, read


def _redis_list(target: Target) -> Reader:
    key = str(target.options.get("key", target.name))

    def read(r: list[Any]) -> Observation:
        depth = int(r[0])
        metrics = {"depth": depth, "paused": False, "counts": {"waiting": depth}}
        if not int(r[1]):
            # Redis deletes a list when its last item is popped: a drained queue and a wrong key look the same, and
            # calling every drained queue unknown would fail the very verify that waits for it to drain.
            shown = masking.printable(repr(key), one_line=True)
            return Observation(metrics=metrics, findings=((Status.OK, f"no list queue {shown} in this Redis: empty "
                                                                      "(Redis keeps no empty list) or a wrong key or "
                                                                      "db"),))
        return Observation(metrics=metrics)

    return [("LLEN", key), ("EXISTS", key)], read


_READERS = {"bullmq": _bullmq, "bull": _bull, "redis-list": _redis_list}


async def probe_redis_queues(targets: Sequence[Target], clients: Clients) -> list[Observation]:
    """All Redis-backed queues of one URL in one pipelined round trip."""
    import redis.exceptions

    client = clients.redis(targets[0].url or "")
    readers = [_READERS[t.kind or ""](t) for t in targets]
    pipe = client.pipeline(transaction=False)
    for commands, _ in readers:
        for command in commands:
            pipe.execute_command(*command)
    try:
        replies = await pipe.execute(raise_on_error=False)
    except (redis.exceptions.RedisError, OSError) as exc:
        error = describe(exc, where=host_port(targets[0].url or "", default_port=6379))
        return [Observation(error=error) for _ in targets]
    observations = []
    at = 0
    for target, (commands, read) in zip(targets, readers):
        mine = replies[at:at + len(commands)]
        at += len(commands)
        failure = next((r for r in mine if isinstance(r, Exception)), None)
        if failure is not None:
            message = describe(failure)
            if "WRONGTYPE" in message:
                message = f"not a {target.kind} queue: a key holds another type ({message})"
            observations.append(Observation(error=message))
        else:
            observations.append(read(mine))
    return observations


async def probe_rabbitmq(target: Target, clients: Clients) -> Observation:
    """One queue through the management HTTP API."""
    import aiohttp


    base = (target.url or "").rstrip("/").removesuffix("/api")
    parts = urlsplit(base)
    if parts.username and parts.password is None:
        # No password in the url: the OS keyring may hold it (service "opsconsole").
        password = await asyncio.to_thread(keyring_password, f"rabbitmq/{parts.username}@{parts.hostname}")
        if password is None:
            return Observation(unknown=f"no password for rabbitmq/{parts.username}@{parts.hostname}: put it in "
                                       "the url or the OS keyring (service opsconsole)")
        masking.register(password)
        netloc = f"{quote(parts.username, safe='')}:{quote(password, safe='')}@{parts.netloc.rsplit('@', 1)[1]}"
        base = parts._replace(netloc=netloc).geturl()
    vhost = str(target.options.get("vhost", "/"))
    queue = str(target.options.get("queue", target.name))
    url = f"{base}/api/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}"
    where = host_port(target.url or "", default_port=None if (target.url or "").startswith("https") else 15672)
    try:
        async with clients.http().get(url, allow_redirects=False) as response:
            status = response.status
            body = await response.json(content_type=None) if status < 400 else None
    except (TimeoutError, asyncio.TimeoutError):
        return timed_out(clients.timeout)
    except ValueError:
        return Observation(error="management API answered with something that is not JSON")
    except (aiohttp.ClientError, OSError) as exc:
        message = describe(exc, where=where)
        if message.startswith("connection refused"):
            message += " (is the rabbitmq_management plugin enabled?)"
        return Observation(error=message)
    if status == 401:
        return Observation(error="management API refused the credentials (HTTP 401): check the user and "
                                 "password in the url")
    if isinstance(body, list) and queue in (".", ".."):
        # A path resolves `.` and `..` (the client and RabbitMQ both, however they are quoted): such a queue is only
        # reachable in the list the path lands on, its vhost's or every vhost's.
        body = next((q for q in body if isinstance(q, dict) and q.get("name") == queue and q.get("vhost") == vhost),
                    None)
        if body is None:
            status = 404
    if status == 404:
        return Observation(unknown=f"no queue {masking.printable(repr(queue), one_line=True)} in vhost "
                                   f"{masking.printable(repr(vhost), one_line=True)} (check queue and vhost)")
    if status >= 400:
        return Observation(error=f"management API answered HTTP {status}")
    if not isinstance(body, dict):
        return Observation(error="management API answered with something that is not a queue")
    stats = body.get("message_stats") or {}

    def rate(name: str) -> float:
        return float((stats.get(f"{name}_details") or {}).get("rate", 0.0))

    ready = int(body.get("messages_ready", 0))
    unacked = int(body.get("messages_unacknowledged", 0))
    consumers = int(body.get("consumers", 0))
    counts = {"messages": int(body.get("messages", ready + unacked)), "ready": ready, "unacknowledged": unacked}
    metrics = {
        "depth": ready,  # like BullMQ's count(): waiting, not in flight
        "paused": False,
        "counts": counts,
        "unacknowledged": unacked,
        "consumers": consumers,
        "publish_rate": rate("publish"),
        "deliver_rate": rate("deliver_get"),
        "ack_rate": rate("ack"),
        "state": body.get("state"),
    }
    findings: tuple[tuple[Status, str], ...] = ()
    if consumers == 0 and ready > 0:
        findings = ((Status.WARN, f"no consumers while {ready} messages are ready"),)
    return Observation(metrics=metrics, findings=findings)


def keyring_password(account: str) -> str | None:
    """A password from the OS keyring, or None when there is none (or no keyring backend)."""
    try:
        import keyring
        from keyring.errors import KeyringError

        return keyring.get_password("opsconsole", account)
    except (ImportError, KeyringError, RuntimeError):
        return None


_SQS_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                   "ApproximateNumberOfMessagesDelayed"]


async def probe_sqs(target: Target, clients: Clients) -> Observation:
    """The three Approximate* attributes through boto3, in a worker thread (boto3 blocks)."""
    options = target.options
    region = options.get("region") or _region_from_url(target.url or "")
    try:
        client = await asyncio.to_thread(clients.sqs, region, options.get("endpoint_url"), options.get("profile"))
    except Exception as exc:  # botocore's profile and region errors are plain exceptions
        return _sqs_failure(exc)
    try:
        reply = await asyncio.to_thread(client.get_queue_attributes, QueueUrl=target.url,
                                        AttributeNames=_SQS_ATTRIBUTES)
    except Exception as exc:
        return _sqs_failure(exc)
    attrs = reply.get("Attributes", {})
    visible = int(attrs.get("ApproximateNumberOfMessages", 0))
    in_flight = int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))
    delayed = int(attrs.get("ApproximateNumberOfMessagesDelayed", 0))
    counts = {"visible": visible, "not_visible": in_flight, "delayed": delayed}
    return Observation(metrics={"depth": visible + delayed, "paused": False, "counts": counts, "delayed": delayed})


def _region_from_url(url: str) -> str | None:
    host = urlsplit(url).hostname or ""
    parts = host.split(".")
    if len(parts) >= 4 and parts[0] == "sqs" and parts[-2:] == ["amazonaws", "com"]:
        return parts[1]
    return None


def _sqs_failure(exc: BaseException) -> Observation:
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return Observation(unknown="no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    if name == "NoRegionError":
        return Observation(error="no AWS region: set region in the queue or in provider_options")
    code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")
    if code in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
        return Observation(unknown="no such SQS queue (check the queue URL)")
    return Observation(error=describe(exc))


async def probe_queue(target: Target, clients: Clients) -> Observation:
    """A single queue (Redis-backed kinds normally go through probe_redis_queues in a batch)."""
    if target.kind in REDIS_QUEUE_KINDS:
        return (await probe_redis_queues([target], clients))[0]
    if target.kind == "rabbitmq":
        return await probe_rabbitmq(target, clients)
    return await probe_sqs(target, clients)
