"""Summary of a `make bench` run: every figure beside its baseline, one line each, and the ratio.

Reads the JSON the benchmarks wrote with `--save` into one directory (probe_round.json,
queue_round.json, health_bodies.json, masking.json, engine_step.json, dashboard.json); a missing file is reported, not fatal.

    .venv/bin/python benchmarks/summary.py DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _load(directory: Path, name: str) -> dict[str, Any] | None:
    path = directory / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def rows(directory: Path) -> list[tuple[str, str, str, str]]:
    """(what, figure, baseline, ratio) per line."""
    out: list[tuple[str, str, str, str]] = []
    missing = "(not measured)"

    dash = _load(directory, "dashboard")
    if dash is None:
        out.append(("startup to first dashboard frame", missing, "", ""))
    else:
        ff = dash["first_frame"]
        out.append(("startup to first dashboard frame", f"{ff['dashboard_ms']:.0f} ms",
                    f"{ff['bare_ms']:.0f} ms bare Textual app", f"{ff['ratio']:.2f}x"))

    probe = _load(directory, "probe_round")
    if probe is None or "sizes" not in probe:
        out.append(("probe round", missing, "", ""))
    else:
        for s in probe["sizes"]:
            out.append((f"probe round, {s['targets']['total']} targets", f"{s['round_median_ms']:.0f} ms",
                        f"{s['slowest_single_median_ms']:.0f} ms slowest single probe",
                        f"{s['ratio_round_over_slowest']:.2f}x"))

    queue = _load(directory, "queue_round")
    if queue is None:
        out.append(("BullMQ round", missing, "", ""))
    else:
        r = next(r for r in queue["results"] if r["queues"] == max(x["queues"] for x in queue["results"]))
        out.append((f"BullMQ round, {r['queues']} queues",
                    f"{r['round_ms']:.1f} ms, {r['commands']:.0f} cmds",
                    f"{r['baseline_ms']:.0f} ms one by one ({r['baseline_commands']:.0f} cmds)",
                    f"{1 / r['speedup']:.2f}x ({r['speedup']:.1f}x faster)"))

    bodies = _load(directory, "health_bodies")
    if bodies is None:
        out.append(("health bodies round", missing, "", ""))
    else:
        plain = bodies["plain"]["cpu_ms"]
        for name, what in (("actuator", "unchanged"), ("changing", "changed every round")):
            out.append((f"{bodies['targets']} x {bodies['checks']}-check Actuator bodies, {what}",
                        f"{bodies[name]['cpu_ms']:.0f} ms CPU", f"{plain:.0f} ms plain 200s",
                        f"{bodies[name]['cpu_ms'] / plain:.2f}x"))

    masked = _load(directory, "masking")
    if masked is None:
        out.append(("masking with 10,000 secrets", missing, "", ""))
    else:
        large = masked["masking"][1]
        out.append((f"mask 20,000 lines, {large['secrets']:,} secrets", f"{large['mask_s'] * 1000:.0f} ms",
                    f"{large['baseline_mask_s'] * 1000:.0f} ms one replace per secret",
                    f"{large['mask_s'] / large['baseline_mask_s']:.3f}x"))
        out.append(("read a 10,000-line .env", f"{masked['env_10000_ours_s'] * 1000:.0f} ms",
                    f"{masked['env_10000_dotenv_s'] * 1000:.0f} ms dotenv_values",
                    f"{masked['env_10000_ours_s'] / masked['env_10000_dotenv_s']:.2f}x"))

    engine = _load(directory, "engine_step")
    if engine is None:
        out.append(("runbook engine step", missing, "", ""))
    else:
        out.append((f"runbook engine, {engine['steps']} steps",
                    f"{engine['engine_per_step_ms']:.2f} ms/step",
                    f"{engine['baseline_per_step_ms']:.2f} ms bare subprocess",
                    f"{engine['ratio']:.2f}x (+{engine['overhead_per_step_ms']:.2f} ms)"))

    if dash is None:
        out.append(("idle, 50 targets", missing, "", ""))
    else:
        idle = dash["idle"]
        d, b = idle["dashboard"], idle["bare"]
        out.append((f"idle CPU over {idle['window_s']:.0f} s, 50 targets", f"{d['cpu_pct']:.2f} % of a core",
                    f"{b['cpu_pct']:.2f} % bare app", f"+{d['cpu_pct'] - b['cpu_pct']:.2f} points"))
        out.append((f"idle memory after {idle['window_s']:.0f} s", f"{d['rss_mb']:.0f} MB",
                    f"{b['rss_mb']:.0f} MB bare app", f"{d['rss_mb'] / b['rss_mb']:.2f}x"))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    table = rows(Path(argv[0]))
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    print("summary (figure, baseline measured in the same run, ratio figure/baseline):")
    for what, figure, baseline, ratio in table:
        print(f"  {what:<{widths[0]}}  {figure:>{widths[1]}}  vs {baseline:<{widths[2]}}  {ratio}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
