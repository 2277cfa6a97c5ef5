"""Usage errors (an unknown verb, a bad or missing flag) exit 3 in every verb, in one line (README, Command line); other
user errors exit 2, except in `check`, where every error is Nagios's UNKNOWN (3)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def opsconsole(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True, cwd=tmp_path,
                          stdin=subprocess.DEVNULL, timeout=60)


@pytest.mark.parametrize("args", [("chek",), ("check", "--frobnicate"), ("plan",), ("run", "x", "--bogus"),
                                  ("journal", "nope"), ("scale", "worker"), ("runbooks",), ("auth", "set", "heroku")])
def test_usage_errors_exit_3_in_one_line(tmp_path, args):
    proc = opsconsole(tmp_path, *args)
    assert proc.returncode == 3, (args, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_other_errors_exit_2_but_in_check(tmp_path):
    (tmp_path / "opsconsole.toml").write_text("[environments.local]\nprovider = \"nowhere\"\n")
    assert opsconsole(tmp_path, "envs").returncode == 2
    assert opsconsole(tmp_path, "check").returncode == 3


def test_an_unknown_environment_in_journal_list_is_an_error_not_an_empty_list(tmp_path):
    (tmp_path / "opsconsole.toml").write_text('[opsconsole]\njournal = "j.sqlite3"\n[environments.local]\n'
                                              'provider = "local"\n')
    proc = opsconsole(tmp_path, "journal", "list", "--env", "lcoal")
    assert proc.returncode == 2 and "unknown environment 'lcoal' (known: local)" in proc.stderr
    quiet = opsconsole(tmp_path, "journal", "list", "--env", "local")
    assert quiet.returncode == 0 and "no runs for environment 'local'" in quiet.stderr


def test_a_runbook_path_that_does_not_exist_is_file_not_found(tmp_path):
    (tmp_path / "opsconsole.toml").write_text('[environments.local]\nprovider = "local"\n')
    proc = opsconsole(tmp_path, "plan", "./missing.md")
    assert proc.returncode == 2 and proc.stderr.strip() == "file not found: ./missing.md"


@pytest.mark.parametrize("args", [
    ("check",), ("snapshot", "-o", "x.svg"), ("envs",), ("plan", "two"), ("run", "two", "--yes"), ("backups",),
    ("backup", "db"), ("deploy", "api"), ("scale", "api", "--replicas", "2"), ("migrate",),
    ("rotate-secret", "JWT"), ("restore-backup", "db", "--from", "latest"), ("runbooks", "validate"),
    ("journal", "list"), (),
])
def test_an_unknown_environment_is_an_error_in_every_verb(tmp_path, args):
    """A typo in --env never reads as an empty or healthy answer, whatever the verb (the TUI included)."""
    (tmp_path / "opsconsole.toml").write_text('[opsconsole]\njournal = "j.sqlite3"\n[environments.local]\n'
                                              'provider = "local"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "two.md").write_text("# Two\n\n## One\n```sh\necho one\n```\n")
    proc = opsconsole(tmp_path, *args, "--env", "lcoal")
    assert proc.returncode in (2, 3), (args, proc.returncode, proc.stdout, proc.stderr)
    assert "unknown environment 'lcoal' (known: local)" in proc.stderr, (args, proc.stderr)
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.svg").exists()


def test_a_new_run_after_an_unfinished_one_says_how_to_resume_it(tmp_path):
    (tmp_path / "opsconsole.toml").write_text('[opsconsole]\njournal = "j.sqlite3"\n[environments.local]\n'
                                              'provider = "local"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "two.md").write_text(
        "# Two\n\n## One\n```sh\necho one\n```\n\n## Two\n```sh\ntest -f fixed\n```\n")
    first = opsconsole(tmp_path, "run", "two", "--yes")
    assert first.returncode == 1
    run_id = first.stdout.split("Run ", 1)[1].split(":", 1)[0]
    assert first.stderr.strip().endswith(f"or resume it with `opsconsole run two --resume {run_id}`"), first.stderr
    again = opsconsole(tmp_path, "run", "two", "--yes")
    assert again.stderr.startswith(f"note: run {run_id} of two aborted at step 2/2 (")
    assert f"this is a new run from step 1 - to continue that one instead: opsconsole run two --resume {run_id}" \
        in again.stderr.splitlines()[0]
    (tmp_path / "fixed").touch()
    newest = opsconsole(tmp_path, "run", "two", "--yes")
    assert newest.returncode == 0 and "note:" in newest.stderr  # the one just before still stopped at step 2
    assert "note:" not in opsconsole(tmp_path, "run", "two", "--yes").stderr  # the newest succeeded: nothing to say


def test_a_development_only_command_is_refused_on_a_typed_environment_and_advised_elsewhere(tmp_path):
    (tmp_path / "opsconsole.toml").write_text('[opsconsole]\njournal = "j.sqlite3"\n'
                                              '[environments.prod]\nprovider = "local"\nprotection = "typed"\n'
                                              '[environments.dev]\nprovider = "local"\n')
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "schema.md").write_text("# Schema\n\n## Mark\n```sh\ntouch marked\n```\n\n"
                                                     "## Push\n```sh\nnpx prisma migrate dev --name init || true\n```\n")
    plan = opsconsole(tmp_path, "plan", "schema", "--env", "prod")
    assert plan.returncode == 0
    assert ("REFUSED: line 10: `prisma migrate dev/reset` may reset the database: a development-only command does "
            "not run on 'prod' (protection typed)") in plan.stdout
    assert "Advice (1):\n  line 10: `prisma migrate dev/reset` may reset the database" in plan.stdout
    run = opsconsole(tmp_path, "run", "schema", "--env", "prod", "--yes", "--confirm-env", "prod")
    assert run.returncode == 2 and "does not run on 'prod'" in run.stderr and "nothing was run" in run.stderr
    assert not (tmp_path / "marked").exists()  # refused before the first step
    dev = opsconsole(tmp_path, "run", "schema", "--env", "dev", "--yes")
    assert dev.returncode == 0 and (tmp_path / "marked").exists()  # advice only where the name is not typed


def test_no_resume_note_for_a_run_whose_runbook_changed_since(tmp_path):
    (tmp_path / "opsconsole.toml").write_text('[opsconsole]\njournal = "j.sqlite3"\n[environments.local]\n'
                                              'provider = "local"\n')
    (tmp_path / "runbooks").mkdir()
    book = tmp_path / "runbooks" / "two.md"
    book.write_text("# Two\n\n## One\n```sh\necho one\n```\n\n## Two\n```sh\nfalse\n```\n")
    assert opsconsole(tmp_path, "run", "two", "--yes").returncode == 1
    book.write_text("# Two\n\n## One\n```sh\necho one\n```\n\n## Two\n```sh\ntrue\n```\n")  # fixed: a new runbook
    again = opsconsole(tmp_path, "run", "two", "--yes")
    assert again.returncode == 0 and "note:" not in again.stderr  # that run cannot resume: no advice to try
