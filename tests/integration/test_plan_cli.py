"""`opsconsole plan` as a real process: exact output, JSON, one-line errors, and that it changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CONFIG = """\
[opsconsole]
runbooks = "runbooks"

[environments.staging]
provider = "local"
protection = "confirm"

[environments.staging.services.api]
deploy = "./deploy.sh api"
restart = "./restart.sh api"

[environments.staging.services.db]
kind = "postgres"
url = "postgresql://app:plan-db-pw@127.0.0.1:5432/app"

[environments.staging.secrets.JWT_SECRET]
restart = ["api"]

[environments.ro]
provider = "local"
read_only = true

[environments.production]
provider = "aws"
protection = "typed"
"""

RUNBOOK = """\
---
title: Release the API
summary: Ship a tag to the API.
params:
  tag: {type: str, default: "v1.0"}
  token: {type: secret}
---

# Release the API

## Check the database
The database must be up before anything ships.
It is probed live.

```ops {"role": "check"}
expect db is ok
```

## Ship it
Deploys the tag.

```sh {"timeout": "2m"}
echo "shipping {{ tag }}" --token {{ token }}
./build.sh {{ tag }}
```
```ops
deploy api
```
```ops {"role": "verify", "timeout": "30s", "retries": 3}
expect db.latency_ms < 200
```

## Rotate the signing key
```ops {"confirm": "typed"}
rotate-secret JWT_SECRET
```
```ops {"role": "rollback"}
rotate-secret JWT_SECRET --rollback
```
"""

EXPECTED = """\
Plan: Release the API ({tmp}/runbooks/release.md)
Environment: staging (provider local, protection confirm)
Params: tag='v2; rm -rf /' token=***

Step 1. Check the database
  The database must be up before anything ships. It is probed live.
  check (ops):
    expect db is ok

Step 2. Ship it
  Deploys the tag.
  run (sh, timeout 120s), asks y/N:
    echo "shipping "'v2; rm -rf /'"" --token ***
    ./build.sh 'v2; rm -rf /'
  run (ops), asks y/N:
    deploy api
    -> ./deploy.sh api
  verify (ops, timeout 30s, retries 3):
    expect db.latency_ms < 200

Step 3. Rotate the signing key
  run (ops), asks you to type 'staging':
    rotate-secret JWT_SECRET
    -> rewrite {tmp}/.env.staging: JWT_SECRET=*** (new value: 64 hex characters); the previous line (sha256:28743595) is kept in {tmp}/.env.staging.previous (mode 0600)
    -> ./restart.sh api
  rollback (ops), asks y/N:
    rotate-secret JWT_SECRET --rollback
    -> rewrite {tmp}/.env.staging: JWT_SECRET back to the line kept in {tmp}/.env.staging.previous (which keeps the current one in turn)
    -> ./restart.sh api

4 change block(s)
Advice (1):
  line 23: {{{{ token }}}} is a secret and lands in this command's argv, which every user of the host can read (ps): pass it on stdin or in an environment variable
Fingerprint: {fingerprint}
"""

SECRET = "plan-tok3n-value"
PARAMS = ("-p", "tag=v2; rm -rf /", "-p", f"token={SECRET}")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "opsconsole.toml").write_text(CONFIG)
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "release.md").write_text(RUNBOOK)
    (tmp_path / ".env.staging").write_text("JWT_SECRET=plan-old-jwt\n")
    return tmp_path


def opsconsole(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
    env.update(OPSCONSOLE_JOURNAL=str(home / "journal.sqlite3"), XDG_STATE_HOME=str(home / "state"))
    return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True, env=env,
                          cwd=home, stdin=subprocess.DEVNULL, timeout=60)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_plan_prints_every_step_command_and_confirmation_exactly(home):
    before = files(home)
    proc = opsconsole(home, "plan", "release", "--env", "staging", *PARAMS)
    assert proc.returncode == 0, proc.stderr
    fingerprint = proc.stdout.rsplit("Fingerprint: ", 1)[1].strip()
    assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0
    assert proc.stdout == EXPECTED.format(tmp=home, fingerprint=fingerprint)
    assert SECRET not in proc.stdout + proc.stderr and "plan-db-pw" not in proc.stdout
    # Changes nothing: no journal, no state dir, no file touched.
    assert files(home) == before

    again = opsconsole(home, "plan", str(home / "runbooks" / "release.md"), "--env", "staging", *PARAMS)
    assert again.stdout == proc.stdout  # by path too, and the same fingerprint every time


def test_plan_json_has_the_same_plan(home):
    text = opsconsole(home, "plan", "release", "--env", "staging", *PARAMS)
    proc = opsconsole(home, "plan", "release", "--env", "staging", "--json", *PARAMS)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["fingerprint"] == text.stdout.rsplit("Fingerprint: ", 1)[1].strip()
    assert plan["environment"] == "staging" and plan["protection"] == "confirm"
    assert plan["params"] == {"tag": "v2; rm -rf /", "token": "***"}
    assert [s["title"] for s in plan["steps"]] == ["Check the database", "Ship it", "Rotate the signing key"]
    ship = plan["steps"][1]["blocks"]
    assert [b["role"] for b in ship] == ["run", "run", "verify"]
    assert ship[0]["text"] == "echo \"shipping \"'v2; rm -rf /'\"\" --token ***\n./build.sh 'v2; rm -rf /'"
    assert ship[0]["calls"] == [ship[0]["text"]] and ship[0]["timeout_s"] == 120
    assert ship[1]["calls"] == ["./deploy.sh api"] and ship[1]["confirmation"] == "yes"
    rotate = plan["steps"][2]["blocks"][0]
    assert rotate["confirmation"] == "typed" and rotate["destructive"] is True
    assert SECRET not in proc.stdout


def test_read_only_environments_plan_changes_as_refused(home):
    (home / "runbooks" / "hello.md").write_text("## Hello\n```sh\necho hi\n```\n## Look\n"
                                                "```sh {\"role\": \"check\"}\ntrue\n```\n")
    proc = opsconsole(home, "plan", "hello", "--env", "ro")
    assert proc.returncode == 0, proc.stderr
    assert "  run (sh, timeout 3600s (default)), REFUSED: read-only environment:\n    echo hi\n" in proc.stdout
    # the shell check counts too: it may change as much as a run
    assert "  check (sh, timeout 300s (default)), REFUSED: read-only environment:\n    true\n" in proc.stdout
    assert "2 change block(s), 2 refused: ro is read-only; `run` would stop before anything" in proc.stdout
    flag = opsconsole(home, "--read-only", "plan", "hello", "--env", "staging")
    assert "REFUSED: read-only environment" in flag.stdout and "read-only)" in flag.stdout


@pytest.mark.parametrize("args,message", [
    (("plan", "release", "--env", "production", "-p", "token=x"),
     "`deploy api`: environment 'production' has no service 'api' to deploy (services: none)"),
    (("plan", "release", "--env", "staging"), "runbooks/release.md:6: param 'token' is required"),
    (("plan", "release", "--env", "staging", "-p", "token=x", "-p", "nope=1"), "unknown param 'nope'"),
    (("plan", "nothing-here", "--env", "staging"), "no runbook 'nothing-here'"),
    (("plan", "release", "--env", "staging", "-p", "token"), "expected KEY=VALUE"),
])
def test_user_errors_are_one_line(home, args, message):
    proc = opsconsole(home, *args)
    assert proc.returncode == (3 if message == "expected KEY=VALUE" else 2)  # a usage error exits 3
    assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


VACUOUS = """\
# Drain the emails queue

## Scale up
```sh
echo scaling
```

## Verify
```ops {"role": "verify"}
expect db is ok
expect {{ queue }}.depth < 1000
```
"""


@pytest.mark.parametrize("params, message", [
    (("-p", "queue=emails"), "runbooks/drain.md:15: `expect emails.depth < 1000`: emails is not a probed member of "
                             "environment staging (members: db)"),
    (("-p", "queue=db"), "runbooks/drain.md:15: `expect db.depth < 1000`: db (postgres) never reports depth; it "
                         "reports: status, latency_ms, connections, max_connections"),
])
def test_plan_refuses_an_expect_the_environment_cannot_answer(home, params, message):
    """An expect on a member or field that is not there could only fail at its step, after the changes before it:
    `plan` (and so `run`) refuses it first, naming the line and what the environment does have."""
    (home / "runbooks" / "drain.md").write_text("---\nparams:\n  queue: {type: str}\n---\n" + VACUOUS)
    proc = opsconsole(home, "plan", "drain", "--env", "staging", *params)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    run = opsconsole(home, "run", "drain", "--env", "staging", "--yes", *params)
    assert run.returncode == 2 and run.stderr == proc.stderr and "scaling" not in run.stdout


def test_validate_with_an_environment_checks_every_expect(home):
    (home / "runbooks" / "smoke.md").write_text(VACUOUS.replace("{{ queue }}", "emails"))
    plain = opsconsole(home, "runbooks", "validate", "runbooks/smoke.md")
    assert plain.returncode == 0, plain.stdout  # without an environment nothing says which members exist
    proc = opsconsole(home, "runbooks", "validate", "runbooks/smoke.md", "--env", "staging")
    assert proc.returncode == 1
    assert ("runbooks/smoke.md:11: `expect emails.depth < 1000`: emails is not a probed member of environment "
            "staging (members: db)") in proc.stdout


def test_validate_reads_a_templated_expect_with_the_params_defaults(home):
    (home / "runbooks" / "drain.md").write_text(
        "---\nparams:\n  queue: {type: str, default: emails}\n  other: {type: str}\n---\n" + VACUOUS
        + "\n## Later\n```ops {\"role\": \"verify\"}\nexpect {{ other }}.depth < 5\n```\n")
    proc = opsconsole(home, "runbooks", "validate", "runbooks/drain.md", "--env", "staging")
    assert proc.returncode == 1
    assert ("runbooks/drain.md:16: `expect emails.depth < 1000` (with the params' defaults): emails is not a probed "
            "member of environment staging (members: db)") in proc.stdout
    assert "other" not in proc.stdout  # a required param without a default: plan checks it once it is given
