"""The dashboard's two costs a user feels: time to the first complete frame, and idle cost all night.

    .venv/bin/python benchmarks/dashboard.py [--runs 7] [--idle 60]

1. First frame: `opsconsole snapshot` (a fresh process that loads the config, starts the app, waits
   for the first probe round against a real PostgreSQL, Redis and HTTP service, and writes the
   dashboard to SVG) against a bare Textual app that renders one frame to SVG the same way. Both
   are cold processes measured in this run; the ratio is what opsconsole adds.
2. Idle: the dashboard left running headless with 50 targets (40 HTTP, 5 Redis, 5 PostgreSQL) at a
   5 s refresh: CPU time and resident memory over a window, against a bare Textual app idling for
   the same window.
"""

from __future__ import annotations

import argparse
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


def idle(argv: list[str], warmup: float, window: float) -> tuple[float, float, int]:
    """CPU % of one core and RSS over `window` seconds after `warmup`."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        time.sleep(warmup)
        cpu0, _ = cpu_and_rss(proc.pid)
        t0 = time.perf_counter()
        time.sleep(window)
        cpu1, rss = cpu_and_rss(proc.pid)
        elapsed = time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait()
    return 100.0 * (cpu1 - cpu0) / elapsed, cpu1 - cpu0, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--idle", type=float, default=60.0, help="idle window in seconds")
    args = parser.parse_args()

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
        print(f"cold start, median of {args.runs} (4 targets: PostgreSQL, Redis, HTTP, queue):")
        print(f"  first frame   bare Textual app            {b * 1000:6.0f} ms")
        print(f"                dashboard (panels, probing) {f * 1000:6.0f} ms   ratio {f / b:.2f}x   (+{(f - b) * 1000:.0f} ms)")
        print(f"  start to SVG  bare Textual app            {bt * 1000:6.0f} ms")
        print(f"                opsconsole snapshot         {d * 1000:6.0f} ms   ratio {d / bt:.2f}x   (+{(d - bt) * 1000:.0f} ms)"
              "   (includes the first probe round)")

        # 50 targets at a 5 s refresh.
        lines = ["[opsconsole]", "refresh = 5", "timeout = 1.0", "", "[environments.big]"]
        for i in range(40):
            lines += [f"[environments.big.services.api{i:02d}]", f'url = "{stack.http.url("/healthy")}"']
        for i in range(5):
            lines += [f"[environments.big.services.cache{i}]", f'url = "{stack.redis.url}"']
            lines += [f"[environments.big.services.db{i}]", f'url = "{stack.pg.url()}"']
        big = tmp / "big.toml"
        big.write_text("\n".join(lines) + "\n")
        run_for = str(args.idle + 30)
        bare_idle = tmp / "bare_idle.py"
        bare_idle.write_text(BARE_IDLE)
        dash_idle = tmp / "dash_idle.py"
        dash_idle.write_text(DASHBOARD_IDLE)
        bare_pct, bare_cpu, bare_rss = idle([py, str(bare_idle), run_for], 5, args.idle)
        dash_pct, dash_cpu, dash_rss = idle([py, str(dash_idle), str(big), run_for], 5, args.idle)
        rounds = args.idle / 5
        print(f"idle over {args.idle:.0f} s, 50 targets (40 HTTP, 5 Redis, 5 PostgreSQL), refresh 5 s, headless 200x50:")
        print(f"  bare Textual app          CPU {bare_pct:5.2f}% of a core ({bare_cpu:.2f} s)   RSS {bare_rss / 2**20:6.1f} MB")
        print(f"  opsconsole dashboard      CPU {dash_pct:5.2f}% of a core ({dash_cpu:.2f} s)   RSS {dash_rss / 2**20:6.1f} MB")
        print(f"  per probe round           {1000 * dash_cpu / rounds:.0f} ms CPU   "
              f"(RSS +{(dash_rss - bare_rss) / 2**20:.1f} MB over bare)")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
