"""Hostile runbooks (corpus/runbooks/) through the real CLI: YAML alias bombs, `!!python/*` tags, NUL bytes,
invalid UTF-8, unknown placeholders, placeholders and shell in fence attributes, an enormous line, and runbook
paths that point outside the runbooks directory. Each bad file is refused with exactly one `path:line:` line
and a non-zero exit, never a traceback; no command runs (the blocks all `touch PWNED`); nothing raw is printed."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.security.conftest import CORPUS, assert_clean, assert_user_error

# file -> (line of the error, what the line says). Front matter takes no YAML aliases: a bomb is refused at its
# first one, whichever field it was aimed at.
BAD = {
    "alias_bomb_title": (3, "YAML alias *a: runbook front matter takes no aliases"),
    "alias_bomb_summary": (3, "YAML alias *a: runbook front matter takes no aliases"),
    "alias_bomb_environments": (3, "YAML alias *a: runbook front matter takes no aliases"),
    "alias_bomb_params": (3, "YAML alias *a: runbook front matter takes no aliases"),
    "alias_bomb_choices": (3, "YAML alias *a: runbook front matter takes no aliases"),
    "python_object_apply": (2, "front matter is not valid YAML: could not determine a constructor"),
    "python_object_new": (3, "front matter is not valid YAML: could not determine a constructor"),
    "python_name": (2, "front matter is not valid YAML: could not determine a constructor"),
    "nul_front_matter": (3, "front matter is not valid YAML"),
    "invalid_utf8": (3, "not UTF-8 text"),
    "unknown_placeholder": (8, "unknown placeholder {{ nope }}"),
    "placeholder_in_fence_attrs": (6, "timeout: not a duration: '{{ v }}'"),
    "placeholder_in_fence_attrs_runme": (6, "role must be one of run, check, verify, rollback, watch"),
    "fence_attr_injection": (2, "fence attributes start with { but do not end with }"),
    "fence_attr_injection_value": (2, "role must be one of run, check, verify, rollback, watch, got 'run; touch PWNED'"),
    "fence_attr_injection_runme": (2, "timeout: not a duration"),
    "fence_attr_huge_retries": (2, "retries must be a whole number from 0 to 1000"),
}


@pytest.fixture
def home(tmp_path: Path, write_config) -> Path:
    write_config('[environments.local]\nprovider = "local"\n')
    shutil.copytree(CORPUS / "runbooks", tmp_path / "runbooks")
    return tmp_path


def test_the_corpus_is_all_here():
    assert {p.stem for p in (CORPUS / "runbooks").glob("*.md")} == set(BAD)


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_hostile_runbook_is_one_clear_line(home, run_cli, name):
    line, message = BAD[name]
    started = time.monotonic()
    proc = run_cli("run", name, "--yes", stdin=subprocess_devnull())
    assert time.monotonic() - started < 15  # an alias bomb is not expanded
    assert_user_error(proc, where=home / "runbooks" / f"{name}.md", line=line, contains=message)
    assert not (home / "PWNED").exists()


@pytest.mark.parametrize("args", [("plan", "python_object_apply"), ("runbooks", "show", "alias_bomb_params")])
def test_plan_and_show_refuse_them_the_same_way(home, run_cli, args):
    line, message = BAD[args[-1]]
    proc = run_cli(*args, stdin=subprocess_devnull())
    assert_user_error(proc, where=home / "runbooks" / f"{args[-1]}.md", line=line, contains=message)
    assert not (home / "PWNED").exists()


def test_validate_names_every_bad_file_with_its_line(home, run_cli):
    proc = run_cli("runbooks", "validate", stdin=subprocess_devnull())
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert_clean(proc.stdout + proc.stderr)
    for name, (line, message) in BAD.items():
        assert re.search(rf"runbooks/{name}\.md:{line}: .*{re.escape(message)}", proc.stdout), name
    assert not (home / "PWNED").exists()


def subprocess_devnull() -> int:
    import subprocess

    return subprocess.DEVNULL


def test_an_enormous_line_is_planned_and_run_in_linear_time(home, run_cli):
    # 1 MB of prose on one line and 100 KB in a block (generated: too big to keep in the repository).
    # Masking once rescanned a run of letters from each position: a 50 KB line took 20 s, 1 MB hours.
    prose, word = "B" * 1_000_000, "A" * 100_000
    (home / "runbooks" / "enormous.md").write_text(f"## Step\n{prose}\n```sh\n: {word}\necho ran > ran.txt\n```\n")
    started = time.monotonic()
    plan = run_cli("plan", "enormous", stdin=subprocess_devnull())
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert f"$ : {word}\n" in plan.stdout or f": {word}\n" in plan.stdout  # shown whole: what runs is what was shown
    run = run_cli("run", "enormous", "--yes", stdin=subprocess_devnull())
    assert run.returncode == 0, run.stderr[-2000:]
    assert (home / "ran.txt").read_text() == "ran\n"
    assert time.monotonic() - started < 20


def test_a_block_too_long_for_the_shell_fails_its_step_in_one_line(home, run_cli):
    (home / "runbooks" / "toolong.md").write_text(f"## Step\n```sh\n: {'A' * 1_000_000}\ntouch PWNED\n```\n")
    proc = run_cli("run", "toolong", "--yes", stdin=subprocess_devnull())
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert "Step 1 failed: " in proc.stdout and "Argument list too long" in proc.stdout
    assert not (home / "PWNED").exists()


def test_a_nul_inside_a_block_never_reaches_the_terminal_or_the_shell(home, run_cli):
    # CommonMark replaces NUL with U+FFFD; the command shown and the command run are both that.
    (home / "runbooks" / "nul.md").write_bytes(b"## Step\n```sh\nprintf '%s' 'a\x00b' > got.txt\n```\n")
    for args in (("plan", "nul"), ("run", "nul", "--yes"), ("runbooks", "show", "nul")):
        proc = run_cli(*args, stdin=subprocess_devnull())
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert_clean(proc.stdout + proc.stderr)
        assert "a\ufffdb" in proc.stdout
    assert (home / "got.txt").read_text() == "a\ufffdb"


@pytest.mark.parametrize("name", ["../outside", "/etc/passwd"])
def test_a_name_outside_the_runbooks_dir_is_not_a_runbook(home, run_cli, name):
    (home.parent / "outside.md").write_text("## Step\n```sh\ntouch PWNED\n```\n")
    try:
        proc = run_cli("run", name, "--yes", stdin=subprocess_devnull())
    finally:
        (home.parent / "outside.md").unlink()
    line = assert_user_error(proc)
    assert "no runbook" in line, line
    assert not (home / "PWNED").exists() and not (home.parent / "PWNED").exists()


@pytest.mark.parametrize("target", ["missing", "fifo", "device"])
def test_a_symlink_in_the_runbooks_dir_to_something_that_is_not_a_file_is_refused(home, run_cli, target):
    link = home / "runbooks" / "evil.md"
    if target == "missing":
        link.symlink_to(home / "gone.md")
    elif target == "loop":
        link.symlink_to(link)
    elif target == "fifo":
        os.mkfifo(home / "pipe.md")  # reading it would block forever
        link.symlink_to(home / "pipe.md")
    elif target == "device":
        link.symlink_to("/dev/zero")  # reading it would never end
    else:
        link.symlink_to(home)
    started = time.monotonic()
    proc = run_cli("run", "evil", "--yes", stdin=subprocess_devnull(), timeout=20)
    assert_user_error(proc, contains="no runbook")
    assert time.monotonic() - started < 20


def test_a_symlink_to_a_runbook_elsewhere_runs_what_plan_showed(home, run_cli, tmp_path_factory):
    # A symlink is the user's own choice of file; what matters is that plan and run read the same one.
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "real.md"
    elsewhere.write_text("## Step\n```sh\necho linked > linked.txt\n```\n")
    (home / "runbooks" / "linked.md").symlink_to(elsewhere)
    plan = run_cli("plan", "linked", stdin=subprocess_devnull())
    assert plan.returncode == 0 and "echo linked > linked.txt" in plan.stdout
    proc = run_cli("run", "linked", "--yes", stdin=subprocess_devnull())
    assert proc.returncode == 0 and (home / "linked.txt").read_text() == "linked\n"


# A billion laughs (9^9 strings) in each scalar field of a param. Expanded, any of them took `runbooks list` 43 s
# and 3 GB (the message quoted the value). Front matter takes no aliases: refused at the first one, in one line.
BOMB = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi"))]
BOMB_FIELDS = {"description": "{type: str, description: *i}", "default": "{type: str, default: *i}",
               "min": "{type: int, min: *i}", "max": "{type: int, max: *i}", "type": "{type: *i}"}
ALIAS_MESSAGE = "YAML alias *a: runbook front matter takes no aliases"


def bomb_runbook(field: str) -> str:
    return "\n".join(["---", *BOMB, "params:", f"  v: {BOMB_FIELDS[field]}", "---", "## Step", "```sh",
                      "touch PWNED", "```", ""])


@pytest.fixture
def bombs(home: Path) -> Path:
    for field in BOMB_FIELDS:
        (home / "runbooks" / f"bomb_{field}.md").write_text(bomb_runbook(field))
    return home


@pytest.mark.parametrize("command", ["list", "validate"])
def test_a_bomb_in_any_param_field_never_stalls_the_runbook_list(bombs, run_cli, command):
    started = time.monotonic()
    proc = run_cli("runbooks", command, stdin=subprocess_devnull())
    assert time.monotonic() - started < 5, "the bombs were expanded"
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert len(proc.stdout) < 100_000  # no expanded value quoted
    for field in BOMB_FIELDS:
        assert re.search(rf"runbooks/bomb_{field}\.md:3: .*{re.escape(ALIAS_MESSAGE)}", proc.stdout), field
    if command == "list":
        assert re.search(r"^alias_bomb_title\s", proc.stdout, re.MULTILINE)  # the rest of the folder still lists


@pytest.mark.parametrize("field", sorted(BOMB_FIELDS))
def test_a_bomb_in_a_param_field_is_refused_by_run_in_one_line(bombs, run_cli, field):
    started = time.monotonic()
    proc = run_cli("run", f"bomb_{field}", "--yes", stdin=subprocess_devnull())
    assert time.monotonic() - started < 5, "the bomb was expanded"
    assert_user_error(proc, where=bombs / "runbooks" / f"bomb_{field}.md", line=3, contains=ALIAS_MESSAGE)
    assert not (bombs / "PWNED").exists()


# Without aliases a structure can still sit where one value belongs: refused by what it is, never quoted.
NOT_SCALAR = {
    "type": ("{type: [str, int]}", "type must be one value (a type name), not a list"),
    "description": ("{type: str, description: {a: b}}", "description must be text, not a mapping"),
    "default": ("{type: str, default: [x, y]}", "default must be one value, not a list"),
    "min": ("{type: int, min: [1]}", "min must be one value, not a list"),
    "max": ("{type: int, max: {n: 1}}", "max must be one value, not a mapping"),
    "pattern": ("{type: str, pattern: [a]}", "pattern must be one value, not a list"),
    "required": ("{type: str, required: [true]}", "required must be one value, not a list"),
}


@pytest.mark.parametrize("field", sorted(NOT_SCALAR))
def test_a_structure_where_a_value_belongs_is_named_not_quoted(home, run_cli, field):
    spec, message = NOT_SCALAR[field]
    marker = "Q" * 20_000  # never echoed back
    spec = spec.replace("[", f"[{marker}, ", 1) if "[" in spec else spec.replace("{a: b}", f"{{a: {marker}}}") \
        .replace("{n: 1}", f"{{n: {marker}}}")
    (home / "runbooks" / "structure.md").write_text(
        f"---\ntitle: t\nparams:\n  v: {spec}\n---\n## Step\n```sh\ntouch PWNED\n```\n")
    proc = run_cli("runbooks", "validate", str(home / "runbooks" / "structure.md"), stdin=subprocess_devnull())
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    assert f"structure.md:4: param 'v': {message}" in proc.stdout, proc.stdout[-2000:]
    assert marker not in proc.stdout
