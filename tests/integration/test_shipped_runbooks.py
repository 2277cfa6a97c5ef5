"""Every shipped runbook (runbooks/*.md, used in place) validates and runs end to end against a `local`
environment on this machine: real PostgreSQL (`pg`), real Redis (`redis_running`), real BullMQ queues built
by the library itself. Runbooks whose verbs need another provider (scale) validate, and `plan` on local says
why that step cannot run there; the rest of such a runbook still runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from opsconsole import runbook
from opsconsole.journal import open_journal

pytestmark = pytest.mark.integration

SHIPPED = Path(__file__).resolve().parents[2] / "opsconsole" / "shipped_runbooks"
EXPECTED = {"deploy", "migrate", "scale-workers", "rotate-secret", "restore-backup", "queue-backlog",
            "db-connections-exhausted", "restore-drill", "local-smoke"}
SCALE_REFUSED = ("`scale worker --replicas 4`: the local provider cannot scale services (a local process has no "
                 "replica count); use a provider with replicas or an sh block\n")

CONFIG = """\
[opsconsole]
refresh = 0.2
timeout = 2
runbooks = "{runbooks}"

[environments.{env}]
provider = "local"

[environments.{env}.services.db]
kind = "postgres"
url = "${{DATABASE_URL}}"

[environments.{env}.services.cache]
kind = "redis"
url = "${{REDIS_URL}}"

[environments.{env}.services.api]
deploy = "echo deployed api >> deploys.log"
migrate = "psql -X -v ON_ERROR_STOP=1 -c 'CREATE TABLE schema_v2 (id int)'"
restart = "echo restarted api >> restarts.log"

[environments.{env}.services.worker]
restart = "echo restarted worker >> restarts.log"

[environments.{env}.services.bad]
migrate = "psql -X -c 'DELETE FROM orders' && echo 'migration failed halfway' && exit 1"

[environments.{env}.queues.emails]
kind = "bullmq"
url = "${{REDIS_URL}}"

[environments.{env}.secrets.JWT_SECRET]
restart = ["api"]
"""


def sql(url: str, statement: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def home(tmp_path: Path, pg_running, redis_running) -> Path:
    pg_running.psql("DROP DATABASE IF EXISTS app WITH (FORCE)")
    pg_running.psql("CREATE DATABASE app")
    url = pg_running.url(database="app")
    sql(url, "CREATE TABLE orders (id int PRIMARY KEY, item text)")
    sql(url, "INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 100) g")
    (tmp_path / "opsconsole.toml").write_text(CONFIG.format(runbooks=SHIPPED, env="local"))
    # psql in the shell steps connects through the standard libpq variables, as the runbooks say.
    (tmp_path / ".env").write_text(
        f"DATABASE_URL={url}\nREDIS_URL={redis_running.url}\nPGHOST=127.0.0.1\nPGPORT={pg_running.port}\n"
        f"PGUSER=postgres\nPGPASSWORD={pg_running.password}\nPGDATABASE=app\n")
    (tmp_path / ".env.local").write_text("JWT_SECRET=first-jwt-value-0123\n")
    return tmp_path


def opsconsole(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True,
                          env=_env(home), cwd=home, stdin=subprocess.DEVNULL, timeout=timeout)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSCONSOLE", "PG"))}
    for name in ("DATABASE_URL", "REDIS_URL", "REDISCLI_AUTH"):
        env.pop(name, None)
    env.update(OPSCONSOLE_JOURNAL=str(home / "journal.sqlite3"), XDG_STATE_HOME=str(home / "state"))
    return env


def succeeded(proc: subprocess.CompletedProcess[str], secrets: tuple[str, ...] = ()) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    for secret in secrets:
        assert secret not in proc.stdout + proc.stderr
    return proc.stdout


def journal_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.glob("journal.sqlite3*"))


def backups_of(home: Path) -> list[Path]:
    return sorted((home / "state" / "opsconsole" / "backups" / "local").glob("db-*.dump"))


def scratch_databases(pg) -> list[str]:
    return [r[0] for r in sql(pg.url(), "SELECT datname FROM pg_database WHERE datname LIKE 'opsconsole_scratch_%'")]


def test_every_shipped_runbook_validates(run_cli):
    names = {p.stem for p in runbook.runbook_files(SHIPPED)}
    assert EXPECTED <= names
    result = run_cli("runbooks", "validate", str(SHIPPED))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(f"{len(names)} runbooks checked: {len(names)} valid, 0 invalid")
    for name in names:
        book = runbook.load(SHIPPED / f"{name}.md")
        assert book.title and book.summary and len(book.intro) > 200, name  # real guidance, not a stub
        assert all(step.prose for step in book.steps), name


def test_every_runbook_for_local_runs_as_is_on_the_built_in_config(tmp_path, pg_running, redis_running):
    """A new user with no opsconsole.toml: `opsconsole run NAME --env local --yes` with no -p succeeds for every
    shipped runbook that names `local` among its environments. Their member params (the database, the cache) default
    to the built-in environment's members of that kind (`postgres`, `redis`), not to names it does not have."""
    for_local = [p.stem for p in runbook.runbook_files(SHIPPED)
                 if "local" in (runbook.load(p).environments or ())]
    assert "local-smoke" in for_local
    env = {**_env(tmp_path), "DATABASE_URL": pg_running.url(), "REDIS_URL": redis_running.url}
    assert not (tmp_path / "opsconsole.toml").exists() and not (tmp_path / "runbooks").exists()
    for name in for_local:
        proc = subprocess.run([sys.executable, "-m", "opsconsole", "run", name, "--env", "local", "--yes"],
                              capture_output=True, text=True, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
                              timeout=120)
        out = succeeded(proc)
        assert out.splitlines()[-1].endswith(" succeeded"), out
    plan = subprocess.run([sys.executable, "-m", "opsconsole", "plan", "db-connections-exhausted", "--env", "local"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert "Params: database=postgres idle_minutes=10" in succeeded(plan)


def test_deploy(home, pg_running):
    out = succeeded(opsconsole(home, "run", "deploy", "-p", "service=api", "-p", "health=db", "--yes"),
                    (pg_running.password,))
    assert (home / "deploys.log").read_text() == "deployed api\n"
    assert "not a git checkout" in out and "attempt 1: holds: db is ok\n" in out


def test_migrate_and_its_rollback(home, pg_running):
    url = pg_running.url(database="app")
    out = succeeded(opsconsole(home, "run", "migrate", "-p", "service=api", "--yes"), (pg_running.password,))
    assert sql(url, "SELECT to_regclass('schema_v2') IS NOT NULL") == [(True,)]
    (dump,) = backups_of(home)
    assert dump.with_suffix(".json").is_file() and f"previous.backup={dump}" in out

    # A migration that fails halfway: the shipped rollback restores the backup the runbook just took.
    failed = opsconsole(home, "run", "migrate", "-p", "service=bad", "--yes", "--on-failure", "rollback")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "    | DELETE 100\n    | migration failed halfway\n" in failed.stdout
    assert "Step 3 rolled back" in failed.stdout
    assert sql(url, "SELECT count(*) FROM orders") == [(100,)]
    assert pg_running.password not in failed.stdout + failed.stderr


def test_rotate_secret(home, pg_running):
    out = succeeded(opsconsole(home, "run", "rotate-secret", "-p", "secret=JWT_SECRET", "-p", "health=db", "--yes"),
                    ("first-jwt-value-0123", pg_running.password))
    rotated = (home / ".env.local").read_text()
    assert "first-jwt-value-0123" not in rotated
    value = re.search(r"^JWT_SECRET=\"?([^\"\n]+)\"?$", rotated, re.M).group(1)
    assert len(value) >= 32 and value not in out
    assert (home / "restarts.log").read_text() == "restarted api\n"
    assert value.encode() not in journal_bytes(home) and b"first-jwt-value-0123" not in journal_bytes(home)


def test_restore_backup(home, pg_running):
    url = pg_running.url(database="app")
    succeeded(opsconsole(home, "backup", "db", "--yes"))
    (taken,) = backups_of(home)
    sql(url, "DROP TABLE orders")
    out = succeeded(opsconsole(home, "run", "restore-backup", "-p", "backup=latest", "--yes"), (pg_running.password,))
    assert sql(url, "SELECT count(*) FROM orders") == [(100,)]
    safety = [p for p in backups_of(home) if p != taken]
    assert len(safety) == 1  # the safety copy, taken before the restore, without orders
    assert f"    -> verify {taken} before anything is dropped: " in out
    assert f"--single-transaction --dbname postgresql://postgres@127.0.0.1:{pg_running.port}/app {taken}\n" in out


def test_restore_drill_reports_time_against_the_rto_and_leaves_nothing(home, pg_running):
    url = pg_running.url(database="app")
    succeeded(opsconsole(home, "backup", "db", "--yes"))
    sql(url, "DELETE FROM orders WHERE id > 10")  # the drill must not restore this
    out = succeeded(opsconsole(home, "run", "restore-drill", "-p", "table=orders", "-p", "rto_minutes=5", "--yes"),
                    (pg_running.password,))
    assert re.search(r"\| created scratch database opsconsole_scratch_app_\d{8}t\d{6}\n", out)
    assert "    | backup age:    0.0 h (at most 26 h): MET\n" in out
    assert "    | tables:        1 restored, all the backup lists\n" in out
    assert "    | rows:          orders has 100 rows (at least 1): MET\n" in out
    time_line = re.search(r"    \| recovery time: (\d+\.\d) s \(verify (\d+\.\d) s \+ restore (\d+\.\d) s\) against "
                          r"an RTO of 5 min: (\d+\.\d) % of it: MET\n", out)
    assert time_line, out
    total = float(time_line.group(1))
    assert 0 < total < 300 and abs(float(time_line.group(4)) - total / 3) < 0.2
    assert "    | drill passed\n" in out
    assert sql(url, "SELECT count(*) FROM orders") == [(10,)]  # the real database was never touched
    assert scratch_databases(pg_running) == []

    failed = opsconsole(home, "run", "restore-drill", "-p", "table=orders", "-p", "min_rows=1000", "--yes")
    assert failed.returncode == 1
    assert "    | rows:          orders has 100 rows (at least 1000): FAILED, the backup is missing data" in failed.stdout
    assert "    | drill FAILED\n" in failed.stdout
    assert scratch_databases(pg_running) == []
    with open_journal(str(home / "journal.sqlite3")) as store:
        statuses = [r.status for r in store.runs() if r.runbook_name == "restore-drill"]
    assert sorted(statuses) == ["aborted", "succeeded"]  # without a terminal a failed step aborts the run


def test_db_connections_exhausted_ends_only_old_idle_in_transaction_sessions(home, pg_running):
    import psycopg

    url = pg_running.url(database="app")
    old = [psycopg.connect(url) for _ in range(3)]
    for conn in old:
        conn.execute("SELECT count(*) FROM orders")  # a transaction left open: idle in transaction
    elsewhere = psycopg.connect(pg_running.url(database="postgres"))
    elsewhere.execute("SELECT 1")  # just as old, but in another database: out of scope
    idle = [psycopg.connect(url, autocommit=True) for _ in range(2)]
    for conn in idle:
        conn.execute("SELECT 1")  # plainly idle: a pool's spare connection
    time.sleep(7)  # older than idle_minutes=0.1 (6 s)
    young = psycopg.connect(url)
    stop = threading.Event()

    def keep_busy() -> None:  # in a transaction, but never idle for long
        while not stop.is_set():
            young.execute("SELECT 1")
            stop.wait(0.3)

    busy = threading.Thread(target=keep_busy, daemon=True)
    busy.start()
    pids = {name: [c.info.backend_pid for c in conns]
            for name, conns in {"old": old, "elsewhere": [elsewhere], "idle": idle, "young": [young]}.items()}
    try:
        out = succeeded(opsconsole(home, "run", "db-connections-exhausted", "-p", "idle_minutes=0.1", "--yes"),
                        (pg_running.password,))
    finally:
        stop.set()
        busy.join(5)
    alive = {r[0] for r in sql(pg_running.url(), "SELECT pid FROM pg_stat_activity")}
    assert not alive & set(pids["old"])
    assert set(pids["elsewhere"] + pids["idle"] + pids["young"]) <= alive
    for pid in pids["old"]:
        assert re.search(rf"    \| pid {pid} \(postgres, \?, idle in a transaction for 00:00:\d\d\): ended\n", out)
    assert "    | 3 session(s) ended\n" in out
    assert "0 session(s) still idle in a transaction for longer than 0.1 min" in out
    assert re.search(r"attempt 1: holds: db is ok; db\.connections_pct is [\d.]+ \(< 80\)\n", out)
    for conn in old:
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    young.execute("SELECT 1")  # still in its transaction, untouched
    young.rollback()
    for conn in [elsewhere, *idle, young, *old]:
        conn.close()


def test_scale_workers_validates_and_says_why_local_cannot_run_it(home, run_cli):
    """scale-workers is for staging and production; on a `local` provider its scale step is refused."""
    result = run_cli("runbooks", "validate", str(SHIPPED / "scale-workers.md"))
    assert result.returncode == 0 and "scale-workers.md: ok, 2 steps" in result.stdout
    (home / "opsconsole.toml").write_text(CONFIG.format(runbooks=SHIPPED, env="staging"))
    (home / ".env.staging").write_text("")
    plan = opsconsole(home, "plan", "scale-workers", "--env", "staging")
    assert plan.returncode == 2 and plan.stdout == "" and plan.stderr == SCALE_REFUSED
    run = opsconsole(home, "run", "scale-workers", "--env", "staging", "--yes")
    assert run.returncode == 2 and run.stderr == SCALE_REFUSED


def bullmq_queue(redis, spec: dict) -> None:
    from tests.integration.test_queues import node_queues

    node_queues({"lib": "bullmq", "url": redis.url, "queues": [spec]})


def test_queue_backlog(home, redis_running):
    """On local the scale step is refused when planned; without it, the runbook inspects a real BullMQ queue
    (counts, oldest job, a job its worker lost, failure reasons, rates) and watches it drain."""
    plan = opsconsole(home, "plan", "queue-backlog")
    assert plan.returncode == 2 and plan.stderr == SCALE_REFUSED

    redis_running.cli("FLUSHALL")
    bullmq_queue(redis_running, {"name": "emails", "waiting": 120, "failed": 3, "active": 1})
    (lost,) = redis_running.cli("LRANGE", "bull:emails:active", "0", "-1").split()
    redis_running.cli("DEL", f"bull:emails:{lost}:lock")  # its worker died: the lock expired
    text = (SHIPPED / "queue-backlog.md").read_text()
    scale = re.search(r"^## Add workers\n.*?(?=^## )", text, re.S | re.M)
    assert scale and "scale {{ worker }} --replicas {{ replicas }}" in scale.group(0)
    (home / "queue-backlog-no-scale.md").write_text(text.replace(scale.group(0), ""))

    drained = threading.Event()

    def drain() -> None:  # the workers: take jobs off the wait list until under the threshold
        while int(redis_running.cli("LLEN", "bull:emails:wait")) > 40:
            redis_running.cli("RPOP", "bull:emails:wait", "8")
            time.sleep(0.2)
        drained.set()

    proc = subprocess.Popen([sys.executable, "-m", "opsconsole", "run", str(home / "queue-backlog-no-scale.md"),
                             "-p", "threshold=50", "-p", "sample_seconds=1", "--yes"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home), cwd=home,
                            stdin=subprocess.DEVNULL)
    lines = []
    workers = threading.Thread(target=drain, daemon=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Step 3/3: Watch it drain"):
            workers.start()
    proc.wait(60)
    out = "".join(lines)
    assert proc.returncode == 0, out + proc.stderr.read()
    workers.join(10)
    assert drained.is_set(), out
    with open_journal(str(home / "journal.sqlite3")) as store:
        (run,) = store.runs()
        steps = store.get(run.run_id).latest_steps()
    assert steps[1].verification == "check ok: emails.depth is 120 (> 50)"
    assert "    | == bull:emails\n" in out and "    |   wait         120\n" in out and "    |   failed       3\n" in out
    assert re.search(r"    \| == oldest waiting job: \d+ \(wait\), queued \d+ s ago\n", out)
    assert f"    | == active jobs without a lock (their worker died or hangs)\n    |   {lost} (hang)\n" in out
    assert "    | == most common reasons among the last 200 failed jobs\n    |       3 planned failure\n" in out
    assert re.search(r"    \| == over 1 s: coming in 0/min, leaving 0/min, failing 0/min; depth 120 -> 120\n", out)
    assert re.search(r"holds: emails\.rate_per_s is -[\d.]+ \(< 0\)\n", out)
    assert re.search(r"holds: emails\.depth is \d+ \(< 50\)\n", out)


def test_queue_backlog_stops_before_scaling_when_jobs_fail(home, redis_running):
    redis_running.cli("FLUSHALL")
    bullmq_queue(redis_running, {"name": "emails", "waiting": 60})
    text = (SHIPPED / "queue-backlog.md").read_text()
    scale = re.search(r"^## Add workers\n.*?(?=^## )", text, re.S | re.M).group(0)
    (home / "queue-backlog-no-scale.md").write_text(text.replace(scale, ""))

    def fail_jobs() -> None:  # jobs failing fast while the runbook samples the rates
        for i in range(20):
            redis_running.cli("ZADD", "bull:emails:failed", str(i), f"f{i}")
            time.sleep(0.05)

    proc = subprocess.Popen([sys.executable, "-m", "opsconsole", "run", str(home / "queue-backlog-no-scale.md"),
                             "-p", "threshold=50", "-p", "sample_seconds=2", "--yes"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home), cwd=home,
                            stdin=subprocess.DEVNULL)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("    | == most common reasons"):
            threading.Thread(target=fail_jobs, daemon=True).start()
    proc.wait(60)
    out = "".join(lines)
    assert proc.returncode == 1, out
    assert re.search(r"    \| STOP: jobs fail at \d+/min \(more than 10\): more workers would only fail faster\.", out)
    assert "Step 2 failed: check failed: " in out and "Step 3" not in out
