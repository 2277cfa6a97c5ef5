"""Benchmark: what the runbook engine adds to each step, against spawning the same command directly.

A runbook of N steps (default 50), each one `sh` block running `true`, is planned and run in-process
through the engine API (`build_plan` + `Engine.run`) headless with `--yes` semantics, on a `local`
environment, journaled to a fresh SQLite journal in a temporary directory. The baseline, measured in
the same run, spawns `bash -e -c true` N times with `subprocess.run` (the same program the engine runs
for an sh block). Both are repeated (default 5 rounds) and the medians compared:

* engine: wall time of `Engine.run` for the N steps (lock, journal writes, masking, streaming,
  the fingerprint guard before each block, the process-group runner);
* baseline: wall time of N bare `subprocess.run` calls;
* per-step overhead = (engine - baseline) / N, and the ratio engine / baseline.

Planning is timed on its own. The journal is SQLite with synchronous=FULL, as in production: every step
is written twice (running, then finished) and is on disk before the next instruction, so the figure
includes those fsyncs on this machine's disk.

    make bench
    .venv/bin/python benchmarks/engine_step.py --steps 50 --rounds 5
    .venv/bin/python benchmarks/engine_step.py --json
    .venv/bin/python benchmarks/engine_step.py --save /tmp/engine.json   # human output, and JSON to a file
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def runbook_text(steps: int) -> str:
    return "# Trivial steps\n\n" + "".join(f"## Step {i}\n```sh\ntrue\n```\n\n" for i in range(1, steps + 1))


def measure_engine(steps: int) -> tuple[float, float]:
    """(plan seconds, run seconds) of one fresh run."""
    from opsconsole import config
    from opsconsole.engine import Engine, HeadlessPrompter, build_plan
    from opsconsole.journal import open_journal
    from opsconsole.runbook import parse

    with tempfile.TemporaryDirectory(prefix="opsconsole-bench-") as tmp:
        home = Path(tmp)
        cfg = config.parse('[environments.bench]\nprovider = "local"\n', home / "opsconsole.toml", home)
        book, problems = parse(runbook_text(steps), home / "trivial.md")
        assert not problems, problems
        t0 = time.perf_counter()
        plan = build_plan(cfg, "bench", book, {})
        planned = time.perf_counter() - t0
        store = open_journal(str(home / "journal.sqlite3"))
        try:
            prompter = HeadlessPrompter("bench", yes=True)
            t0 = time.perf_counter()
            record = Engine(plan, store, cfg, "bench", prompter).run()
            ran = time.perf_counter() - t0
        finally:
            store.close()
        if record.status != "succeeded" or record.steps_done != steps:
            raise SystemExit(f"engine run did not succeed: {record.status}, {record.steps_done}/{steps} steps")
    return planned, ran


def measure_baseline(steps: int) -> float:
    env = dict(os.environ)
    t0 = time.perf_counter()
    for _ in range(steps):
        subprocess.run(["bash", "-e", "-c", "true"], check=True, stdin=subprocess.DEVNULL, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="steps per run (default 50)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each side (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--save", metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1:
        parser.error("--steps and --rounds must be at least 1")

    measure_engine(min(args.steps, 5))  # warm imports and caches out of the figures
    measure_baseline(5)
    plans, engine, baseline = [], [], []
    for _ in range(args.rounds):  # interleaved, so a noisy moment hits both sides
        planned, ran = measure_engine(args.steps)
        plans.append(planned)
        engine.append(ran)
        baseline.append(measure_baseline(args.steps))
    e, b, p = statistics.median(engine), statistics.median(baseline), statistics.median(plans)
    result = {
        "steps": args.steps, "rounds": args.rounds,
        "engine_run_s": round(e, 4), "baseline_s": round(b, 4), "plan_s": round(p, 4),
        "engine_per_step_ms": round(e / args.steps * 1000, 2), "baseline_per_step_ms": round(b / args.steps * 1000, 2),
        "overhead_per_step_ms": round((e - b) / args.steps * 1000, 2), "ratio": round(e / b, 2),
    }
    if args.save:
        Path(args.save).write_text(json.dumps(result) + "\n")
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [
        ("engine (journaled, locked, masked)", f"{e * 1000:.1f} ms", f"{result['engine_per_step_ms']:.2f} ms/step"),
        (f"baseline (subprocess.run x {args.steps})", f"{b * 1000:.1f} ms",
         f"{result['baseline_per_step_ms']:.2f} ms/step"),
        ("overhead per step", f"{result['overhead_per_step_ms']:.2f} ms", f"ratio {result['ratio']:.2f}x"),
        (f"planning the {args.steps} steps", f"{p * 1000:.1f} ms", ""),
    ]
    print(f"Engine step overhead: {args.steps} steps of `true`, median of {args.rounds} runs")
    for label, value, detail in rows:
        print(f"  {label:<36} {value:>10}  {detail}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
