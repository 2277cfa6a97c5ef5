"""Benchmark: what reading framework health bodies costs a probe round.

Rounds of 200 http targets each, in the same run, alternating so all see the same machine:

* baseline: every target answers `200 OK`, `text/plain`, body `OK` (no body to read into checks);
* actuator: every target answers a Spring Boot Actuator body with 50 components, each with `details`
  (about 9 KB, `application/vnd.spring-boot.actuator.v3+json`), one of them DOWN so the member's status,
  reasons and sub-service readings are all built: 200 members and 10,000 sub-services a round. The body is the
  same every round, as a service's usually is (opsconsole keeps the last body of each member and parses a
  changed one only);
* actuator, changing: the same body with its disk `free` figure different at every request, so every round
  parses and unfolds all 200 bodies afresh: the worst case.

The server runs in its own process (an asyncio HTTP/1.1 server, keep-alive), so the CPU figure is opsconsole's
own: `time.process_time()` of this process per round. The report gives, for each, the median wall time and
CPU time of a round, and the ratio (the goal: the format work costs under 10 % of CPU).

    .venv/bin/python benchmarks/health_bodies.py [--targets 200] [--checks 50] [--rounds 15] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from opsconsole import config
from opsconsole.health import Monitor, Status

GOAL = 1.10


def actuator_body(checks: int) -> bytes:
    components: dict[str, Any] = {}
    for i in range(checks):
        components[f"component{i:02d}"] = {
            "status": "DOWN" if i == 7 else "UP",
            "details": {"database": "PostgreSQL", "validationQuery": "isValid()", "total": 76887154688,
                        "free": 51633451008 - i, "threshold": 10485760, "exists": True,
                        **({"error": "java.net.ConnectException: Connection refused"} if i == 7 else {})},
        }
    return json.dumps({"status": "DOWN", "components": components}).encode()


def _serve(port_out: Any, checks: int) -> None:
    actuator = (b"application/vnd.spring-boot.actuator.v3+json", actuator_body(checks))
    bodies = {b"/actuator": actuator, b"/plain": (b"text/plain", b"OK")}
    served = [0]

    def changing() -> tuple[bytes, bytes]:
        served[0] += 1  # same length, new digits: a disk whose free space moves
        return actuator[0], actuator[1].replace(b"51633451008", str(51633451008 - served[0] % 10 ** 6).rjust(11, "5")
                                                .encode(), 1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                content_type, body = changing() if path == b"/changing" else bodies.get(path, (b"text/plain", b"?"))
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\nConnection: keep-alive\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_out.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def environment(port: int, path: str, targets: int) -> Any:
    lines = ["[environments.bench]"]
    for i in range(targets):
        lines.append(f'[environments.bench.services.s{i}]\nkind = "http"\nurl = "http://127.0.0.1:{port}{path}"')
    cfg = config.parse("\n".join(lines) + "\n", None, Path.cwd())
    return cfg.environment("bench")


async def measure(port: int, targets: int, rounds: int) -> dict[str, dict[str, float]]:
    monitors = {name: Monitor(environment(port, path, targets), 5.0)
                for name, path in (("plain", "/plain"), ("actuator", "/actuator"), ("changing", "/changing"))}
    samples: dict[str, dict[str, list[float]]] = {name: {"wall_ms": [], "cpu_ms": []} for name in monitors}
    try:
        for name, monitor in monitors.items():  # warm up: connections, imports
            await monitor.round()
        for _ in range(rounds):
            for name, monitor in monitors.items():
                cpu0, wall0 = time.process_time(), time.perf_counter()
                rnd = await monitor.round()
                samples[name]["cpu_ms"].append((time.process_time() - cpu0) * 1000)
                samples[name]["wall_ms"].append((time.perf_counter() - wall0) * 1000)
                members = [r for r in rnd.readings if r.parent is None]
                wanted = Status.OK if name == "plain" else Status.CRIT
                bad = [r for r in members if r.status is not wanted]
                if bad:
                    raise SystemExit(f"{name}: {len(bad)} targets read {bad[0].status.value}: "
                                     f"{bad[0].error or bad[0].reasons}")
                if name != "plain" and len(rnd.readings) != targets * 51:
                    raise SystemExit(f"actuator: {len(rnd.readings)} readings, expected {targets * 51}")
    finally:
        for monitor in monitors.values():
            await monitor.aclose()
    return {name: {k: statistics.median(v) for k, v in s.items()} for name, s in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--checks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", metavar="FILE")
    args = parser.parse_args()
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=_serve, args=(send, args.checks), daemon=True)
    server.start()
    try:
        port = receive.recv()
        figures = asyncio.run(measure(port, args.targets, args.rounds))
    finally:
        server.terminate()
    result = {
        "targets": args.targets, "checks": args.checks, "rounds": args.rounds,
        "body_bytes": len(actuator_body(args.checks)), **figures,
        "cpu_ratio": figures["actuator"]["cpu_ms"] / figures["plain"]["cpu_ms"],
        "wall_ratio": figures["actuator"]["wall_ms"] / figures["plain"]["wall_ms"],
        "changing_cpu_ratio": figures["changing"]["cpu_ms"] / figures["plain"]["cpu_ms"],
    }
    if args.save:
        Path(args.save).write_text(json.dumps(result) + "\n")
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.targets} http targets per round, median of {args.rounds} rounds each, alternating:")
    for name, what in (("plain", "plain 200 'OK'"),
                       ("actuator", f"Actuator, {args.checks} checks, {result['body_bytes']:,} B"),
                       ("changing", "the same, changed every request")):
        print(f"  {what:<40} round {figures[name]['wall_ms']:7.1f} ms wall, {figures[name]['cpu_ms']:7.1f} ms CPU")
    verdict = "within" if result["cpu_ratio"] <= GOAL else "over"
    print(f"  format work, unchanged bodies: {result['cpu_ratio']:.2f}x the CPU of plain 200s ({verdict} the "
          f"{GOAL:.2f}x goal); every body changed: {result['changing_cpu_ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
