"""Benchmark: masking with many secrets, and `check` with a huge `.env`, each beside its baseline in this run.

* masking: N secrets registered (1,000 and 10,000), then 20,000 output lines of about 100 characters masked, one
  in a hundred holding a secret. Baseline: the way masking worked before (one `str.replace` per secret, longest
  first), on the same secrets and lines. Linear means the 10,000-secret figure is close to the 1,000 one
  (a scan per secret makes it ten times slower).
* `.env`: `opsconsole check` on a config whose `.env` has 1,000 and 100,000 secret-looking lines (each value
  registered for masking). Baseline: python-dotenv's `dotenv_values` on the 10,000-line file (what opsconsole
  called before; quadratic in the number of lines: the 100,000-line file took 3 min 54 s in `check`).

    .venv/bin/python benchmarks/masking.py [--json] [--save FILE]
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opsconsole import masking

LINES = 20_000


def old_mask(text: str, ordered: list[str]) -> str:
    for secret in ordered:
        text = text.replace(secret, masking.MASK)
    return text


def masking_figures(count: int) -> dict[str, float]:
    values = [f"sk-{secrets.token_hex(16)}" for _ in range(count)]
    lines = [f"step output line {i} " + ("x" * 60) + (f" token={values[i % count]}" if i % 100 == 0 else "")
             for i in range(LINES)]
    masking._secrets.clear()
    masking._index = None
    started = time.perf_counter()
    for value in values:
        masking.register(value)
    registered = time.perf_counter() - started
    started = time.perf_counter()
    masking.mask("build the index")  # once per registration generation
    built = time.perf_counter() - started
    started = time.perf_counter()
    masked = [masking.mask(line) for line in lines]
    new = time.perf_counter() - started
    assert not any(v in m for m in masked for v in values[:50])
    with masking._lock:
        ordered = sorted(masking._secrets, key=len, reverse=True)
    sample = lines[: LINES // 20]  # the baseline is slow: a twentieth of the lines, scaled up
    started = time.perf_counter()
    for line in sample:
        old_mask(line, ordered)
    old = (time.perf_counter() - started) * 20
    return {"secrets": count, "register_s": registered, "index_s": built, "mask_s": new, "baseline_mask_s": old}


def env_figures(lines: int, directory: Path) -> float:
    home = directory / f"env{lines}"
    home.mkdir()
    with (home / ".env").open("w") as f:
        for i in range(lines):
            f.write(f"VAR_{i}_SECRET={secrets.token_hex(16)}\n")
    (home / "opsconsole.toml").write_text('[environments.local]\nprovider = "local"\n'
                                          '[environments.local.services.db]\nkind = "tcp"\nurl = "tcp://127.0.0.1:9"\n')
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "opsconsole", "check", "--env", "local"], cwd=home, capture_output=True,
                   timeout=900)
    return time.perf_counter() - started


def dotenv_baseline(lines: int, directory: Path) -> float:
    from dotenv import dotenv_values

    path = directory / "baseline.env"
    path.write_text("".join(f"VAR_{i}_SECRET={secrets.token_hex(16)}\n" for i in range(lines)))
    started = time.perf_counter()
    dotenv_values(path)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", metavar="FILE")
    args = parser.parse_args()
    small, large = masking_figures(1_000), masking_figures(10_000)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        env_small, env_large = env_figures(1_000, directory), env_figures(100_000, directory)
        from opsconsole.config import env_file_values

        (directory / "ours").mkdir()
        path = directory / "ours" / ".env"
        path.write_text("".join(f"VAR_{i}_SECRET={secrets.token_hex(16)}\n" for i in range(10_000)))
        started = time.perf_counter()
        env_file_values(path)
        ours_10k = time.perf_counter() - started
        baseline_10k = dotenv_baseline(10_000, directory)
    result = {
        "masking": [small, large],
        "masking_linearity": large["mask_s"] / small["mask_s"],
        "check_env_1000_s": env_small, "check_env_100000_s": env_large,
        "env_10000_ours_s": ours_10k, "env_10000_dotenv_s": baseline_10k,
    }
    if args.save:
        Path(args.save).write_text(json.dumps(result) + "\n")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for row in (small, large):
        print(f"mask {LINES:,} lines with {row['secrets']:,} secrets: {row['mask_s'] * 1000:.0f} ms "
              f"(register {row['register_s'] * 1000:.0f} ms, index {row['index_s'] * 1000:.0f} ms); one replace per "
              f"secret: "
              f"{row['baseline_mask_s'] * 1000:.0f} ms ({row['baseline_mask_s'] / row['mask_s']:.0f}x slower)")
    print(f"masking, 10,000 secrets vs 1,000: {result['masking_linearity']:.2f}x (linear in the text, not the "
          f"secrets: close to 1)")
    print(f"check with a 1,000-line .env: {env_small:.2f} s; with 100,000 lines: {env_large:.2f} s")
    print(f"reading a 10,000-line .env: {ours_10k * 1000:.0f} ms; python-dotenv's dotenv_values: "
          f"{baseline_10k * 1000:.0f} ms ({baseline_10k / ours_10k:.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
