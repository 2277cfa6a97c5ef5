"""The rotation holes of issue 16, through the real CLI (`python -m opsconsole` as a process, real files, a real
restart command or a fake `docker` on PATH):

- a retried (or resumed) rotation kept the value it had just written as "previous": the original was lost and
  `--rollback` put the new value back;
- a multi-line value (a PEM key in quotes) was rewritten line by line: its other lines stayed, `.previous` kept the
  first, and every later command failed to parse the file;
- a variable also exported in opsconsole's own environment wins over the file for every command it runs: the
  rotation changed the file and said "rotated" while the services kept the old value;
- with no `.env.<environment>` (or a name set nowhere) a rotation created the file and said "rotated";
- a second `--rollback` toggled back to the rotated value.
"""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsconsole.secret_values import fingerprint
from tests.budget import examples
from tests.security.conftest import assert_nowhere, assert_user_error

FAKES = Path(__file__).resolve().parent.parent / "fakes"

PEM = ("-----BEGIN PRIVATE KEY-----\n"
       "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
       "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
       "-----END PRIVATE KEY-----")

CONFIG = """\
[opsconsole]
refresh = 0.2

[environments.local]
provider = "local"

[environments.local.services.api]
restart = "{restart}"

[environments.local.secrets.JWT_SECRET]
restart = ["api"]

[environments.local.secrets.PRIVATE_KEY]
restart = ["api"]

[environments.local.secrets.CONFIGURED_ONLY]
restart = ["api"]
"""
ALWAYS = "echo restarted >> restarts.log"
FAILS_ONCE = "test -f failed-once || { touch failed-once; echo failing this once; exit 1; }; echo restarted >> restarts.log"
ENV_LOCAL = '# local secrets\nAPP_NAME=demo\nJWT_SECRET="first-jwt-value"\nexport OTHER=kept\n'


def home(root: Path, env_local: str | bytes | None = ENV_LOCAL, restart: str = ALWAYS) -> Path:
    (root / "opsconsole.toml").write_text(CONFIG.format(restart=restart))
    if isinstance(env_local, str):
        (root / ".env.local").write_text(env_local)
    elif env_local is not None:
        (root / ".env.local").write_bytes(env_local)
    (root / "runbooks").mkdir(exist_ok=True)
    return root


SECRETS = ("JWT_SECRET", "PRIVATE_KEY", "CONFIGURED_ONLY")  # never inherited from the developer's shell


def ops(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE") and k not in SECRETS}
    full.update(OPSCONSOLE_JOURNAL=str(root / "journal.sqlite3"), XDG_STATE_HOME=str(root / "state"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True, env=full,
                          cwd=root, stdin=subprocess.DEVNULL, timeout=90)


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return proc


def value_of(path: Path, name: str) -> str | None:
    from dotenv import dotenv_values

    return dotenv_values(path).get(name)


def restarts(root: Path) -> int:
    log = root / "restarts.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


# --- 3: a retry keeps what the rotation kept ---------------------------------------------------------------------

def test_a_rotation_retried_after_its_restart_failed_keeps_the_original_for_rollback(tmp_path):
    root = home(tmp_path, restart=FAILS_ONCE)
    before = (root / ".env.local").read_bytes()
    proc = ok(ops(root, "rotate-secret", "JWT_SECRET", "--yes", "--on-failure", "retry"))
    assert "Retrying step 1" in proc.stdout and "(attempt 2)" in proc.stdout and restarts(root) == 1
    new = value_of(root / ".env.local", "JWT_SECRET")
    assert new and new != "first-jwt-value"
    # What was kept is the value from before the rotation, not the one the first attempt wrote.
    assert value_of(root / ".env.local.previous", "JWT_SECRET") == "first-jwt-value"
    assert stat.S_IMODE((root / ".env.local.previous").stat().st_mode) == 0o600

    back = ok(ops(root, "rotate-secret", "JWT_SECRET", "--rollback", "--yes"))
    assert (root / ".env.local").read_bytes() == before
    assert restarts(root) == 2
    assert_nowhere(new, {"stdout": proc.stdout + back.stdout, "stderr": proc.stderr + back.stderr})
    assert_nowhere("first-jwt-value", {"stdout": proc.stdout + back.stdout, "stderr": proc.stderr + back.stderr})


ROTATE_RUNBOOK = """\
# Rotate

## Rotate the JWT secret
```ops
rotate-secret JWT_SECRET
```
"""


def test_a_resumed_rotation_keeps_the_original_for_rollback(tmp_path):
    """A resume plans again (a new value is drawn): the value kept by the run's first attempt stays kept."""
    root = home(tmp_path, restart=FAILS_ONCE)
    (root / "runbooks" / "rotate.md").write_text(ROTATE_RUNBOOK)
    before = (root / ".env.local").read_bytes()
    failed = ops(root, "run", "rotate", "--yes")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert value_of(root / ".env.local", "JWT_SECRET") != "first-jwt-value"  # the first attempt rotated
    run_id = re.search(r"^Run (\S+): ", failed.stdout, re.M).group(1)
    ok(ops(root, "run", "rotate", "--resume", run_id, "--yes"))
    assert value_of(root / ".env.local.previous", "JWT_SECRET") == "first-jwt-value"
    ok(ops(root, "rotate-secret", "JWT_SECRET", "--rollback", "--yes"))
    assert (root / ".env.local").read_bytes() == before


def test_a_later_rotation_keeps_the_value_it_replaces(tmp_path):
    """Recognising a retry must not stop a new rotation from keeping the then-current value (held before too)."""
    root = home(tmp_path)
    ok(ops(root, "rotate-secret", "JWT_SECRET", "--yes"))
    first = value_of(root / ".env.local", "JWT_SECRET")
    ok(ops(root, "rotate-secret", "JWT_SECRET", "--yes"))
    second = value_of(root / ".env.local", "JWT_SECRET")
    assert second not in (first, "first-jwt-value")
    assert value_of(root / ".env.local.previous", "JWT_SECRET") == first
    ok(ops(root, "rotate-secret", "JWT_SECRET", "--rollback", "--yes"))
    assert value_of(root / ".env.local", "JWT_SECRET") == first


COMPOSE_CONFIG = """\
[opsconsole]
refresh = 0.2

[environments.dev]
provider = "compose"

[environments.dev.provider_options]
compose_file = "compose.yaml"
project_name = "shop"
docker = "{docker}"

[environments.dev.services.api]

[environments.dev.secrets.JWT_SECRET]
restart = ["api"]
"""


def compose_home(root: Path, env_file: str | None) -> dict[str, str]:
    """A compose project whose `docker compose up` fails the first time (then the fake docker answers)."""
    flaky = root / "flaky-docker"
    flaky.write_text(f'#!/bin/sh\n[ -f "{root}/up-failed-once" ] || {{ touch "{root}/up-failed-once"; '
                     f'echo "Error response from daemon: conflict" >&2; exit 1; }}\nexec "{FAKES}/docker" "$@"\n')
    flaky.chmod(0o755)
    (root / "opsconsole.toml").write_text(COMPOSE_CONFIG.format(docker=flaky))
    (root / "compose.yaml").write_text("services:\n  api: {build: .}\n")
    if env_file is not None:
        (root / ".env").write_text(env_file)
    (root / "fake-state.json").write_text('{"docker": {"project": "shop", "services": {"api": {"containers": 1}}, '
                                          '"exec_env": {}, "run": {}}}')
    return {"FAKE_STATE": str(root / "fake-state.json"), "FAKE_LOG": str(root / "fake-log.jsonl")}


def test_a_compose_rotation_retried_after_up_failed_keeps_the_original_for_rollback(tmp_path):
    env_file = f'COMPOSE_PROFILES=web\nJWT_SECRET="{PEM}"\nexport OTHER=kept\n'
    env = compose_home(tmp_path, env_file)
    proc = ok(ops(tmp_path, "rotate-secret", "JWT_SECRET", "--yes", "--on-failure", "retry", env=env))
    assert "(attempt 2)" in proc.stdout
    assert value_of(tmp_path / ".env.previous", "JWT_SECRET") == PEM
    new = value_of(tmp_path / ".env", "JWT_SECRET")
    assert new and new != PEM and "\n" not in new
    ok(ops(tmp_path, "rotate-secret", "JWT_SECRET", "--rollback", "--yes", env=env))
    assert (tmp_path / ".env").read_text() == env_file
    out = proc.stdout + proc.stderr
    assert_nowhere(new, {"output": out})
    for line in PEM.splitlines()[1:-1]:
        assert line not in out


# --- 4: multi-line values rotate and roll back byte-exact -------------------------------------------------------

# (before, the statement setting PRIVATE_KEY, after, what the rotation writes in front of the new value)
SHAPES = {
    "double-quoted PEM": ("APP_NAME=demo\n", f'PRIVATE_KEY="{PEM}"', "\nOTHER=kept\n", "PRIVATE_KEY="),
    "single-quoted PEM, exported": ("APP_NAME=demo\n", f"export PRIVATE_KEY='{PEM}'", "\nOTHER=kept\n",
                                    "export PRIVATE_KEY="),
    "escaped newlines": ("APP_NAME=demo\n", 'PRIVATE_KEY="' + PEM.replace("\n", "\\n") + '"', "\nOTHER=kept\n",
                         "PRIVATE_KEY="),  # one line in the file: this shape held before too
    "last, indented, no final newline": ("APP_NAME=demo\n\n", f'  PRIVATE_KEY="{PEM}"', "", "  PRIVATE_KEY="),
    "CRLF lines, first": ("", 'PRIVATE_KEY="' + PEM.replace("\n", "\r\n") + '"', "\r\nAPP_NAME=demo\r\n",
                          "PRIVATE_KEY="),
    "between comments, with its own": ("# keys\nOTHER=1\n", f'PRIVATE_KEY="{PEM}" # the signing key',
                                       "\n\n# end\nOTHER=2\n", "PRIVATE_KEY="),
}


def parses(data: bytes) -> dict[str, str | None]:
    """What python-dotenv reads from `data`; fails on any statement it could not parse."""
    from dotenv.parser import parse_stream

    bindings = list(parse_stream(io.StringIO(data.decode(), newline="")))
    assert not [b.original for b in bindings if b.error]
    return {b.key: b.value for b in bindings if b.key is not None}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_a_multi_line_value_rotates_and_rolls_back_byte_exact(tmp_path, shape):
    head, statement, tail, written = SHAPES[shape]
    original = (head + statement + tail).encode()
    root = home(tmp_path, env_local=original)
    old = parses(original)["PRIVATE_KEY"]
    assert old is not None and "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" in old and len(old.splitlines()) == 4
    proc = ok(ops(root, "rotate-secret", "PRIVATE_KEY", "--yes"))
    rotated = (root / ".env.local").read_bytes()
    new = parses(rotated)["PRIVATE_KEY"] or ""
    assert re.fullmatch(r"[0-9a-f]{64}", new)
    # The whole statement is replaced (none of the old key's lines is left), every other byte is as it was.
    assert rotated == (head + written + new + tail).encode()
    assert {k: v for k, v in parses(rotated).items() if k != "PRIVATE_KEY"} == \
        {k: v for k, v in parses(original).items() if k != "PRIVATE_KEY"}
    assert parses((root / ".env.local.previous").read_bytes())["PRIVATE_KEY"] == old
    # Later commands still read the file, the rollback among them, and it comes back byte for byte.
    back = ok(ops(root, "rotate-secret", "PRIVATE_KEY", "--rollback", "--yes"))
    assert (root / ".env.local").read_bytes() == original
    assert fingerprint(old) in proc.stdout and fingerprint(old) in back.stdout
    out = proc.stdout + proc.stderr + back.stdout + back.stderr
    for secret in (*old.splitlines()[1:-1], new):
        assert secret not in out


# --- 10: an exported variable wins over the file: refused -------------------------------------------------------

@pytest.mark.parametrize("rollback", [False, True], ids=["rotate", "rollback"])
def test_a_secret_also_exported_in_the_environment_is_refused(tmp_path, rollback):
    root = home(tmp_path)
    if rollback:
        ok(ops(root, "rotate-secret", "JWT_SECRET", "--yes"))
    before = (root / ".env.local").read_bytes()
    kept = (root / ".env.local.previous").read_bytes() if rollback else None
    count = restarts(root)
    args = ("rotate-secret", "JWT_SECRET", *(("--rollback",) if rollback else ()), "--yes")
    proc = ops(root, *args, env={"JWT_SECRET": "exported-old-value"})
    line = assert_user_error(proc, contains="JWT_SECRET")
    assert "environment" in line and "unset JWT_SECRET" in line and "nothing was changed" in line
    assert "exported-old-value" not in proc.stdout + proc.stderr
    assert (root / ".env.local").read_bytes() == before and restarts(root) == count
    assert (root / ".env.local.previous").read_bytes() == kept if rollback else \
        not (root / ".env.local.previous").exists()


def test_a_compose_secret_also_exported_in_the_environment_is_refused(tmp_path):
    env = compose_home(tmp_path, 'JWT_SECRET="first-jwt-value"\n')
    proc = ops(tmp_path, "rotate-secret", "JWT_SECRET", "--yes", env={**env, "JWT_SECRET": "exported-old-value"})
    line = assert_user_error(proc, contains="JWT_SECRET")
    assert "unset JWT_SECRET" in line
    assert (tmp_path / ".env").read_text() == 'JWT_SECRET="first-jwt-value"\n'
    assert not (tmp_path / "fake-log.jsonl").exists() and not (tmp_path / ".env.previous").exists()


# --- 11: nothing to rotate is refused; a second rollback changes nothing --------------------------------------

def test_no_env_file_is_refused_and_none_is_created(tmp_path):
    root = home(tmp_path, env_local=None)
    proc = ops(root, "rotate-secret", "JWT_SECRET", "--yes")
    line = assert_user_error(proc, contains=str(root / ".env.local"))
    assert "nothing was changed" in line
    assert not (root / ".env.local").exists() and not (root / ".env.local.previous").exists()
    assert restarts(root) == 0
    back = ops(root, "rotate-secret", "JWT_SECRET", "--rollback", "--yes")
    assert_user_error(back, contains=str(root / ".env.local"))
    assert not (root / ".env.local").exists()


def test_no_compose_env_file_is_refused_and_none_is_created(tmp_path):
    env = compose_home(tmp_path, None)
    proc = ops(tmp_path, "rotate-secret", "JWT_SECRET", "--yes", env=env)
    assert_user_error(proc, contains=str(tmp_path / ".env"))
    assert not (tmp_path / ".env").exists() and not (tmp_path / "fake-log.jsonl").exists()


def test_a_name_set_nowhere_is_refused_saying_where_it_looked(tmp_path):
    root = home(tmp_path)
    before = (root / ".env.local").read_bytes()
    proc = ops(root, "rotate-secret", "CONFIGURED_ONLY", "--yes")
    line = assert_user_error(proc, contains="CONFIGURED_ONLY")
    assert str(root / ".env.local") in line and str(root / ".env") in line
    assert (root / ".env.local").read_bytes() == before and not (root / ".env.local.previous").exists()
    assert restarts(root) == 0


def test_a_second_rollback_says_already_rolled_back_and_changes_nothing(tmp_path):
    root = home(tmp_path)
    before = (root / ".env.local").read_bytes()
    ok(ops(root, "rotate-secret", "JWT_SECRET", "--yes"))
    new = value_of(root / ".env.local", "JWT_SECRET")
    ok(ops(root, "rotate-secret", "JWT_SECRET", "--rollback", "--yes"))
    assert (root / ".env.local").read_bytes() == before
    kept = (root / ".env.local.previous").read_bytes()
    count = restarts(root)

    again = ops(root, "rotate-secret", "JWT_SECRET", "--rollback", "--yes")
    assert again.returncode != 0 and "Traceback" not in again.stderr
    assert "already rolled back" in again.stdout + again.stderr
    assert (root / ".env.local").read_bytes() == before  # not toggled back to the rotated value
    assert (root / ".env.local.previous").read_bytes() == kept and restarts(root) == count
    assert new not in again.stdout + again.stderr

    # A new rotation afterwards keeps the then-current value, and can be rolled back once.
    ok(ops(root, "rotate-secret", "JWT_SECRET", "--yes"))
    assert value_of(root / ".env.local.previous", "JWT_SECRET") == "first-jwt-value"
    ok(ops(root, "rotate-secret", "JWT_SECRET", "--rollback", "--yes"))
    assert (root / ".env.local").read_bytes() == before


def test_a_retried_rollback_is_not_a_second_rollback(tmp_path):
    """A rollback whose restart failed, retried in the same run, goes on; it neither toggles nor refuses."""
    root = home(tmp_path)
    before = (root / ".env.local").read_bytes()
    ok(ops(root, "rotate-secret", "JWT_SECRET", "--yes"))
    (root / "opsconsole.toml").write_text(CONFIG.format(restart=FAILS_ONCE))
    back = ok(ops(root, "rotate-secret", "JWT_SECRET", "--rollback", "--yes", "--on-failure", "retry"))
    assert "(attempt 2)" in back.stdout
    assert (root / ".env.local").read_bytes() == before


# --- the same, over generated files: any file python-dotenv reads round-trips ------------------------------------

_OTHER_STATEMENTS = st.sampled_from([
    "# a comment\n", "\n", "   \n", "APP_NAME=demo\n", "export OTHER=kept\n", "SPACED = 'single quoted'\n",
    'URL="postgres://u:p@h/db" # inline comment\n', "EMPTY=\n", "BARE_NAME\n", "HASH=abc#not-a-comment\n",
    'ESCAPED="a\\"b\\\\c"\n', "CRLF=windows\r\n", 'MULTI="one\ntwo"\n', "'QUOTED_KEY'=x\n", "DUP=first\n",
    "DUP=second\n", "  INDENTED=yes\n", "\t# tabbed comment\n", "OLD_MAC=cr\r", "\r\n",
])
_TARGETS = st.sampled_from([
    "PRIVATE_KEY=plain-value\n", 'PRIVATE_KEY="' + PEM + '"\n', "export PRIVATE_KEY='" + PEM + "'\n",
    'PRIVATE_KEY="' + PEM.replace("\n", "\\n") + '"\n', 'PRIVATE_KEY="' + PEM.replace("\n", "\r\n") + '"\r\n',
    'PRIVATE_KEY="' + PEM + '" # signing key\n', "  PRIVATE_KEY = spaced-value  \n", "PRIVATE_KEY=last-no-newline",
])


@given(before=st.lists(_OTHER_STATEMENTS, max_size=6), target=_TARGETS, after=st.lists(_OTHER_STATEMENTS, max_size=6),
       bom=st.booleans())
@settings(max_examples=examples(60))
def test_any_env_file_rotates_and_rolls_back_byte_exact(before, target, after, bom):
    from dotenv.parser import parse_stream

    from opsconsole.providers.local import SecretRewrite, _statements

    if not target.endswith("\n"):
        after = []  # the statement without a line end is the file's last
    text = ("\ufeff" if bom else "") + "".join(before) + target + "".join(after)
    assert "".join(s.text for s in _statements(text)) == text
    with tempfile.TemporaryDirectory() as tmp:
        path, previous = Path(tmp) / ".env.local", Path(tmp) / ".env.local.previous"
        path.write_bytes(text.encode())
        old = parses(text.encode())["PRIVATE_KEY"]
        rotate = SecretRewrite(path=path, previous=previous, name="PRIVATE_KEY", value="n" * 40, run_id="run-1")
        lines: list[str] = []
        assert rotate.perform(lines.append).ok and rotate.perform(lines.append).ok  # a retry changes nothing more
        rotated = path.read_bytes()
        assert parses(rotated)["PRIVATE_KEY"] == "n" * 40 and parses(previous.read_bytes())["PRIVATE_KEY"] == old
        assert {k: v for k, v in parses(rotated).items() if k != "PRIVATE_KEY"} == \
            {k: v for k, v in parses(text.encode()).items() if k != "PRIVATE_KEY"}
        assert not [b for b in parse_stream(io.StringIO(rotated.decode())) if b.error]
        back = SecretRewrite(path=path, previous=previous, name="PRIVATE_KEY", value=None, run_id="run-2")
        assert back.perform(lines.append).ok and path.read_bytes() == text.encode()
        kept = previous.read_bytes()
        again = SecretRewrite(path=path, previous=previous, name="PRIVATE_KEY", value=None, run_id="run-3")
        refused = again.perform(lines.append)
        assert not refused.ok and "already rolled back" in refused.error
        assert path.read_bytes() == text.encode() and previous.read_bytes() == kept
