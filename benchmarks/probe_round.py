"""Benchmark: how long one opsconsole probe round over 200 targets takes, against its slowest probe.

`Monitor.round` probes every target concurrently, so a round should last about as long as its
slowest single probe, not the sum of all probes. This script measures that in one run:

* a local HTTP server (asyncio, its own process) answers every GET after 50 ms with
  ``{"healthy": true, "services": {}}``;
* an in-memory config holds one environment ``bench`` with 200 targets: 180 ``http`` services on
  that server, 10 ``redis`` and 10 ``postgres`` services on the machine's real Redis and
  PostgreSQL (used read-only);
* the baseline is the slowest single probe: for each kind, a Monitor over an environment holding
  just one target of that kind, measured for the same number of rounds; the baseline is the
  largest per-kind median;
* the report gives the median, p95 and max of the 200-target round, the baseline, their ratio
  (the goal is close to 1.0, under 1.5) and the sum of the per-target latencies of a round, to
  show the round is not their sum. As latencies measured inside a busy round are inflated, it
  also gives a serial estimate from the single-target medians (count x median per kind), the
  per-kind latencies reported in the round, and what the HTTP server saw (requests, new
  connections, peak requests in flight). Every reading must be ``ok``; any that is not is
  counted, grouped by cause and the first error shown, since a benchmark with failing probes
  is misleading.

Run it from the project root::

    make bench                                  # runs .venv/bin/python benchmarks/probe_round.py
    .venv/bin/python benchmarks/probe_round.py --rounds 10
    .venv/bin/python benchmarks/probe_round.py --json

Redis and PostgreSQL default to redis://127.0.0.1:6379/0 and
postgresql://postgres@127.0.0.1:5432/postgres (trust auth); override them with
BENCH_REDIS_URL and BENCH_DATABASE_URL. If either is unreachable the script says so and exits 1.

Exit status: 0 when every probe read ok, 1 when Redis or PostgreSQL is unreachable (or the
HTTP server did not start), 2 for bad arguments, 3 when the figures were measured but some
probes did not read ok (the report then says how many and why).
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

N_HTTP = 180
N_REDIS = 10
N_POSTGRES = 10
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


async def _check_postgres(url: str) -> str | None:
    """None when PostgreSQL answers SELECT 1, else why not."""
    import psycopg

    try:
        conn = await asyncio.wait_for(psycopg.AsyncConnection.connect(url, connect_timeout=3), 5)
        async with conn:
            await conn.execute("SELECT 1")
    except Exception as exc:  # any failure means: not usable for the benchmark
        return f"{type(exc).__name__}: {' '.join(str(exc).split())}" if str(exc) else type(exc).__name__
    return None


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


async def run(args: argparse.Namespace, server: HealthServer, redis_url: str,
              database_url: str) -> tuple[dict[str, Any], int]:
    problems = []
    redis_problem, postgres_problem = await asyncio.gather(_check_redis(redis_url),
                                                           _check_postgres(database_url))
    if redis_problem:
        problems.append(f"Redis at {_redact(redis_url)} is unreachable ({redis_problem}); "
                        "start it or set BENCH_REDIS_URL")
    if postgres_problem:
        problems.append(f"PostgreSQL at {_redact(database_url)} is unreachable ({postgres_problem}); "
                        "start it or set BENCH_DATABASE_URL")
    if problems:
        return {"errors": [masking.mask(p) for p in problems]}, 1

    def env(n_http: int, n_redis: int, n_postgres: int) -> config.Environment:
        return build_environment(build_toml(server.port, redis_url, database_url,
                                            n_http, n_redis, n_postgres))

    # Baseline: the slowest single probe, one Monitor over one target per kind.
    singles: dict[str, Series] = {}
    for kind, shape in (("http", (1, 0, 0)), ("redis", (0, 1, 0)), ("postgres", (0, 0, 1))):
        singles[kind] = await measure(env(*shape), args.rounds)
    single_medians = {kind: statistics.median(s.durations_s) for kind, s in singles.items()}
    slowest_kind = max(single_medians, key=lambda k: single_medians[k])
    slowest_s = single_medians[slowest_kind]

    # The 200-target round.
    full_env = env(N_HTTP, N_REDIS, N_POSTGRES)
    assert len(full_env.targets) == N_HTTP + N_REDIS + N_POSTGRES
    before = server.stats()
    full = await measure(full_env, args.rounds)
    after = server.stats()

    durations = full.durations_s
    median_s = statistics.median(durations)
    sums_ms = [sum(r.latency_ms or 0.0 for r in rnd.readings if r.parent is None) for rnd in full.rounds]
    sum_ms = statistics.median(sums_ms)

    serial_ms = 1000 * (N_HTTP * single_medians["http"] + N_REDIS * single_medians["redis"]
                        + N_POSTGRES * single_medians["postgres"])

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

    # Requests to the 50 ms server during the 200-target rounds (its warm-up included).
    counted_rounds = args.rounds + 1
    server_figures = {
        "requests": after["requests"] - before["requests"],
        "new_connections": after["connections"] - before["connections"],
        "new_connections_per_round": round((after["connections"] - before["connections"]) / counted_rounds, 1),
        "peak_in_flight": after["peak_in_flight"],
    }

    result: dict[str, Any] = {
        "targets": {"total": N_HTTP + N_REDIS + N_POSTGRES, "http": N_HTTP, "redis": N_REDIS,
                    "postgres": N_POSTGRES},
        "http_delay_ms": HTTP_DELAY_S * 1000,
        "rounds": args.rounds,
        "warmup_ms": _ms(full.warmup_s),
        "round_ms": [_ms(d) for d in durations],
        "round_median_ms": _ms(median_s),
        "round_p95_ms": _ms(percentile(durations, 95)),
        "round_max_ms": _ms(max(durations)),
        "single_median_ms": {kind: _ms(v) for kind, v in single_medians.items()},
        "slowest_single_kind": slowest_kind,
        "slowest_single_median_ms": _ms(slowest_s),
        "ratio_round_over_slowest": round(median_s / slowest_s, 2),
        "goal_ratio": GOAL_RATIO,
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
    return result, (3 if not_ok or single_not_ok else 0)


def render(result: dict[str, Any]) -> str:
    t = result["targets"]
    singles = ", ".join(f"{k} {v:.1f}" for k, v in result["single_median_ms"].items())
    goal = "within" if result["goal_met"] else "ABOVE"
    latencies = ", ".join(f"{k} median {v['median_ms']:.1f} max {v['max_ms']:.1f} ms"
                          for k, v in result["latency_by_kind_ms"].items())
    server = result["http_server"]
    lines = [
        (f"probe round over {t['total']} targets ({t['http']} http@{result['http_delay_ms']:g}ms, "
         f"{t['redis']} redis, {t['postgres']} postgres), {result['rounds']} rounds"),
        (f"  round median {result['round_median_ms']:.1f} ms  p95 {result['round_p95_ms']:.1f} ms  "
         f"max {result['round_max_ms']:.1f} ms  (warm-up {result['warmup_ms']:.1f} ms, not counted)"),
        (f"  slowest single probe ({result['slowest_single_kind']}) median "
         f"{result['slowest_single_median_ms']:.1f} ms  (single-target medians: {singles} ms)"),
        (f"  ratio round/slowest {result['ratio_round_over_slowest']:.2f}x ({goal} the "
         f"{result['goal_ratio']:g}x goal)   sum of probe latencies "
         f"{result['sum_of_probe_latencies_ms'] / 1000:.2f} s ({result['sum_over_round']:g}x the round)"),
        (f"  serial estimate from the single-target medians {result['serial_estimate_ms'] / 1000:.2f} s "
         f"({result['serial_estimate_over_round']:g}x the round)"),
        f"  latency reported in the round: {latencies}",
        (f"  http server: {server['requests']} requests over {server['new_connections']} new connections "
         f"({server['new_connections_per_round']:g} per round), peak {server['peak_in_flight']} in flight"),
    ]
    if result["not_ok"] or result["single_not_ok"]:
        by_status = ", ".join(f"{n} {s}" for s, n in result["not_ok_by_status"].items()) or "none"
        lines.append(f"  WARNING: {result['not_ok']} of {result['readings']} readings not ok ({by_status}), "
                     f"{result['single_not_ok']} in the baseline; first: {result['first_problem']}")
        for cause, n in list(result["not_ok_causes"].items())[:4]:
            lines.append(f"    {n:5d} x {cause}")
        for cause, n in list(result["single_not_ok_causes"].items())[:2]:
            lines.append(f"    {n:5d} x {cause} (baseline)")
        lines.append("  the figures above are misleading while probes fail")
    else:
        lines.append(f"  all {result['readings']} readings ok")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    redis_url = os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL
    database_url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL

    server = HealthServer(HTTP_DELAY_S)
    try:
        server.start()
        result, code = asyncio.run(run(args, server, redis_url, database_url))
    except ServerError as exc:
        print(f"probe_round: {exc}", file=sys.stderr)
        return 1
    finally:
        server.stop()

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
