"""Confirmation tiers (docs/running.md#confirmation) and the headless rules of `run`, as plain functions."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from opsconsole import config
from opsconsole.engine import HeadlessPrompter, build_plan, confirmation_for
from opsconsole.errors import UserError
from opsconsole.runbook import Block, parse
from opsconsole.terminal import require_confirmations


def block(role: str = "run", confirm: str | None = None, lang: str = "sh") -> Block:
    return Block(lang=lang, role=role, confirm=confirm, timeout_s=None, retries=0, name=None, source="true\n",
                 line=1, attrs={})


# (protection, kind of change) -> level; kinds: a plain change, a destructive action, confirm=yes, confirm=typed,
# confirm=none (which can never lower what the environment demands).
EXPECTED = {
    ("open", "change"): "none", ("open", "destructive"): "yes", ("open", "confirm=yes"): "yes",
    ("open", "confirm=typed"): "yes", ("open", "confirm=none"): "none",
    ("confirm", "change"): "yes", ("confirm", "destructive"): "yes", ("confirm", "confirm=yes"): "yes",
    ("confirm", "confirm=typed"): "typed", ("confirm", "confirm=none"): "yes",
    ("typed", "change"): "typed", ("typed", "destructive"): "typed", ("typed", "confirm=yes"): "typed",
    ("typed", "confirm=typed"): "typed", ("typed", "confirm=none"): "typed",
}
KINDS = {"change": (None, False), "destructive": (None, True), "confirm=yes": ("yes", False),
         "confirm=typed": ("typed", False), "confirm=none": ("none", False)}


@pytest.mark.parametrize("protection,kind", sorted(EXPECTED))
def test_confirmation_matrix_for_changes(protection, kind):
    confirm, destructive = KINDS[kind]
    # A shell block of any role is a change: a "check" may delete as much as a "run" (docs/running.md#confirmation).
    for role in ("run", "rollback", "check", "verify"):
        assert confirmation_for(protection, block(role, confirm), destructive) == EXPECTED[protection, kind]


@pytest.mark.parametrize("protection,role,confirm,destructive", itertools.product(
    ("open", "confirm", "typed"), ("check", "verify"), (None, "none", "yes", "typed"), (False, True)))
def test_expect_checks_and_verifications_never_ask(protection, role, confirm, destructive):
    assert confirmation_for(protection, block(role, confirm, lang="ops"), destructive) == "none"


def test_unknown_protection_is_a_programming_error():
    with pytest.raises(ValueError):
        confirmation_for("sometimes", block(), False)


@pytest.mark.parametrize("level,yes,confirm_env,expected", [
    ("none", False, None, True),
    ("yes", False, None, False),  # cancel is the default
    ("yes", True, None, True),
    ("typed", True, None, False),
    ("typed", False, "prod", False),
    ("typed", True, "staging", False),
    ("typed", True, "prod", True),
])
def test_headless_prompter_answers_only_from_flags(level, yes, confirm_env, expected):
    prompter = HeadlessPrompter("prod", yes=yes, confirm_env=confirm_env)
    assert prompter.confirm(None, None, level) is expected


def test_headless_skip_needs_a_note_and_unknown_policies_are_refused():
    with pytest.raises(UserError, match="needs --note"):
        HeadlessPrompter("local", on_failure="skip")
    with pytest.raises(UserError, match="--on-failure must be one of"):
        HeadlessPrompter("local", on_failure="pray")
    assert HeadlessPrompter("local", on_failure="skip", note="known flaky").on_failure(None, None).note == "known flaky"


def test_headless_retry_is_tried_once_per_step_then_aborts():
    class Step:
        index = 3
    prompter = HeadlessPrompter("local", on_failure="retry")
    assert prompter.on_failure(Step, None).action == "retry"
    assert prompter.on_failure(Step, None).action == "abort"


RUNBOOK = """\
# Matrix

## Plain change
```sh
true
```

## Typed block
```sh {"confirm": "typed"}
true
```
"""


def plan_for(tmp_path: Path, protection: str, text: str = RUNBOOK, read_only: bool = False):
    cfg = config.parse(f'[environments.prod]\nprovider = "local"\nprotection = "{protection}"\n'
                       f'read_only = {"true" if read_only else "false"}\n'
                       '[environments.prod.services.db]\nkind = "tcp"\nurl = "tcp://127.0.0.1:5432"\n',
                       tmp_path / "opsconsole.toml", tmp_path)
    book, problems = parse(text, tmp_path / "matrix.md")
    assert problems == ()
    return build_plan(cfg, "prod", book, {})


@pytest.mark.parametrize("protection,levels", [("open", ["none", "yes"]), ("confirm", ["yes", "typed"]),
                                               ("typed", ["typed", "typed"])])
def test_plan_carries_each_blocks_confirmation(tmp_path, protection, levels):
    plan = plan_for(tmp_path, protection)
    assert [s.blocks[0].confirmation for s in plan.steps] == levels


@pytest.mark.parametrize("protection,yes,confirm_env,error", [
    ("open", False, None, "pass --yes"),
    ("open", True, None, None),  # confirm=typed asks y/N in an open environment: --yes is enough
    ("confirm", True, None, "--confirm-env prod"),
    ("confirm", True, "prod", None),
    ("typed", False, "prod", "pass --yes"),
    ("typed", True, None, "--confirm-env prod"),
    ("typed", True, "prod", None),
    ("typed", True, "staging", "does not match"),
])
def test_headless_run_rules(tmp_path, protection, yes, confirm_env, error):
    plan = plan_for(tmp_path, protection)
    check = lambda: require_confirmations(plan, plan.steps, tty=False, yes=yes, confirm_env=confirm_env)  # noqa: E731
    if error is None:
        check()
    else:
        with pytest.raises(UserError, match=error):
            check()


def test_with_a_terminal_the_prompts_decide_and_a_plan_without_changes_needs_nothing(tmp_path):
    plan = plan_for(tmp_path, "typed")
    require_confirmations(plan, plan.steps, tty=True, yes=False, confirm_env=None)
    checks_only = plan_for(tmp_path, "typed", "## Look\n```ops\nexpect db is ok\n```\n")
    require_confirmations(checks_only, checks_only.steps, tty=False, yes=False, confirm_env=None)
    # A shell check may change anything: headless on `typed`, it needs --yes and --confirm-env like any change.
    shell_check = plan_for(tmp_path, "typed", "## Look\n```sh {\"role\": \"check\"}\ntrue\n```\n")
    with pytest.raises(UserError, match="pass --yes"):
        require_confirmations(shell_check, shell_check.steps, tty=False, yes=False, confirm_env=None)
    with pytest.raises(UserError, match="--confirm-env"):
        require_confirmations(shell_check, shell_check.steps, tty=False, yes=True, confirm_env=None)


def test_read_only_marks_every_change_refused_but_still_plans_it(tmp_path):
    plan = plan_for(tmp_path, "open", read_only=True)
    assert [b.refused for s in plan.steps for b in s.blocks] == ["read-only environment"] * 2
    assert plan.read_only and len(plan.refused) == 2
