"""The `local` provider end to end against the real servers: `expect` on live PostgreSQL and Redis, a
PostgreSQL journal, rotate-secret and its rollback, backup and restore-backup round-tripping a table."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opsconsole.journal import open_journal
from opsconsole.secret_values import fingerprint

pytestmark = pytest.mark.integration

CONFIG = """\
[opsconsole]
refresh = 0.2
timeout = 2

[environments.local]
provider = "local"

[environments.local.services.db]
kind = "postgres"
url = "${{DATABASE_URL}}"

[environments.local.services.cache]
kind = "redis"
url = "{redis}"

[environments.local.services.api]
restart = "echo restarted-with-$JWT_SECRET-len-${{#JWT_SECRET}} >> restarts.log"

[environments.local.secrets.JWT_SECRET]
restart = ["api"]
"""


def create_database(pg, name: str) -> str:
    pg.psql(f"DROP DATABASE IF EXISTS {name}")
    pg.psql(f"CREATE DATABASE {name}")
    return pg.url(database=name)


def sql(url: str, statement: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def home(tmp_path: Path, pg_running, redis_running) -> Path:
    url = create_database(pg_running, "engine_local")
    (tmp_path / "opsconsole.toml").write_text(CONFIG.format(redis=redis_running.url))
    (tmp_path / ".env").write_text(f"DATABASE_URL={url}\n")
    (tmp_path / ".env.local").write_text("# local secrets\nAPP_NAME=demo\nJWT_SECRET=\"first-jwt-value\"\nexport OTHER=kept\n")
    (tmp_path / "runbooks").mkdir()
    return tmp_path


def opsconsole(home: Path, *args: str, journal: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
    env.pop("DATABASE_URL", None)
    env.update(OPSCONSOLE_JOURNAL=journal or str(home / "journal.sqlite3"), XDG_STATE_HOME=str(home / "state"))
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True, env=env,
                          cwd=home, stdin=subprocess.DEVNULL, timeout=90)


def run_id(output: str) -> str:
    return re.search(r"^Run (\S+): ", output, re.M).group(1)


HEALTHY = """\
# Health gates

## Gate on the database and the cache
```ops {"role": "check"}
expect db is ok
expect cache is ok
```
```sh
echo changed >> changed.log
```
```ops {"role": "verify", "timeout": "10s"}
expect db.connections >= 1
expect cache.latency_ms < 1000
```
"""


def test_expectations_gate_on_live_postgres_and_redis(home, pg_running):
    (home / "runbooks" / "gate.md").write_text(HEALTHY)
    proc = opsconsole(home, "run", "gate", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (home / "changed.log").read_text() == "changed\n"
    assert "  check (ops): expect db is ok\n    expect cache is ok\n" in proc.stdout
    with open_journal(str(home / "journal.sqlite3")) as store:
        step = store.get(run_id(proc.stdout)).latest_steps()[1]
    assert step.verification.startswith("check ok: db is ok; cache is ok\nverified: db.connections is ")
    assert pg_running.password not in proc.stdout + proc.stderr


def test_a_failing_check_stops_the_step_before_any_change(home, redis_running):
    (home / "runbooks" / "gate.md").write_text(HEALTHY)
    redis_running.stop()
    try:
        proc = opsconsole(home, "run", "gate", "--yes")
    finally:
        redis_running.start()
    assert proc.returncode == 1
    assert not (home / "changed.log").exists()
    assert "Step 1 failed: check failed: db is ok; cache is crit: " in proc.stdout


def test_a_verification_that_never_holds_fails_after_its_retries(home):
    (home / "runbooks" / "never.md").write_text(
        "## Impossible\n```sh\ntrue\n```\n```ops {\"role\": \"verify\", \"retries\": 2, \"timeout\": \"20s\"}\n"
        "expect db.latency_ms < 0\n```\n")
    proc = opsconsole(home, "run", "never", "--yes")
    assert proc.returncode == 1
    assert proc.stdout.count("    attempt ") == 3 and "attempt 3: not yet: db.latency_ms is " in proc.stdout
    assert "wanted < 0 (3 attempt(s) in " in proc.stdout


def test_a_run_journaled_in_postgresql(home, pg_running):
    journal_url = create_database(pg_running, "engine_journal")
    (home / "runbooks" / "gate.md").write_text(HEALTHY)
    proc = opsconsole(home, "run", "gate", "--yes", journal=journal_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open_journal(journal_url) as store:
        run = store.get(run_id(proc.stdout))
    assert run.status == "succeeded" and run.latest_steps()[1].commands == ("echo changed >> changed.log",)
    assert run.plan["steps"][0]["title"] == "Gate on the database and the cache"
    assert pg_running.password not in proc.stdout + proc.stderr


def test_rotate_secret_rewrites_env_file_and_rollback_restores_it(home):
    before = (home / ".env.local").read_text()
    proc = opsconsole(home, "rotate-secret", "JWT_SECRET", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = (home / ".env.local").read_text().splitlines()
    assert after[0:2] == ["# local secrets", "APP_NAME=demo"] and after[3] == "export OTHER=kept"
    new = re.fullmatch(r"JWT_SECRET=([0-9a-f]{64})", after[2]).group(1)  # secrets.token_hex(32) by default
    kept = home / ".env.local.previous"
    # The replaced statement, after a marker naming the run that kept it (a retry of that run keeps it).
    assert kept.read_text() == f'#opsconsole-kept JWT_SECRET run={run_id(proc.stdout)}\nJWT_SECRET="first-jwt-value"\n'
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    # The restart ran after the rewrite and saw the new value (64 characters), which never showed: its
    # fingerprint did, and the replaced one's.
    assert (home / "restarts.log").read_text() == f"restarted-with-{new}-len-64\n"
    assert f"JWT_SECRET rotated ({fingerprint(new)})" in proc.stdout
    assert f"the previous line ({fingerprint('first-jwt-value')}) is kept" in proc.stdout
    assert "recorded previous.secret=JWT_SECRET, previous.previous_value=***" in proc.stdout
    journal_bytes = b"".join(p.read_bytes() for p in home.glob("journal.sqlite3*"))
    for secret in (new, "first-jwt-value"):
        assert secret not in proc.stdout + proc.stderr and secret.encode() not in journal_bytes

    back = opsconsole(home, "rotate-secret", "JWT_SECRET", "--rollback", "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert (home / ".env.local").read_text() == before
    # The rotated value stays kept, marked rolled back: a second rollback refuses instead of redoing it.
    assert kept.read_text() == f"#opsconsole-rolled-back JWT_SECRET run={run_id(back.stdout)}\nJWT_SECRET={new}\n"
    assert new not in back.stdout + back.stderr


def test_rotate_secret_asks_even_in_an_open_environment(home):
    proc = opsconsole(home, "rotate-secret", "JWT_SECRET")
    assert proc.returncode == 2 and "pass --yes" in proc.stderr
    assert "first-jwt-value" in (home / ".env.local").read_text()
    unknown = opsconsole(home, "rotate-secret", "NOPE_SECRET", "--yes")
    assert unknown.returncode == 2 and "unknown secret NOPE_SECRET" in unknown.stderr


def test_backup_and_restore_round_trip_a_table(home, pg_running):
    url = pg_running.url(database="engine_local")
    sql(url, "CREATE TABLE orders (id int PRIMARY KEY, item text)")
    sql(url, "INSERT INTO orders VALUES (1, 'apple'), (2, 'pear')")
    backup = opsconsole(home, "backup", "db", "--yes")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    path = Path(re.search(r"previous\.backup=(\S+\.dump)\)", backup.stdout).group(1))
    assert path.parent == home / "state" / "opsconsole" / "backups" / "local" and path.stat().st_size > 0
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert f"    -> PGPASSWORD=*** pg_dump -Fc --file {path} --dbname postgresql://postgres@127.0.0.1:" in backup.stdout

    sql(url, "DELETE FROM orders WHERE id = 1")
    sql(url, "INSERT INTO orders VALUES (3, 'plum')")
    refused = opsconsole(home, "restore-backup", "db", "--from", "latest")
    assert refused.returncode == 2 and "pass --yes" in refused.stderr  # destructive: never without a yes
    restore = opsconsole(home, "restore-backup", "db", "--from", "latest", "--yes")
    assert restore.returncode == 0, restore.stdout + restore.stderr
    assert f"pg_restore --clean --if-exists --single-transaction --dbname postgresql://postgres@127.0.0.1:" \
           f"{pg_running.port}/engine_local {path}" in restore.stdout
    assert sql(url, "SELECT id, item FROM orders ORDER BY id") == [(1, "apple"), (2, "pear")]
    for proc in (backup, restore):
        assert pg_running.password not in proc.stdout + proc.stderr
    journal_bytes = b"".join(p.read_bytes() for p in home.glob("journal.sqlite3*"))
    assert pg_running.password.encode() not in journal_bytes

    missing = opsconsole(home, "restore-backup", "db", "--from", "nope.dump", "--yes")
    assert missing.returncode == 2 and "no backup 'nope.dump'" in missing.stderr


def test_a_runbook_restores_the_backup_an_earlier_step_recorded(home, pg_running):
    url = pg_running.url(database="engine_local")
    sql(url, "CREATE TABLE notes (id int)")
    sql(url, "INSERT INTO notes VALUES (1)")
    # .env values reach the commands; a PASSWORD is masked wherever it would show.
    with (home / ".env").open("a") as env_file:
        env_file.write(f"PGPASSWORD={pg_running.password}\n")
    (home / "runbooks" / "risky.md").write_text(textwrap.dedent(f"""\
        # Risky change

        ## Back up
        ```ops
        backup db
        ```

        ## Change the data
        ```sh
        psql -h 127.0.0.1 -p {pg_running.port} -U postgres -d engine_local -c "DELETE FROM notes"
        echo "changed with $PGPASSWORD"
        false
        ```
        ```ops {{"role": "rollback"}}
        restore-backup db --from {{{{ previous.backup }}}}
        ```
        """))
    plan = opsconsole(home, "plan", "risky")
    assert "  rollback (ops), asks y/N, resolved at run time from step 1:\n" \
           "    restore-backup db --from {{ previous.backup }}\n" in plan.stdout
    sql(url, "INSERT INTO notes VALUES (2)")  # after the plan, before the run: part of the backup
    proc = opsconsole(home, "run", "risky", "--yes", "--on-failure", "rollback")
    assert proc.returncode == 1
    assert sql(url, "SELECT id FROM notes ORDER BY id") == [(1,), (2,)]
    assert "    | DELETE 2\n    | changed with ***\n" in proc.stdout
    assert pg_running.password not in proc.stdout + proc.stderr
    assert re.search(r"    -> PGPASSWORD=\*\*\* pg_restore --clean --if-exists --single-transaction --dbname \S+ "
                     r"\S+/db-\d{8}T\d{6}Z\.dump\n", proc.stdout)
    with open_journal(str(home / "journal.sqlite3")) as store:
        run = store.get(run_id(proc.stdout))
    assert run.latest_steps()[2].status == "rolled-back"
    assert run.latest_steps()[1].recorded["backup"].endswith(".dump")
