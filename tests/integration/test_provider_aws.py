"""The `aws` provider end to end: the opsconsole CLI (a real process, real boto3) against a moto server over HTTP.

Each operation is planned (its exact boto3 calls printed before anything changes), confirmed with --yes,
executed, and journaled; the test then reads the result back from moto with boto3 itself.

Moto's ECS runs no containers. A service's runningCount is whatever MOTO_ECS_SERVICE_RUNNING said when the
service was created (moto's documented knob), so a service created with it equal to desiredCount is
"stable" for the services_stable waiter, and one created without it never is: that one is how the timeout
path is tested. A task started by run_task walks moto's task lifecycle to STOPPED with exit code 0.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REGION = "eu-west-1"


@dataclass
class Stack:
    """An ECS cluster with a service, an RDS instance and a secret in moto, under names of their own."""

    url: str
    cluster: str
    service: str
    db: str
    secret_id: str

    def client(self, name: str):
        import boto3

        return boto3.client(name, region_name=REGION, endpoint_url=self.url)

    def describe(self, service: str | None = None) -> dict:
        return self.client("ecs").describe_services(cluster=self.cluster, services=[service or self.service])["services"][0]


def make_service(stack: Stack, name: str, desired: int, running: int | None, monkeypatch) -> str:
    ecs = stack.client("ecs")
    td = ecs.register_task_definition(family=name, containerDefinitions=[
        {"name": "app", "image": "example/app:1", "memory": 128}])["taskDefinition"]["taskDefinitionArn"]
    with monkeypatch.context() as m:
        if running is not None:
            m.setenv("MOTO_ECS_SERVICE_RUNNING", str(running))  # read by moto (in this process) at create time
        else:
            m.delenv("MOTO_ECS_SERVICE_RUNNING", raising=False)
        ecs.create_service(cluster=stack.cluster, serviceName=name, taskDefinition=td, desiredCount=desired,
                           launchType="FARGATE")
    return td


@pytest.fixture
def stack(aws, monkeypatch) -> Stack:
    tag = uuid.uuid4().hex[:8]
    s = Stack(url=aws, cluster=f"prod-{tag}", service="api", db=f"maindb-{tag}", secret_id=f"app/jwt-{tag}")
    s.client("ecs").create_cluster(clusterName=s.cluster)
    make_service(s, "api", desired=2, running=2, monkeypatch=monkeypatch)
    make_service(s, "stuck", desired=2, running=None, monkeypatch=monkeypatch)
    s.client("rds").create_db_instance(DBInstanceIdentifier=s.db, Engine="postgres", DBInstanceClass="db.t3.micro",
                                       AllocatedStorage=20, MasterUsername="app", MasterUserPassword="pw-" + tag)
    s.client("secretsmanager").create_secret(Name=s.secret_id, SecretString="first-jwt-value-" + tag)
    return s


def config(stack: Stack, *, wait_timeout: float = 20, extra: str = "") -> str:
    return f"""\
[opsconsole]
refresh = 0.2
timeout = 2
journal = "journal.sqlite3"

[environments.prod]
provider = "aws"
protection = "open"

[environments.prod.provider_options]
region = "{REGION}"
endpoint_url = "{stack.url}"
cluster = "{stack.cluster}"
poll = 0.2
wait_timeout = {wait_timeout}

[environments.prod.services.api]
migrate = "npm run migrate -- --to head"

[environments.prod.services.stuck]
ecs_service = "stuck"

[environments.prod.services.db]
db_instance = "{stack.db}"

[environments.prod.secrets.JWT_SECRET]
secret_id = "{stack.secret_id}"
restart = ["api"]
{extra}"""


@pytest.fixture
def home(tmp_path: Path, stack: Stack, write_config) -> Path:
    write_config(config(stack))
    return tmp_path


def run_id(output: str) -> str:
    return re.search(r"^Run (\S+): ", output, re.M).group(1)


def journal_run(home: Path, run_cli, output: str) -> dict:
    shown = run_cli("journal", "show", run_id(output), "--json", cwd=home)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_deploy_forces_a_new_deployment_and_waits_until_stable(home, stack, run_cli):
    before = stack.describe()["deployments"][0]["id"]
    proc = run_cli("deploy", "api", "--yes", cwd=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    update = f"ecs.update_service(cluster='{stack.cluster}', service='api', forceNewDeployment=True)"
    wait = (f"ecs.get_waiter('services_stable').wait(cluster='{stack.cluster}', services=['api'])  "
            f"# every 0.2 s, up to 20 s")
    assert update in proc.stdout and wait in proc.stdout
    assert "api is stable" in proc.stdout
    after = stack.describe()["deployments"][0]["id"]
    assert after != before and f"new deployment {after} started" in proc.stdout
    run = journal_run(home, run_cli, proc.stdout)
    assert run["status"] == "succeeded" and run["environment"] == "prod"
    step = run["steps"][-1]
    assert step["status"] == "succeeded" and step["commands"][0] == update and step["commands"][1] == wait


def test_a_service_that_never_stabilises_fails_at_wait_timeout(home, stack, run_cli, write_config):
    write_config(config(stack, wait_timeout=1.5))
    proc = run_cli("deploy", "stuck", "--yes", cwd=home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # The deployment was made; the wait saw moto's 0 of 2 running, and gave up at wait_timeout.
    assert "stuck stable: stuck 0/2 running" in proc.stdout
    assert re.search(r"stuck stable: not done after \d s \(wait_timeout\); stuck 0/2 running", proc.stdout)
    assert journal_run(home, run_cli, proc.stdout)["steps"][-1]["status"] == "failed"


def test_scale_reads_the_current_count_first_and_records_it(home, stack, run_cli):
    plan_text = run_cli("scale", "api", "--replicas", "5", cwd=home)  # no --yes, no terminal: refused, shown first
    assert plan_text.returncode == 2 and "pass --yes" in plan_text.stderr
    assert stack.describe()["desiredCount"] == 2
    proc = run_cli("scale", "api", "--replicas", "5", "--yes", cwd=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (f"ecs.update_service(cluster='{stack.cluster}', service='api', desiredCount=5)  # desiredCount was 2"
            in proc.stdout)
    assert "api: desiredCount 2 -> 5" in proc.stdout and "recorded previous.replicas=2" in proc.stdout
    assert stack.describe()["desiredCount"] == 5
    step = journal_run(home, run_cli, proc.stdout)["steps"][-1]
    assert step["recorded"]["replicas"] == 2


def test_a_runbook_scale_rolls_back_to_the_recorded_count(home, stack, run_cli):
    (home / "runbooks").mkdir()
    (home / "runbooks" / "scale.md").write_text(
        "# Scale\n\n## Scale up\n```ops\nscale api --replicas 7\n```\n"
        "```sh {\"role\": \"verify\", \"timeout\": \"1s\", \"retries\": 0}\nexit 1\n```\n"
        "```ops {\"role\": \"rollback\"}\nscale api --replicas {{ previous.replicas }}\n```\n")
    proc = run_cli("run", "scale", "--yes", "--on-failure", "rollback", cwd=home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "api: desiredCount 2 -> 7" in proc.stdout and "api: desiredCount 7 -> 2" in proc.stdout
    assert stack.describe()["desiredCount"] == 2
    assert journal_run(home, run_cli, proc.stdout)["steps"][-1]["status"] == "rolled-back"


def test_migrate_runs_the_command_in_a_task_and_reports_its_exit_code(home, stack, run_cli):
    proc = run_cli("migrate", "--yes", cwd=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    td = stack.describe()["taskDefinition"]
    shown = (f"ecs.run_task(cluster='{stack.cluster}', taskDefinition='{td}', launchType='FARGATE', count=1, "
             f"startedBy='opsconsole', overrides={{'containerOverrides': [{{'name': 'app', 'command': "
             f"['npm', 'run', 'migrate', '--', '--to', 'head']}}]}})")
    assert shown in proc.stdout
    arn = re.search(r"started task (\S+)", proc.stdout).group(1)
    assert f"task {arn} stopped: container 'app' exited 0" in proc.stdout
    task = stack.client("ecs").describe_tasks(cluster=stack.cluster, tasks=[arn])["tasks"][0]
    assert task["lastStatus"] == "STOPPED" and task["startedBy"] == "opsconsole"
    assert task["overrides"]["containerOverrides"] == [
        {"name": "app", "command": ["npm", "run", "migrate", "--", "--to", "head"]}]
    assert journal_run(home, run_cli, proc.stdout)["steps"][-1]["recorded"]["task"] == arn


def test_backup_snapshots_and_restore_goes_to_a_new_instance(home, stack, run_cli):
    backup = run_cli("backup", "db", "--yes", cwd=home)
    assert backup.returncode == 0, backup.stdout + backup.stderr
    snapshot = re.search(r"previous\.backup=(\S+?)[,)]", backup.stdout).group(1)
    assert snapshot.startswith(f"{stack.db}-opsconsole-")
    assert (f"rds.create_db_snapshot(DBInstanceIdentifier='{stack.db}', DBSnapshotIdentifier='{snapshot}')"
            in backup.stdout)
    assert f"snapshot {snapshot} is available" in backup.stdout
    rds = stack.client("rds")
    assert rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot)["DBSnapshots"][0]["Status"] == "available"

    restore = run_cli("restore-backup", "db", "--from", "latest", "--yes", cwd=home)
    assert restore.returncode == 0, restore.stdout + restore.stderr
    target = re.search(r"instance (\S+-restored-\d{14}(?:-\d+)?) is available", restore.stdout).group(1)
    assert (f"rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier='{target}', "
            f"DBSnapshotIdentifier='{snapshot}', DBInstanceClass='db.t3.micro'" in restore.stdout)
    assert f"a NEW instance from snapshot {snapshot}; {stack.db} is not touched" in restore.stdout
    restored = rds.describe_db_instances(DBInstanceIdentifier=target)["DBInstances"][0]
    assert restored["DBInstanceStatus"] == "available"
    assert rds.describe_db_instances(DBInstanceIdentifier=stack.db)["DBInstances"][0]["DBInstanceStatus"] == "available"
    assert journal_run(home, run_cli, restore.stdout)["steps"][-1]["recorded"]["restored_instance"] == target


def test_restore_to_a_point_in_time(home, stack, run_cli):
    moment = datetime.now(UTC).replace(microsecond=0)
    proc = run_cli("restore-backup", "db", "--from", moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "--yes", cwd=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    target = re.search(r"instance (\S+-restored-\d{14}(?:-\d+)?) is available", proc.stdout).group(1)
    assert (f"rds.restore_db_instance_to_point_in_time(SourceDBInstanceIdentifier='{stack.db}', "
            f"TargetDBInstanceIdentifier='{target}', RestoreTime={moment!r}" in proc.stdout)
    latest = run_cli("restore-backup", "db", "--from", "latest-restorable", "--yes", cwd=home)
    assert latest.returncode == 0, latest.stdout + latest.stderr
    assert "UseLatestRestorableTime=True" in latest.stdout
    rds = stack.client("rds")
    for out in (proc.stdout, latest.stdout):
        name = re.search(r"instance (\S+-restored-\d{14}(?:-\d+)?) is available", out).group(1)
        assert rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceStatus"] == "available"


def test_plan_time_errors_are_one_line_and_change_nothing(home, stack, run_cli, write_config):
    missing = run_cli("restore-backup", "db", "--from", "no-such-snapshot", "--yes", cwd=home)
    assert missing.returncode == 2 and "no snapshot 'no-such-snapshot'" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    unknown = run_cli("deploy", "nope", "--yes", cwd=home)
    assert unknown.returncode == 2 and "has no service 'nope'" in unknown.stderr
    (home / "opsconsole.toml").write_text(config(stack).replace('ecs_service = "stuck"', 'ecs_service = "gone"'))
    gone = run_cli("deploy", "stuck", "--yes", cwd=home)
    assert gone.returncode == 2 and f"ECS service 'gone' not found in cluster '{stack.cluster}'" in gone.stderr
    (home / "opsconsole.toml").write_text(config(stack).replace(f'cluster = "{stack.cluster}"', 'cluster = "gone"'))
    no_cluster = run_cli("deploy", "api", "--yes", cwd=home)
    assert no_cluster.returncode == 2
    assert "cannot read ECS service 'api' in cluster 'gone': ClusterNotFoundException" in no_cluster.stderr
    outputs = missing.stderr + unknown.stderr + gone.stderr + no_cluster.stderr
    assert "Traceback" not in outputs and "Run " not in missing.stdout + gone.stdout  # no run was started


def test_no_credentials_is_a_plan_time_error(home, run_cli, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    proc = run_cli("scale", "api", "--replicas", "3", "--yes", cwd=home)
    assert proc.returncode == 2 and "Unable to locate credentials" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_journal_holds_the_exact_calls(home, stack, run_cli):
    proc = run_cli("scale", "api", "--replicas", "3", "--yes", cwd=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with sqlite3.connect(home / "journal.sqlite3") as db:
        text = "\n".join("\t".join(map(str, row)) for row in db.execute("SELECT * FROM opsconsole_steps"))
    assert f"ecs.update_service(cluster='{stack.cluster}', service='api', desiredCount=3)" in text


def test_a_wait_stops_at_the_block_timeout_or_a_cancel(stack, tmp_path):
    """In process: the engine's timeout and cancel reach a boto3 wait running in its worker thread."""
    import threading
    import time

    from opsconsole import config as config_mod
    from opsconsole import runner
    from opsconsole.actions import parse
    from opsconsole.providers import for_environment

    cfg = config_mod.parse(config(stack, wait_timeout=60), tmp_path / "opsconsole.toml", tmp_path)
    provider = for_environment(cfg, cfg.environment("prod"))
    update, wait = provider.plan(parse("deploy stuck"))
    lines: list[str] = []
    assert provider.execute(update, None, lines.append).ok

    started = time.monotonic()
    result = provider.execute(wait, 1.0, lines.append)
    assert not result.ok and result.timed_out and 0.8 < time.monotonic() - started < 5
    assert "(the block's timeout)" in result.error and "stuck 0/2 running" in result.error

    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(runner.Aborted):
        provider.execute(wait, None, lines.append, cancel)
    assert time.monotonic() - started < 5
    # The worker saw the stop between two checks and ended: no AWS thread is left polling.
    assert not [t for t in threading.enumerate() if t.name.startswith("aws: ")]


def test_a_snapshot_of_another_instance_is_refused_without_from_other(home, stack, run_cli):
    rds = stack.client("rds")
    other = f"staging-{stack.db}"
    rds.create_db_instance(DBInstanceIdentifier=other, Engine="postgres", DBInstanceClass="db.t3.micro",
                           AllocatedStorage=20, MasterUsername="app", MasterUserPassword="pw-staging-1")
    rds.create_db_snapshot(DBInstanceIdentifier=other, DBSnapshotIdentifier=f"{other}-snap")
    refused = run_cli("restore-backup", "db", "--from", f"{other}-snap", "--yes", cwd=home)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert (f"snapshot '{other}-snap' is of instance '{other}', not '{stack.db}' (this environment's)"
            in refused.stderr and "--from-other" in refused.stderr)
    before = {i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]}
    meant = run_cli("restore-backup", "db", "--from", f"{other}-snap", "--from-other", "--yes", cwd=home)
    assert meant.returncode == 0, meant.stdout + meant.stderr
    after = {i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]}
    assert len(after - before) == 1  # a new instance, from staging's snapshot, as asked
