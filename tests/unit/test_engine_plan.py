"""build_plan: binding, rendering, provider calls, deferred blocks, fingerprints. Plans change nothing."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from opsconsole import actions, config, masking
from opsconsole.backups import TakeDump
from opsconsole.engine import action_runbook, build_plan, plan_fingerprint
from opsconsole.errors import ConfigError, UserError
from opsconsole.runbook import parse
from opsconsole.runner import Command

CONFIG = """\
[environments.local]
provider = "local"

[environments.local.services.api]
deploy = "./deploy.sh api"

[environments.local.services.db]
kind = "postgres"
url = "postgresql://app:pl4n-db-pass@127.0.0.1:1/app"

[environments.staging]
provider = "compose"
"""

RUNBOOK = """\
---
title: Release
environments: [local, production]
params:
  tag: {type: str, pattern: "[a-z0-9.]+"}
  token: {type: secret, required: false}
---

# Release

## Back up first
Always take a backup before a release.
```ops
backup db
```

## Deploy
```sh
echo deploying {{ tag }} with {{ token }}
```
```ops {"role": "rollback"}
restore-backup db --from {{ previous.backup }}
```
"""


@pytest.fixture
def cfg(tmp_path: Path) -> config.Config:
    return config.parse(CONFIG, tmp_path / "opsconsole.toml", tmp_path)


def book(tmp_path: Path, text: str = RUNBOOK):
    runbook, problems = parse(text, tmp_path / "release.md")
    assert problems == (), problems
    return runbook


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump not installed")
def test_plan_resolves_every_block_masks_secrets_and_defers_previous(tmp_path, cfg, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    plan = build_plan(cfg, "local", book(tmp_path), {"tag": "v1.2", "token": "t0k-plan-secret"})
    assert plan.params == {"tag": "v1.2", "token": "***"}
    backup, deploy = plan.steps
    [dump] = backup.blocks
    assert dump.text == "backup db" and dump.confirmation == "none" and not dump.destructive
    reserve, take, manifest = dump.calls
    # pg_dump, wrapped so that a dump that fails removes its half-written file.
    assert isinstance(take, TakeDump) and take.partial == Path(take.command.argv[3])
    pg_dump = take.command
    assert take.display == pg_dump.display and take.records == pg_dump.records
    assert reserve.display.startswith(f"mkdir -p -m 700 {tmp_path / 'state' / 'opsconsole' / 'backups' / 'local'}; ")
    assert "never over an existing backup" in reserve.display
    assert manifest.display.startswith(f"write {str(pg_dump.argv[3])[:-len('.dump')]}.json: size, sha256")
    assert isinstance(pg_dump, Command) and pg_dump.argv[:3] == ("pg_dump", "-Fc", "--file")
    # The password travels in the environment, never argv, and never shows.
    assert pg_dump.env == {"PGPASSWORD": "pl4n-db-pass"}
    assert "pl4n-db-pass" not in " ".join(pg_dump.argv) + pg_dump.display
    assert pg_dump.display.startswith("PGPASSWORD=*** pg_dump -Fc --file ")
    assert "--dbname postgresql://app@127.0.0.1:1/app" in pg_dump.display
    assert pg_dump.records == {"backup": pg_dump.argv[3]}

    run, rollback = deploy.blocks
    assert run.text == "echo deploying v1.2 with ***"
    assert "t0k-plan-secret" not in run.calls[0].argv[-1]  # the script travels in env, not argv
    assert rollback.deferred_from == 1 and rollback.calls == ()
    assert rollback.text == "restore-backup db --from {{ previous.backup }}"
    assert rollback.destructive and rollback.confirmation == "yes"
    assert not (tmp_path / "state").exists()  # planning created nothing


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump not installed")
def test_fingerprint_is_stable_across_plans_and_moves_with_what_runs(tmp_path, cfg):
    first = build_plan(cfg, "local", book(tmp_path), {"tag": "v1.2"})
    time.sleep(1.1)  # a new backup file name: its time is not part of the fingerprint
    second = build_plan(cfg, "local", book(tmp_path), {"tag": "v1.2"})
    assert first.fingerprint == second.fingerprint and len(first.fingerprint) == 64
    assert first.steps[0].blocks[0].calls[1].command.argv != second.steps[0].blocks[0].calls[1].command.argv
    other = build_plan(cfg, "local", book(tmp_path), {"tag": "v1.3"})
    assert other.fingerprint != first.fingerprint
    edited = build_plan(cfg, "local", book(tmp_path, RUNBOOK.replace("echo deploying", "echo shipping")),
                        {"tag": "v1.2"})
    assert edited.fingerprint != first.fingerprint
    assert [s.fingerprint for s in edited.steps][0] == first.steps[0].fingerprint
    assert edited.steps[1].fingerprint != first.steps[1].fingerprint
    assert plan_fingerprint(first.runbook, first.environment, first.provider, first.protection, first.params,
                            first.steps) == first.fingerprint


def test_bad_params_and_environments_are_refused_before_anything(tmp_path, cfg):
    with pytest.raises(UserError, match="param 'tag'") as exc:
        build_plan(cfg, "local", book(tmp_path), {"tag": "V 1"})
    assert str(exc.value).startswith(str(tmp_path / "release.md") + ":")
    with pytest.raises(UserError, match="is for environments local, production, not 'staging'"):
        build_plan(cfg, "staging", book(tmp_path), {"tag": "v1"})


def test_providers_other_than_local_fail_with_one_line(tmp_path, cfg):
    text = "## Hello\n```sh\necho hi\n```\n"
    with pytest.raises(ConfigError) as exc:
        build_plan(cfg, "staging", book(tmp_path, text), {})
    message = str(exc.value)
    assert "\n" not in message and "provider 'compose'" in message and "opsconsole.toml:" in message


def test_local_cannot_scale_and_names_unknown_services(tmp_path, cfg):
    with pytest.raises(UserError, match="local provider cannot scale"):
        build_plan(cfg, "local", action_runbook(actions.parse("scale api --replicas 2")), {})
    with pytest.raises(UserError, match="has no service 'web' to deploy"):
        build_plan(cfg, "local", action_runbook(actions.parse("deploy web")), {})
    with pytest.raises(UserError, match="has no migrate command"):
        build_plan(cfg, "local", action_runbook(actions.parse("migrate")), {})


def test_an_action_verb_is_a_one_step_plan_and_rotate_secret_carries_its_undo(tmp_path, cfg):
    (tmp_path / ".env.local").write_text("JWT_SECRET=plan-old-value-1\n")
    plan = build_plan(cfg, "local", action_runbook(actions.parse("rotate-secret JWT_SECRET")), {})
    [step] = plan.steps
    run, undo = step.blocks
    assert (run.role, undo.role) == ("run", "rollback")
    assert run.confirmation == "yes" and run.destructive  # destructive: asks even in an open environment
    assert run.calls[0].display.startswith(f"rewrite {tmp_path / '.env.local'}: JWT_SECRET=*** (new value")
    assert undo.text == "rotate-secret JWT_SECRET --rollback"
    assert masking.mask("plan-old-value-1") == "***"  # the value it replaces is registered too
    assert (tmp_path / ".env.local").read_text() == "JWT_SECRET=plan-old-value-1\n"  # planning wrote nothing
    assert not (tmp_path / ".env.local.previous").exists()


def test_deploy_runs_the_configured_command_in_the_config_directory(tmp_path, cfg):
    plan = build_plan(cfg, "local", action_runbook(actions.parse("deploy api")), {})
    [call] = plan.steps[0].blocks[0].calls
    assert call.argv == ("bash", "-e", "-c", "./deploy.sh api") and call.cwd == tmp_path
    assert call.display == "./deploy.sh api"
