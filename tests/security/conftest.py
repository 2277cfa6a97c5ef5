"""What every security test checks the same way: a user error is one line (`path:line:` when a file is at
fault), never a traceback; nothing printed carries a raw control character; a secret shows in no form."""

from __future__ import annotations

import base64
import re
import subprocess
import urllib.parse
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent / "corpus"

# C0 but tab and newline, DEL, C1: what would move the cursor, clear or retitle a terminal.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def assert_clean(text: str, what: str = "output") -> None:
    found = CONTROL.search(text)
    assert found is None, f"raw control character {found.group()!r} in {what}: {text[max(0, found.start() - 60):found.end() + 60]!r}"


def assert_user_error(proc: subprocess.CompletedProcess[str], where: Path | str | None = None,
                      line: int | None = None, contains: str | None = None) -> str:
    """Non-zero exit, exactly one line on stderr, no traceback, nothing raw; `where:line:` first when a file is at fault."""
    assert proc.returncode != 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]
    lines = proc.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0], proc.stderr[-3000:]
    assert_clean(proc.stderr, "stderr")
    assert_clean(proc.stdout, "stdout")
    if where is not None:
        prefix = f"{where}:{line}: " if line is not None else f"{where}:"
        assert lines[0].startswith(prefix), (prefix, lines[0][:500])
        if line is None:
            assert re.match(re.escape(str(where)) + r":\d+: ", lines[0]), lines[0][:500]
    if contains is not None:
        assert contains in lines[0], lines[0][:500]
    return lines[0]


def forms(secret: str) -> list[str]:
    """The secret and the encodings it could leak in: base64 (standard, URL-safe, unpadded), URL-encoded."""
    raw = secret.encode()
    out = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    for enc in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        out.add(enc.decode())
        out.add(enc.decode().rstrip("="))
    return sorted(out)


def assert_nowhere(secret: str, places: dict[str, str | bytes]) -> None:
    """No form of `secret` in any of `places` (name -> text or bytes)."""
    assert places, "nothing was scanned"
    for form in forms(secret):
        for name, content in places.items():
            hay = content if isinstance(content, bytes) else content.encode("utf-8", "surrogateescape")
            assert form.encode() not in hay, f"secret ({form!r}) found in {name}"


@pytest.fixture
def corpus() -> Path:
    return CORPUS
