"""Read-only commands a plan runs before anything is confirmed: current replicas, a Secret's keys, containers.

Their output is parsed, never shown, so it is read raw here rather than through `runner.run`, which masks
every line: masking a Secret's JSON could corrupt the very data the plan preserves. What goes out of this
module (error lines) is masked. Like the runner, a known secret never goes in argv.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path

from opsconsole import masking
from opsconsole.errors import UserError

TIMEOUT_S = 30.0


def read(argv: tuple[str, ...], what: str, *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
         timeout_s: float = TIMEOUT_S, stdin: str | None = None) -> str:
    """stdout of `argv`; UserError naming `what` and the tool's own first error line when it fails."""
    for arg in argv:
        if masking.mask(arg) != arg:
            raise ValueError(f"refusing a secret in argv of {argv[0]!r}")
    shown = masking.mask(shlex.join(argv))
    try:
        proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, cwd=cwd,
                              env={**os.environ, **(env or {})}, timeout=timeout_s,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise UserError(f"cannot {what}: command not found: {argv[0]}") from None
    except PermissionError:
        raise UserError(f"cannot {what}: not executable: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"cannot {what}: `{shown}` did not answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise UserError(masking.mask(f"cannot {what}: cannot start {argv[0]}: {exc}")) from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        why = lines[0] if lines else f"exit {proc.returncode}"
        raise UserError(masking.mask(f"cannot {what}: `{shown}` failed: {why}"))
    return proc.stdout
