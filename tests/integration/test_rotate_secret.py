"""`opsconsole rotate-secret` end to end against a moto server (real HTTP, real boto3): rotate, restart what
uses the secret, verify it is healthy, keep and forget the previous value in a real (file) keyring, roll back;
and neither value ever shows in stdout, stderr, the journal's bytes or the keyring once the rotation is confirmed.

Moto note: get_secret_value without a VersionStage answers moto's remembered default version even after
update_secret_version_stage moved AWSCURRENT; AWS answers AWSCURRENT. The tests (like the provider) name the
stage or version they read.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from opsconsole import secret_values

pytestmark = pytest.mark.integration

REGION = "eu-west-1"


def client(url: str, name: str):
    import boto3

    return boto3.client(name, region_name=REGION, endpoint_url=url)


class Secret:
    def __init__(self, url: str, secret_id: str) -> None:
        self.sm = client(url, "secretsmanager")
        self.secret_id = secret_id

    def stage(self, stage: str) -> str:
        return self.sm.get_secret_value(SecretId=self.secret_id, VersionStage=stage)["SecretString"]


@pytest.fixture
def setup(aws, monkeypatch, tmp_path: Path, http_server, write_config):
    tag = uuid.uuid4().hex[:8]
    cluster, secret_id, original = f"rot-{tag}", f"app/jwt-{tag}", f"original-jwt-{tag}-value"
    ecs = client(aws, "ecs")
    ecs.create_cluster(clusterName=cluster)
    td = ecs.register_task_definition(family="api", containerDefinitions=[
        {"name": "app", "image": "example/app:1", "memory": 128}])["taskDefinition"]["taskDefinitionArn"]
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "2")  # moto runs no tasks: this many count as running
    for name in ("api", "worker"):
        ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=td, desiredCount=2)
    monkeypatch.delenv("MOTO_ECS_SERVICE_RUNNING")
    client(aws, "secretsmanager").create_secret(Name=secret_id, SecretString=original)

    def configure(health_path: str = "/healthy", verify_timeout: float = 1.5) -> None:
        write_config(f"""\
            [opsconsole]
            refresh = 0.2
            timeout = 1
            journal = "journal.sqlite3"

            [environments.prod]
            provider = "aws"
            protection = "open"
            [environments.prod.provider_options]
            region = "{REGION}"
            endpoint_url = "{aws}"
            cluster = "{cluster}"
            poll = 0.2
            wait_timeout = 10
            [environments.prod.services.api]
            kind = "http"
            url = "{http_server.url(health_path)}"
            [environments.prod.services.worker]
            [environments.prod.secrets.JWT_SECRET]
            secret_id = "{secret_id}"
            restart = ["api"]
            verify_timeout = {verify_timeout}
            """)

    configure()
    deployments = lambda name: ecs.describe_services(cluster=cluster, services=[name])["services"][0]["deployments"][0]["id"]  # noqa: E731
    return {"secret": Secret(aws, secret_id), "original": original, "configure": configure, "home": tmp_path,
            "deployment": deployments, "cluster": cluster}


def leaks(home: Path, values: list[str], *outputs: str) -> list[str]:
    """Where any of `values` shows: an output, or the journal's files (database, WAL)."""
    found = []
    journal = b"".join(p.read_bytes() for p in home.glob("journal.sqlite3*"))
    for value in values:
        for i, out in enumerate(outputs):
            if value in out:
                found.append(f"output {i}")
        if value.encode() in journal:
            found.append("journal")
    return found


def test_rotate_verify_forget_then_roll_back(setup, run_cli, file_keyring):
    secret, original, home = setup["secret"], setup["original"], setup["home"]
    api_before, worker_before = setup["deployment"]("api"), setup["deployment"]("worker")

    proc = run_cli("rotate-secret", "JWT_SECRET", "--restart", "worker", "--yes", cwd=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    new = secret.stage("AWSCURRENT")
    assert re.fullmatch(r"[0-9a-f]{64}", new) and secret.stage("AWSPREVIOUS") == original
    # Shown: the exact call with the value masked, both fingerprints, the restarts, the health verify.
    assert f"SecretId='{secret.secret_id}'" in proc.stdout and "SecretString='***'" in proc.stdout
    assert secret_values.fingerprint(new) in proc.stdout and secret_values.fingerprint(original) in proc.stdout
    assert "new value: 64 hex characters" in proc.stdout
    assert "expect api is ok" in proc.stdout
    assert setup["deployment"]("api") != api_before and setup["deployment"]("worker") != worker_before
    # The previous value went to the keyring before the change, and was forgotten once the verify passed.
    assert "previous JWT_SECRET (" + secret_values.fingerprint(original) + ") kept in the OS keyring" in proc.stdout
    assert "Rotation of JWT_SECRET verified: its previous value is forgotten from the OS keyring" in proc.stdout
    assert not file_keyring.holds(original) and not file_keyring.holds(new)
    assert leaks(home, [new, original], proc.stdout, proc.stderr) == []

    back = run_cli("rotate-secret", "JWT_SECRET", "--rollback", "--yes", cwd=home)
    assert back.returncode == 0, back.stdout + back.stderr
    assert secret.stage("AWSCURRENT") == original and secret.stage("AWSPREVIOUS") == new
    assert "update_secret_version_stage(" in back.stdout and "VersionStage='AWSCURRENT'" in back.stdout
    assert leaks(home, [new, original], proc.stdout, proc.stderr, back.stdout, back.stderr) == []


def test_unhealthy_after_rotation_rolls_back_with_the_kept_value_consumed(setup, run_cli, file_keyring):
    secret, original, home = setup["secret"], setup["original"], setup["home"]
    setup["configure"](health_path="/unhealthy")
    proc = run_cli("rotate-secret", "JWT_SECRET", "--yes", "--on-failure", "rollback", cwd=home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "verification failed" in proc.stdout and "Rolling back step 1" in proc.stdout
    # The rotation happened (AWSPREVIOUS holds the value it made), then the undo put the original back.
    rotated = secret.stage("AWSPREVIOUS")
    assert secret.stage("AWSCURRENT") == original and rotated != original
    assert "previous JWT_SECRET forgotten from the OS keyring" in proc.stdout
    assert not file_keyring.holds(original)
    assert leaks(home, [rotated, original], proc.stdout, proc.stderr) == []
    assert "Step 1 rolled back" in proc.stdout


def test_without_a_probe_the_previous_value_stays_kept_until_rollback(setup, run_cli, file_keyring, write_config):
    secret, original, home = setup["secret"], setup["original"], setup["home"]
    (home / "opsconsole.toml").write_text((home / "opsconsole.toml").read_text().replace('restart = ["api"]',
                                                                                          'restart = ["worker"]'))
    proc = run_cli("rotate-secret", "JWT_SECRET", "--yes", cwd=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "expect" not in proc.stdout  # worker has no probe: nothing to verify
    assert "Nothing has verified the rotation of JWT_SECRET yet" in proc.stdout
    assert file_keyring.holds(original)  # kept for --rollback
    new = secret.stage("AWSCURRENT")
    back = run_cli("rotate-secret", "JWT_SECRET", "--rollback", "--yes", cwd=home)
    assert back.returncode == 0, back.stdout + back.stderr
    assert secret.stage("AWSCURRENT") == original
    assert not file_keyring.holds(original)  # the rollback consumed it
    assert leaks(home, [new, original], proc.stdout, proc.stderr, back.stdout, back.stderr) == []


def test_without_a_keyring_awsprevious_alone_keeps_the_old_value(setup, run_cli, no_keyring):
    secret, original, home = setup["secret"], setup["original"], setup["home"]
    proc = run_cli("rotate-secret", "JWT_SECRET", "--yes", cwd=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "AWSPREVIOUS keeps it (no OS keyring on this machine)" in proc.stdout
    new = secret.stage("AWSCURRENT")
    assert secret.stage("AWSPREVIOUS") == original and new != original
    back = run_cli("rotate-secret", "JWT_SECRET", "--rollback", "--yes", cwd=home)
    assert back.returncode == 0, back.stdout + back.stderr
    assert secret.stage("AWSCURRENT") == original
    assert leaks(home, [new, original], proc.stdout, proc.stderr, back.stdout, back.stderr) == []


def test_configured_length_and_alphabet_and_refusals(setup, run_cli, file_keyring):
    secret, home = setup["secret"], setup["home"]
    path = home / "opsconsole.toml"
    path.write_text(path.read_text() + 'length = 40\nalphabet = "alnum"\n')
    refused = run_cli("rotate-secret", "JWT_SECRET", cwd=home)  # no terminal, no --yes: nothing happens
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    assert secret.stage("AWSCURRENT") == setup["original"]
    proc = run_cli("rotate-secret", "JWT_SECRET", "--yes", cwd=home)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.fullmatch(r"[A-Za-z0-9]{40}", secret.stage("AWSCURRENT"))
    assert "new value: 40 alnum characters" in proc.stdout
    unknown = run_cli("rotate-secret", "OTHER", "--yes", cwd=home)
    assert unknown.returncode == 2 and "secret OTHER needs secret_id" in unknown.stderr


def test_a_secret_changed_since_the_plan_is_left_alone(setup, run_cli, file_keyring):
    """The plan names the version it replaces; if someone rotates in between, nothing is written."""
    secret, original, home = setup["secret"], setup["original"], setup["home"]
    (home / "runbooks").mkdir()
    (home / "runbooks" / "rotate.md").write_text(
        "# Rotate\n\n## Someone else rotates first\n```sh\n"
        f"python -c \"import boto3; boto3.client('secretsmanager', region_name='{REGION}', "
        f"endpoint_url='{secret.sm.meta.endpoint_url}').put_secret_value(SecretId='{secret.secret_id}', "
        "SecretString='theirs-' + 'x' * 30)\"\n```\n\n"
        "## Rotate\n```ops\nrotate-secret JWT_SECRET\n```\n")
    proc = run_cli("run", "rotate", "--yes", cwd=home)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "changed since the plan" in proc.stdout and "nothing was changed, plan again" in proc.stdout
    assert secret.stage("AWSCURRENT") == "theirs-" + "x" * 30 and secret.stage("AWSPREVIOUS") == original
