"""`restore-backup` never puts one database's rows over another's by accident, never restores without a way back,
and a backup that fails leaves nothing behind: through the real CLI, against the real PostgreSQL of the `pg`
fixture, with a staging and a production environment (`local` provider) whose `db` services are two databases.

- A backup whose manifest names another environment or service (staging's dump over production's rows, copied in
  as `latest` or named by path), or whose archive names another database, is refused in one line before anything
  runs; `--from-other` lets it through, confirmed like any restore (typed for production), the plan saying plainly
  "a backup of staging/db ... restored over production/db ...".
- A restore dumps the database first into `before-restore/` (never `latest`), says where and how to put it back,
  and that safety copy restores; `--no-safety-copy` skips it.
- A pg_dump that fails midway (a full disk, an error, a timeout) leaves no partial dump, in a backup and in a
  restore's safety copy, which then stops the restore before anything is dropped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opsconsole.journal import open_journal
from tests.security.conftest import assert_user_error

pytestmark = pytest.mark.integration

CONFIG = """\
[environments.staging]
provider = "local"

[environments.staging.services.db]
kind = "postgres"
url = "${{STAGING_URL}}"
{extra}
[environments.production]
provider = "local"
protection = "typed"

[environments.production.services.db]
kind = "postgres"
url = "${{PRODUCTION_URL}}"
{extra}
[environments.production.services.reports]
kind = "postgres"
url = "${{REPORTS_URL}}"
{extra}"""

TYPED = ("--yes", "--confirm-env", "production")

# pg_dump that gets half way and fails: writes the start of a real dump, then a full disk (exit 1) or a hang (the
# step's timeout kills it). Its pg_restore is the real one (pg_bin names the directory of both).
FAKE_PG_DUMP = """\
#!/bin/sh
out="$3"
printf 'PGDMP' > "$out"
head -c 300000 /dev/zero >> "$out"
if [ "$FAKE_PG_DUMP" = hang ]; then
    echo "pg_dump: dumping contents of table public.orders" >&2
    exec sleep 60
fi
echo "pg_dump: error: could not write to file \\"$out\\": No space left on device" >&2
exit 1
"""


def sql(url: str, statement: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def rows(url: str) -> list[tuple]:
    return sql(url, "SELECT id, item FROM orders ORDER BY id")


@pytest.fixture
def home(tmp_path: Path, pg_running) -> Path:
    for name, items in (("guard_staging", ("staging-1", "staging-2")), ("guard_prod", ("prod-1", "prod-2", "prod-3")),
                        ("guard_reports", ("report-1",))):
        pg_running.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        pg_running.psql(f"CREATE DATABASE {name}")
        url = pg_running.url(database=name)
        sql(url, "CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)")
        for i, item in enumerate(items, 1):
            sql(url, f"INSERT INTO orders VALUES ({i}, '{item}')")
    (tmp_path / ".env").write_text(f"STAGING_URL={pg_running.url(database='guard_staging')}\n"
                                   f"PRODUCTION_URL={pg_running.url(database='guard_prod')}\n"
                                   f"REPORTS_URL={pg_running.url(database='guard_reports')}\n")
    configure(tmp_path)
    return tmp_path


def configure(home: Path, extra: str = "") -> None:
    (home / "opsconsole.toml").write_text(CONFIG.format(extra=extra))


def opsconsole(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
    environ.update(OPSCONSOLE_JOURNAL=str(home / "journal.sqlite3"), XDG_STATE_HOME=str(home / "state"), **env)
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True, env=environ,
                          cwd=home, stdin=subprocess.DEVNULL, timeout=120)


def backups(home: Path, env: str) -> Path:
    return home / "state" / "opsconsole" / "backups" / env


def backup(home: Path, env: str, service: str = "db") -> Path:
    proc = opsconsole(home, "backup", service, "--env", env, *(TYPED if env == "production" else ("--yes",)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Path(re.search(r"previous\.backup=(\S+\.dump)\)", proc.stdout).group(1))


def runs(home: Path) -> list[str]:
    with open_journal(str(home / "journal.sqlite3")) as store:
        return [r.runbook_name for r in store.runs()]


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def test_a_staging_backup_over_production_is_refused(home, pg_running):
    prod = pg_running.url(database="guard_prod")
    staging_dump = backup(home, "staging")
    before = runs(home)

    # Named by path.
    proc = opsconsole(home, "restore-backup", "db", "--env", "production", "--from", str(staging_dump), *TYPED)
    line = assert_user_error(proc)
    assert proc.returncode == 2 and proc.stdout == ""
    assert line == (f"`restore-backup db --from {staging_dump}`: refusing {staging_dump}: that would be a backup of "
                    f"staging/db (database guard_staging) restored over production/db (database guard_prod); add "
                    f"--from-other if that is what you mean (the restore is confirmed as usual); nothing was restored")

    # Copied into production's backups directory by hand: it is the newest there, `latest`, and still staging's.
    backups(home, "production").mkdir(parents=True)
    copied = backups(home, "production") / staging_dump.name
    shutil.copy(staging_dump, copied)
    shutil.copy(staging_dump.with_suffix(".json"), copied.with_suffix(".json"))
    latest = opsconsole(home, "restore-backup", "db", "--env", "production", "--from", "latest", *TYPED)
    assert "that would be a backup of staging/db (database guard_staging) restored over production/db" \
        in assert_user_error(latest)

    # A drill of it is refused too: its timing and rows would be staging's, reported as production's.
    drill = opsconsole(home, "restore-backup", "db", "--env", "production", "--from", str(staging_dump),
                       "--scratch-only", "--yes")
    assert "restored over production/db" in assert_user_error(drill)

    assert rows(prod) == [(1, "prod-1"), (2, "prod-2"), (3, "prod-3")]
    assert runs(home) == before  # nothing started
    assert files(backups(home, "production") / "before-restore") == []


def test_another_service_or_database_is_refused_too(home, pg_running):
    reports = pg_running.url(database="guard_reports")
    prod_dump = backup(home, "production")
    # production/db's backup over production/reports: the manifest names the service db.
    proc = opsconsole(home, "restore-backup", "reports", "--env", "production", "--from", str(prod_dump), *TYPED)
    assert ("that would be a backup of production/db (database guard_prod) restored over production/reports "
            "(database guard_reports)") in assert_user_error(proc)

    # Without a manifest, the archive still names the database pg_dump read.
    bare = home / "bare.dump"
    shutil.copy(prod_dump, bare)
    proc = opsconsole(home, "restore-backup", "reports", "--env", "production", "--from", str(bare), *TYPED)
    assert ("that would be a backup of database guard_prod (no manifest says which environment) restored over "
            "production/reports (database guard_reports)") in assert_user_error(proc)
    assert rows(reports) == [(1, "report-1")]


def test_from_other_is_confirmed_like_the_restore_and_the_plan_says_it_plainly(home, pg_running):
    prod = pg_running.url(database="guard_prod")
    staging_dump = backup(home, "staging")
    words = ("restore-backup", "db", "--env", "production", "--from", str(staging_dump), "--from-other")
    plainly = ("a backup of staging/db (database guard_staging) restored over production/db (database guard_prod) "
               "(--from-other)")

    for flags, why in (((), "pass --yes"), (("--yes",), "pass --confirm-env production")):
        refused = opsconsole(home, *words, *flags)
        assert why in assert_user_error(refused)
        assert rows(prod) == [(1, "prod-1"), (2, "prod-2"), (3, "prod-3")]

    proc = opsconsole(home, *words, *TYPED)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"    -> {plainly}\n" in out
    # Said before anything else of the step, and before the safety copy and the restore.
    assert out.index(plainly) < out.index("safety copy of production/db, before anything is dropped") \
        < out.index("pg_restore --clean")
    assert rows(prod) == [(1, "staging-1"), (2, "staging-2")]
    assert pg_running.password not in out + proc.stderr


def test_a_restore_takes_a_safety_copy_first_and_it_restores(home, pg_running):
    prod = pg_running.url(database="guard_prod")
    dump = backup(home, "production")
    sql(prod, "DELETE FROM orders WHERE id = 1")
    sql(prod, "INSERT INTO orders VALUES (4, 'written after the backup')")
    after_backup = rows(prod)

    proc = opsconsole(home, "restore-backup", "db", "--env", "production", "--from", "latest", *TYPED)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert rows(prod) == [(1, "prod-1"), (2, "prod-2"), (3, "prod-3")]
    found = re.search(r"    \| safety copy of production/db before the restore: (\S+\.dump); to undo the restore: "
                      r"(opsconsole restore-backup db --env production --from \S+)\n", proc.stdout)
    assert found, proc.stdout
    safety, undo = Path(found.group(1)), found.group(2)
    assert safety.parent == dump.parent / "before-restore"
    assert undo.endswith(f"--from {shlex.quote(str(safety))}")
    # Dumped (and its manifest written) before pg_restore dropped anything.
    out = proc.stdout
    assert out.index(f"-> safety copy of production/db, before anything is dropped: PGPASSWORD=*** pg_dump -Fc "
                     f"--file {safety} ") < out.index("-> PGPASSWORD=*** pg_restore --clean")  # the plan
    assert out.index(f"$ safety copy of production/db, before anything is dropped: ") \
        < out.index(f"| backup {safety.name}: ") < out.index("$ PGPASSWORD=*** pg_restore --clean")  # the run
    manifest = json.loads(safety.with_suffix(".json").read_text())
    assert (manifest["environment"], manifest["service"], manifest["database"]) == ("production", "db", "guard_prod")
    assert f"previous.safety_copy={safety}" in out

    # Never `latest`, never listed among the backups: the next `--from latest` is still the backup.
    listing = json.loads(opsconsole(home, "backups", "--env", "production", "--json").stdout)
    assert [b["file"] for b in listing["backups"]] == [str(dump)]

    # The printed command puts the database back as it was before the restore (no --from-other needed).
    back = opsconsole(home, *shlex.split(undo)[1:], *TYPED)
    assert back.returncode == 0, back.stdout + back.stderr
    assert rows(prod) == after_backup

    # --no-safety-copy: no dump, nothing new in before-restore/.
    kept = files(safety.parent)
    plain = opsconsole(home, "restore-backup", "db", "--env", "production", "--from", "latest", "--no-safety-copy",
                       *TYPED)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "pg_dump" not in plain.stdout and "safety copy" not in plain.stdout
    assert files(safety.parent) == kept and rows(prod) == [(1, "prod-1"), (2, "prod-2"), (3, "prod-3")]


@pytest.fixture
def failing_pg_dump(home: Path) -> Path:
    """pg_bin with a pg_dump that fails halfway and the real pg_restore."""
    bindir = home / "pgbin"
    bindir.mkdir()
    (bindir / "pg_dump").write_text(FAKE_PG_DUMP)
    (bindir / "pg_dump").chmod(0o755)
    (bindir / "pg_restore").symlink_to(shutil.which("pg_restore"))
    configure(home, f'pg_bin = "{bindir}"\n')
    return bindir


def test_a_backup_that_fails_midway_leaves_no_partial_dump(home, failing_pg_dump):
    proc = opsconsole(home, "backup", "db", "--env", "staging", "--yes")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert files(backups(home, "staging")) == []
    assert "No space left on device" in proc.stdout
    assert re.search(r"\| removed the partial dump \S+/db-\d{8}T\d{6}Z\.dump \(300\.0 kB\)\n", proc.stdout), proc.stdout

    # Out of time halfway (the step's timeout kills pg_dump): removed as well.
    (home / "runbooks").mkdir()
    (home / "runbooks" / "nightly.md").write_text('## Back up\n```ops {"timeout": "2s"}\nbackup db\n```\n')
    timed = opsconsole(home, "run", "nightly", "--env", "staging", "--yes", FAKE_PG_DUMP="hang")
    assert timed.returncode == 1, timed.stdout + timed.stderr
    assert "timed out after 2 s" in timed.stdout and "| removed the partial dump " in timed.stdout
    assert files(backups(home, "staging")) == []


def test_a_safety_copy_that_fails_stops_the_restore_before_anything_is_dropped(home, pg_running, failing_pg_dump):
    prod = pg_running.url(database="guard_prod")
    configure(home)  # the real pg_dump for the backup
    backup(home, "production")
    sql(prod, "DELETE FROM orders WHERE id = 3")
    configure(home, f'pg_bin = "{failing_pg_dump}"\n')
    proc = opsconsole(home, "restore-backup", "db", "--env", "production", "--from", "latest", *TYPED)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "| removed the partial dump " in proc.stdout
    assert "$ PGPASSWORD=*** pg_restore" not in proc.stdout
    assert rows(prod) == [(1, "prod-1"), (2, "prod-2")]  # not restored: pg_restore never ran
    assert files(backups(home, "production") / "before-restore") == []


def test_a_dump_written_aside_is_removed_when_it_fails_or_is_stopped(tmp_path):
    """compose and railway dump into `<file>.partial` and rename it once complete (their pg_dump runs in a
    container or through `railway run`): the same TakeDump removes that file when the dump fails or is stopped."""
    import threading

    from opsconsole import backups, runner

    path = tmp_path / "db-20261121T130000Z.dump"
    partial = path.with_name(path.name + ".partial")

    def take(script: str) -> backups.TakeDump:
        argv = ("sh", "-c", '"$@" > "$0.partial" && mv "$0.partial" "$0"', str(path), "sh", "-c", script)
        return backups.TakeDump(runner.Command(argv, records={"backup": str(path)}), partial)

    lines: list[str] = []
    result = take("head -c 5000 /dev/zero; echo 'pg_dump: error: connection lost' >&2; exit 1").perform(lines.append)
    assert not result.ok and result.error == f"exit 1; removed the partial dump {partial} (5.0 kB)"
    assert lines[-1] == f"removed the partial dump {partial} (5.0 kB)"
    assert sorted(tmp_path.iterdir()) == []

    # Stopped (Ctrl-C in the TUI, an abort) while it writes: the process group is killed and the file goes.
    stop = threading.Event()

    def output(line: str) -> None:
        if line == "dumping":
            stop.set()
    with pytest.raises(runner.Aborted):
        take("head -c 5000 /dev/zero; echo dumping >&2; exec sleep 30").perform(output, None, stop)
    assert sorted(tmp_path.iterdir()) == []

    done = take("printf PGDMP-whole").perform(lines.append)
    assert done.ok and done.recorded == {} and path.read_bytes() == b"PGDMP-whole" and not partial.exists()
