"""Multi-line and very long secrets never show in pieces.

A PEM key kept in `.env.local` and echoed by a step, and a 100 KB multi-line secret printed in chunks, used to
show in clear: masking went line by line, and no single line equals the secret. A one-line secret crossing the
64 KiB cut of an over-long line leaked in two halves. Output is now masked as a stream; these go through the
real runner, and the first through the CLI, its output and its journal.
"""

from __future__ import annotations

import secrets as secrets_mod
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from opsconsole import masking, runner

pytestmark = pytest.mark.integration


def pem(lines: int = 25) -> str:
    body = [secrets_mod.token_urlsafe(48)[:64] for _ in range(lines)]
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END PRIVATE KEY-----"


def pieces(secret: str, size: int = 16) -> list[str]:
    """Stretches of the secret that must not show anywhere (the PEM armour lines are public)."""
    body = "".join(line for line in secret.splitlines() if not line.startswith("-----"))
    return [body[i:i + size] for i in range(0, len(body) - size, size)]


def shown(text: str, secret: str) -> list[str]:
    return [p for p in pieces(secret) if p in text]


def test_a_pem_key_from_env_echoed_by_a_step_shows_nowhere(tmp_path):
    key = pem()
    (tmp_path / ".env.local").write_text(f'PRIVATE_KEY="{key}"\n')
    (tmp_path / "opsconsole.toml").write_text(
        '[opsconsole]\njournal = "journal.db"\n\n[environments.local]\nprovider = "local"\nprotection = "open"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "leak.md").write_text(
        '# Leak\n\n## Echo the key\n```sh\necho "key: $PRIVATE_KEY"\nprintf "%s\\n" "$PRIVATE_KEY" | head -n 6\n'
        'echo\necho done\nexit 3\n```\n')
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-m", "opsconsole", "run", "leak", "--yes"], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode != 0 and "key: ***" in proc.stdout, proc.stdout + proc.stderr
    assert "done" in proc.stdout  # the lines after it were not swallowed
    assert shown(proc.stdout + proc.stderr, key) == []
    journal = (tmp_path / "journal.db").read_bytes().decode("utf-8", "replace")
    rows = " ".join(str(r) for r in sqlite3.connect(tmp_path / "journal.db").execute(
        "SELECT output_tail FROM opsconsole_steps"))
    assert "key: ***" in rows
    assert shown(journal, key) == [] and shown(rows, key) == []


@pytest.mark.parametrize("chunk", [1, 977, 65536])
def test_a_100_kb_multi_line_secret_printed_in_chunks_shows_nowhere(tmp_path, chunk):
    secret = pem(1600)  # ≈ 100 KB
    masking.register(secret)
    (tmp_path / "secret.txt").write_text(f"before\n{secret}\nafter\n")
    out: list[str] = []
    script = f"dd if=secret.txt bs={chunk} status=none"
    result = runner.run(runner.Command(("sh", "-c", script), cwd=tmp_path), 60, out.append)
    assert result.ok, result.describe()
    assert out == ["before", "***", "after"]
    assert shown("\n".join(out) + result.output_tail, secret) == []


def test_a_one_line_secret_across_the_64_kib_cut_shows_nowhere(tmp_path):
    secret = "tok-" + secrets_mod.token_hex(20_000)  # 40 KB on one line
    masking.register(secret)
    (tmp_path / "line.txt").write_text("x" * 40_000 + secret + "y" * 40_000 + "\n")
    out: list[str] = []
    # a pause after 70,000 bytes: the runner has more than a line's worth and no line break, so it cuts
    script = "head -c 70000 line.txt; sleep 0.5; tail -c +70001 line.txt"
    result = runner.run(runner.Command(("sh", "-c", script), cwd=tmp_path), 60, out.append)
    assert result.ok
    joined = "".join(out)
    assert joined == "x" * 40_000 + "***" + "y" * 40_000
    assert shown(joined, secret) == []
