"""The `kubernetes` provider end to end: `opsconsole` as a real process and a fake `kubectl` on PATH
(tests/fakes/kubectl) that keeps one cluster's state, answers like the real tool and records every call
with its stdin. The previous secret value goes to a real (file) keyring.

Each operation is planned (the exact commands shown), confirmed, executed, verified and journaled; every
call names its --context and -n; no secret value is ever in an argv.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opsconsole import secret_values
from opsconsole.journal import open_journal

pytestmark = pytest.mark.integration

FAKES = Path(__file__).resolve().parent.parent / "fakes"
K = "kubectl --context prod-eu -n shop"

CONFIG = """\
[opsconsole]
refresh = 0.2

[environments.prod]
provider = "kubernetes"
protection = "confirm"

[environments.prod.provider_options]
context = "prod-eu"
namespace = "shop"
rollout_timeout = "90s"
kubeconfig = "kube/config"

[environments.prod.services.api]
deployment = "shop-api"
migrate = "bin/rails db:migrate"

[environments.prod.services.worker]
deployment = "shop-worker"

[environments.prod.services.schema]
deployment = "shop-api"
migrate_job = "migrate-job.yaml"

[environments.prod.secrets.JWT_SECRET]
secret = "shop-secrets"
restart = ["api"]
"""

JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  name: shop-migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: shop/api:2.3
          command: ["bin/rails", "db:migrate"]
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "fake-state.json"
        self.log = root / "fake-log.jsonl"
        (root / "opsconsole.toml").write_text(CONFIG)
        (root / "migrate-job.yaml").write_text(JOB)
        (root / "runbooks").mkdir()
        self.state.write_text(json.dumps({"kubectl": {
            "context": "prod-eu", "namespace": "shop",
            "deployments": {"shop-api": {"replicas": 3}, "shop-worker": {"replicas": 2}},
            "secrets": {"shop-secrets": {"type": "Opaque", "resourceVersion": "41", "data": {
                "JWT_SECRET": b64("first-jwt-value"), "DB_PASSWORD": b64("db-pass-5678")}}},
            "exec": {}}}))

    def cluster(self) -> dict:
        return json.loads(self.state.read_text())["kubectl"]

    def edit(self, change) -> None:
        state = json.loads(self.state.read_text())
        change(state["kubectl"])
        self.state.write_text(json.dumps(state))

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def argvs(self) -> list[str]:
        return [" ".join(["kubectl", *c["argv"]]) for c in self.calls()]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
        full.update(PATH=f"{FAKES}{os.pathsep}{os.environ['PATH']}", FAKE_STATE=str(self.state),
                    FAKE_LOG=str(self.log), OPSCONSOLE_JOURNAL=str(self.root / "journal.sqlite3"),
                    XDG_STATE_HOME=str(self.root / "state"))
        return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True, env=full,
                              cwd=self.root, stdin=subprocess.DEVNULL, timeout=90)

    def journal_run(self, output: str):
        run_id = re.search(r"^Run (\S+): ", output, re.M).group(1)
        with open_journal(str(self.root / "journal.sqlite3")) as store:
            return store.get(run_id)

    def journal_bytes(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.root.glob("journal.sqlite3*"))


@pytest.fixture
def home(tmp_path: Path, file_keyring) -> Home:
    return Home(tmp_path)


def test_deploy_restarts_the_rollout_and_waits_for_it(home):
    proc = home.run("deploy", "api", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = [f"{K} rollout restart deployment/shop-api", f"{K} rollout status deployment/shop-api --timeout=90s"]
    assert "".join(f"    -> {c}\n" for c in calls) in proc.stdout
    assert home.argvs() == calls
    assert '    | deployment "shop-api" successfully rolled out\n' in proc.stdout
    assert home.cluster()["deployments"]["shop-api"]["restarts"] == 1
    # KUBECONFIG from provider_options, relative to the config file.
    assert {c["kubeconfig"] for c in home.calls()} == {str(home.root / "kube" / "config")}
    run = home.journal_run(proc.stdout)
    assert run.status == "succeeded" and run.latest_steps()[1].commands == tuple(calls)


ROLLOUT = """\
# Ship the API

## Restart onto the new image
```ops
deploy api
```
```sh {"role": "rollback"}
kubectl rollout undo deployment/shop-api
kubectl rollout status deployment/shop-api --timeout=60s
```
"""


def test_a_failed_rollout_is_undone_by_the_runbooks_rollback_block(home):
    (home.root / "runbooks" / "ship.md").write_text(ROLLOUT)
    home.edit(lambda c: c["deployments"]["shop-api"].update(fail_rollout=True))
    proc = home.run("run", "ship", "--yes", "--on-failure", "rollback")
    assert proc.returncode == 1
    assert "    | error: deployment \"shop-api\" exceeded its progress deadline\n" in proc.stdout
    assert home.cluster()["deployments"]["shop-api"]["history"] == ["restart -> revision 2", "undo -> revision 3"]
    # The block's own `kubectl` got the environment's context and namespace.
    assert home.argvs()[2:] == [f"{K} rollout undo deployment/shop-api",
                                f"{K} rollout status deployment/shop-api --timeout=60s"]
    assert home.journal_run(proc.stdout).latest_steps()[1].status == "rolled-back"


SCALE = """\
---
title: Scale workers
params:
  replicas: {type: int, min: 1, max: 20}
---

## Someone else scales first
```sh
kubectl scale deployment/shop-worker --replicas=4
```

## Scale the workers
```ops
scale worker --replicas {{ replicas }}
```
```ops {"role": "rollback"}
scale worker --replicas {{ previous.replicas }}
```
"""


def test_scale_is_conditional_on_the_replicas_read_when_planning(home):
    runbook = home.root / "runbooks" / "scale.md"
    runbook.write_text(SCALE.replace("## Someone else scales first\n```sh\nkubectl scale deployment/shop-worker "
                                      "--replicas=4\n```\n\n", ""))
    plan = home.run("plan", "scale", "-p", "replicas=5")
    assert plan.returncode == 0, plan.stderr
    calls = [f"{K} scale deployment/shop-worker --current-replicas=2 --replicas=5",
             f"{K} rollout status deployment/shop-worker --timeout=90s"]
    assert "".join(f"    -> {c}\n" for c in calls) in plan.stdout
    assert home.argvs() == [f"{K} get deployment shop-worker -o jsonpath={{.spec.replicas}}"]

    proc = home.run("run", "scale", "-p", "replicas=5", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert home.cluster()["deployments"]["shop-worker"]["replicas"] == 5
    step = home.journal_run(proc.stdout).latest_steps()[1]
    assert step.recorded == {"replicas": 2} and step.commands == tuple(calls)

    # Between the plan (replicas 5) and the change, someone scales to 4: the change is refused, not applied
    # over theirs.
    runbook.write_text(SCALE)
    proc = home.run("run", "scale", "-p", "replicas=8", "--yes")
    assert proc.returncode == 1
    assert "    | error: Expected replicas to be 5, was 4\n" in proc.stdout
    assert home.cluster()["deployments"]["shop-worker"]["replicas"] == 4
    run = home.journal_run(proc.stdout)
    assert run.latest_steps()[2].status == "failed" and run.latest_steps()[2].exit_status == 1


def test_migrate_execs_in_the_deployment_or_runs_the_configured_job(home):
    proc = home.run("migrate", "api", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert home.argvs() == [f"{K} exec deploy/shop-api -- bin/rails db:migrate"]
    assert "    | ran bin/rails db:migrate in a pod of shop-api\n" in proc.stdout

    job = home.run("migrate", "schema", "--yes")
    assert job.returncode == 0, job.stdout + job.stderr
    assert home.argvs()[1:] == [f"{K} delete job shop-migrate --ignore-not-found",
                                f"{K} create -f {home.root / 'migrate-job.yaml'}",
                                f"{K} wait --for=condition=complete job/shop-migrate --timeout=90s",
                                f"{K} logs job/shop-migrate"]
    assert "    | migrations applied by job shop-migrate\n" in job.stdout
    again = home.run("migrate", "schema", "--yes")  # the finished Job is replaced, not refused
    assert again.returncode == 0 and "    | job.batch \"shop-migrate\" deleted\n" in again.stdout

    home.edit(lambda c: c.update(exec={"shop-api": {"exit": 1, "output": "ActiveRecord::PendingMigrationError"}}))
    failed = home.run("migrate", "api", "--yes")
    assert failed.returncode == 1 and "    | ActiveRecord::PendingMigrationError\n" in failed.stdout
    assert home.journal_run(failed.stdout).latest_steps()[1].exit_status == 1


def secret_data(home: Home) -> dict[str, str]:
    data = home.cluster()["secrets"]["shop-secrets"]["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def test_rotate_secret_pipes_the_manifest_on_stdin_and_restarts_what_uses_it(home):
    plan_book = home.root / "runbooks" / "rotate.md"
    plan_book.write_text("## Rotate\n```ops\nrotate-secret JWT_SECRET\n```\n")
    plan = home.run("plan", "rotate")
    assert plan.returncode == 0, plan.stderr
    assert re.search(
        r"    -> keep the current JWT_SECRET \(sha256:[0-9a-f]{8}, key JWT_SECRET of secret/shop-secrets\) in the OS "
        r"keyring as previous/prod/JWT_SECRET, for --rollback\n"
        rf"    -> {K} apply -f -  < Secret shop-secrets: JWT_SECRET=\*\*\* \(new, 64 hex characters, "
        r"sha256:[0-9a-f]{8}\); other keys kept: DB_PASSWORD; only if still at resourceVersion 41\n"
        rf"    -> {K} rollout restart deployment/shop-api\n", plan.stdout)
    assert home.argvs() == [f"{K} get secret shop-secrets -o json"] and secret_data(home)["JWT_SECRET"] == \
        "first-jwt-value"

    proc = home.run("rotate-secret", "JWT_SECRET", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = secret_data(home)
    new = data["JWT_SECRET"]
    assert re.fullmatch(r"[0-9a-f]{64}", new) and data["DB_PASSWORD"] == "db-pass-5678"
    assert home.cluster()["secrets"]["shop-secrets"]["resourceVersion"] == "42"
    # The manifest went on stdin: every key, base64, and the resourceVersion it was built from.
    apply = next(c for c in home.calls() if c["argv"][-3:] == ["apply", "-f", "-"])
    manifest = json.loads(apply["stdin"])
    assert manifest["metadata"] == {"name": "shop-secrets", "namespace": "shop", "resourceVersion": "41"}
    assert manifest["data"] == {"JWT_SECRET": b64(new), "DB_PASSWORD": b64("db-pass-5678")}
    # Restarted after the change (the pods see the new value), then waited for.
    api = home.cluster()["deployments"]["shop-api"]
    assert api["restarts"] == 1 and api["secrets_at_restart"]["shop-secrets"]["JWT_SECRET"] == b64(new)
    assert home.argvs()[-2:] == [f"{K} rollout restart deployment/shop-api",
                                 f"{K} rollout status deployment/shop-api --timeout=90s"]
    assert secret_values.previous("prod", "JWT_SECRET") == "first-jwt-value"
    assert f"recorded previous.secret=JWT_SECRET, previous.previous_fingerprint=" \
           f"{secret_values.fingerprint('first-jwt-value')}" in proc.stdout

    back = home.run("rotate-secret", "JWT_SECRET", "--rollback", "--yes")
    assert back.returncode == 0, back.stdout + back.stderr
    assert secret_data(home) == {"JWT_SECRET": "first-jwt-value", "DB_PASSWORD": "db-pass-5678"}
    assert secret_values.previous("prod", "JWT_SECRET") is None  # back in place: its copy is forgotten
    assert home.cluster()["deployments"]["shop-api"]["restarts"] == 2

    everything = proc.stdout + proc.stderr + back.stdout + back.stderr
    for secret in (new, "first-jwt-value", "db-pass-5678"):
        assert secret not in everything and secret.encode() not in home.journal_bytes()
        assert not any(secret in arg or b64(secret) in arg for c in home.calls() for arg in c["argv"])


def test_a_rollback_with_nothing_kept_changes_nothing(home):
    proc = home.run("rotate-secret", "JWT_SECRET", "--rollback", "--yes")
    assert proc.returncode == 1
    assert "no previous value of JWT_SECRET is kept in the OS keyring for 'prod' (previous/prod/JWT_SECRET): " \
           "nothing to roll back to" in proc.stdout
    assert secret_data(home)["JWT_SECRET"] == "first-jwt-value"
    assert not any("apply" in c["argv"] or "rollout" in c["argv"] for c in home.calls())


ROTATE_RACE = """\
## Someone else edits the Secret
```sh
python3 -c 'import json, os; p = os.environ["FAKE_STATE"]; s = json.load(open(p)); s["kubectl"]["secrets"]["shop-secrets"]["resourceVersion"] = "77"; json.dump(s, open(p, "w"))'
```

## Rotate
```ops
rotate-secret JWT_SECRET
```
"""


def test_a_secret_changed_since_the_plan_is_not_overwritten(home):
    (home.root / "runbooks" / "race.md").write_text(ROTATE_RACE)
    proc = home.run("run", "race", "--yes")
    assert proc.returncode == 1
    assert 'the object has been modified; please apply your changes to the latest version' in proc.stdout
    assert secret_data(home)["JWT_SECRET"] == "first-jwt-value"
    assert home.cluster()["deployments"]["shop-api"].get("restarts") is None  # stopped before the restart
    assert home.journal_run(proc.stdout).latest_steps()[2].status == "failed"


def test_sh_blocks_get_the_environments_context_and_namespace(home):
    (home.root / "runbooks" / "look.md").write_text(textwrap.dedent("""\
        ## Look
        ```sh
        kubectl get secret shop-secrets -o json | python3 -c 'import json, sys; print(sorted(json.load(sys.stdin)["data"]))'
        ```
        """))
    plan = home.run("plan", "look")
    assert "    kubectl get secret shop-secrets -o json | python3" in plan.stdout
    # The plan names the kubectl every command of the script gets, as the run does.
    assert re.search(r"^    # through: bash -e -c, kubectl = \S*kubectl --context \S+ -n \S+$", plan.stdout, re.M), \
        plan.stdout
    proc = home.run("run", "look", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "    | ['DB_PASSWORD', 'JWT_SECRET']\n" in proc.stdout
    assert home.argvs()[-1] == f"{K} get secret shop-secrets -o json"


@pytest.mark.parametrize("args,message", [
    (("restore-backup", "api", "--from", "latest", "--yes"),
     "`restore-backup api --from latest`: the kubernetes provider does not restore backup databases"),
    (("rotate-secret", "OTHER_SECRET", "--yes"), "opsconsole.toml:25: rotating OTHER_SECRET on kubernetes needs the "
                                                 "Secret it lives in"),
    (("scale", "cache", "--replicas", "2", "--yes"), "has no service 'cache' to scale (services: api, worker, schema)"),
])
def test_user_errors_are_one_line(home, args, message):
    proc = home.run(*args)
    assert proc.returncode == 2 and message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_a_missing_context_is_a_config_error_not_the_kubeconfigs_current_one(home):
    (home.root / "opsconsole.toml").write_text(CONFIG.replace('context = "prod-eu"\n', ""))
    proc = home.run("deploy", "api", "--yes")
    assert proc.returncode == 2
    assert proc.stderr.startswith("opsconsole.toml:8: the kubernetes provider needs context = \"...\" in "
                                  "[environments.prod.provider_options]")
    assert home.calls() == []


def test_a_failing_read_while_planning_is_one_line(home):
    home.edit(lambda c: c["deployments"].pop("shop-worker"))
    proc = home.run("scale", "worker", "--replicas", "3", "--yes")
    assert proc.returncode == 2
    assert proc.stderr == (f"cannot read the replicas of deployment shop-worker: `{K} get deployment shop-worker -o "
                           f"'jsonpath={{.spec.replicas}}'` failed: Error from server (NotFound): deployments.apps "
                           f"\"shop-worker\" not found\n")
