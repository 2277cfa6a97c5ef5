"""The `compose` provider end to end: `opsconsole` as a real process, a fake `docker` on PATH
(tests/fakes/docker, answering like Compose v2 and recording every call) and, for backup and restore,
the real PostgreSQL: the fake runs `exec` commands on this machine as if inside the container.

Each operation is planned (the exact commands shown), confirmed, executed, verified and journaled.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opsconsole.journal import open_journal

pytestmark = pytest.mark.integration

FAKES = Path(__file__).resolve().parent.parent / "fakes"
COMPOSE = "docker compose -f compose.yaml -p shop"

CONFIG = """\
[opsconsole]
refresh = 0.2

[environments.dev]
provider = "compose"

[environments.dev.provider_options]
compose_file = "compose.yaml"
project_name = "shop"

[environments.dev.services.api]
migrate = "python manage.py migrate --noinput"

[environments.dev.services.worker]
compose_service = "queue-worker"

[environments.dev.services.db]
kind = "postgres"
url = "{db_url}"

[environments.dev.secrets.JWT_SECRET]
restart = ["api"]
"""

ENV = 'COMPOSE_PROFILES=web\nJWT_SECRET="first-jwt-value"\nexport OTHER=kept\n'


class Home:
    def __init__(self, root: Path, db_url: str = "postgresql://postgres@127.0.0.1:5/app") -> None:
        self.root = root
        self.state = root / "fake-state.json"
        self.log = root / "fake-log.jsonl"
        (root / "opsconsole.toml").write_text(CONFIG.format(db_url=db_url))
        (root / "compose.yaml").write_text("services:\n  api: {build: .}\n  queue-worker: {build: .}\n  db: {image: postgres:16}\n")
        (root / ".env").write_text(ENV)
        (root / "runbooks").mkdir()
        self.write_state({"docker": {"project": "shop", "services": {
            "api": {"containers": 1}, "queue-worker": {"containers": 2}, "db": {"containers": 1}},
            "exec_env": {}, "run": {}}})

    def write_state(self, state: dict) -> None:
        self.state.write_text(json.dumps(state))

    def docker(self) -> dict:
        return json.loads(self.state.read_text())["docker"]

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def argvs(self) -> list[str]:
        return [" ".join(c["argv"]) for c in self.calls()]

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
        full.update(PATH=f"{FAKES}{os.pathsep}{os.environ['PATH']}", FAKE_STATE=str(self.state),
                    FAKE_LOG=str(self.log), OPSCONSOLE_JOURNAL=str(self.root / "journal.sqlite3"),
                    XDG_STATE_HOME=str(self.root / "state"), **(env or {}))
        return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True, env=full,
                              cwd=self.root, stdin=subprocess.DEVNULL, timeout=90)

    def journal_steps(self, output: str):
        run_id = re.search(r"^Run (\S+): ", output, re.M).group(1)
        with open_journal(str(self.root / "journal.sqlite3")) as store:
            return store.get(run_id)

    def journal_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.root.glob("journal.sqlite3*"))


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path)


def test_deploy_builds_and_starts_the_service(home):
    proc = home.run("deploy", "api", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"    -> {COMPOSE} up -d --build api\n" in proc.stdout
    assert "    | #9 naming to docker.io/library/shop-api done\n" in proc.stdout
    assert home.argvs() == ["compose -f compose.yaml -p shop up -d --build api"]
    assert home.docker()["services"]["api"]["builds"] == 1
    run = home.journal_steps(proc.stdout)
    step = run.latest_steps()[1]
    assert run.status == "succeeded" and step.status == "succeeded"
    assert step.commands == (f"{COMPOSE} up -d --build api",)
    assert "Container shop-api-1  Started" in step.output_tail


def test_migrate_runs_the_command_in_a_one_off_container(home):
    proc = home.run("migrate", "--yes")  # the only service with a migrate command
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert home.argvs() == ["compose -f compose.yaml -p shop run --rm -T api python manage.py migrate --noinput"]
    state = json.loads(home.state.read_text())
    state["docker"]["run"]["api"] = {"exit": 3, "output": "django.db.utils.OperationalError: no such table"}
    home.write_state(state)
    failed = home.run("migrate", "api", "--yes")
    assert failed.returncode == 1
    assert "    | django.db.utils.OperationalError: no such table\n" in failed.stdout
    assert "Step 1 failed: docker compose -f compose.yaml -p shop run --rm -T api python manage.py migra...: " \
           "exit 3" in failed.stdout
    assert home.journal_steps(failed.stdout).latest_steps()[1].exit_status == 3


SCALE = """\
---
title: Scale the queue workers
params:
  replicas: {type: int, min: 1, max: 20}
---

## Scale the workers
```ops {"name": "scale"}
scale worker --replicas {{ replicas }}
```
```sh {"role": "verify", "timeout": "5s", "retries": 0}
test "$(docker compose ps --format json queue-worker | wc -l)" -eq 7
```
```ops {"role": "rollback"}
scale worker --replicas {{ previous.replicas }}
```
"""


def test_scale_reads_the_running_count_first_and_a_rollback_restores_it(home):
    (home.root / "runbooks" / "scale.md").write_text(SCALE)
    plan = home.run("plan", "scale", "-p", "replicas=7")
    assert plan.returncode == 0, plan.stderr
    assert (f"  run (ops), runs without asking:\n    scale worker --replicas 7\n"
            f"    -> {COMPOSE} up -d --no-recreate --scale queue-worker=7 queue-worker  # running now: 2\n") in plan.stdout
    assert "  rollback (ops), runs without asking, resolved at run time from step 1:\n" \
           "    scale worker --replicas {{ previous.replicas }}\n" in plan.stdout
    assert home.docker()["services"]["queue-worker"]["containers"] == 2  # the plan only read
    assert home.argvs() == ["compose -f compose.yaml -p shop ps --format json queue-worker"]

    proc = home.run("run", "scale", "-p", "replicas=7", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert home.docker()["services"]["queue-worker"]["containers"] == 7
    assert "Step 1 succeeded (recorded previous.replicas=2)" in proc.stdout
    step = home.journal_steps(proc.stdout).latest_steps()[1]
    assert step.recorded == {"replicas": 2} and step.verification.startswith("verified: exit 0")
    # The verify block's own `docker compose` found the project through COMPOSE_FILE / COMPOSE_PROJECT_NAME.
    verify = [c for c in home.calls() if c["argv"][:2] == ["compose", "ps"]][-1]
    assert "COMPOSE_FILE" in verify["env"] and "COMPOSE_PROJECT_NAME" in verify["env"]

    # Now a verification that cannot hold: the rollback scales back to what was running before (7).
    proc = home.run("run", "scale", "-p", "replicas=3", "--yes", "--on-failure", "rollback")
    assert proc.returncode == 1
    assert home.docker()["services"]["queue-worker"]["containers"] == 7
    assert f"    -> {COMPOSE} up -d --no-recreate --scale queue-worker=7 queue-worker  # running now: 3" in proc.stdout
    assert home.journal_steps(proc.stdout).latest_steps()[1].status == "rolled-back"
    scales = [a for a in home.argvs() if "--scale" in a]
    assert scales[-2:] == ["compose -f compose.yaml -p shop up -d --no-recreate --scale queue-worker=3 queue-worker",
                           "compose -f compose.yaml -p shop up -d --no-recreate --scale queue-worker=7 queue-worker"]


def test_rotate_secret_rewrites_the_projects_env_file_then_recreates_the_services(home):
    proc = home.run("rotate-secret", "JWT_SECRET", "--restart", "worker", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (home.root / ".env").read_text().splitlines()
    assert lines[0] == "COMPOSE_PROFILES=web" and lines[2] == "export OTHER=kept"
    new = re.fullmatch(r"JWT_SECRET=([0-9a-f]{64})", lines[1]).group(1)
    kept = home.root / ".env.previous"
    run_id = re.search(r"^Run (\S+): ", proc.stdout, re.M).group(1)
    assert kept.read_text() == f'#opsconsole-kept JWT_SECRET run={run_id}\nJWT_SECRET="first-jwt-value"\n'
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    # --restart first, then the configured ones; each recreated after the rewrite, seeing the new file.
    assert home.argvs() == ["compose -f compose.yaml -p shop up -d queue-worker",
                            "compose -f compose.yaml -p shop up -d api"]
    digest = hashlib.sha256((home.root / ".env").read_bytes()).hexdigest()
    services = home.docker()["services"]
    assert services["api"]["env_at_up"] == digest and services["queue-worker"]["env_at_up"] == digest
    assert f"JWT_SECRET=*** (new value, 64 hex characters)" in proc.stdout
    for secret in (new, "first-jwt-value"):
        assert secret not in proc.stdout + proc.stderr and secret.encode() not in home.journal_bytes()
        assert not any(secret in a for a in home.argvs())

    back = home.run("rotate-secret", "JWT_SECRET", "--rollback", "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert (home.root / ".env").read_text() == ENV
    assert home.docker()["services"]["api"]["env_at_up"] == hashlib.sha256(ENV.encode()).hexdigest()
    assert new not in back.stdout + back.stderr and "first-jwt-value" not in back.stdout


def test_rotate_secret_of_an_unknown_name_changes_nothing(home):
    proc = home.run("rotate-secret", "NOPE_SECRET", "--yes")
    assert proc.returncode == 2 and "unknown secret NOPE_SECRET" in proc.stderr
    assert proc.stderr.count("\n") == 1 and (home.root / ".env").read_text() == ENV and home.calls() == []


def create_database(pg, name: str) -> None:
    pg.psql(f"DROP DATABASE IF EXISTS {name}")
    pg.psql(f"CREATE DATABASE {name}")


def sql(url: str, statement: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def test_backup_and_restore_pipe_the_dump_through_the_container(tmp_path, pg_running):
    create_database(pg_running, "compose_app")
    url = pg_running.url(database="compose_app")
    home = Home(tmp_path, db_url=url)
    state = json.loads(home.state.read_text())
    # Inside the "container", pg_dump and pg_restore reach the database as the postgres image lets them.
    state["docker"]["exec_env"]["db"] = {"PGHOST": "127.0.0.1", "PGPORT": str(pg_running.port),
                                         "PGPASSWORD": pg_running.password}
    home.write_state(state)
    sql(url, "CREATE TABLE orders (id int PRIMARY KEY, item text)")
    sql(url, "INSERT INTO orders VALUES (1, 'apple'), (2, 'pear')")

    backup = home.run("backup", "db", "--yes")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    path = Path(re.search(r"previous\.backup=(\S+\.dump)\)", backup.stdout).group(1))
    assert path.parent == tmp_path / "state" / "opsconsole" / "backups" / "dev" and path.stat().st_size > 0
    assert not path.with_name(path.name + ".partial").exists()
    assert f"    -> {COMPOSE} exec -T db pg_dump -Fc --username postgres --dbname compose_app > {path}\n" \
        in backup.stdout
    manifest = json.loads(path.with_suffix(".json").read_text())  # as the local provider writes them
    assert manifest["size_bytes"] == path.stat().st_size and manifest["tables"] == 1
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    sql(url, "DELETE FROM orders WHERE id = 1")
    refused = home.run("restore-backup", "db", "--from", "latest")
    assert refused.returncode == 2 and "pass --yes" in refused.stderr  # destructive: asks even when open
    restore = home.run("restore-backup", "db", "--from", "latest", "--yes")
    assert restore.returncode == 0, restore.stdout + restore.stderr
    assert sql(url, "SELECT id, item FROM orders ORDER BY id") == [(1, "apple"), (2, "pear")]
    shown = (f"{COMPOSE} exec -T db pg_restore --clean --if-exists --single-transaction --username postgres "
             f"--dbname compose_app < {path}")
    assert f"    -> {shown}\n" in restore.stdout
    assert f"    | verified {path.name} in " in restore.stdout  # again, right before the restore
    commands = home.journal_steps(restore.stdout).latest_steps()[1].commands
    assert commands[0].startswith(f"verify {path} before anything is dropped: ") and commands[-1] == shown
    # Before the restore, a safety copy of the database as it was, through the container like any backup.
    safety = Path(re.search(r"\| safety copy of dev/db before the restore: (\S+\.dump);", restore.stdout).group(1))
    assert safety.parent == path.parent / "before-restore" and safety.with_suffix(".json").is_file()
    assert commands[1:-1] == (f"mkdir -p -m 700 {safety.parent}",
                              f"safety copy of dev/db, before anything is dropped: {COMPOSE} exec -T db pg_dump -Fc "
                              f"--username postgres --dbname compose_app > {safety}",
                              commands[3])
    assert commands[3].startswith(f"write {safety.with_suffix('.json')}: ")
    kept = subprocess.run(["pg_restore", "--data-only", "--file", "-", str(safety)], capture_output=True, text=True,
                          check=True).stdout
    assert "2\tpear\n" in kept and "1\tapple" not in kept  # the rows as they were before the restore
    assert json.loads(safety.with_suffix(".json").read_text())["environment"] == "dev"
    # The dump went to the container on stdin, byte for byte.
    piped = [c for c in home.calls() if "pg_restore" in c["argv"]][-1]
    assert piped["stdin_bytes"] == path.stat().st_size
    assert piped["stdin_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    for proc in (backup, restore):
        assert pg_running.password not in proc.stdout + proc.stderr
    assert pg_running.password.encode() not in home.journal_bytes()
    assert not any(pg_running.password in a for a in home.argvs())

    # A damaged dump is refused before anything is dropped: nothing reaches the container.
    sql(url, "DELETE FROM orders WHERE id = 2")
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size - 10)
    restores = len([c for c in home.calls() if "pg_restore" in c["argv"]])
    refused = home.run("restore-backup", "db", "--from", "latest", "--yes")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert f"refusing {path}: it is " in refused.stderr and "its manifest says" in refused.stderr
    assert len([c for c in home.calls() if "pg_restore" in c["argv"]]) == restores
    assert sql(url, "SELECT id FROM orders ORDER BY id") == [(1,)]


RELEASE = """\
# Release

## Migrate, then deploy
```ops
migrate api
deploy api
```
```sh {"role": "verify"}
docker compose ps --format json api | grep -q '"State": "running"'
```
"""


def test_a_runbook_with_ops_blocks_plans_and_runs_them_in_order(home):
    (home.root / "runbooks" / "release.md").write_text(RELEASE)
    plan = home.run("plan", "release")
    assert plan.returncode == 0, plan.stderr
    assert (f"    migrate api\n    deploy api\n    -> {COMPOSE} run --rm -T api python manage.py migrate --noinput\n"
            f"    -> {COMPOSE} up -d --build api\n") in plan.stdout
    # The verify block's shell shows the compose project its `docker compose` calls reach.
    assert "    # through: bash -e -c in " in plan.stdout and " -p shop\n" in plan.stdout
    assert home.calls() == []
    proc = home.run("run", "release", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert home.argvs()[:2] == ["compose -f compose.yaml -p shop run --rm -T api python manage.py migrate --noinput",
                                "compose -f compose.yaml -p shop up -d --build api"]
    step = home.journal_steps(proc.stdout).latest_steps()[1]
    assert step.status == "succeeded" and len(step.commands) == 3 and step.verification.startswith("verified")


@pytest.mark.parametrize("edit,message", [
    (lambda root: (root / "compose.yaml").unlink(), "opsconsole.toml:8: compose_file 'compose.yaml' not found"),
    (lambda root: None, "has no service 'nope' to deploy (services: api, worker, db)"),
])
def test_user_errors_are_one_line(home, edit, message):
    edit(home.root)
    proc = home.run("deploy", "nope", "--yes")
    assert proc.returncode == 2 and message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_a_restore_flag_it_cannot_honour_is_refused(home):
    proc = home.run("restore-backup", "db", "--from", "latest", "--jobs", "4", "--yes")
    assert proc.returncode == 2 and home.calls() == []
    assert proc.stderr == ("`restore-backup db --from latest --jobs 4`: the compose provider cannot do --jobs; leave it "
                           "out (it would otherwise be ignored)\n")


def test_a_failing_read_while_planning_is_one_line(home):
    home.write_state({"docker": {"project": "other", "services": {}}})
    (home.root / "runbooks" / "scale.md").write_text(SCALE)
    proc = home.run("plan", "scale", "-p", "replicas=2")
    assert proc.returncode == 2
    assert proc.stderr == ("cannot read the running containers of queue-worker: `docker compose -f compose.yaml -p "
                           "shop ps --format json queue-worker` failed: fake docker: unknown project 'shop'\n")


def test_sh_blocks_run_in_the_project_directory_with_its_compose_settings(home):
    (home.root / "runbooks" / "look.md").write_text(textwrap.dedent("""\
        ## Look
        ```sh
        echo "$COMPOSE_PROJECT_NAME $(basename "$COMPOSE_FILE") $(basename "$PWD")"
        ```
        """))
    proc = home.run("run", "look", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"    | shop compose.yaml {home.root.name}\n" in proc.stdout
