"""BullMQ round cost: time and Redis commands for 1, 10 and 100 queues in one Redis.

Starts its own redis-server on a free port, fills it with real BullMQ queues (tests/node, so run
`make test` or `npm ci --prefix tests/node` first), then measures opsconsole's pipelined round
beside a baseline measured in the same run: the same reads sent one command per round trip.

The commands are counted by Redis itself, not by us: `INFO commandstats` on that throwaway
server before and after the measured rounds (nothing else talks to it), per command name.

Run: make bench   (or .venv/bin/python benchmarks/queue_round.py [--rounds N] [--json] [--save PATH])
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opsconsole import config  # noqa: E402
from opsconsole.health import Monitor  # noqa: E402
from opsconsole.probes.queues import _bullmq  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True, capture_output=True, text=True).stdout


def command_calls(port: int) -> Counter[str]:
    """Calls per command so far, as Redis itself counts them (INFO commandstats)."""
    calls: Counter[str] = Counter()
    for line in cli(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, _, stats = line.removeprefix("cmdstat_").partition(":")
            calls[name] = int(dict(f.split("=", 1) for f in stats.strip().split(","))["calls"])
    return calls


def per_round(before: Counter[str], after: Counter[str], rounds: int) -> dict[str, float]:
    """Commands Redis executed per round between two readings. The INFO that took `before` is
    counted in `after` (a command is counted once it has run), so one INFO comes off."""
    delta = after - before
    delta["info"] -= 1
    return {name: n / rounds for name, n in sorted(delta.items()) if n > 0}


def environment(url: str, n: int):
    lines = ["[environments.bench]"]
    for i in range(n):
        lines += [f"[environments.bench.queues.q{i}]", 'kind = "bullmq"', f'url = "{url}"']
    return config.parse("\n".join(lines) + "\n", None, ROOT).environment("bench")


async def pipelined(env, rounds: int, port: int) -> tuple[list[float], dict[str, float]]:
    monitor = Monitor(env, timeout=5.0)
    try:
        await monitor.round()  # warm-up: imports and the connection
        times = []
        before = command_calls(port)
        for _ in range(rounds):
            t0 = time.perf_counter()
            await monitor.round()
            times.append((time.perf_counter() - t0) * 1000)
        after = command_calls(port)
    finally:
        await monitor.aclose()
    return times, per_round(before, after, rounds)


async def one_by_one(env, rounds: int, port: int) -> tuple[list[float], dict[str, float]]:
    """The baseline: the same commands, each awaited before the next is sent."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(env.queues[0].url)
    commands = [cmd for target in env.queues for cmd in _bullmq(target)[0]]
    try:
        await client.ping()
        times = []
        before = command_calls(port)
        for _ in range(rounds):
            t0 = time.perf_counter()
            for cmd in commands:
                await client.execute_command(*cmd)
            times.append((time.perf_counter() - t0) * 1000)
        after = command_calls(port)
    finally:
        await client.aclose()
    return times, per_round(before, after, rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="measured rounds per side (default 20)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--save", metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not shutil.which("redis-server") or not (ROOT / "tests/node/node_modules/bullmq").is_dir():
        print("needs redis-server and tests/node/node_modules (run `make test` once)", file=sys.stderr)
        return 1
    port = free_port()
    data = tempfile.mkdtemp(prefix="opsconsole-bench-redis-")
    server = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", data],
                              stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        url = f"redis://127.0.0.1:{port}/0"
        spec = {"lib": "bullmq", "url": url,
                "queues": [{"name": f"q{i}", "waiting": 3, "delayed": 1, "prioritized": 1} for i in range(100)]}
        subprocess.run(["node", str(ROOT / "tests/node/queues.mjs"), json.dumps(spec)], check=True,
                       capture_output=True, timeout=300)
        results = []
        for n in (1, 10, 100):
            env = environment(url, n)
            ours, ours_cmds = asyncio.run(pipelined(env, args.rounds, port))
            base, base_cmds = asyncio.run(one_by_one(env, args.rounds, port))
            expected = sum(len(_bullmq(t)[0]) for t in env.queues)
            results.append({"queues": n, "round_ms": statistics.median(ours),
                            "commands": sum(ours_cmds.values()), "commands_by_name": ours_cmds,
                            "baseline_ms": statistics.median(base),
                            "baseline_commands": sum(base_cmds.values()), "baseline_commands_by_name": base_cmds,
                            "expected_commands": expected,
                            "speedup": statistics.median(base) / statistics.median(ours)})
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data, ignore_errors=True)
    out = {"rounds": args.rounds, "results": results}
    if args.save:
        Path(args.save).write_text(json.dumps(out) + "\n")
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"BullMQ round over N queues in one Redis, median of {args.rounds} rounds; "
          "commands per round as counted by Redis (INFO commandstats)")
    print(f"  {'queues':>6}  {'round':>9}  {'commands':>8}  {'one-by-one':>10}  {'commands':>8}  {'ratio':>6}")
    for r in results:
        print(f"  {r['queues']:>6}  {r['round_ms']:>7.2f}ms  {r['commands']:>8.0f}  {r['baseline_ms']:>8.2f}ms"
              f"  {r['baseline_commands']:>8.0f}  {r['speedup']:>5.1f}x")
    last = results[-1]
    names = ", ".join(f"{name.upper()} {n:g}" for name, n in last["commands_by_name"].items())
    print(f"  {last['queues']} queues, per round: {names}")
    print("  (one pipeline per Redis URL per round: one round trip however many queues; "
          "ratio = one-by-one time / pipelined time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
