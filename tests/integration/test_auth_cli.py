"""`opsconsole auth set|delete|status PROVIDER` as a real process, with a real (file) keyring backend, a
machine without one, and (for aws) boto3's own credential chain against a moto server."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
import uuid
from pathlib import Path

import pytest

from opsconsole import credentials

pytestmark = pytest.mark.integration


def cli(tmp_path: Path, *args: str, stdin: str | None = None, env: dict | None = None):
    import subprocess

    full = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], input=stdin if stdin is not None else "",
                          capture_output=True, text=True, env=full, cwd=tmp_path, timeout=60)


@pytest.fixture
def clean(monkeypatch):
    for name in ("RAILWAY_TOKEN", "RAILWAY_API_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def rows(output: str) -> dict[str, str]:
    """`auth status` lines as {what: where}: columns are separated by two spaces or more."""
    out = {}
    for line in output.splitlines():
        what, _, where = line.partition("  ")
        out[what.strip()] = where.strip()
    return out


def test_railway_token_set_status_delete(tmp_path, file_keyring, clean, monkeypatch):
    token = "rw-" + uuid.uuid4().hex
    stored = cli(tmp_path, "auth", "set", "railway", stdin=token + "\n")
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.strip() == "stored railway/token in the OS keyring (service opsconsole)"
    assert file_keyring.holds(token)
    status = cli(tmp_path, "auth", "status", "railway")
    assert status.returncode == 0, status.stderr
    assert rows(status.stdout)["railway token"] == "keyring"
    assert rows(status.stdout)["OS keyring"] == "keyrings.alt.file.PlaintextKeyring (service opsconsole)"
    # The environment wins, and says which variable.
    env_status = cli(tmp_path, "auth", "status", "railway", env={"RAILWAY_API_TOKEN": "env-" + token})
    assert rows(env_status.stdout)["railway token"] == "environment ($RAILWAY_API_TOKEN)"
    deleted = cli(tmp_path, "auth", "delete", "railway")
    assert deleted.returncode == 0 and deleted.stdout.strip() == "deleted railway/token"
    assert not file_keyring.holds(token)
    again = cli(tmp_path, "auth", "delete", "railway")
    assert again.stdout.strip() == "not in the OS keyring: railway/token"
    assert rows(cli(tmp_path, "auth", "status", "railway").stdout)["railway token"] == "missing"
    for proc in (stored, status, env_status, deleted, again):
        assert token not in proc.stdout + proc.stderr


def test_a_value_is_never_taken_from_argv(tmp_path, file_keyring, clean):
    proc = cli(tmp_path, "auth", "set", "railway", "tok-in-argv")
    assert proc.returncode == 3 and "unrecognized arguments" in proc.stderr
    empty = cli(tmp_path, "auth", "set", "railway", stdin="")
    assert empty.returncode == 2 and "no value for token (nothing was stored)" in empty.stderr
    wrong = cli(tmp_path, "auth", "set", "railway", "--key", "password", stdin="x\n")
    assert wrong.returncode == 3 and "--key must be one of token" in wrong.stderr


def test_no_keyring_backend(tmp_path, no_keyring, clean):
    for verb in ("set", "delete"):
        proc = cli(tmp_path, "auth", verb, "railway", stdin="tok\n")
        assert proc.returncode == 2 and proc.stderr.strip() == credentials.NO_BACKEND
    status = cli(tmp_path, "auth", "status", "railway", env={"RAILWAY_TOKEN": "from-env-9"})
    assert status.returncode == 0, status.stderr
    assert rows(status.stdout)["railway token"] == "environment ($RAILWAY_TOKEN)"
    assert rows(status.stdout)["OS keyring"].startswith("none usable: no usable OS keyring")
    missing = cli(tmp_path, "auth", "status", "railway")
    assert rows(missing.stdout)["railway token"] == "missing (no usable OS keyring to look in)"
    assert "from-env-9" not in status.stdout + status.stderr


def aws_config(url: str, cluster: str) -> str:
    return (f'[environments.prod]\nprovider = "aws"\n[environments.prod.provider_options]\nregion = "eu-west-1"\n'
            f'endpoint_url = "{url}"\ncluster = "{cluster}"\npoll = 0.2\n'
            f'[environments.prod.services.api]\necs_service = "api"\n')


def test_aws_keys_from_the_keyring_reach_boto3(tmp_path, file_keyring, aws, clean, write_config, monkeypatch):
    import boto3

    cluster = "auth-" + uuid.uuid4().hex[:8]
    ecs = boto3.client("ecs", region_name="eu-west-1", endpoint_url=aws, aws_access_key_id="setup",
                       aws_secret_access_key="setup")
    ecs.create_cluster(clusterName=cluster)
    td = ecs.register_task_definition(family="api", containerDefinitions=[
        {"name": "app", "image": "x", "memory": 128}])["taskDefinition"]["taskDefinitionArn"]
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")
    ecs.create_service(cluster=cluster, serviceName="api", taskDefinition=td, desiredCount=1)
    monkeypatch.delenv("MOTO_ECS_SERVICE_RUNNING")
    write_config(aws_config(aws, cluster))

    before = cli(tmp_path, "auth", "status", "aws")
    assert rows(before.stdout)["aws credentials boto3 finds for prod"] == "missing"
    nothing = cli(tmp_path, "scale", "api", "--replicas", "2", "--yes")
    assert nothing.returncode == 2 and "Unable to locate credentials" in nothing.stderr

    secret = "kr-secret-" + uuid.uuid4().hex
    stored = cli(tmp_path, "auth", "set", "aws", stdin=f"AKIAKEYRING00001\n{secret}\n")
    assert stored.returncode == 0, stored.stderr
    assert stored.stdout.splitlines() == ["stored aws/access_key_id in the OS keyring (service opsconsole)",
                                          "stored aws/secret_access_key in the OS keyring (service opsconsole)"]
    status = rows(cli(tmp_path, "auth", "status", "aws").stdout)
    assert status["aws access_key_id"] == "keyring" and status["aws secret_access_key"] == "keyring"
    assert status["aws session_token"] == "missing (optional)"
    assert status["aws credentials boto3 finds for prod"] == "keyring"
    scaled = cli(tmp_path, "scale", "api", "--replicas", "2", "--yes")
    assert scaled.returncode == 0, scaled.stdout + scaled.stderr
    assert ecs.describe_services(cluster=cluster, services=["api"])["services"][0]["desiredCount"] == 2
    assert secret not in scaled.stdout + scaled.stderr + stored.stdout

    # The environment's variables win over the keyring, as everywhere.
    env = {"AWS_ACCESS_KEY_ID": "AKIAENV000000001", "AWS_SECRET_ACCESS_KEY": "env-secret-value"}
    from_env = rows(cli(tmp_path, "auth", "status", "aws", env=env).stdout)
    assert from_env["aws access_key_id"] == "environment ($AWS_ACCESS_KEY_ID)"
    assert from_env["aws credentials boto3 finds for prod"] == "environment ($AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY)"


def test_aws_profile_is_reported_without_its_keys(tmp_path, no_keyring, clean, write_config, monkeypatch):
    creds = tmp_path / "aws-credentials"
    creds.write_text("[ops]\naws_access_key_id = AKIAPROFILE00001\naws_secret_access_key = profile-secret-xyz\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    write_config('[environments.prod]\nprovider = "aws"\n[environments.prod.provider_options]\nprofile = "ops"\n'
                 'region = "eu-west-1"\n')
    proc = cli(tmp_path, "auth", "status", "aws")
    assert proc.returncode == 0, proc.stderr
    assert rows(proc.stdout)["aws credentials boto3 finds for prod (profile ops)"] == \
        "profile ops: shared credentials file (~/.aws/credentials)"
    assert "profile-secret-xyz" not in proc.stdout and "AKIAPROFILE00001" not in proc.stdout


def test_rabbitmq_accounts_come_from_the_config(tmp_path, file_keyring, clean, write_config):
    import keyring

    write_config('[environments.staging.queues.emails]\nkind = "rabbitmq"\nurl = "http://ops@rabbit.internal:15672"\n'
                 '[environments.staging.queues.audit]\nkind = "rabbitmq"\n'
                 'url = "http://audit:inline-pw@rabbit.internal:15672"\n')
    before = rows(cli(tmp_path, "auth", "status", "rabbitmq").stdout)
    assert before["rabbitmq ops@rabbit.internal (queue emails of staging)"] == "missing"
    assert before["rabbitmq audit@rabbit.internal (queue audit of staging)"] == "in the url (config)"
    stored = cli(tmp_path, "auth", "set", "rabbitmq", stdin="rabbit-pw-1\n")  # the one account needing it
    assert stored.returncode == 0, stored.stderr
    assert keyring.get_password("opsconsole", "rabbitmq/ops@rabbit.internal") == "rabbit-pw-1"  # what the probe reads
    after = rows(cli(tmp_path, "auth", "status", "rabbitmq").stdout)
    assert after["rabbitmq ops@rabbit.internal (queue emails of staging)"] == "keyring"
    bad = cli(tmp_path, "auth", "set", "rabbitmq", "--key", "no-at-sign", stdin="x\n")
    assert bad.returncode == 3 and "--key must be USER@HOST" in bad.stderr


def test_providers_that_keep_nothing_say_so(tmp_path, file_keyring, clean):
    proc = cli(tmp_path, "auth", "set", "kubernetes", stdin="x\n")
    assert proc.returncode == 2 and "kubectl authenticates with its kubeconfig" in proc.stderr
    status = cli(tmp_path, "auth", "status", "kubernetes")
    assert status.returncode == 0 and "opsconsole keeps nothing" in status.stdout
    unknown = cli(tmp_path, "auth", "status", "heroku")
    assert unknown.returncode == 3 and "invalid choice: 'heroku'" in unknown.stderr


def test_set_on_a_terminal_asks_with_echo_off(tmp_path, file_keyring, clean):
    token = "typed-" + uuid.uuid4().hex
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "opsconsole", "auth", "set", "railway"],
                  {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")})
    out, answered, deadline = b"", False, time.monotonic() + 30
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        if not answered and b"railway token: " in out:
            os.write(fd, token.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert answered and os.waitstatus_to_exitcode(status) == 0, text
    assert token not in text and "stored railway/token" in text
    assert file_keyring.holds(token)
