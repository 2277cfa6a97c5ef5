"""Benchmark: how long one opsconsole probe round over 10, 100 and 500 targets takes, against its slowest probe.

`Monitor.round` probes every target concurrently, so a round should last about as long as its
slowest single probe, not the sum of all probes. This script measures that in one run, for each
size in ``--sizes`` (default 10, 100 and 500 targets):

* a local HTTP server (asyncio, its own process) answers every GET after 50 ms with
  ``{"healthy": true, "services": {}}``;
* an in-memory config holds one environment ``bench``: 90 % ``http`` services on that server,
  5 % ``redis`` and 5 % ``postgres`` services on the machine's real Redis and PostgreSQL (used
  read-only), at least one of each (10 targets: 8/1/1, 100: 90/5/5, 500: 455/25/20). A
  PostgreSQL probe holds a connection of its own while it runs, so the PostgreSQL targets are
  capped at a fifth of the server's max_connections (and at half of what is free at the start):
  the benchmark leaves the server room for everyone else;
* the baseline is the slowest single probe: for each kind, a Monitor over an environment holding
  just one target of that kind, measured for the same number of rounds just before each size;
  the baseline is the largest per-kind median;
* the report gives, per size, the median and p95 of the round, the baseline, their ratio (the
  goal is close to 1.0, under 1.5) and the sum of the per-target latencies of a round, to show
  the round is not their sum. As latencies measured inside a busy round are inflated, it also
  gives a serial estimate from the single-target medians (count x median per kind), the per-kind
  latencies reported in the round, and what the HTTP server saw (new connections, peak requests
  in flight). Every reading must be ``ok``; any that is not is counted, grouped by cause and the
  first error shown, since a benchmark with failing probes is misleading.

The soft limit on open files is raised to the hard limit: 500 targets need about 1,000 sockets.

Run it from the project root::

    make bench                                  # runs .venv/bin/python benchmarks/probe_round.py
    .venv/bin/python benchmarks/probe_round.py --rounds 10 --sizes 10,100,500
    .venv/bin/python benchmarks/probe_round.py --json

Redis and PostgreSQL default to redis://127.0.0.1:6379/0 and
postgresql://postgres@127.0.0.1:5432/postgres (trust auth); override them with
BENCH_REDIS_URL and BENCH_DATABASE_URL. If either is unreachable the script says so and exits 1.

Exit status: 0 when every probe read ok, 1 when Redis or PostgreSQL is unreachable (or the
HTTP server did not start, or too few files can be opened), 2 for bad arguments, 3 when the
figures were measured but some probes did not read ok (the report then says how many and why).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import pathlib
import re
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from opsconsole import config, masking
from opsconsole.health import Monitor, Reading, Round

DEFAULT_SIZES = (10, 100, 500)
REDIS_SHARE = 0.05
POSTGRES_SHARE = 0.05
HTTP_DELAY_S = 0.050
TIMEOUT_S = 5.0
GOAL_RATIO = 1.5

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

BODY = b'{"healthy": true, "services": {}}'
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


# --------------------------------------------------------------------------------------------
# The 50 ms HTTP server, run in its own process.
# --------------------------------------------------------------------------------------------

@dataclass
class ServerStats:
    connections: int = 0  # connections accepted
    requests: int = 0  # requests answered
    in_flight: int = 0  # requests waiting out their delay right now
    peak_in_flight: int = 0  # the most requests waiting at once since the last stats request

    def as_dict(self) -> dict[str, int]:
        return {"connections": self.connections, "requests": self.requests,
                "peak_in_flight": self.peak_in_flight}


def _response(status: str, body: bytes, keep_alive: bool, head_only: bool = False) -> bytes:
    headers = [
        f"HTTP/1.1 {status}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        "",
        "",
    ]
    return "\r\n".join(headers).encode("ascii") + (b"" if head_only else body)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float,
                  stats: ServerStats) -> None:
    """One connection: HTTP/1.1 keep-alive, one request at a time, each answered after `delay`."""
    stats.connections += 1
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return  # the client closed the connection (or sent garbage)
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split()
            if len(parts) != 3:
                writer.write(_response("400 Bad Request", b"", keep_alive=False))
                await writer.drain()
                return
            method, _target, version = parts
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                writer.write(_response("501 Not Implemented", b"", keep_alive=False))
                await writer.drain()
                return
            length = int(headers.get("content-length", "0") or "0")
            if length:
                await reader.readexactly(length)
            tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
            if version == "HTTP/1.1":
                keep_alive = "close" not in tokens
            else:
                keep_alive = "keep-alive" in tokens
            if method in ("GET", "HEAD"):
                stats.in_flight += 1
                stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
                try:
                    await asyncio.sleep(delay)
                finally:
                    stats.in_flight -= 1
                data = _response("200 OK", BODY, keep_alive, head_only=method == "HEAD")
            else:
                data = _response("405 Method Not Allowed", b"", keep_alive)
            writer.write(data)
            await writer.drain()
            stats.requests += 1
            if not keep_alive:
                return
    except ConnectionError:
        return
    finally:
        writer.close()
        with suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def _serve_async(delay: float, control: multiprocessing.connection.Connection) -> None:
    stats = ServerStats()
    handlers: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        writers.add(writer)
        try:
            await _handle(reader, writer, delay, stats)
        finally:
            handlers.discard(task)
            writers.discard(writer)

    server = await asyncio.start_server(
        handle,
        host="127.0.0.1", port=0,
        backlog=1024,  # the default 100 would make 180 simultaneous connects wait in the SYN queue
        reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]
    control.send(("port", port))
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def on_message() -> None:
        try:
            message = control.recv()
        except (EOFError, OSError):
            message = "stop"  # the parent went away
        if message == "stats":  # the figures so far; the peak restarts from now
            control.send(("stats", stats.as_dict()))
            stats.peak_in_flight = stats.in_flight
        elif message == "stop" and not stop.done():
            stop.set_result(None)

    loop.add_reader(control.fileno(), on_message)
    await server.start_serving()
    await stop
    loop.remove_reader(control.fileno())
    # Stop accepting, then end the open (keep-alive) connections so every handler returns on
    # its own instead of being cancelled by asyncio.run (which logs a traceback per handler).
    server.close()
    for writer in list(writers):
        writer.close()
    if handlers:
        await asyncio.wait(list(handlers), timeout=2)
    for task in list(handlers):
        task.cancel()
    await server.wait_closed()


def _serve(delay: float, control: multiprocessing.connection.Connection) -> None:
    """Entry point of the server process."""
    asyncio.run(_serve_async(delay, control))


class ServerError(RuntimeError):
    """The benchmark's HTTP server did not start or stopped answering."""


class HealthServer:
    """The 50 ms health endpoint, in a child process so it never shares the probes' event loop."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.port = 0
        ctx = multiprocessing.get_context("spawn")
        self._control, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(delay, child), name="bench-http", daemon=True)
        self._child = child

    def start(self) -> None:
        self._process.start()
        self._child.close()
        if not self._control.poll(15):
            raise ServerError("the benchmark HTTP server did not start within 15 s")
        try:
            tag, port = self._control.recv()
        except EOFError:
            raise ServerError("the benchmark HTTP server process exited before it started") from None
        assert tag == "port"
        self.port = int(port)

    def stats(self) -> dict[str, int]:
        self._control.send("stats")
        if not self._control.poll(5):
            raise ServerError("the benchmark HTTP server did not answer a stats request")
        tag, stats = self._control.recv()
        assert tag == "stats"
        return dict(stats)

    def stop(self) -> None:
        if self._process.is_alive():
            with suppress(OSError, BrokenPipeError):
                self._control.send("stop")
            self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._control.close()


# --------------------------------------------------------------------------------------------
# Redis and PostgreSQL reachability.
# --------------------------------------------------------------------------------------------

async def _check_redis(url: str) -> str | None:
    """None when Redis answers PING, else why not."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        await asyncio.wait_for(client.ping(), 5)
    except Exception as exc:  # any failure means: not usable for the benchmark
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    finally:
        with suppress(Exception):
            await client.aclose()
    return None


_ROOM_SQL = """
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int - 1
"""


async def _check_postgres(url: str) -> tuple[str | None, dict[str, int]]:
    """(None, room) when PostgreSQL answers, else (why not, {}). room: max_connections, the
    superuser-reserved ones, and the client connections in use besides this one."""
    import psycopg

    try:
        conn = await asyncio.wait_for(psycopg.AsyncConnection.connect(url, connect_timeout=3), 5)
        async with conn:
            cur = await conn.execute(_ROOM_SQL)
            row = await cur.fetchone()
    except Exception as exc:  # any failure means: not usable for the benchmark
        return (f"{type(exc).__name__}: {' '.join(str(exc).split())}" if str(exc) else type(exc).__name__), {}
    assert row is not None
    return None, {"max_connections": int(row[0]), "reserved": int(row[1]), "in_use": int(row[2])}


def _fd_limit() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit (child processes inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    with suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return _fd_limit()


def _redact(url: str) -> str:
    return masking.redact_url(url)


# --------------------------------------------------------------------------------------------
# Config, rounds, figures.
# --------------------------------------------------------------------------------------------

def _toml_string(value: str) -> str:
    # A JSON string of ASCII text is a valid TOML basic string.
    return json.dumps(value, ensure_ascii=True)


def build_toml(port: int, redis_url: str, database_url: str, n_http: int, n_redis: int,
               n_postgres: int) -> str:
    out = [
        "[opsconsole]",
        f"timeout = {TIMEOUT_S:g}",
        "",
        "[environments.bench]",
        'provider = "local"',
        'protection = "open"',
        "",
    ]

    def service(name: str, kind: str, url: str) -> None:
        out.extend([f"[environments.bench.services.{name}]", f'kind = "{kind}"',
                    f"url = {_toml_string(url)}", ""])

    for i in range(n_http):
        service(f"http-{i}", "http", f"http://127.0.0.1:{port}/t/{i}")
    for i in range(n_redis):
        service(f"redis-{i}", "redis", redis_url)
    for i in range(n_postgres):
        service(f"postgres-{i}", "postgres", database_url)
    return "\n".join(out)


def build_environment(toml_text: str) -> config.Environment:
    cfg = config.parse(toml_text, None, pathlib.Path.cwd())
    return cfg.environment("bench")


@dataclass
class Series:
    """The rounds measured for one environment."""

    warmup_s: float
    rounds: list[Round] = field(default_factory=list)

    @property
    def durations_s(self) -> list[float]:
        return [r.duration_s for r in self.rounds]


async def measure(env: config.Environment, rounds: int) -> Series:
    monitor = Monitor(env, timeout=TIMEOUT_S)
    try:
        warmup = await monitor.round()  # imports client libraries, opens connections
        series = Series(warmup_s=warmup.duration_s)
        for _ in range(rounds):
            series.rounds.append(await monitor.round())
        return series
    finally:
        await monitor.aclose()


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (with few rounds, p95 is the max)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _causes(readings: Sequence[Reading]) -> dict[str, int]:
    """Why readings were not ok, numbers blanked so that alike causes group: cause -> count."""
    causes: Counter[str] = Counter()
    for reading in readings:
        if reading.error is not None:
            causes[f"{reading.kind}: {_NUMBER.sub('N', reading.error)}"] += 1
        else:
            why = "; ".join(_NUMBER.sub("N", r) for r in reading.reasons) or reading.status.value
            causes[f"{reading.kind}: {why}"] += 1
    return dict(causes.most_common())


def _kind_latencies(rounds: Sequence[Round]) -> dict[str, dict[str, float]]:
    """Per kind: median and max reported latency over every reading of every round."""
    by_kind: dict[str, list[float]] = {}
    for rnd in rounds:
        for reading in rnd.readings:
            if reading.parent is None and reading.latency_ms is not None:
                by_kind.setdefault(reading.kind, []).append(reading.latency_ms)
    return {kind: {"median_ms": round(statistics.median(v), 1), "max_ms": round(max(v), 1)}
            for kind, v in sorted(by_kind.items())}


def target_mix(total: int, postgres_cap: int) -> tuple[int, int, int]:
    """(http, redis, postgres) for `total` targets: 5 % Redis, 5 % PostgreSQL (at least one of each,
    PostgreSQL at most `postgres_cap`), the rest HTTP."""
    n_redis = max(1, round(total * REDIS_SHARE))
    n_postgres = min(max(1, round(total * POSTGRES_SHARE)), postgres_cap)
    return total - n_redis - n_postgres, n_redis, n_postgres


async def measure_size(total: int, rounds: int, server: HealthServer,
                       env: Any, postgres_cap: int) -> dict[str, Any]:
    """One size: its baseline (the slowest single probe) measured first, then the full round."""
    n_http, n_redis, n_postgres = target_mix(total, postgres_cap)

    # Baseline: the slowest single probe, one Monitor over one target per kind.
    singles: dict[str, Series] = {}
    for kind, shape in (("http", (1, 0, 0)), ("redis", (0, 1, 0)), ("postgres", (0, 0, 1))):
        singles[kind] = await measure(env(*shape), rounds)
    single_medians = {kind: statistics.median(s.durations_s) for kind, s in singles.items()}
    slowest_kind = max(single_medians, key=lambda k: single_medians[k])
    slowest_s = single_medians[slowest_kind]

    full_env = env(n_http, n_redis, n_postgres)
    assert len(full_env.targets) == total
    before = server.stats()
    full = await measure(full_env, rounds)
    after = server.stats()

    durations = full.durations_s
    median_s = statistics.median(durations)
    sums_ms = [sum(r.latency_ms or 0.0 for r in rnd.readings if r.parent is None) for rnd in full.rounds]
    sum_ms = statistics.median(sums_ms)
    serial_ms = 1000 * (n_http * single_medians["http"] + n_redis * single_medians["redis"]
                        + n_postgres * single_medians["postgres"])

    readings = [r for rnd in full.rounds for r in rnd.readings]
    not_ok = [r for r in readings if r.status.value != "ok"]
    single_not_ok = [r for s in singles.values() for rnd in s.rounds for r in rnd.readings
                     if r.status.value != "ok"]
    # The first error (a probe that failed outright) if any, else the first reading not ok.
    bad = not_ok + single_not_ok
    first: Reading | None = next((r for r in bad if r.error is not None), bad[0] if bad else None)
    first_problem = None
    if first is not None:
        why = first.error or "; ".join(first.reasons) or "no reason given"
        first_problem = f"{first.name} ({first.kind}) {first.status.value}: {why}"

    # Requests to the 50 ms server during this size's rounds (its warm-up included).
    counted_rounds = rounds + 1
    server_figures = {
        "requests": after["requests"] - before["requests"],
        "new_connections": after["connections"] - before["connections"],
        "new_connections_per_round": round((after["connections"] - before["connections"]) / counted_rounds, 1),
        "peak_in_flight": after["peak_in_flight"],
    }
    return {
        "targets": {"total": total, "http": n_http, "redis": n_redis, "postgres": n_postgres},
        "warmup_ms": _ms(full.warmup_s),
        "round_ms": [_ms(d) for d in durations],
        "round_median_ms": _ms(median_s),
        "round_p95_ms": _ms(percentile(durations, 95)),
        "round_max_ms": _ms(max(durations)),
        "single_median_ms": {kind: _ms(v) for kind, v in single_medians.items()},
        "slowest_single_kind": slowest_kind,
        "slowest_single_median_ms": _ms(slowest_s),
        "ratio_round_over_slowest": round(median_s / slowest_s, 2),
        "goal_met": median_s / slowest_s < GOAL_RATIO,
        "sum_of_probe_latencies_ms": round(sum_ms, 1),
        "sum_over_round": round(sum_ms / (median_s * 1000), 1),
        # What probing one after another would take if each probe took its single-target time.
        "serial_estimate_ms": round(serial_ms, 1),
        "serial_estimate_over_round": round(serial_ms / (median_s * 1000), 1),
        "latency_by_kind_ms": _kind_latencies(full.rounds),
        "readings": len(readings),
        "not_ok": len(not_ok),
        "not_ok_by_status": {s: sum(1 for r in not_ok if r.status.value == s)
                             for s in sorted({r.status.value for r in not_ok})},
        "not_ok_causes": _causes(not_ok),
        "single_not_ok": len(single_not_ok),
        "single_not_ok_causes": _causes(single_not_ok),
        "first_problem": first_problem,
        "http_server": server_figures,
    }


async def run(args: argparse.Namespace, server: HealthServer, redis_url: str,
              database_url: str) -> tuple[dict[str, Any], int]:
    problems = []
    redis_problem, (postgres_problem, pg_room) = await asyncio.gather(_check_redis(redis_url),
                                                                      _check_postgres(database_url))
    if redis_problem:
        problems.append(f"Redis at {_redact(redis_url)} is unreachable ({redis_problem}); "
                        "start it or set BENCH_REDIS_URL")
    if postgres_problem:
        problems.append(f"PostgreSQL at {_redact(database_url)} is unreachable ({postgres_problem}); "
                        "start it or set BENCH_DATABASE_URL")
    if problems:
        return {"errors": [masking.mask(p) for p in problems]}, 1

    # Each PostgreSQL target opens its own connection for the length of its probe, all at once in a
    # round: cap them so the server keeps room for everyone else (a fifth of max_connections, and
    # never more than half of what is free right now).
    free = pg_room["max_connections"] - pg_room["reserved"] - pg_room["in_use"]
    postgres_cap = max(1, min(pg_room["max_connections"] // 5, free // 2))

    def env(n_http: int, n_redis: int, n_postgres: int) -> config.Environment:
        return build_environment(build_toml(server.port, redis_url, database_url,
                                            n_http, n_redis, n_postgres))

    sizes = [await measure_size(total, args.rounds, server, env, postgres_cap) for total in args.sizes]
    not_ok = sum(s["not_ok"] + s["single_not_ok"] for s in sizes)
    result: dict[str, Any] = {
        "rounds": args.rounds,
        "http_delay_ms": HTTP_DELAY_S * 1000,
        "goal_ratio": GOAL_RATIO,
        "postgres": {**pg_room, "cap": postgres_cap},
        "fd_limit": _fd_limit(),
        "sizes": sizes,
        "readings": sum(s["readings"] for s in sizes),
        "not_ok": not_ok,
    }
    return result, (3 if not_ok else 0)


def render(result: dict[str, Any]) -> str:
    pg = result["postgres"]
    lines = [
        (f"probe round, {result['rounds']} rounds per size (median, p95), HTTP answering in "
         f"{result['http_delay_ms']:g} ms; baseline: the slowest single probe, measured just before each size"),
        (f"  {'targets':>7}  {'http/redis/pg':>13}  {'median':>9}  {'p95':>9}  {'baseline':>15}  {'ratio':>6}  "
         f"{'sum of latencies':>16}  {'serial est.':>11}"),
    ]
    for s in result["sizes"]:
        t = s["targets"]
        mix = f"{t['http']}/{t['redis']}/{t['postgres']}"
        baseline = f"{s['slowest_single_median_ms']:.1f} ms {s['slowest_single_kind']}"
        lines.append(
            f"  {t['total']:>7}  {mix:>13}  {s['round_median_ms']:>6.1f} ms  {s['round_p95_ms']:>6.1f} ms  "
            f"{baseline:>15}  {s['ratio_round_over_slowest']:>5.2f}x  "
            f"{s['sum_of_probe_latencies_ms'] / 1000:>6.2f} s ({s['sum_over_round']:>4.0f}x)  "
            f"{s['serial_estimate_ms'] / 1000:>6.2f} s")
    lines.append(f"  ratio = round median / slowest single probe (goal: under {result['goal_ratio']:g}x); "
                 "sum and serial estimate show the round is not a sum")
    for s in result["sizes"]:
        t = s["targets"]
        singles = ", ".join(f"{k} {v:.1f}" for k, v in s["single_median_ms"].items())
        latencies = ", ".join(f"{k} {v['median_ms']:.1f}/{v['max_ms']:.1f}"
                              for k, v in s["latency_by_kind_ms"].items())
        server = s["http_server"]
        lines.append(
            f"  {t['total']:>4}: singles {singles} ms; in the round (median/max) {latencies} ms; http server "
            f"{server['new_connections_per_round']:g} new connections per round, peak {server['peak_in_flight']} "
            "in flight")
    lines.append(f"  PostgreSQL: at most {pg['cap']} probe connections (max_connections {pg['max_connections']}, "
                 f"{pg['in_use']} in use at the start); open files limit {result['fd_limit']}")
    if result["not_ok"]:
        for s in result["sizes"]:
            if not (s["not_ok"] or s["single_not_ok"]):
                continue
            by_status = ", ".join(f"{n} {st}" for st, n in s["not_ok_by_status"].items()) or "none"
            lines.append(f"  WARNING {s['targets']['total']} targets: {s['not_ok']} of {s['readings']} readings "
                         f"not ok ({by_status}), {s['single_not_ok']} in the baseline; first: {s['first_problem']}")
            for cause, n in list(s["not_ok_causes"].items())[:4]:
                lines.append(f"    {n:5d} x {cause}")
            for cause, n in list(s["single_not_ok_causes"].items())[:2]:
                lines.append(f"    {n:5d} x {cause} (baseline)")
        lines.append("  the figures above are misleading while probes fail")
    else:
        lines.append(f"  all {result['readings']} readings ok")
    return "\n".join(lines)


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not sizes or any(n < 3 for n in sizes):
        raise argparse.ArgumentTypeError("every size must be at least 3 (one target of each kind)")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per size (default 5)")
    parser.add_argument("--sizes", type=_sizes, default=list(DEFAULT_SIZES),
                        help="comma-separated target counts (default 10,100,500)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--save", metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    redis_url = os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL
    database_url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL

    # About two sockets per target (the probe's and, for HTTP, the server's), plus headroom.
    needed = 2 * max(args.sizes) + 256
    limit = raise_fd_limit()
    if limit != -1 and limit < needed:
        print(f"probe_round: {max(args.sizes)} targets need about {needed} open files, the limit is "
              f"{limit} (raise the hard limit: ulimit -Hn)", file=sys.stderr)
        return 1

    server = HealthServer(HTTP_DELAY_S)
    try:
        server.start()
        result, code = asyncio.run(run(args, server, redis_url, database_url))
    except ServerError as exc:
        print(f"probe_round: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()

    if args.save:
        pathlib.Path(args.save).write_text(json.dumps(result) + "\n")
    if "errors" in result:
        for problem in result["errors"]:
            print(f"probe_round: {problem}", file=sys.stderr)
        if args.json:
            print(json.dumps(result))
        return code
    print(json.dumps(result) if args.json else render(result))
    return code


if __name__ == "__main__":
    sys.exit(main())
