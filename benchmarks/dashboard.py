"""The dashboard's two costs a user feels: time to the first complete frame, and idle cost all night.

    .venv/bin/python benchmarks/dashboard.py [--runs 7] [--idle 300] [--json] [--save PATH]
    .venv/bin/python benchmarks/dashboard.py --quick     # 3 runs, a 30 s idle window (make bench-quick)

1. First frame: `opsconsole snapshot` (a fresh process that loads the config, starts the app, waits
   for the first probe round against a real PostgreSQL, Redis and HTTP service, and writes the
   dashboard to SVG) against a bare Textual app that renders one frame to SVG the same way. Both
   are cold processes measured in this run; the ratio is what opsconsole adds.
2. Idle: the dashboard left running headless with 50 targets (40 HTTP, 5 Redis, 5 PostgreSQL) at a
   5 s refresh: CPU time and resident memory over a window (default 300 s, the 5 minutes the
   figures in the README are for), against a bare Textual app idling over the same window, side by
   side (the bare app costs next to nothing, so running both at once halves the wait without
   disturbing either, and a noisy moment on the machine hits both). Resident memory is read at the
   start and the end of the window, so growth over the window shows.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BARE_FRAME = """
import os, sys, time
from textual.app import App
from textual.widgets import Footer, Static

class Bare(App):
    def compose(self):
        yield Static("hello")
        yield Footer()
    def on_mount(self):
        self.call_after_refresh(self.done)
    def done(self):
        self.save_screenshot(filename="bare.svg", path={path!r})
        print(time.time() - float(os.environ["BENCH_T0"]))  # first frame, rendered
        self.exit()

Bare().run(headless=True, size=(120, 36))
"""

BARE_IDLE = """
import sys
from textual.app import App
from textual.widgets import Footer, Static

class Bare(App):
    def compose(self):
        yield Static("hello")
        yield Footer()
    def on_mount(self):
        self.set_timer(float(sys.argv[1]), self.exit)

Bare().run(headless=True, size=(120, 36))
"""

DASHBOARD_FRAME = """
import os, sys, time
from opsconsole.ui.app import load_and_create

app = load_and_create(sys.argv[1], "staging")

def done():
    app.save_screenshot(filename="frame.svg", path=sys.argv[2])
    print(time.time() - float(os.environ["BENCH_T0"]))  # first frame, rendered
    app.exit()

app.call_later(lambda: app.call_after_refresh(done))
app.run(headless=True, size=(120, 36))
"""

DASHBOARD_IDLE = """
import sys
from opsconsole.ui.app import load_and_create

app = load_and_create(sys.argv[1], None)
app.call_later(lambda: app.set_timer(float(sys.argv[2]), app.exit))
app.run(headless=True, size=(200, 50))
"""


def cold(argv: list[str]) -> float:
    """Wall time of a fresh process, start to exit."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def to_frame(argv: list[str]) -> float:
    """Seconds from spawning a fresh process to its first rendered frame (the child reports it)."""
    env = {**os.environ, "BENCH_T0": repr(time.time())}
    out = subprocess.run(argv, check=True, capture_output=True, cwd=ROOT, env=env, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def cpu_and_rss(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and resident set size in bytes of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = next(int(line.split()[1]) * 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return cpu, rss


class Idler:
    """A process left idling; CPU and memory sampled at the start and end of a window."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.log = tempfile.TemporaryFile()  # stderr: a pipe nobody reads could fill and stall the child
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log, cwd=ROOT)
        self.cpu0 = self.rss0 = 0.0
        self.t0 = 0.0

    def start_window(self) -> None:
        self.check()
        self.cpu0, self.rss0 = cpu_and_rss(self.proc.pid)
        self.t0 = time.perf_counter()

    def end_window(self) -> dict[str, float]:
        self.check()
        cpu1, rss1 = cpu_and_rss(self.proc.pid)
        elapsed = time.perf_counter() - self.t0
        return {"window_s": round(elapsed, 1), "cpu_s": round(cpu1 - self.cpu0, 3),
                "cpu_pct": round(100.0 * (cpu1 - self.cpu0) / elapsed, 2),
                "rss_start_mb": round(self.rss0 / 2**20, 1), "rss_mb": round(rss1 / 2**20, 1)}

    def check(self) -> None:
        if self.proc.poll() is not None:
            self.log.seek(0)
            err = self.log.read().decode(errors="replace")
            raise SystemExit(f"dashboard benchmark: {self.argv[1]} exited early ({self.proc.returncode}):\n{err[-2000:]}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def idle_side_by_side(bare_argv: list[str], dash_argv: list[str], warmup: float,
                      window: float) -> tuple[dict[str, float], dict[str, float]]:
    """CPU % of one core and RSS of both over the same `window` seconds, after `warmup`."""
    bare, dash = Idler(bare_argv), Idler(dash_argv)
    try:
        time.sleep(warmup)
        bare.start_window()
        dash.start_window()
        time.sleep(window)
        return bare.end_window(), dash.end_window()
    finally:
        bare.stop()
        dash.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="cold starts of each side (default 7)")
    parser.add_argument("--idle", type=float, default=300.0, help="idle window in seconds (default 300)")
    parser.add_argument("--quick", action="store_true", help="3 runs and a 30 s idle window, for a quick look")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--save", metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.idle = 3, 30.0
    if args.runs < 1 or args.idle < 5:
        parser.error("--runs must be at least 1 and --idle at least 5 (one refresh)")

    from tests.demo import DemoStack

    stack = DemoStack()
    tmp = Path(tempfile.mkdtemp(prefix="opsconsole-bench-"))
    try:
        config = tmp / "opsconsole.toml"
        config.write_text(stack.config_text())
        py = sys.executable
        bare_frame = tmp / "bare_frame.py"
        bare_frame.write_text(BARE_FRAME.format(path=str(tmp)))

        cold([py, str(bare_frame)])  # warm the OS file cache for both
        cold([py, "-m", "opsconsole", "--config", str(config), "snapshot", "--env", "staging",
              "--output", str(tmp / "dash.svg")])
        dash_frame = tmp / "dash_frame.py"
        dash_frame.write_text(DASHBOARD_FRAME)
        bare, frame, bare_total, dash = [], [], [], []
        for _ in range(args.runs):
            bare.append(to_frame([py, str(bare_frame)]))
            frame.append(to_frame([py, str(dash_frame), str(config), str(tmp)]))
            bare_total.append(cold([py, str(bare_frame)]))
            dash.append(cold([py, "-m", "opsconsole", "--config", str(config), "snapshot", "--env", "staging",
                              "--output", str(tmp / "dash.svg")]))
        b, f = statistics.median(bare), statistics.median(frame)
        bt, d = statistics.median(bare_total), statistics.median(dash)

        # 50 targets at a 5 s refresh.
        lines = ["[opsconsole]", "refresh = 5", "timeout = 1.0", "", "[environments.big]"]
        for i in range(40):
            lines += [f"[environments.big.services.api{i:02d}]", f'url = "{stack.http.url("/healthy")}"']
        for i in range(5):
            lines += [f"[environments.big.services.cache{i}]", f'url = "{stack.redis.url}"']
            lines += [f"[environments.big.services.db{i}]", f'url = "{stack.pg.url()}"']
        big = tmp / "big.toml"
        big.write_text("\n".join(lines) + "\n")
        run_for = str(args.idle + 60)  # each exits on its own a minute after the window, if not killed
        bare_idle = tmp / "bare_idle.py"
        bare_idle.write_text(BARE_IDLE)
        dash_idle = tmp / "dash_idle.py"
        dash_idle.write_text(DASHBOARD_IDLE)
        bare_i, dash_i = idle_side_by_side([py, str(bare_idle), run_for], [py, str(dash_idle), str(big), run_for],
                                           5, args.idle)
    finally:
        stack.close()

    rounds = dash_i["window_s"] / 5
    result = {
        "runs": args.runs,
        "first_frame": {"bare_ms": round(b * 1000, 1), "dashboard_ms": round(f * 1000, 1),
                        "ratio": round(f / b, 2), "extra_ms": round((f - b) * 1000, 1)},
        "start_to_svg": {"bare_ms": round(bt * 1000, 1), "snapshot_ms": round(d * 1000, 1),
                         "ratio": round(d / bt, 2), "extra_ms": round((d - bt) * 1000, 1)},
        "idle": {"window_s": args.idle, "targets": {"http": 40, "redis": 5, "postgres": 5}, "refresh_s": 5,
                 "bare": bare_i, "dashboard": dash_i,
                 "cpu_ms_per_round": round(1000 * dash_i["cpu_s"] / rounds, 1),
                 "rss_over_bare_mb": round(dash_i["rss_mb"] - bare_i["rss_mb"], 1),
                 "rss_growth_mb": round(dash_i["rss_mb"] - dash_i["rss_start_mb"], 1)},
    }
    if args.save:
        Path(args.save).write_text(json.dumps(result) + "\n")
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"cold start, median of {args.runs} (4 targets: PostgreSQL, Redis, HTTP, queue):")
    print(f"  first frame   bare Textual app            {b * 1000:6.0f} ms")
    print(f"                dashboard (panels, probing) {f * 1000:6.0f} ms   ratio {f / b:.2f}x   (+{(f - b) * 1000:.0f} ms)")
    print(f"  start to SVG  bare Textual app            {bt * 1000:6.0f} ms")
    print(f"                opsconsole snapshot         {d * 1000:6.0f} ms   ratio {d / bt:.2f}x   (+{(d - bt) * 1000:.0f} ms)"
          "   (includes the first probe round)")
    print(f"idle over {args.idle:.0f} s side by side, 50 targets (40 HTTP, 5 Redis, 5 PostgreSQL), refresh 5 s, "
          "headless 200x50:")
    for label, i in (("bare Textual app", bare_i), ("opsconsole dashboard", dash_i)):
        print(f"  {label:<24}  CPU {i['cpu_pct']:5.2f}% of a core ({i['cpu_s']:.2f} s)   "
              f"RSS {i['rss_mb']:6.1f} MB (at the window's start {i['rss_start_mb']:.1f} MB)")
    idle_r = result["idle"]
    print(f"  per probe round           {idle_r['cpu_ms_per_round']:.0f} ms CPU   "
          f"(RSS +{idle_r['rss_over_bare_mb']:.1f} MB over bare, {idle_r['rss_growth_mb']:+.1f} MB over the window)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
