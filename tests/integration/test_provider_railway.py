"""The `railway` provider end to end: `opsconsole` as a real process against a local GraphQL server that
stands in for backboard.railway.com (it checks each operation's query text, variables and auth headers
and answers as Railway does, including `errors`, a 401 and a deployment that ends CRASHED), and a fake
`railway` CLI on PATH (tests/fakes/railway) for `railway run`, which runs the real pg_dump/pg_restore
against the real PostgreSQL with the variables it injects.

Each operation is planned (the exact calls shown), confirmed, executed, verified and journaled.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from opsconsole import secret_values
from opsconsole.journal import open_journal
from tests.servers import free_port

pytestmark = pytest.mark.integration

FAKES = Path(__file__).resolve().parent.parent / "fakes"
TOKEN = "rw-project-token-7f3a9c"
ACCOUNT_TOKEN = "rw-account-token-1b2c3d"

# What each operation must ask, in Railway's public schema: the field and its arguments.
SCHEMA = {
    "OpsconsoleLatestDeployment": "deployments(input: $input, first: 1) { edges { node { id status createdAt } } }",
    "OpsconsoleDeployment": "deployment(id: $id) { id status }",
    "OpsconsoleRedeploy": "deploymentRedeploy(id: $id) { id status }",
    "OpsconsoleServiceInstance": "serviceInstance(serviceId: $serviceId, environmentId: $environmentId) "
                                 "{ id numReplicas }",
    "OpsconsoleScale": "serviceInstanceUpdate(serviceId: $serviceId, environmentId: $environmentId, input: $input)",
    "OpsconsoleVariables": "variables(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId, "
                           "unrendered: true)",
    "OpsconsoleVariableUpsert": "variableUpsert(input: $input)",
}
DEPLOYED = ["INITIALIZING", "BUILDING", "DEPLOYING", "SUCCESS"]


class Railway:
    """Railway's GraphQL API for one project and environment, in memory."""

    def __init__(self) -> None:
        self.token = TOKEN
        self.kind = "project"
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.deployments = {"svc-api": [{"id": "dep-1", "status": "SUCCESS", "createdAt": "2026-11-20T09:00:00Z"}],
                            "svc-worker": [{"id": "dep-w1", "status": "SUCCESS", "createdAt": "2026-11-19T09:00:00Z"}]}
        self.outcome = {"svc-api": DEPLOYED, "svc-worker": DEPLOYED}  # statuses a new deployment goes through
        self.progress: dict[str, list[str]] = {}
        self.replicas = {"svc-api": 1, "svc-worker": 2}
        self.variables: dict[str | None, dict[str, str]] = {None: {"JWT_SECRET": "first-jwt-value"},
                                                            "svc-api": {"PORT": "8080"}}
        self.errors: dict[str, str] = {}  # operation -> error message to answer with
        self.counter = 1
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/graphql/v2"
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def ops(self) -> list[str]:
        return [r["operation"] for r in self.requests]

    def _handler(self):
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def send(self, code: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/test/variables":  # a back door for the tests: someone else edits a variable
                    with api.lock:
                        api.variables[None].update(body)
                    return self.send(200, {})
                if self.path != "/graphql/v2":
                    return self.send(404, {"errors": [{"message": "Not Found"}]})
                if self.headers.get("Content-Type") != "application/json":
                    return self.send(415, {"errors": [{"message": "Unsupported Media Type"}]})
                given = (self.headers.get("Project-Access-Token") if api.kind == "project"
                         else (self.headers.get("Authorization") or "").removeprefix("Bearer "))
                wrong_header = self.headers.get("Authorization" if api.kind == "project" else "Project-Access-Token")
                if given != api.token or wrong_header:
                    return self.send(401, {"errors": [{"message": "Unauthorized"}]})
                with api.lock:
                    code, payload = api.answer(body)
                self.send(code, payload)

        return Handler

    def answer(self, body: dict) -> tuple[int, dict]:
        op, query, variables = body.get("operationName"), body.get("query", ""), body.get("variables") or {}
        self.requests.append({"operation": op, "variables": variables})
        if op not in SCHEMA or SCHEMA[op] not in " ".join(query.split()):
            return 400, {"errors": [{"message": f"Cannot query field in {op}: {query!r}"}]}
        if op in self.errors:
            return 200, {"data": None, "errors": [{"message": self.errors[op], "locations": [{"line": 2, "column": 3}],
                                                   "path": [op], "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}
        if op == "OpsconsoleLatestDeployment":
            wanted = variables["input"]
            assert wanted["projectId"] == "proj-1" and wanted["environmentId"] == "env-1", wanted
            found = self.deployments.get(wanted["serviceId"], [])
            return 200, {"data": {"deployments": {"edges": [{"node": d} for d in found[:1]]}}}
        if op == "OpsconsoleDeployment":
            for service, deployments in self.deployments.items():
                for d in deployments:
                    if d["id"] == variables["id"]:
                        steps = self.progress.get(d["id"])
                        if steps:
                            d["status"] = steps.pop(0)
                        return 200, {"data": {"deployment": {"id": d["id"], "status": d["status"]}}}
            return 200, {"data": None, "errors": [{"message": "Deployment not found"}]}
        if op == "OpsconsoleRedeploy":
            for service, deployments in self.deployments.items():
                if any(d["id"] == variables["id"] for d in deployments):
                    self.counter += 1
                    new = {"id": f"dep-{self.counter}", "status": "INITIALIZING", "createdAt": "2026-11-21T13:00:00Z"}
                    deployments.insert(0, new)
                    self.progress[new["id"]] = list(self.outcome[service])
                    return 200, {"data": {"deploymentRedeploy": {"id": new["id"], "status": new["status"]}}}
            return 200, {"data": None, "errors": [{"message": "Deployment not found"}]}
        if op == "OpsconsoleServiceInstance":
            assert variables["environmentId"] == "env-1"
            return 200, {"data": {"serviceInstance": {"id": "si-" + variables["serviceId"],
                                                      "numReplicas": self.replicas[variables["serviceId"]]}}}
        if op == "OpsconsoleScale":
            assert variables["environmentId"] == "env-1" and set(variables["input"]) == {"numReplicas"}
            self.replicas[variables["serviceId"]] = variables["input"]["numReplicas"]
            return 200, {"data": {"serviceInstanceUpdate": True}}
        if op == "OpsconsoleVariables":
            assert variables["projectId"] == "proj-1" and variables["environmentId"] == "env-1"
            return 200, {"data": {"variables": dict(self.variables.get(variables.get("serviceId"), {}))}}
        if op == "OpsconsoleVariableUpsert":
            given = variables["input"]
            assert given["projectId"] == "proj-1" and given["environmentId"] == "env-1"
            self.variables.setdefault(given.get("serviceId"), {})[given["name"]] = given["value"]
            return 200, {"data": {"variableUpsert": True}}
        raise AssertionError(op)


CONFIG = """\
[opsconsole]
refresh = 0.2

[environments.production]
provider = "railway"
protection = "typed"

[environments.production.provider_options]
project_id = "proj-1"
environment_id = "env-1"
api_url = "{api_url}"
poll_interval = 0.05
deploy_timeout = 20

[environments.production.services.api]
railway_service_id = "svc-api"
migrate = "sh -c 'echo migrating the schema of $RAILWAY_SERVICE_NAME'"

[environments.production.services.worker]
railway_service_id = "svc-worker"

[environments.production.services.db]
railway_service_id = "svc-db"

[environments.production.secrets.JWT_SECRET]
restart = ["api"]
"""


class Home:
    def __init__(self, root: Path, api: Railway) -> None:
        self.root = root
        self.api = api
        self.state = root / "fake-state.json"
        self.log = root / "fake-log.jsonl"
        (root / "opsconsole.toml").write_text(CONFIG.format(api_url=api.url))
        (root / "runbooks").mkdir()
        self.write_state({})

    def write_state(self, db_variables: dict[str, str]) -> None:
        self.state.write_text(json.dumps({"railway": {
            "token": TOKEN, "project": "proj-1", "environment": "env-1",
            "variables": {"shared": {"JWT_SECRET": "first-jwt-value"}, "svc-api": {"RAILWAY_SERVICE_NAME": "api"},
                          "svc-worker": {"RAILWAY_SERVICE_NAME": "worker"}, "svc-db": db_variables}}}))

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("OPSCONSOLE", "RAILWAY"))}
        full.update(PATH=f"{FAKES}{os.pathsep}{os.environ['PATH']}", FAKE_STATE=str(self.state),
                    FAKE_LOG=str(self.log), OPSCONSOLE_JOURNAL=str(self.root / "journal.sqlite3"),
                    XDG_STATE_HOME=str(self.root / "state"), **({"RAILWAY_TOKEN": TOKEN} if env is None else env))
        confirm = ("--confirm-env", "production") if "--yes" in args else ()
        return subprocess.run([sys.executable, "-m", "opsconsole", *args, *confirm], capture_output=True, text=True,
                              env=full, cwd=self.root, stdin=subprocess.DEVNULL, timeout=90)

    def journal_run(self, output: str):
        run_id = re.search(r"^Run (\S+): ", output, re.M).group(1)
        with open_journal(str(self.root / "journal.sqlite3")) as store:
            return store.get(run_id)

    def journal_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.root.glob("journal.sqlite3*"))


@pytest.fixture
def railway():
    api = Railway()
    yield api
    api.close()


@pytest.fixture
def home(tmp_path: Path, railway: Railway, file_keyring) -> Home:
    return Home(tmp_path, railway)


def never_shown(proc: subprocess.CompletedProcess[str], home: Home, *secrets: str) -> None:
    for secret in (TOKEN, ACCOUNT_TOKEN, *secrets):
        assert secret not in proc.stdout + proc.stderr
        assert secret.encode() not in home.journal_bytes()
        assert not any(secret in arg for c in home.calls() for arg in c["argv"])


def test_deploy_redeploys_the_latest_deployment_and_polls_it_to_success(home, railway):
    book = home.root / "runbooks" / "ship.md"
    book.write_text("## Ship\n```ops\ndeploy api\n```\n")
    plan = home.run("plan", "ship")
    assert plan.returncode == 0, plan.stderr
    assert ('    -> deploymentRedeploy(id: "dep-1"): redeploy the latest deployment of api (svc-api), SUCCESS since '
            '2026-11-20T09:00:00Z; then poll deployment(id) every 0.05 s until SUCCESS (FAILED, CRASHED or REMOVED '
            'fail; at most 20 s)\n') in plan.stdout
    assert railway.ops() == ["OpsconsoleLatestDeployment"]  # planning only reads

    proc = home.run("deploy", "api", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("    | api: redeploying dep-1 as deployment dep-2\n    | api: deployment dep-2 INITIALIZING\n"
            "    | api: deployment dep-2 BUILDING\n    | api: deployment dep-2 DEPLOYING\n"
            "    | api: deployment dep-2 SUCCESS\n") in proc.stdout
    assert railway.ops()[1:] == ["OpsconsoleLatestDeployment", "OpsconsoleLatestDeployment", "OpsconsoleRedeploy",
                                 *["OpsconsoleDeployment"] * 4]
    assert railway.requests[3]["variables"] == {"id": "dep-1"}
    assert railway.requests[-1]["variables"] == {"id": "dep-2"}
    run = home.journal_run(proc.stdout)
    step = run.latest_steps()[1]
    assert run.status == "succeeded" and step.recorded == {"deployment": "dep-2"}
    assert step.commands[0].startswith('deploymentRedeploy(id: "dep-1")')
    never_shown(proc, home)


def test_a_deployment_that_crashes_fails_the_step(home, railway):
    railway.outcome["svc-api"] = ["BUILDING", "DEPLOYING", "CRASHED"]
    proc = home.run("deploy", "api", "--yes")
    assert proc.returncode == 1
    assert "    | api: deployment dep-2 CRASHED\n" in proc.stdout
    assert re.search(r'Step 1 failed: deploymentRedeploy\(id: "dep-1"\).*\.\.\.: deployment dep-2 of api ended CRASHED\n',
                     proc.stdout)
    assert home.journal_run(proc.stdout).latest_steps()[1].status == "failed"


def test_a_newer_deployment_since_the_plan_is_not_rolled_back(home, railway):
    original = railway.answer

    def answer(body: dict):  # a teammate deploys between this plan and its change
        if body.get("operationName") == "OpsconsoleLatestDeployment" and railway.ops():
            railway.deployments["svc-api"].insert(0, {"id": "dep-teammate", "status": "SUCCESS", "createdAt": "x"})
            railway.answer = original
        return original(body)

    railway.answer = answer
    proc = home.run("deploy", "api", "--yes")
    assert proc.returncode == 1
    assert "api's latest deployment is now dep-teammate, not dep-1 as planned: nothing was redeployed; plan " \
           "again" in proc.stdout
    assert "OpsconsoleRedeploy" not in railway.ops()


SCALE = """\
---
title: Scale workers
params:
  replicas: {type: int, min: 1, max: 20}
---

## Scale the workers
```ops
scale worker --replicas {{ replicas }}
```
```sh {"role": "verify", "retries": 0}
test "$RAILWAY_SERVICE_NAME" = never-set
```
```ops {"role": "rollback"}
scale worker --replicas {{ previous.replicas }}
```
"""


def test_scale_reads_numreplicas_first_and_the_rollback_restores_it(home, railway):
    (home.root / "runbooks" / "scale.md").write_text(SCALE)
    plan = home.run("plan", "scale", "-p", "replicas=5")
    assert plan.returncode == 0, plan.stderr
    assert ('    -> serviceInstanceUpdate(serviceId: "svc-worker", environmentId: "env-1", input: {numReplicas: 5}): '
            'worker from 2 to 5 replica(s), then read back\n') in plan.stdout
    # What the shell block runs through shows in the plan, as the run shows it: no wrapper appears only at run time.
    assert ('    test "$RAILWAY_SERVICE_NAME" = never-set\n    # through: railway run --project proj-1 --environment '
            'env-1 -- bash -e -c\n') in plan.stdout
    assert railway.ops() == ["OpsconsoleServiceInstance"] and railway.replicas["svc-worker"] == 2

    proc = home.run("run", "scale", "-p", "replicas=5", "--yes", "--on-failure", "rollback")
    assert proc.returncode == 1  # the verify block fails on purpose: the rollback runs
    assert "    | worker: numReplicas 2 -> 5\n" in proc.stdout and "    | worker: numReplicas 5 -> 2\n" in proc.stdout
    assert railway.replicas["svc-worker"] == 2
    scales = [r["variables"] for r in railway.requests if r["operation"] == "OpsconsoleScale"]
    assert scales == [{"serviceId": "svc-worker", "environmentId": "env-1", "input": {"numReplicas": 5}},
                      {"serviceId": "svc-worker", "environmentId": "env-1", "input": {"numReplicas": 2}}]
    assert "worker from 5 to 2 replica(s)" in proc.stdout  # {{ previous.replicas }}: what the scale read first
    assert home.journal_run(proc.stdout).latest_steps()[1].status == "rolled-back"
    # The verify block ran through `railway run -- bash -e -c`, with the token in its environment only.
    assert '    $ test "$RAILWAY_SERVICE_NAME" = never-set\n      # through: railway run --project proj-1 ' \
           '--environment env-1 -- bash -e -c\n' in proc.stdout
    verify = home.calls()[0]
    assert verify["argv"][:7] == ["run", "--project", "proj-1", "--environment", "env-1", "--", "bash"]
    assert verify["token_var"] == "RAILWAY_TOKEN" and verify["token_ok"]
    never_shown(proc, home)


def test_rotate_secret_upserts_keeps_the_old_value_and_redeploys(home, railway):
    proc = home.run("rotate-secret", "JWT_SECRET", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    new = railway.variables[None]["JWT_SECRET"]
    assert re.fullmatch(r"[0-9a-f]{64}", new)
    assert re.search(r'    -> variableUpsert\(input: \{projectId: "proj-1", environmentId: "env-1", name: "JWT_SECRET", '
                     r'value: \*\*\*, skipDeploys: true\}\): new value, 64 hex characters, sha256:[0-9a-f]{8}; the '
                     r'current value \(sha256:[0-9a-f]{8}\) is kept in the OS keyring \(previous/production/JWT_SECRET\) '
                     r'first\n    -> deploymentRedeploy\(id: "dep-1"\)', proc.stdout)
    upsert = next(r["variables"]["input"] for r in railway.requests if r["operation"] == "OpsconsoleVariableUpsert")
    assert upsert == {"projectId": "proj-1", "environmentId": "env-1", "name": "JWT_SECRET", "value": new,
                      "skipDeploys": True}
    # The change came after a fresh read, and the redeploy after the change.
    ops = railway.ops()
    assert ops.index("OpsconsoleVariableUpsert") > max(i for i, o in enumerate(ops) if o == "OpsconsoleVariables")
    assert ops.index("OpsconsoleRedeploy") > ops.index("OpsconsoleVariableUpsert")
    assert railway.deployments["svc-api"][0]["status"] == "SUCCESS"
    assert secret_values.previous("production", "JWT_SECRET") == "first-jwt-value"
    never_shown(proc, home, new, "first-jwt-value")

    back = home.run("rotate-secret", "JWT_SECRET", "--rollback", "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert railway.variables[None]["JWT_SECRET"] == "first-jwt-value"
    assert secret_values.previous("production", "JWT_SECRET") is None  # back in place: its copy is forgotten
    assert railway.deployments["svc-api"][0]["id"] == "dep-3"
    never_shown(back, home, new, "first-jwt-value")


def test_without_a_keyring_nothing_is_rotated(tmp_path, railway, no_keyring):
    home = Home(tmp_path, railway)
    proc = home.run("rotate-secret", "JWT_SECRET", "--yes")
    assert proc.returncode == 1
    assert "cannot keep the previous JWT_SECRET for --rollback, nothing was changed: no usable OS keyring on this machine" \
        in proc.stdout
    assert railway.variables[None]["JWT_SECRET"] == "first-jwt-value"
    assert "OpsconsoleVariableUpsert" not in railway.ops() and "OpsconsoleRedeploy" not in railway.ops()


def test_a_variable_changed_since_the_plan_is_not_overwritten(home, railway):
    backdoor = railway.url.replace("/graphql/v2", "/test/variables")
    (home.root / "runbooks" / "race.md").write_text(
        "## Someone else sets it\n```sh\npython3 -c 'import urllib.request as u; "
        f"u.urlopen(u.Request(\"{backdoor}\", b\"{{\\\"JWT_SECRET\\\": \\\"theirs-value-9\\\"}}\", "
        "{\"Content-Type\": \"application/json\"}))'\n```\n\n## Rotate\n```ops\nrotate-secret JWT_SECRET\n```\n")
    proc = home.run("run", "race", "--yes")
    assert proc.returncode == 1
    assert re.search(r"JWT_SECRET changed since the plan \(was sha256:[0-9a-f]{8}, now sha256:[0-9a-f]{8}\): nothing "
                     r"was changed; plan again", proc.stdout)
    assert railway.variables[None]["JWT_SECRET"] == "theirs-value-9"
    assert "OpsconsoleVariableUpsert" not in railway.ops() and "OpsconsoleRedeploy" not in railway.ops()
    assert secret_values.previous("production", "JWT_SECRET") is None


def test_migrate_runs_through_railway_run_with_the_token_in_its_environment(home):
    proc = home.run("migrate", "api", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("    -> railway run --project proj-1 --environment env-1 --service svc-api -- sh -c 'echo migrating the "
            "schema of $RAILWAY_SERVICE_NAME'\n") in proc.stdout
    assert "    | migrating the schema of api\n" in proc.stdout
    (call,) = home.calls()
    assert call["token_var"] == "RAILWAY_TOKEN" and call["token_ok"]
    never_shown(proc, home)
    assert home.journal_run(proc.stdout).latest_steps()[1].status == "succeeded"


def test_an_account_token_goes_as_a_bearer_token_and_to_railway_run_as_railway_api_token(home, railway):
    railway.token, railway.kind = ACCOUNT_TOKEN, "account"
    state = json.loads(home.state.read_text())
    state["railway"]["token"] = ACCOUNT_TOKEN
    home.state.write_text(json.dumps(state))
    proc = home.run("scale", "worker", "--replicas", "3", "--yes", env={"RAILWAY_API_TOKEN": ACCOUNT_TOKEN})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert railway.replicas["svc-worker"] == 3
    migrate = home.run("migrate", "api", "--yes", env={"RAILWAY_API_TOKEN": ACCOUNT_TOKEN})
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert home.calls()[0]["token_var"] == "RAILWAY_API_TOKEN" and home.calls()[0]["token_ok"]
    never_shown(proc, home)


def create_database(pg, name: str) -> None:
    pg.psql(f"DROP DATABASE IF EXISTS {name}")
    pg.psql(f"CREATE DATABASE {name}")


def sql(url: str, statement: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def test_backup_and_restore_run_pg_tools_through_railway_run(home, pg_running):
    create_database(pg_running, "railway_app")
    url = pg_running.url(database="railway_app")
    home.write_state({"DATABASE_PUBLIC_URL": url})  # what Railway's Postgres service offers from outside
    sql(url, "CREATE TABLE orders (id int PRIMARY KEY, item text)")
    sql(url, "INSERT INTO orders VALUES (1, 'apple'), (2, 'pear')")

    backup = home.run("backup", "db", "--yes")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    path = Path(re.search(r"previous\.backup=(\S+\.dump)\)", backup.stdout).group(1))
    assert path.parent == home.root / "state" / "opsconsole" / "backups" / "production" and path.stat().st_size > 0

    sql(url, "DELETE FROM orders WHERE id = 1")
    restore = home.run("restore-backup", "db", "--from", "latest", "--yes")
    assert restore.returncode == 0, restore.stdout + restore.stderr
    assert sql(url, "SELECT id, item FROM orders ORDER BY id") == [(1, "apple"), (2, "pear")]
    shown = ("railway run --project proj-1 --environment env-1 --service svc-db -- sh -c 'exec \"$1\" --clean "
             f"--if-exists --single-transaction --dbname \"$DATABASE_PUBLIC_URL\" \"$0\"' {path} pg_restore")
    assert f"    -> {shown}\n" in restore.stdout
    commands = home.journal_run(restore.stdout).latest_steps()[1].commands
    assert commands[0].startswith(f"verify {path} before anything is dropped: ") and commands[-1] == shown
    assert json.loads(path.with_suffix(".json").read_text())["tables"] == 1  # the manifest, as local writes it
    # Before the restore, a safety copy of the database as it was, through railway run like any backup.
    safety = Path(re.search(r"\| safety copy of production/db before the restore: (\S+\.dump);",
                            restore.stdout).group(1))
    assert safety.parent == path.parent / "before-restore" and not safety.with_name(safety.name + ".partial").exists()
    assert commands[1] == f"mkdir -p -m 700 {safety.parent}"
    assert commands[2].startswith("safety copy of production/db, before anything is dropped: railway run ")
    assert commands[3].startswith(f"write {safety.with_suffix('.json')}: ") and len(commands) == 5
    kept = subprocess.run(["pg_restore", "--data-only", "--file", "-", str(safety)], capture_output=True, text=True,
                          check=True).stdout
    assert "2\tpear\n" in kept and "1\tapple" not in kept  # the rows as they were before the restore
    for proc in (backup, restore):
        never_shown(proc, home, pg_running.password)

    # A damaged dump is refused before anything is dropped: railway run is not even started.
    sql(url, "DELETE FROM orders WHERE id = 2")
    with path.open("r+b") as f:
        f.seek(200)
        f.write(b"\0" * 16)
    runs = len(home.calls())
    refused = home.run("restore-backup", "db", "--from", "latest", "--yes")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert f"refusing {path}: checksum mismatch" in refused.stderr
    assert len(home.calls()) == runs and sql(url, "SELECT id FROM orders ORDER BY id") == [(1,)]


@pytest.mark.parametrize("setup,env,message", [
    (lambda api: None, {"RAILWAY_TOKEN": "not-the-token-123"},
     "the Railway API refused the token from environment ($RAILWAY_TOKEN) (HTTP 401; sent as a project token, "
     "Project-Access-Token): check it, or set token_kind = \"account\" in provider_options if it is an account token"),
    (lambda api: api.errors.update(OpsconsoleLatestDeployment="Service not found"), None,
     "the Railway API refused OpsconsoleLatestDeployment: Service not found"),
    (lambda api: api.errors.update(OpsconsoleLatestDeployment="Not Authorized"), None,
     "the Railway API refused the token from environment ($RAILWAY_TOKEN) (OpsconsoleLatestDeployment: Not "
     "Authorized; sent as a project token"),
    (lambda api: None, {}, "no Railway token: set RAILWAY_TOKEN (a project token) or RAILWAY_API_TOKEN"),
])
def test_api_errors_are_one_line(home, railway, setup, env, message):
    setup(railway)
    proc = home.run("deploy", "api", "--yes", env=env)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "not-the-token-123" not in proc.stderr and "OpsconsoleRedeploy" not in railway.ops()


def test_an_unreachable_api_is_one_line(home):
    port = free_port()
    (home.root / "opsconsole.toml").write_text(CONFIG.format(api_url=f"http://127.0.0.1:{port}/graphql/v2"))
    proc = home.run("scale", "worker", "--replicas", "3", "--yes")
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"cannot reach the Railway API at http://127.0.0.1:{port}/graphql/v2 "
                                  f"(OpsconsoleServiceInstance): ")
    assert proc.stderr.count("\n") == 1


def test_an_api_error_while_deploying_fails_the_step_in_one_line(home, railway):
    railway.errors["OpsconsoleRedeploy"] = "Deployment cannot be redeployed"
    proc = home.run("deploy", "api", "--yes")
    assert proc.returncode == 1
    assert re.search(r'Step 1 failed: deploymentRedeploy\(id: "dep-1"\).*\.\.\.: the Railway API refused OpsconsoleRedeploy: '
                     r'Deployment cannot be redeployed\n', proc.stdout)


PLAIN = Path(__file__).resolve().parent.parent / "fixtures" / "plain" / "common-operations.md"


def test_a_plain_operations_doc_runs_on_railway_pinned_and_without_leaking_the_secret(home, railway):
    """The four-section doc of a real project: four steps with their headings; every `railway` call inside the
    scripts pinned to the environment; the nested `railway run npx …` unwrapped; `variables set JWT_SECRET=…`
    passing the value on stdin, never in an argv; the generated secret and the given one in no output, journal or
    argv; `railway logs -f` ending (headless: at its timeout) as a success."""
    doc = PLAIN.read_text().replace("```bash\n# Deploy the latest build", '```bash {"timeout": "2s"}\n# Deploy the latest build', 1)
    (home.root / "runbooks" / "ops.md").write_text(doc)
    secret = "jwt-new-value-5d1e9a2b7c"
    plan = home.run("plan", "ops", "-p", f"new_secret={secret}")
    assert plan.returncode == 0, plan.stderr
    assert [line for line in plan.stdout.splitlines() if line.startswith("Step ")] == [
        "Step 1. Deploy New Version  (in Common operations)", "Step 2. Database Migration  (in Common operations)",
        "Step 3. Scale Workers  (in Common operations)", "Step 4. Rotate Secrets  (in Common operations)"]
    assert "    # through: railway run --project proj-1 --environment env-1 -- bash -e -c\n" in plan.stdout
    assert "prints a new secret: its output is hidden" in plan.stdout and secret not in plan.stdout

    proc = home.run("run", "ops", "-p", f"new_secret={secret}", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("succeeded")
    assert "stopped following (followed for 2 s" in proc.stdout and "log line 1" in proc.stdout
    calls = home.calls()
    inner = [c for c in calls if c.get("tool", "railway") == "railway" and c["argv"][:1] != ["run"]]
    assert [c["argv"][0] for c in inner] == ["redeploy", "logs", "service", "variables", "redeploy"]
    logs = next(c for c in inner if c["argv"][0] == "logs")
    assert logs["argv"][-2:] == ["--environment", "env-1"]  # pinned
    setting = next(c for c in inner if c["argv"][0] == "variables")
    assert setting["argv"] == ["variables", "set", "JWT_SECRET", "--stdin", "--environment", "env-1"]
    assert setting["stdin_bytes"] == len(secret)  # the value went on stdin
    state = json.loads(home.state.read_text())["railway"]
    assert state["variables"]["shared"]["JWT_SECRET"] == secret
    # The nested `railway run npx prisma migrate deploy` ran npx itself, inside the one `railway run`.
    npx = [c for c in calls if c.get("tool") == "npx"]
    assert [c["argv"] for c in npx] == [["prisma", "migrate", "deploy"]]
    assert sum(1 for c in calls if c["argv"][:1] == ["run"]) == 4  # one railway run per step, none nested
    never_shown(proc, home, secret)
    generated = [line for line in proc.stdout.splitlines() if re.fullmatch(r"\s*\|\s*[0-9a-f]{64}", line)]
    assert generated == []  # `openssl rand -hex 32` printed nothing that reached the screen
