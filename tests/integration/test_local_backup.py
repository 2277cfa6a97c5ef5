"""Local backups against the real PostgreSQL of the `pg` fixture: the manifest, a restore that brings a dropped
table back, corrupt dumps refused before anything is dropped (when planned, and again when a dump changes after
the plan), parallel restores, scratch verification that leaves no scratch database, the drill mode, listing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsconsole.journal import open_journal

pytestmark = pytest.mark.integration

CONFIG = """\
[environments.local]
provider = "local"

[environments.local.services.db]
kind = "postgres"
url = "${{DATABASE_URL}}"
{extra}
"""


def sql(url: str, statement: str, params: tuple | None = None) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def scratch_databases(pg) -> list[str]:
    return [r[0] for r in sql(pg.url(), "SELECT datname FROM pg_database WHERE datname LIKE 'opsconsole\\_scratch\\_%'")]


@pytest.fixture
def home(tmp_path: Path, pg_running) -> Path:
    pg_running.psql("DROP DATABASE IF EXISTS shop WITH (FORCE)")
    pg_running.psql("CREATE DATABASE shop")
    (tmp_path / ".env").write_text(f"DATABASE_URL={pg_running.url(database='shop')}\n")
    configure(tmp_path)
    url = pg_running.url(database="shop")
    sql(url, "CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)")
    sql(url, "INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 500) g")
    sql(url, "CREATE SCHEMA billing")
    sql(url, "CREATE TABLE billing.invoices (id int, total numeric)")
    sql(url, "INSERT INTO billing.invoices VALUES (1, 9.5), (2, 12)")
    return tmp_path


def configure(home: Path, extra: str = "") -> None:
    (home / "opsconsole.toml").write_text(CONFIG.format(extra=extra))


def opsconsole(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
    env.pop("DATABASE_URL", None)
    env.update(OPSCONSOLE_JOURNAL=str(home / "journal.sqlite3"), XDG_STATE_HOME=str(home / "state"))
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True, env=env,
                          cwd=home, stdin=subprocess.DEVNULL, timeout=120)


def backup(home: Path) -> Path:
    proc = opsconsole(home, "backup", "db", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Path(re.search(r"previous\.backup=(\S+\.dump)\)", proc.stdout).group(1))


def orders(url: str) -> list[tuple]:
    return sql(url, "SELECT count(*), sum(id) FROM orders")


def journal_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.glob("journal.sqlite3*"))


def test_backup_writes_a_manifest_beside_the_dump(home, pg_running):
    before = datetime.now(UTC).replace(microsecond=0)
    proc = opsconsole(home, "backup", "db", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dump = Path(re.search(r"previous\.backup=(\S+\.dump)\)", proc.stdout).group(1))
    manifest_file = dump.with_suffix(".json")
    assert stat.S_IMODE(manifest_file.stat().st_mode) == 0o600
    manifest = json.loads(manifest_file.read_text())
    listing = subprocess.run(["pg_restore", "-l", str(dump)], capture_output=True, text=True, check=True,
                             env={**os.environ, "TZ": "UTC"}).stdout
    entries = [ln for ln in listing.splitlines() if ln and not ln.startswith(";")]
    run_id = re.search(r"^Run (\S+): ", proc.stdout, re.M).group(1)
    assert manifest == {
        "format": "opsconsole-backup/1", "file": dump.name, "environment": "local", "service": "db",
        "database": "shop", "server_version": sql(pg_running.url(), "SHOW server_version")[0][0],
        "pg_dump_version": manifest["pg_dump_version"], "size_bytes": dump.stat().st_size,
        "sha256": hashlib.sha256(dump.read_bytes()).hexdigest(), "tables": 2, "entries": len(entries),
        "created_at": manifest["created_at"], "run_id": run_id,
    }
    version = subprocess.run(["pg_dump", "--version"], capture_output=True, text=True, check=True).stdout
    assert manifest["pg_dump_version"] and manifest["pg_dump_version"] in version
    created = datetime.fromisoformat(manifest["created_at"])
    assert before - timedelta(seconds=2) <= created <= datetime.now(UTC)
    # The time pg_dump started (what the data is from), as the archive itself says.
    assert f"; Archive created at {created.strftime('%Y-%m-%d %H:%M:%S')} UTC\n" in listing
    assert f"| backup {dump.name}: " in proc.stdout and ", 2 tables, " in proc.stdout
    assert f"sha256 {manifest['sha256'][:16]}; manifest {manifest_file.name}" in proc.stdout
    assert pg_running.password not in proc.stdout + proc.stderr
    assert pg_running.password.encode() not in journal_bytes(home)


def test_restore_brings_a_dropped_table_back(home, pg_running):
    url = pg_running.url(database="shop")
    dump = backup(home)
    sql(url, "DROP TABLE orders")
    sql(url, "INSERT INTO billing.invoices VALUES (3, 1)")
    proc = opsconsole(home, "restore-backup", "db", "--from", "latest", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert orders(url) == [(500, 125250)]
    assert sql(url, "SELECT id FROM billing.invoices ORDER BY id") == [(1,), (2,)]
    # Verified before, restored in one transaction, checked after; the password only ever in PGPASSWORD.
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("    -> ")]
    assert lines[0].startswith(f"    -> verify {dump} before anything is dropped: ")
    assert f"sha256 {hashlib.sha256(dump.read_bytes()).hexdigest()[:16]} as {dump.with_suffix('.json').name} says" \
        in lines[0]
    # A safety copy of the database as it is, before anything is dropped (tests/security/test_restore_guard.py).
    safety = Path(re.search(r"\| safety copy of local/db before the restore: (\S+\.dump);", proc.stdout).group(1))
    assert lines[1].startswith(f"    -> mkdir -p -m 700 {dump.parent / 'before-restore'}; create {safety.name} ")
    assert lines[2] == (f"    -> safety copy of local/db, before anything is dropped: PGPASSWORD=*** pg_dump -Fc "
                        f"--file {safety} --dbname postgresql://postgres@127.0.0.1:{pg_running.port}/shop")
    assert lines[3].startswith(f"    -> write {safety.with_suffix('.json')}: ")
    assert lines[4] == (f"    -> PGPASSWORD=*** pg_restore --clean --if-exists --single-transaction --dbname "
                        f"postgresql://postgres@127.0.0.1:{pg_running.port}/shop {dump}")
    assert lines[5] == f"    -> check postgresql://postgres@127.0.0.1:{pg_running.port}/shop: the backup's 2 tables are all there"
    assert "    | restored: 2 tables (the backup lists 2)\n" in proc.stdout
    assert pg_running.password not in proc.stdout + proc.stderr
    assert pg_running.password.encode() not in journal_bytes(home)


def truncate(dump: Path) -> None:
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) * 2 // 3])


def flip(dump: Path) -> None:
    data = bytearray(dump.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    dump.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, keep_manifest, reason", [
    (truncate, True, "bytes, its manifest says"),
    (flip, True, "checksum mismatch: sha256 "),
    (truncate, False, "pg_restore cannot read it to the end: could not read from input file: end of file"),
    (flip, False, "pg_restore cannot read it"),  # the TOC or the data, depending on where the bytes land
])
def test_a_corrupt_dump_is_refused_before_anything_is_dropped(home, pg_running, damage, keep_manifest, reason):
    url = pg_running.url(database="shop")
    dump = backup(home)
    sql(url, "DELETE FROM orders WHERE id > 100")  # what a restore would undo
    damage(dump)
    if not keep_manifest:
        dump.with_suffix(".json").unlink()
    proc = opsconsole(home, "restore-backup", "db", "--from", str(dump), "--yes")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"`restore-backup db --from {dump}`: refusing {dump}: ")
    assert reason in proc.stderr and proc.stderr.endswith("; nothing was restored\n")
    assert orders(url) == [(100, 5050)]  # the table is there and unchanged
    with open_journal(str(home / "journal.sqlite3")) as store:
        assert [r.runbook_name for r in store.runs()] == ["backup"]  # the restore never started


def test_a_dump_changed_after_the_plan_is_refused_when_it_runs(home, pg_running, monkeypatch):
    """The plan verified the dump; it is damaged before the step runs: the step's own verification stops it."""
    from opsconsole import config
    from opsconsole.engine import Engine, HeadlessPrompter, action_runbook, build_plan
    from opsconsole.actions import parse

    url = pg_running.url(database="shop")
    dump = backup(home)
    sql(url, "DROP TABLE billing.invoices")
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("DATABASE_URL", url)
    cfg = config.load(str(home / "opsconsole.toml"))
    plan = build_plan(cfg, "local", action_runbook(parse(f"restore-backup db --from {dump}")), {})
    flip(dump)
    lines: list[str] = []
    with open_journal(str(home / "journal.sqlite3")) as store:
        record = Engine(plan, store, cfg, "local", HeadlessPrompter("local", yes=True, write=lines.append)).run()
    assert record.status == "aborted"
    step = record.latest_steps()[1]
    assert step.status == "failed" and len(step.commands) == 1  # only the verification ran
    assert any("refusing " + dump.name + ": checksum mismatch" in line and "nothing was restored" in line
               for line in lines), lines
    assert sql(url, "SELECT to_regclass('billing.invoices')") == [(None,)]  # not restored: nothing was touched
    assert orders(url) == [(500, 125250)]


def test_parallel_restore_from_config_and_flags(home, pg_running):
    url = pg_running.url(database="shop")
    configure(home, "restore_jobs = 3\n")
    dump = backup(home)
    sql(url, "DROP TABLE orders")
    proc = opsconsole(home, "restore-backup", "db", "--from", dump.name, "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"pg_restore --clean --if-exists --jobs 3 --dbname postgresql://postgres@127.0.0.1:{pg_running.port}/shop " \
           f"{dump}\n" in proc.stdout
    assert orders(url) == [(500, 125250)]

    sql(url, "DELETE FROM orders")
    atomic = opsconsole(home, "restore-backup", "db", "--from", "latest", "--single-transaction", "--yes")
    assert atomic.returncode == 0 and " --single-transaction --dbname " in atomic.stdout and "--jobs" not in atomic.stdout
    assert orders(url) == [(500, 125250)]

    sql(url, "DELETE FROM orders")
    flagged = opsconsole(home, "restore-backup", "db", "--from", "latest", "--jobs", "2", "--yes")
    assert flagged.returncode == 0 and " --jobs 2 --dbname " in flagged.stdout
    assert orders(url) == [(500, 125250)]

    both = opsconsole(home, "restore-backup", "db", "--from", "latest", "--jobs", "2", "--single-transaction", "--yes")
    assert both.returncode == 2 and both.stdout == ""
    assert both.stderr == ("restore-backup: --single-transaction and --jobs cannot combine: one transaction runs on "
                           "one connection, parallel jobs need several (pg_restore refuses both); choose one\n")
    (home / "runbooks").mkdir()
    (home / "runbooks" / "both.md").write_text("## Restore\n```ops\nrestore-backup db --from latest --jobs 4 "
                                               "--single-transaction\n```\n")
    invalid = opsconsole(home, "runbooks", "validate")
    assert invalid.returncode == 1
    assert "runbooks/both.md:3: restore-backup: --single-transaction and --jobs cannot combine" in invalid.stdout

    configure(home, "restore_jobs = 0\n")
    bad = opsconsole(home, "restore-backup", "db", "--from", "latest", "--yes")
    assert bad.returncode == 2
    assert bad.stderr == ("opsconsole.toml:7: restore_jobs must be a whole number from 1 (one transaction, "
                          "the default) to 64\n")


def test_scratch_verification_restores_there_first_and_leaves_no_scratch_database(home, pg_running):
    url = pg_running.url(database="shop")
    configure(home, 'restore_verify = "scratch"\n')
    backup(home)
    sql(url, "DELETE FROM orders WHERE id > 10")
    proc = opsconsole(home, "restore-backup", "db", "--from", "latest", "--count-rows", "orders", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scratch = re.search(r"\| created scratch database (opsconsole_scratch_shop_\d{8}t\d{6})\n", proc.stdout).group(1)
    out = proc.stdout
    assert out.index(f"| restored into {scratch} in ") < out.index(f"| dropped scratch database {scratch}") \
        < out.index("| restored: 2 tables (the backup lists 2); orders: 500 rows")
    assert f"restored into {scratch} in " in out and ": 2 tables (the backup lists 2); orders: 500 rows\n" in out
    assert "previous.restore_seconds=" in out and "previous.rows=500" in out
    assert orders(url) == [(500, 125250)]
    assert scratch_databases(pg_running) == []

    # A scratch check that fails stops before the real restore, and its database is dropped all the same.
    sql(url, "DELETE FROM orders WHERE id > 10")
    failed = opsconsole(home, "restore-backup", "db", "--from", "latest", "--count-rows", "public.nope", "--yes")
    assert failed.returncode == 1
    assert "the scratch restore is not what the backup lists: table public.nope is not in the restored database" \
        in failed.stdout
    assert "| dropped scratch database opsconsole_scratch_shop_" in failed.stdout
    assert orders(url) == [(10, 55)]
    assert scratch_databases(pg_running) == []
    plain = opsconsole(home, "restore-backup", "db", "--from", "latest", "--verify", "none", "--yes")
    assert plain.returncode == 0 and "opsconsole_scratch" not in plain.stdout and orders(url) == [(500, 125250)]


def test_a_drill_restores_into_scratch_only(home, pg_running):
    url = pg_running.url(database="shop")
    backup(home)
    sql(url, "DELETE FROM orders WHERE id > 10")
    proc = opsconsole(home, "restore-backup", "db", "--from", "latest", "--scratch-only", "--count-rows", "orders",
                      "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "asks y/N" not in proc.stdout  # it never touches the database: not a destructive action
    assert " --dbname postgresql://postgres@127.0.0.1:%d/shop " % pg_running.port not in proc.stdout
    assert orders(url) == [(10, 55)]  # untouched
    recorded = re.search(r"Step 1 succeeded \(recorded (.*)\)", proc.stdout).group(1)
    values = dict(item.split("=", 1) for item in recorded.split(", "))
    assert values["previous.rows"] == "500" and values["previous.tables"] == "2"
    assert float(values["previous.restore_seconds"]) > 0 and float(values["previous.verify_seconds"]) >= 0
    assert 0 <= float(values["previous.backup_age_hours"]) < 0.1
    assert scratch_databases(pg_running) == []


def test_latest_is_the_newest_complete_backup_and_listing(home, pg_running):
    first = backup(home)
    directory = first.parent
    # A dump with no manifest (an interrupted backup) is newer, but never `latest`.
    stray = directory / "db-29990101T000000Z.dump"
    stray.write_bytes(b"PGDMP partial")
    (directory / "db-replica-29990101T000000Z.dump").write_bytes(b"another service")
    sql(pg_running.url(database="shop"), "DELETE FROM orders")
    proc = opsconsole(home, "restore-backup", "db", "--from", "latest", "--yes")
    assert proc.returncode == 0 and f"verify {first} " in proc.stdout
    assert orders(pg_running.url(database="shop")) == [(500, 125250)]

    listing = opsconsole(home, "backups", "db")
    assert listing.returncode == 0, listing.stderr
    rows = listing.stdout.splitlines()
    assert rows[0] == f"backups: {directory}"
    assert rows[1].split() == ["NAME", "SIZE", "CREATED", "TABLES", "SHA256"]
    assert rows[2].startswith(stray.name) and rows[2].endswith("no manifest: incomplete, or copied in by hand")
    manifest = json.loads(first.with_suffix(".json").read_text())
    assert rows[3].split()[0] == first.name and rows[3].split()[-2:] == ["2", manifest["sha256"][:16]]
    assert len(rows) == 4  # db-replica's dump is not db's
    data = json.loads(opsconsole(home, "backups", "--json").stdout)
    assert [b["name"] for b in data["backups"]] == ["db-replica-29990101T000000Z.dump", stray.name, first.name]
    assert data["backups"][2]["tables"] == 2 and data["backups"][2]["complete"] is True

    only_stray = opsconsole(home, "restore-backup", "db", "--from", stray.name, "--yes")
    assert only_stray.returncode == 2 and "pg_restore cannot read it" in only_stray.stderr
    for path in (first, first.with_suffix(".json")):
        path.unlink()
    none = opsconsole(home, "restore-backup", "db", "--from", "latest", "--yes")
    assert none.returncode == 2
    assert none.stderr == (f"`restore-backup db --from latest`: no complete backup of db in {directory}: 1 dump(s) "
                           f"without a manifest (an interrupted backup leaves one); name the file to restore it "
                           f"anyway\n")


def test_a_scratch_restore_stopped_or_out_of_time_still_drops_its_database(home, pg_running):
    import threading

    from opsconsole import backups, runner

    dump = backup(home)
    checked = backups.verify(dump, "pg_restore")
    conninfo = f"postgresql://postgres@127.0.0.1:{pg_running.port}/shop"

    def scratch_call() -> backups.ScratchRestore:
        scratch = backups.scratch_name("shop", datetime.now(UTC))
        argv = ("pg_restore", "--clean", "--if-exists", "--single-transaction", "--dbname",
                backups.with_database(conninfo, scratch), str(dump))
        return backups.ScratchRestore(dump=dump, conninfo=conninfo, password=pg_running.password, scratch=scratch,
                                      restore_argv=argv, restore_display=" ".join(argv),
                                      table_names=checked.contents.table_names, tables=checked.contents.tables)

    # Ctrl-C / abort while pg_restore runs: the process group is killed, the scratch database dropped.
    call, stop, lines = scratch_call(), threading.Event(), []

    def output(line: str) -> None:
        lines.append(line)
        if line.startswith("created scratch database"):
            stop.set()
    with pytest.raises(runner.Aborted):
        call.perform(output, None, stop)
    assert lines == [f"created scratch database {call.scratch}", f"dropped scratch database {call.scratch}"]
    assert scratch_databases(pg_running) == []

    # Out of time before pg_restore could start.
    call, lines = scratch_call(), []
    result = call.perform(lines.append, timeout_s=0.001)
    assert not result.ok and result.error == "out of time before pg_restore could start"
    assert lines == [f"created scratch database {call.scratch}", f"dropped scratch database {call.scratch}"]
    assert scratch_databases(pg_running) == []
