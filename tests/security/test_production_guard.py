"""A `typed` environment is changed only with its name typed: for every provider and every verb that changes it.

Each provider runs against what stands in for it elsewhere in the suite: Railway's GraphQL API served locally (it
records every operation) with the fake `railway` CLI, AWS in a moto server, the fake `kubectl` and `docker`
(they record every argv), and `local` on this machine; restores go to the real PostgreSQL. For each verb in a
`protection = "typed"` environment named production, headless: no `--yes`, `--yes` without `--confirm-env`, and
`--confirm-env` with the wrong name are each refused in one line with a non-zero exit, before any change (the
provider's change log is as it was, the journal holds no new run); with `--confirm-env production` the same
command makes its change exactly once. A `confirm` environment refuses a headless change without `--yes`.
Planning may read before anything is confirmed (`kubectl get`, `docker compose ps`, GraphQL queries, `describe_*`):
that is how a plan shows exactly what will happen; no mutation, no changing command, no file write may happen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from opsconsole.journal import open_journal
from tests.security.conftest import assert_user_error

pytestmark = pytest.mark.integration

FAKES = Path(__file__).resolve().parent.parent / "fakes"
TOKEN = "rw-guard-token-5e1f0a"
MUTATIONS = ("OpsconsoleRedeploy", "OpsconsoleScale", "OpsconsoleVariableUpsert")
TOUCH = "## Touch\n```sh\necho touched >> touched.txt\n```\n"
# Shell blocks whose role says "check" or "verify" can change as much as a run: guarded the same way.
CHECK = "## Check\n```sh {\"role\": \"check\"}\necho checked >> touched.txt\n```\n"
VERIFY = "## Verify\n```sh {\"role\": \"verify\"}\necho verified >> touched.txt\n```\n"
REFUSALS = (  # extra flags -> what the one line must say
    ((), "pass --yes"),
    (("--yes",), "pass --confirm-env production"),
    (("--yes", "--confirm-env", "staging"), "--confirm-env 'staging' does not match the environment 'production'"),
)


@dataclass
class Home:
    """A config directory for one provider, and how to see every change made to its environment so far."""

    root: Path
    env: dict[str, str]
    observers: list[Callable[[], list[str]]] = field(default_factory=list)
    db_url: str = ""  # the database behind the `db` service, for backups and restores

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True,
                              env=self.env, cwd=self.root, stdin=subprocess.DEVNULL, timeout=120)

    def changes(self) -> Counter[str]:
        return Counter(change for observe in self.observers for change in observe())

    def runs(self) -> int:
        path = self.root / "journal.sqlite3"
        if not path.exists():
            return 0
        with open_journal(str(path)) as store:
            return len(store.runs(limit=1000))

    def touched(self) -> list[str]:
        path = self.root / "touched.txt"
        return [f"sh:{line}" for line in path.read_text().splitlines()] if path.exists() else []

    def logged(self, tool: str) -> list[dict]:
        path = self.root / "fake-log.jsonl"
        if not path.exists():
            return []
        return [c for c in map(json.loads, path.read_text().splitlines()) if c["tool"] == tool]

    def file_changed(self, name: str) -> Callable[[], list[str]]:
        path = self.root / name
        before = path.read_bytes()
        return lambda: [f"env-file:{name}"] if path.read_bytes() != before else []


def base_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPSCONSOLE", "RAILWAY")) and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(PATH=f"{FAKES}{os.pathsep}{os.environ['PATH']}", FAKE_STATE=str(root / "fake-state.json"),
               FAKE_LOG=str(root / "fake-log.jsonl"), OPSCONSOLE_JOURNAL=str(root / "journal.sqlite3"))
    return env


def database(pg, name: str) -> str:
    """A fresh database with a table of two rows; returns its URL."""
    import psycopg

    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    url = pg.url(database=name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text)")
        conn.execute("INSERT INTO orders VALUES (1, 'apple'), (2, 'pear')")
    return url


def rows(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM orders ORDER BY id").fetchall()]


def backed_up(home: Home) -> None:
    """Take a backup (confirmed), then lose a row: a restore would bring it back."""
    proc = home.run("backup", "db", "--yes", "--confirm-env", "production")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import psycopg

    with psycopg.connect(home.db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id = 2")
    home.observers.append(lambda: ["db:restored"] if rows(home.db_url) == [1, 2] else [])


def backup_files(home: Home) -> list[str]:
    directory = home.root / "state" / "opsconsole" / "backups" / "production"
    return [f"backup:{p.name}" for p in directory.glob("*.dump")] if directory.is_dir() else []


# --- the providers ---------------------------------------------------------------------------------------------------

def railway_home(root: Path, request, protection: str, db: bool) -> Home:
    from tests.integration.test_provider_railway import Railway

    api = Railway()
    api.token = TOKEN
    request.addfinalizer(api.close)
    request.getfixturevalue("file_keyring")  # rotate-secret keeps the previous value there
    (root / "opsconsole.toml").write_text(f"""\
[opsconsole]
refresh = 0.2
[environments.production]
provider = "railway"
protection = "{protection}"
[environments.production.provider_options]
project_id = "proj-1"
environment_id = "env-1"
api_url = "{api.url}"
poll_interval = 0.05
deploy_timeout = 20
[environments.production.services.api]
railway_service_id = "svc-api"
migrate = "echo migrating-now"
[environments.production.services.worker]
railway_service_id = "svc-worker"
[environments.production.services.db]
railway_service_id = "svc-db"
[environments.production.secrets.JWT_SECRET]
restart = ["api"]
""")
    url = database(request.getfixturevalue("pg_running"), "guard_railway") if db else ""
    (root / "fake-state.json").write_text(json.dumps({"railway": {
        "token": TOKEN, "project": "proj-1", "environment": "env-1",
        "variables": {"shared": {}, "svc-api": {}, "svc-worker": {}, "svc-db": {"DATABASE_PUBLIC_URL": url}}}}))
    home = Home(root, {**base_env(root), "RAILWAY_TOKEN": TOKEN, "XDG_STATE_HOME": str(root / "state")}, db_url=url)

    def railway() -> list[str]:
        graphql = [f"graphql:{op}" for op in api.ops() if op in MUTATIONS]
        cli = [f"railway-cli:{' '.join(c['argv'][c['argv'].index('--') + 1:])}" for c in home.logged("railway")]
        return graphql + cli

    home.observers += [railway, home.touched]
    return home


def aws_home(root: Path, request, protection: str, db: bool) -> Home:
    from tests.integration.test_provider_aws import REGION, Stack, make_service

    endpoint = request.getfixturevalue("aws")
    request.getfixturevalue("file_keyring")
    monkeypatch = request.getfixturevalue("monkeypatch")
    tag = uuid.uuid4().hex[:8]
    stack = Stack(url=endpoint, cluster=f"guard-{tag}", service="api", db=f"guarddb-{tag}",
                  secret_id=f"guard/jwt-{tag}")
    stack.client("ecs").create_cluster(clusterName=stack.cluster)
    make_service(stack, "api", desired=2, running=2, monkeypatch=monkeypatch)
    stack.client("rds").create_db_instance(DBInstanceIdentifier=stack.db, Engine="postgres",
                                           DBInstanceClass="db.t3.micro", AllocatedStorage=20, MasterUsername="app",
                                           MasterUserPassword="pw-" + tag)
    sm = stack.client("secretsmanager")
    sm.create_secret(Name=stack.secret_id, SecretString="first-" + tag)
    (root / "opsconsole.toml").write_text(f"""\
[opsconsole]
refresh = 0.2
timeout = 2
[environments.production]
provider = "aws"
protection = "{protection}"
[environments.production.provider_options]
region = "{REGION}"
endpoint_url = "{endpoint}"
cluster = "{stack.cluster}"
poll = 0.2
wait_timeout = 20
[environments.production.services.api]
migrate = "npm run migrate"
[environments.production.services.db]
db_instance = "{stack.db}"
[environments.production.secrets.JWT_SECRET]
secret_id = "{stack.secret_id}"
restart = ["api"]
""")
    home = Home(root, base_env(root))
    first = stack.describe()["deployments"][0]["id"]
    desired = stack.describe()["desiredCount"]

    def aws() -> list[str]:
        ecs, rds = stack.client("ecs"), stack.client("rds")
        service = stack.describe()
        out = ["ecs:new-deployment api"] if service["deployments"][0]["id"] != first else []
        if service["desiredCount"] != desired:
            out.append(f"ecs:desiredCount api {service['desiredCount']}")
        tasks = {arn for status in ("RUNNING", "STOPPED")
                 for arn in ecs.list_tasks(cluster=stack.cluster, desiredStatus=status)["taskArns"]}
        out += ["ecs:task"] * len(tasks)
        out += ["secretsmanager:version"] * len(sm.list_secret_version_ids(SecretId=stack.secret_id)["Versions"])
        out += [f"rds:instance {i['DBInstanceIdentifier']}" for i in rds.describe_db_instances()["DBInstances"]
                if i["DBInstanceIdentifier"].startswith(stack.db)]
        out += [f"rds:snapshot {s['DBSnapshotIdentifier']}"
                for s in rds.describe_db_snapshots(DBInstanceIdentifier=stack.db)["DBSnapshots"]]
        return out

    home.observers += [aws, home.touched]
    return home


def kubernetes_home(root: Path, request, protection: str, db: bool) -> Home:
    import base64

    request.getfixturevalue("file_keyring")
    (root / "opsconsole.toml").write_text(f"""\
[opsconsole]
refresh = 0.2
[environments.production]
provider = "kubernetes"
protection = "{protection}"
[environments.production.provider_options]
context = "prod-eu"
namespace = "shop"
rollout_timeout = "30s"
[environments.production.services.api]
deployment = "shop-api"
migrate = "bin/rails db:migrate"
[environments.production.services.worker]
deployment = "shop-worker"
[environments.production.secrets.JWT_SECRET]
secret = "shop-secrets"
restart = ["api"]
""")
    (root / "fake-state.json").write_text(json.dumps({"kubectl": {
        "context": "prod-eu", "namespace": "shop",
        "deployments": {"shop-api": {"replicas": 3}, "shop-worker": {"replicas": 2}},
        "secrets": {"shop-secrets": {"type": "Opaque", "resourceVersion": "41",
                                     "data": {"JWT_SECRET": base64.b64encode(b"first-jwt-value").decode()}}},
        "exec": {}}}))
    home = Home(root, base_env(root))

    def kubectl() -> list[str]:
        out = []
        for call in home.logged("kubectl"):
            argv, words, i = call["argv"], [], 0
            while i < len(argv):
                if argv[i] in ("--context", "-n", "--namespace"):
                    i += 2
                    continue
                words.append(argv[i])
                i += 1
            if words[0] != "get":  # planning reads; everything else changes the cluster
                out.append("kubectl:" + " ".join(words))
        return out

    home.observers += [kubectl, home.touched]
    return home


def compose_home(root: Path, request, protection: str, db: bool) -> Home:
    pg = request.getfixturevalue("pg_running") if db else None
    url = database(pg, "guard_compose") if pg else "postgresql://postgres@127.0.0.1:5/app"
    (root / "opsconsole.toml").write_text(f"""\
[opsconsole]
refresh = 0.2
[environments.production]
provider = "compose"
protection = "{protection}"
[environments.production.provider_options]
compose_file = "compose.yaml"
project_name = "shop"
[environments.production.services.api]
migrate = "python manage.py migrate --noinput"
[environments.production.services.worker]
compose_service = "queue-worker"
[environments.production.services.db]
url = "{url}"
[environments.production.secrets.JWT_SECRET]
restart = ["api"]
""")
    (root / "compose.yaml").write_text("services:\n  api: {build: .}\n  queue-worker: {build: .}\n"
                                       "  db: {image: postgres:16}\n")
    (root / ".env").write_text('JWT_SECRET="first-jwt-value"\n')
    exec_env = {"db": {"PGHOST": "127.0.0.1", "PGPORT": str(pg.port), "PGPASSWORD": pg.password}} if pg else {}
    (root / "fake-state.json").write_text(json.dumps({"docker": {"project": "shop", "services": {
        "api": {"containers": 1}, "queue-worker": {"containers": 2}, "db": {"containers": 1}},
        "exec_env": exec_env, "run": {}}}))
    home = Home(root, {**base_env(root), "XDG_STATE_HOME": str(root / "state")}, db_url=url)

    def docker() -> list[str]:
        calls = [c["argv"][5:] for c in home.logged("docker")]  # after `compose -f compose.yaml -p shop`
        return ["docker:" + " ".join(words) for words in calls if words[:1] != ["ps"]]

    home.observers += [docker, home.file_changed(".env"), home.touched]
    return home


def local_home(root: Path, request, protection: str, db: bool) -> Home:
    url = database(request.getfixturevalue("pg_running"), "guard_local") if db else ""
    service = f'[environments.production.services.db]\nkind = "postgres"\nurl = "{url}"\n' if db else ""
    (root / "opsconsole.toml").write_text(f"""\
[opsconsole]
refresh = 0.2
[environments.production]
provider = "local"
protection = "{protection}"
[environments.production.services.api]
deploy = "echo deploy >> touched.txt"
migrate = "echo migrate >> touched.txt"
{service}[environments.production.secrets.JWT_SECRET]
""")
    (root / ".env.production").write_text("JWT_SECRET=first-jwt-value\n")
    home = Home(root, {**base_env(root), "XDG_STATE_HOME": str(root / "state")}, db_url=url)
    home.observers += [home.file_changed(".env.production"), home.touched, lambda: backup_files(home)]
    return home


PROVIDERS = {"railway": railway_home, "aws": aws_home, "kubernetes": kubernetes_home, "compose": compose_home,
             "local": local_home}

# (provider, what, argv, the change it makes): backup and restore-backup where the provider has them (kubernetes
# refuses both: its databases are backed up with their own tooling; local cannot scale a process).
CASES = [
    ("railway", "deploy", ("deploy", "api"), "graphql:OpsconsoleRedeploy"),
    ("railway", "migrate", ("migrate", "api"), "railway-cli:echo migrating-now"),
    ("railway", "scale", ("scale", "worker", "--replicas", "3"), "graphql:OpsconsoleScale"),
    ("railway", "rotate-secret", ("rotate-secret", "JWT_SECRET"), "graphql:OpsconsoleVariableUpsert"),
    ("railway", "restore-backup", ("restore-backup", "db", "--from", "latest"), "pg_restore"),
    ("railway", "run-sh", ("run", "touch"), "railway-cli:bash -e -c"),
    ("aws", "deploy", ("deploy", "api"), "ecs:new-deployment api"),
    ("aws", "migrate", ("migrate", "api"), "ecs:task"),
    ("aws", "scale", ("scale", "api", "--replicas", "3"), "ecs:desiredCount api 3"),
    ("aws", "rotate-secret", ("rotate-secret", "JWT_SECRET"), "secretsmanager:version"),
    ("aws", "backup", ("backup", "db"), "rds:snapshot"),
    ("aws", "restore-backup", ("restore-backup", "db", "--from", "latest-restorable"), "-restored-"),
    ("aws", "run-sh", ("run", "touch"), "sh:touched"),
    ("kubernetes", "deploy", ("deploy", "api"), "kubectl:rollout restart deployment/shop-api"),
    ("kubernetes", "migrate", ("migrate", "api"), "kubectl:exec"),
    ("kubernetes", "scale", ("scale", "worker", "--replicas", "3"), "kubectl:scale"),
    ("kubernetes", "rotate-secret", ("rotate-secret", "JWT_SECRET"), "kubectl:apply -f -"),
    ("kubernetes", "run-sh", ("run", "touch"), "sh:touched"),
    ("compose", "deploy", ("deploy", "api"), "docker:up -d --build api"),
    ("compose", "migrate", ("migrate", "api"), "docker:run --rm -T api"),
    ("compose", "scale", ("scale", "worker", "--replicas", "3"), "docker:up -d --no-recreate --scale"),
    ("compose", "rotate-secret", ("rotate-secret", "JWT_SECRET"), "env-file:.env"),
    ("compose", "restore-backup", ("restore-backup", "db", "--from", "latest"), "docker:exec -T db pg_restore"),
    ("compose", "run-sh", ("run", "touch"), "sh:touched"),
    ("local", "deploy", ("deploy", "api"), "sh:deploy"),
    ("local", "migrate", ("migrate", "api"), "sh:migrate"),
    ("local", "rotate-secret", ("rotate-secret", "JWT_SECRET"), "env-file:.env.production"),
    ("local", "backup", ("backup", "db"), "backup:db-"),
    ("local", "restore-backup", ("restore-backup", "db", "--from", "latest"), "db:restored"),
    ("local", "run-sh", ("run", "touch"), "sh:touched"),
    ("local", "check-sh", ("run", "check"), "sh:checked"),
    ("local", "verify-sh", ("run", "verify"), "sh:verified"),
    ("aws", "check-sh", ("run", "check"), "sh:checked"),
]


def make_home(provider: str, tmp_path: Path, request, protection: str = "typed", what: str = "") -> Home:
    home = PROVIDERS[provider](tmp_path, request, protection, what in ("backup", "restore-backup"))
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "touch.md").write_text(TOUCH)
    (tmp_path / "runbooks" / "check.md").write_text(CHECK)
    (tmp_path / "runbooks" / "verify.md").write_text(VERIFY)
    if what == "restore-backup" and provider != "aws":  # aws restores to a point in time: no backup needed
        backed_up(home)
    return home


def made(home: Home, before: Counter[str], kind: str = "") -> list[str]:
    """The changes since `before` (those naming `kind`, if given)."""
    return [c for c in (home.changes() - before).elements() if kind in c]


@pytest.mark.parametrize("provider,what,args,change", CASES, ids=[f"{p}-{w}" for p, w, _, _ in CASES])
def test_typed_production_changes_only_with_its_name_typed(provider, what, args, change, tmp_path, request):
    home = make_home(provider, tmp_path, request, what=what)
    before, runs = home.changes(), home.runs()
    for extra, message in REFUSALS:
        proc = home.run(*args, *extra)
        assert_user_error(proc, contains=message)
        assert "nothing was run" in proc.stderr
        assert home.changes() == before, f"{' '.join(args + extra)} changed {made(home, before)}"
        assert home.runs() == runs  # refused before the run started: the journal has nothing to say
    proc = home.run(*args, "--yes", "--confirm-env", "production")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(made(home, before, change)) == 1, (change, made(home, before))
    assert home.runs() == runs + 1


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_confirm_environment_refuses_a_headless_change_without_yes(provider, tmp_path, request):
    home = make_home(provider, tmp_path, request, protection="confirm")
    change = dict(((p, w), c) for p, w, _, c in CASES)[(provider, "deploy")]
    before = home.changes()
    proc = home.run("deploy", "api")
    assert_user_error(proc, contains="pass --yes to run it headless")
    assert home.changes() == before and home.runs() == 0
    proc = home.run("deploy", "api", "--yes")  # confirm asks y/N; --yes is the answer, no name needed
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(made(home, before, change)) == 1, made(home, before)


def test_every_action_verb_is_guarded_somewhere():
    """An action verb added to opsconsole/actions.py without a case here fails: add one."""
    from opsconsole import actions

    covered = {what for _, what, _, _ in CASES}
    assert set(actions.VERBS) | {"run-sh", "check-sh", "verify-sh"} == covered
