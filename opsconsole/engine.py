"""The runbook engine: plan, confirm, execute, verify, journal, and decide what to do on failure.

`build_plan` resolves a runbook for one environment into an immutable `Plan`: every block's exact
command or call (masked for display), its confirmation, and a fingerprint over all of it. `Engine`
drives a plan: it locks the environment, journals the run and each step, asks a `Prompter` to confirm
changes and to decide on failures, and streams output to it. It is synchronous and knows no UI: the
CLI drives it with a terminal or flags, the TUI from a worker thread.

What runs is exactly what was planned: before each block the engine re-derives the block's text and
the plan's fingerprint and refuses to go on if either moved.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opsconsole import actions, lint, masking, runner
from opsconsole.errors import UserError
from opsconsole.lock import LockLost
from opsconsole.providers import Call, Provider, for_environment, plan_action, records_of
from opsconsole.runbook import (Block, Runbook, Step, bind_params, parse_ops, placeholders, refuse_invisible, render,
                                value_text)
from opsconsole.runner import format_seconds

if TYPE_CHECKING:
    from opsconsole.config import Config, Environment
    from opsconsole.expect import Expectation
    from opsconsole.journal import Journal, RunRecord, StepRecord

LEVELS = ("none", "yes", "typed")  # confirmation, weakest first
CHANGE_ROLES = ("run", "rollback")  # an ops block changes things only in these roles; a shell block, in any
DECISIONS = ("retry", "rollback", "rollback-all", "skip", "abort")
VERIFY_TIMEOUT_S = 60.0
# A shell block without its own `timeout` is stopped after this long (plan shows it): long enough for a restore
# or a migration, short of a step left hanging all night; a check only reads.
SH_TIMEOUTS_S = {"run": 3600.0, "rollback": 3600.0, "check": 300.0}
# A follow command (`tail -f`, `kubectl logs -f`) where nobody can press a key to go on: watched this long.
FOLLOW_HEADLESS_S = 60.0


def _token_like(word: str) -> bool:
    """A word a generator printed that may be the secret: 8+ characters of a token's alphabet with a digit, or 20+
    (hex, base64, a UUID, pwgen's words); not `done` or `configured`, which masking everywhere would garble."""
    return len(word) >= 8 and bool(re.fullmatch(r"[A-Za-z0-9+/=_.:~!@#%^&*-]+", word)) and \
        (any(c.isdigit() for c in word) or len(word) >= 20)


class _Either:
    """Set when either event is: stops a follow command when the run is aborted or the engineer goes on."""

    def __init__(self, *events: threading.Event | None) -> None:
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)
_CANCELLED = "not confirmed: cancelled"
POLL_S = 2.0  # verify polls at most this far apart (or the config's refresh, if shorter)


# --- confirmation --------------------------------------------------------------------------------------------------

def confirmed_together(step: PlannedStep, block: PlannedBlock) -> tuple[PlannedBlock, ...]:
    """The blocks one confirmation asked at `block` covers (Engine._confirmed): the step's checks, runs and
    verifies resolved at plan time, or `block` alone (a rollback, or one resolved only when it runs)."""
    if block.role == "rollback" or block.deferred:
        return (block,)
    return tuple(b for b in step.changes if b.role != "rollback" and not b.deferred)


def shown_commands(blocks: Sequence[PlannedBlock]) -> str:
    """What a confirmation shows: each block's exact commands (masked), else its text."""
    return "\n".join("\n".join(c.display for c in b.calls) or b.text for b in blocks)


def is_change(block: Block) -> bool:
    """Whether running `block` may change something (docs/running.md): a shell block of any role may (a "check"
    can delete as well as a "run"); an ops block in a check or verify role only asserts (`expect`)."""
    return block.lang != "ops" or block.role in CHANGE_ROLES


def confirmation_for(protection: str, block: Block, destructive: bool) -> str:
    """How a block must be confirmed (docs/running.md): "none", "yes" (y/N) or "typed" (the environment's name).

    `expect` checks and verifications never ask. A block's own `confirm` can raise what the environment demands,
    never lower it; in an `open` environment the strongest it asks for is y/N.
    """
    if not is_change(block):
        return "none"
    asked = block.confirm or "none"
    if protection == "typed":
        return "typed"
    if protection == "confirm":
        return "typed" if asked == "typed" else "yes"
    if protection == "open":
        return "yes" if destructive or asked in ("yes", "typed") else "none"
    raise ValueError(f"unknown protection {protection!r}")


# --- the plan ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedBlock:
    block: Block
    text: str  # the resolved body (masked); the template itself when deferred
    calls: tuple[Call, ...]  # the exact commands / calls (sh: one command; ops: each action's calls)
    expectations: tuple[Expectation, ...]  # `expect` lines
    actions: tuple[actions.Action, ...]
    confirmation: str  # "none" | "yes" | "typed"
    destructive: bool
    refused: str | None = None  # why it may not run here (read-only)
    deferred_from: int | None = None  # uses {{ previous.* }}: rendered at run time from what step N recorded

    @property
    def role(self) -> str:
        return self.block.role

    @property
    def is_change(self) -> bool:
        return is_change(self.block)

    @property
    def deferred(self) -> bool:
        return self.deferred_from is not None

    @property
    def timeout_s(self) -> float | None:
        """The block's own `timeout`, else the default for a shell block of its role: a command that never ends
        (`tail -f`, a prompt nobody answers) cannot hold a step for ever. Verify blocks poll within
        VERIFY_TIMEOUT_S; ops verbs keep their providers' own limits."""
        if self.block.timeout_s is not None:
            return self.block.timeout_s
        return SH_TIMEOUTS_S.get(self.role) if self.block.lang == "sh" else None

    @property
    def timeout_is_default(self) -> bool:
        return self.block.timeout_s is None and self.timeout_s is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role, "lang": self.block.lang, "line": self.block.line, "name": self.block.name,
            "text": self.text, "calls": [c.display for c in self.calls],
            "confirmation": self.confirmation, "destructive": self.destructive, "refused": self.refused,
            "deferred_from": self.deferred_from, "timeout_s": self.timeout_s,
            "timeout_default": self.timeout_is_default, "follows": self.block.follows,
            "generates_secret": self.block.generates_secret,
        }


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    blocks: tuple[PlannedBlock, ...]
    fingerprint: str  # Step.fingerprint(): what resume compares

    @property
    def index(self) -> int:
        return self.step.index

    @property
    def title(self) -> str:
        return self.step.title

    def of_role(self, role: str) -> tuple[PlannedBlock, ...]:
        return tuple(b for b in self.blocks if b.role == role)

    @property
    def changes(self) -> tuple[PlannedBlock, ...]:
        return tuple(b for b in self.blocks if b.is_change)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "title": self.title, "context": list(self.step.context),
                "prose": self.step.prose, "line": self.step.line,
                "fingerprint": self.fingerprint, "blocks": [b.to_json() for b in self.blocks]}


@dataclass(frozen=True)
class Plan:
    runbook: Runbook
    environment: str
    provider: str
    protection: str
    read_only: bool
    params: Mapping[str, str]  # masked, as text
    steps: tuple[PlannedStep, ...]
    fingerprint: str
    values: Mapping[str, object] = field(default_factory=dict, repr=False)  # the bound params themselves

    @property
    def changes(self) -> tuple[PlannedBlock, ...]:
        return tuple(b for s in self.steps for b in s.changes)

    @property
    def refused(self) -> tuple[tuple[PlannedStep, PlannedBlock], ...]:
        return tuple((s, b) for s in self.steps for b in s.blocks if b.refused)

    @property
    def advice(self) -> list[lint.Advice]:
        """What a reviewer would say about the runbook's shell blocks, by line (lint.py): advice, not a refusal."""
        return lint.advice(self.runbook, self.provider)

    def to_json(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook.name, "path": str(self.runbook.path), "title": self.runbook.title,
            "content_hash": self.runbook.content_hash, "environment": self.environment, "provider": self.provider,
            "protection": self.protection, "read_only": self.read_only, "params": dict(self.params),
            "fingerprint": self.fingerprint, "steps": [s.to_json() for s in self.steps],
            "advice": [{"line": a.line, "message": a.message} for a in self.advice],
        }


def plan_fingerprint(runbook: Runbook, environment: str, provider: str, protection: str,
                     params: Mapping[str, str], steps: Sequence[PlannedStep]) -> str:
    """sha256 over the runbook's content hash, the environment, the masked params and every step's resolved
    text, calls and confirmations."""
    data = {
        "runbook": runbook.content_hash, "environment": environment, "provider": provider, "protection": protection,
        "params": sorted(params.items()),
        "steps": [[s.index, s.fingerprint, [[b.role, b.text, [c.fingerprint_text for c in b.calls],
                                            b.confirmation, b.refused, b.deferred_from] for b in s.blocks]]
                  for s in steps],
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _resolve_environment(config: Config, env: Environment | str | None) -> Environment:
    if env is None or isinstance(env, str):
        return config.environment(env)
    return env


def build_plan(config: Config, env: Environment | str | None, runbook: Runbook, given_params: Mapping[str, object],
               *, read_only: bool = False, provider: Provider | None = None) -> Plan:
    """Resolve `runbook` for `env`: bind params, render every block, plan every action. Changes nothing."""
    environment = _resolve_environment(config, env)
    if runbook.environments is not None and environment.name not in runbook.environments:
        raise UserError(f"runbook {runbook.name} is for environments {', '.join(runbook.environments)}, "
                        f"not {environment.name!r}", runbook.path)
    values = bind_params(runbook, given_params, environment)
    provider = provider or for_environment(config, environment)
    read_only = read_only or environment.read_only
    steps = tuple(PlannedStep(step, tuple(_plan_block(runbook, step, b, values, provider, environment, read_only)
                                          for b in step.blocks), step.fingerprint())
                  for step in runbook.steps)
    _check_expectations(runbook, steps, environment)
    params = {k: masking.mask(value_text(v)) for k, v in values.items() if v is not None}
    return Plan(runbook=runbook, environment=environment.name, provider=environment.provider,
                protection=environment.protection, read_only=read_only, params=params, steps=steps,
                fingerprint=plan_fingerprint(runbook, environment.name, environment.provider,
                                             environment.protection, params, steps),
                values=values)


def _check_expectations(runbook: Runbook, steps: Sequence[PlannedStep], environment: Environment) -> None:
    """Refuse a plan whose `expect` names a member or field the environment cannot report: such a check could
    only fail at its step, after the changes before it have run."""
    from opsconsole import expect

    for planned in steps:
        for block in planned.blocks:
            for exp in block.expectations:
                why = expect.unknowable(exp, environment)
                if why is not None:
                    raise UserError(f"`{exp.text}`: {why}", runbook.path, exp.line)


def _plan_block(runbook: Runbook, step: Step, block: Block, values: Mapping[str, object], provider: Provider,
                environment: Environment, read_only: bool) -> PlannedBlock:
    refused = "read-only environment" if read_only and is_change(block) else None
    previous = sorted(p.split(".", 1)[1] for p in placeholders(block) if p.startswith("previous."))
    if previous:
        verbs = _verbs(block.source) if block.lang == "ops" else []
        destructive = any(v in actions.DESTRUCTIVE for v in verbs)
        return PlannedBlock(block=block, text=masking.mask(block.source.rstrip("\n")), calls=(), expectations=(),
                            actions=(), confirmation=confirmation_for(environment.protection, block, destructive),
                            destructive=destructive, refused=refused,
                            deferred_from=_recorded_by(runbook, step, previous))
    text, calls, expectations, acts = resolve_block(block, values, {}, provider, runbook.path)
    destructive = any(a.destructive for a in acts)
    return PlannedBlock(block=block, text=text, calls=calls, expectations=expectations, actions=acts,
                        confirmation=confirmation_for(environment.protection, block, destructive),
                        destructive=destructive, refused=refused)


def resolve_block(block: Block, values: Mapping[str, object], recorded: Mapping[str, object], provider: Provider,
                  path: Path | str | None) -> tuple[str, tuple[Call, ...], tuple[Expectation, ...],
                                                    tuple[actions.Action, ...]]:
    """(masked text, calls, expectations, actions) of one block rendered with `values` and `recorded`."""
    rendered = render(block, values, recorded, path)
    text = masking.mask(rendered.rstrip("\n"))
    if block.lang == "sh":
        return text, (provider.shell(rendered),), (), ()
    items = parse_ops(block, rendered, path)
    acts = tuple(i for i in items if isinstance(i, actions.Action))
    expectations = tuple(i for i in items if not isinstance(i, actions.Action))
    calls: list[Call] = []
    for action in acts:
        calls.extend(plan_action(provider, action))
    return text, tuple(calls), expectations, acts


def _verbs(source: str) -> list[str]:
    lines = (ln.strip() for ln in source.splitlines())
    return [ln.split()[0] for ln in lines if ln and not ln.startswith("#")]


def _recorded_by(runbook: Runbook, step: Step, keys: list[str]) -> int:
    """The latest step up to `step` whose actions record one of `keys` (else `step` itself)."""
    for earlier in reversed(runbook.steps[:step.index]):
        for block in earlier.blocks:
            if block.lang == "ops" and block.role == "run" and any(
                    key in actions.RECORDS.get(verb, ()) for verb in _verbs(block.source) for key in keys):
                return earlier.index
    return step.index


def action_runbook(action: actions.Action, env: Environment | None = None) -> Runbook:
    """A one-step runbook for an action verb typed on the command line (same engine, journal and lock).

    rotate-secret gets its own undo as the step's rollback block and, given its environment, a verify
    block: every service it restarts that has a health probe must come back ok (polled like any verify,
    up to the secret's `verify_timeout`, default VERIFY_TIMEOUT_S).
    A verified rotation forgets the previous value it kept (see Engine._confirm_rotations)."""
    text = action.text()
    blocks = [Block(lang="ops", role="run", confirm=None, timeout_s=None, retries=0, name=action.verb,
                    source=text + "\n", line=1, attrs={})]
    if action.verb == "rotate-secret" and not action.rollback:
        undo = actions.Action(verb=action.verb, secret=action.secret, restart=action.restart, rollback=True)
        blocks.append(Block(lang="ops", role="rollback", confirm=None, timeout_s=None, retries=0, name="undo",
                            source=undo.text() + "\n", line=1, attrs={"role": "rollback"}))
    probed = _restarted_probes(action, env) if action.verb == "rotate-secret" and env is not None else ()
    if probed:
        timeout = env.secrets.get(action.secret or "", {}).get("verify_timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or timeout <= 0):
            raise UserError(f"[environments.{env.name}.secrets.{action.secret}] verify_timeout must be a number of "
                            f"seconds above 0, got {timeout!r}")
        blocks.append(Block(lang="ops", role="verify", confirm=None, timeout_s=timeout, retries=0, name="healthy",
                            source="".join(f"expect {name} is ok\n" for name in probed), line=1,
                            attrs={"role": "verify"}))
    step = Step(index=1, title=text, prose="", blocks=tuple(blocks), line=1)
    return Runbook(path=Path(f"opsconsole {text}"), name=action.verb, title=text, summary="", environments=None,
                   params=(), steps=(step,), content_hash=hashlib.sha256(text.encode()).hexdigest())


def _restarted_probes(action: actions.Action, env: Environment) -> tuple[str, ...]:
    """The services a rotation restarts (--restart, then the secret's `restart` list) that have a probe."""
    configured = env.secrets.get(action.secret or "", {}).get("restart", [])
    if isinstance(configured, str):
        configured = [configured]
    if not isinstance(configured, list):
        configured = []  # the provider refuses a malformed list, with its line
    names = [*action.restart, *(n for n in configured if isinstance(n, str))]
    probed = {t.name for t in env.services if t.probed}
    return tuple(n for n in dict.fromkeys(names) if n in probed)


# --- what the engine tells its prompter ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    action: str  # one of DECISIONS
    note: str = ""

    def __post_init__(self) -> None:
        if self.action not in DECISIONS:
            raise ValueError(f"unknown decision {self.action!r} (known: {', '.join(DECISIONS)})")


@dataclass(frozen=True)
class Failure:
    """Why a step failed, for the prompter's decision."""

    step: PlannedStep
    block: PlannedBlock | None
    phase: str  # "check" | "run" | "verify" | "confirm"
    message: str  # one line, masked
    attempt: int
    result: runner.Result | None = None


@dataclass(frozen=True)
class Event:
    """Progress, for the terminal or the TUI. `message` is masked and fit to print."""

    kind: str  # run-started | run-resumed | step-started | step-done-before | block-started | call-started |
    #            call-finished | verify-attempt | step-finished | rollback-started | rollback-finished | note |
    #            run-finished
    message: str
    step: PlannedStep | None = None
    block: PlannedBlock | None = None
    status: str | None = None


class Prompter(Protocol):
    """How the engine asks and tells: the CLI implements it with the terminal or flags, the TUI with dialogs."""

    def confirm(self, step: PlannedStep, block: PlannedBlock, level: str) -> bool: ...

    def on_failure(self, step: PlannedStep, error: Failure) -> Decision: ...

    def output(self, line: str) -> None: ...

    def event(self, event: Event) -> None: ...


class HeadlessPrompter:
    """Answers from flags: `--yes` confirms y/N, `--confirm-env NAME` typed confirmations; failures follow
    `--on-failure` (default abort). A retry is tried once per step; if it fails again the run aborts."""

    def __init__(self, environment: str, *, yes: bool = False, confirm_env: str | None = None,
                 on_failure: str = "abort", note: str = "", write: Callable[[str], None] | None = None,
                 retry_limit: int = 1) -> None:
        if on_failure not in DECISIONS:
            raise UserError(f"--on-failure must be one of {', '.join(DECISIONS)}, got {on_failure!r}")
        if on_failure == "skip" and not note.strip():
            raise UserError("--on-failure skip needs --note TEXT (why skipping is fine), for the journal")
        self.environment = environment
        self.yes = yes
        self.confirm_env = confirm_env
        self.policy = on_failure
        self.note = note
        self.write = write or (lambda line: None)
        self.retry_limit = retry_limit
        self._retries: dict[int, int] = {}

    def confirm(self, step: PlannedStep, block: PlannedBlock, level: str) -> bool:
        if level == "none":
            return True
        if level == "typed":
            return self.yes and self.confirm_env == self.environment
        return self.yes

    def on_failure(self, step: PlannedStep, error: Failure) -> Decision:
        if self.policy == "retry":
            used = self._retries.get(step.index, 0)
            if used >= self.retry_limit:
                return Decision("abort", f"retried {used} time(s), still failing")
            self._retries[step.index] = used + 1
            return Decision("retry")
        return Decision(self.policy, self.note if self.policy == "skip" else "")

    def output(self, line: str) -> None:
        self.write(f"    | {line}")

    def event(self, event: Event) -> None:
        self.write(event.message)


# --- execution -----------------------------------------------------------------------------------------------------

class PlanChanged(RuntimeError):
    """The plan or a block's rendering moved under the engine: nothing more may run."""


class JournalLost(UserError):
    """The journal stayed unwritable past `journal_retry`: the run stopped, and this says where it stands.

    No step starts once the journal cannot record it: a step the journal never heard of could run twice on a
    resume, or be missing from the audit trail. `resumable` is False when the run itself was never recorded.
    """

    def __init__(self, run_id: str, message: str, resumable: bool = True) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.resumable = resumable


@dataclass
class _Attempt:
    """What one attempt of a step has done so far (for its journal record)."""

    started_at: datetime
    commands: list[str] = field(default_factory=list)
    tails: list[str] = field(default_factory=list)
    verification: list[str] = field(default_factory=list)
    recorded: dict[str, object] = field(default_factory=dict)
    exit_status: int | None = None
    confirmed: bool = False  # the step's changes (checks, runs, verifies) were confirmed, once, together

    def tail(self) -> str:
        return "\n".join(t for t in self.tails if t)[-runner.TAIL_CHARS:]

    @classmethod
    def of(cls, record: StepRecord) -> _Attempt:
        """The state of an attempt a previous process journaled (to add a rollback to it)."""
        return cls(started_at=record.started_at, commands=list(record.commands), tails=[record.output_tail],
                   verification=[record.verification] if record.verification else [],
                   recorded=dict(record.recorded), exit_status=record.exit_status)


class Engine:
    """Drives one plan to its end, through the journal and the environment's lock. Synchronous."""

    def __init__(self, plan: Plan, journal: Journal, config: Config, env: Environment | str | None,
                 prompter: Prompter, *, take_over: bool = False, provider: Provider | None = None,
                 cancel: threading.Event | None = None, interrupted: threading.Event | None = None) -> None:
        self.plan = plan
        self.journal = journal
        self.config = config
        self.env = _resolve_environment(config, env)
        if self.env.name != plan.environment:
            raise ValueError(f"plan is for {plan.environment!r}, engine for {self.env.name!r}")
        self.prompter = prompter
        self.take_over = take_over
        self.provider = provider or for_environment(config, self.env)
        self.cancel = cancel
        # Set with `cancel` when opsconsole itself is going (the terminal closed, the TUI quit mid-step): the run
        # is journaled `interrupted`, as a crash leaves it, and the next start says so; `cancel` alone is `a`.
        self.interrupted = interrupted
        self.run_id = ""
        self._lock: Any = None
        self._recorded: dict[int, dict[str, object]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._monitor: Any = None
        # Secrets rotated in this run that no verify has confirmed yet: their previous values stay kept.
        self._unconfirmed: dict[str, None] = {}

    # -- the run --

    def run(self, resume: RunRecord | None = None) -> RunRecord:
        """Run the plan (or continue `resume`); returns the journal's record of the run.

        Raises UserError before anything runs (read-only, resume refused, lock held). KeyboardInterrupt is
        re-raised after the step is journaled: the run stays resumable.
        """
        from opsconsole import journal as journal_mod
        from opsconsole.lock import LockHolder

        if self.plan.refused:
            step, block = self.plan.refused[0]
            raise UserError(f"environment {self.plan.environment!r} is read-only: step {step.index} "
                            f"({step.title}) would change it; nothing was run")
        try:  # what is shown must be what runs: a hidden character in a block is refused where names are typed
            refuse_invisible(self.plan.runbook, self.plan.environment, self.plan.protection)
            lint.refuse_development(self.plan.runbook, self.plan.environment, self.plan.protection)
        except UserError as exc:
            raise UserError(f"{exc.message}; nothing was run", exc.path, exc.line) from None
        done: dict[int, StepRecord] = {}
        attempts: dict[int, int] = {}
        if resume is not None:
            check_resume(self.plan, resume)
            for index, record in resume.latest_steps().items():
                attempts[index] = record.attempt
                self._recorded[index] = dict(record.recorded)
                if record.status in journal_mod.DONE:
                    done[index] = record
            self.run_id = resume.run_id
        else:
            self.run_id = journal_mod.new_run_id()
        self.provider.run_id = self.run_id
        holder = LockHolder.for_run(self.run_id, self.plan.runbook.name)
        self._lock = self.journal.lock(self.plan.environment, holder, take_over=self.take_over)
        try:
            if resume is not None:
                self._journaled(lambda: self.journal.start_run(resume), "resume the run")
                self._event("run-resumed", f"Resuming run {self.run_id} of {self.plan.runbook.name} on "
                                           f"{self.plan.environment}: {len(done)} of {len(self.plan.steps)} "
                                           f"steps already done")
            else:
                record = journal_mod.new_run(
                    runbook_path=self.plan.runbook.path, runbook_name=self.plan.runbook.name,
                    content_hash=self.plan.runbook.content_hash, plan_fingerprint=self.plan.fingerprint,
                    environment=self.plan.environment, params=self.plan.params, plan=self.plan.to_json(),
                    run_id=self.run_id)
                self._journaled(lambda: self.journal.start_run(record), "start the run", resumable=False)
                self._event("run-started", f"Run {self.run_id}: {self.plan.runbook.title} on "
                                           f"{self.plan.environment} ({len(self.plan.steps)} steps)")
            try:
                status = self._drive(done, attempts)
            except (runner.Aborted, PlanChanged, LockLost) as exc:
                ended = "interrupted" if self.interrupted is not None and self.interrupted.is_set() else "aborted"
                self._journaled(lambda: self.journal.finish_run(self.run_id, ended), f"record that it {ended}")
                self._event("run-finished", f"Run {self.run_id} {ended}: {masking.mask(str(exc))}", status=ended)
                if isinstance(exc, (PlanChanged, LockLost)):
                    raise UserError(f"run {self.run_id} aborted: {exc}") from None
                return self.journal.get(self.run_id)
            self._journaled(lambda: self.journal.finish_run(self.run_id, status),
                            f"record its end (every step done, run {status})")
            self._event("run-finished", f"Run {self.run_id} {status}", status=status)
        finally:
            self._release_lock()
            self._close_monitor()
        return self.journal.get(self.run_id)

    def _release_lock(self) -> None:
        from opsconsole.journal import JournalUnavailable

        try:
            self._lock.release()
        except JournalUnavailable as exc:
            # Our holder row stays behind; it reads as dead once this process is gone (or after the stale timeout
            # on other hosts), and resuming this run replaces it.
            self._event("note", f"The environment's lock could not be released ({exc}); it frees itself when "
                                "this process exits")

    def _journaled(self, write: Callable[[], None], doing: str, *, resumable: bool = True) -> None:
        """Write to the journal, retrying an unavailable one for `journal_retry` seconds; then raise JournalLost.

        `doing` completes "could not ..." in the message: what was being recorded, and so what the journal lacks.
        """
        from opsconsole.journal import JournalUnavailable

        patience = self.config.journal_retry
        deadline = time.monotonic() + patience
        waited = False
        while True:
            try:
                write()
                if waited:
                    self._event("note", "The journal is back; going on")
                return
            except JournalUnavailable as exc:
                stopped = self.cancel is not None and self.cancel.is_set()
                if time.monotonic() >= deadline or stopped:
                    raise self._lost(exc, doing, resumable) from None
                if not waited:
                    self._event("note", f"The journal cannot be written ({exc.reason}); retrying for up to "
                                        f"{format_seconds(patience)} s before stopping")
                    waited = True
                if self.cancel is not None:
                    self.cancel.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                else:
                    time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def _lost(self, exc: Any, doing: str, resumable: bool) -> JournalLost:
        what = "nothing was run" if not resumable else f"{doing}; no further step was started"
        return JournalLost(self.run_id, f"run {self.run_id} stopped: the journal {exc.location} cannot be written "
                                        f"({exc.reason}): could not {what}", resumable=resumable)

    def _drive(self, done: Mapping[int, StepRecord], attempts: dict[int, int]) -> str:
        # What rollback-all undoes: steps that succeeded (a skipped step never finished its change).
        finished = [s for s in self.plan.steps if s.index in done and done[s.index].status == "succeeded"]
        states = {index: _Attempt.of(record) for index, record in done.items()}
        position = 0
        while position < len(self.plan.steps):
            step = self.plan.steps[position]
            if step.index in done:
                self._event("step-done-before", f"Step {step.index}/{len(self.plan.steps)}: {step.title}: "
                                                f"{done[step.index].status} before, not run again", step=step,
                            status=done[step.index].status)
                if done[step.index].status == "succeeded":
                    self._unconfirmed.update(dict.fromkeys(_rotated(step)))
                position += 1
                continue
            attempt = attempts.get(step.index, 0) + 1
            attempts[step.index] = attempt
            state = _Attempt(started_at=datetime.now(UTC))
            states[step.index] = state
            try:
                failure = self._run_step(step, attempt, state)
            except (KeyboardInterrupt, runner.Aborted, PlanChanged, LockLost) as exc:
                # Journal where it stopped: the step is unfinished, so a resume runs it again.
                why = "interrupted" if isinstance(exc, KeyboardInterrupt) else masking.mask(str(exc))
                self._record(step, attempt, "failed", state, note=why)
                self._event("step-finished", f"Step {step.index} stopped: {why}", step=step, status="failed")
                raise
            if failure is None:
                self._confirm_rotations(step, state)
                self._record(step, attempt, "succeeded", state)
                kept = ", ".join(f"previous.{k}={v}" for k, v in state.recorded.items())
                self._event("step-finished", f"Step {step.index} succeeded" + (f" (recorded {kept})" if kept else ""),
                            step=step, status="succeeded")
                finished.append(step)
                position += 1
                continue
            self._record(step, attempt, "failed", state, note=failure.message if failure.phase == "confirm" else "")
            self._event("step-finished", f"Step {step.index} failed: {failure.message}", step=step, status="failed")
            if failure.phase == "confirm":
                return "aborted"  # the user said no: nothing to decide
            decision = self.prompter.on_failure(step, failure)
            if decision.action == "retry":
                self._event("note", f"Retrying step {step.index}", step=step)
                continue
            if decision.action == "skip":
                note = decision.note.strip() or "skipped"
                self._record(step, attempt, "skipped", state, note=note)
                self._event("note", f"Step {step.index} skipped: {masking.mask(note)}", step=step)
                position += 1
                continue
            if decision.action in ("rollback", "rollback-all"):
                ok = self._roll_back(step, attempt, state)
                if decision.action == "rollback-all":
                    for earlier in reversed(finished):
                        if not ok:
                            self._event("note", "Stopping the rollback: earlier steps are left as they are")
                            break
                        ok = self._roll_back(earlier, attempts.get(earlier.index, 1), states[earlier.index])
                return "failed"
            if decision.note:
                self._event("note", f"Aborting: {masking.mask(decision.note)}", step=step)
            return "aborted"
        return "succeeded"

    # -- one step --

    def _run_step(self, step: PlannedStep, attempt: int, state: _Attempt) -> Failure | None:
        self._record(step, attempt, "running", state)
        retry = f" (attempt {attempt})" if attempt > 1 else ""
        self._event("step-started", f"Step {step.index}/{len(self.plan.steps)}: {step.title}{retry}", step=step)
        recorded = self._recorded.setdefault(step.index, {})
        recorded.clear()  # a retry records afresh
        # Checks first: a failing check stops the step before any of its changes.
        for block in step.of_role("check"):
            ok, message = self._check(step, block, state)
            if not ok:
                return Failure(step, block, "confirm" if message is _CANCELLED else "check",
                               message if message is _CANCELLED else f"check failed: {message}", attempt)
        for block in step.of_role("run"):
            failure = self._change(step, block, state, attempt)
            if failure is not None:
                return failure
        for block in step.of_role("verify"):
            ok, message = self._verify(step, block, state)
            if not ok:
                return Failure(step, block, "confirm" if message is _CANCELLED else "verify",
                               message if message is _CANCELLED else f"verification failed: {message}", attempt)
        return None

    def _check(self, step: PlannedStep, block: PlannedBlock, state: _Attempt) -> tuple[bool, str]:
        self._guard(block)
        try:
            calls = () if block.expectations else self._calls(step, block)
        except UserError as exc:
            return False, masking.mask(str(exc))
        self._event("block-started", _describe(block, calls), step=step, block=block)
        if not self._confirmed(step, block, calls, state):
            return False, _CANCELLED
        if block.expectations:
            ok, message = self._expectations(block.expectations)
        else:
            ok, message = self._commands(step, block, calls, state, timeout_s=block.timeout_s)
        state.verification.append(("check ok: " if ok else "check failed: ") + message)
        return ok, message

    def _change(self, step: PlannedStep, block: PlannedBlock, state: _Attempt, attempt: int,
                forward: bool = True) -> Failure | None:
        self._guard(block)
        try:
            calls = self._calls(step, block)
        except UserError as exc:  # a {{ previous.* }} block that cannot be resolved: nothing ran
            return Failure(step, block, "run", masking.mask(str(exc)), attempt)
        self._event("block-started", _describe(block, calls), step=step, block=block)
        if not self._confirmed(step, block, calls, state, forward):
            return Failure(step, block, "confirm", _CANCELLED, attempt)
        ok, message = self._commands(step, block, calls, state, timeout_s=block.timeout_s)
        if block.block.expected:
            self._compare_expected(step, block, state)
        if not ok:  # with what it printed last, for the failure dialog
            result = runner.Result(state.exit_status if state.exit_status is not None else 1, state.tail(), 0.0)
            return Failure(step, block, "run", message, attempt, result)
        return None

    def _confirmed(self, step: PlannedStep, block: PlannedBlock, calls: Sequence[Call], state: _Attempt,
                   forward: bool = True) -> bool:
        """Ask as the step's changes demand (a shell check or verify too: it may change as much as a run), once
        per attempt and together (docs/running.md): the first block that needs it asks at the strongest level of
        the step's checks, runs and verifies, and the prompter shows them all. A block resolved only now (from
        `{{ previous.* }}`) and each rollback block ask on their own. False, journaled as not confirmed, when the
        engineer cancels. Then make sure the lock is still ours."""
        together = forward and not block.deferred
        if block.confirmation != "none" and not (together and state.confirmed):
            level = block.confirmation
            if together:
                levels = [b.confirmation for b in step.changes if b.role != "rollback" and not b.deferred]
                level = max([level, *levels], key=LEVELS.index)
            if not self.prompter.confirm(step, block, level):
                state.commands.extend(f"(not confirmed) {c.display}" for c in calls)
                return False
            state.confirmed = state.confirmed or together
        if block.is_change:
            self._lock.ensure_held()
        return True

    def _verify(self, step: PlannedStep, block: PlannedBlock, state: _Attempt) -> tuple[bool, str]:
        """Poll until every expectation holds (or the command exits 0), within the block's timeout and retries."""
        self._guard(block)
        try:
            calls = () if block.expectations else self._calls(step, block)
        except UserError as exc:
            return False, masking.mask(str(exc))
        self._event("block-started", _describe(block, calls), step=step, block=block)
        if not self._confirmed(step, block, calls, state):
            return False, _CANCELLED
        timeout = block.block.timeout_s or VERIFY_TIMEOUT_S
        limit = block.block.retries + 1 if "retries" in block.block.attrs else None
        spacing = min(POLL_S, self.config.refresh)
        started = time.monotonic()
        deadline = started + timeout
        tries = 0
        while True:
            tries += 1
            if block.expectations:
                ok, message = self._expectations(block.expectations)
            else:
                ok, message = self._commands(step, block, calls, state, timeout_s=max(deadline - time.monotonic(), 0.1),
                                             log_commands=tries == 1)
            self._event("verify-attempt", f"    attempt {tries}: {'holds' if ok else 'not yet'}: {message}",
                        step=step, block=block, status="ok" if ok else "waiting")
            if ok:
                state.verification.append(f"verified: {message}" + (f" (attempt {tries})" if tries > 1 else ""))
                return True, message
            elapsed = time.monotonic() - started
            if (limit is not None and tries >= limit) or time.monotonic() + spacing > deadline:
                why = f"{tries} attempt(s) in {elapsed:.0f} s"
                state.verification.append(f"not verified: {message} ({why})")
                return False, f"{message} ({why})"
            self._sleep(spacing)

    def _calls(self, step: PlannedStep, block: PlannedBlock) -> tuple[Call, ...]:
        if not block.deferred:
            return block.calls
        recorded = self._recorded_for(step)
        _, calls, _, _ = resolve_block(block.block, self.plan.values, recorded, self.provider, self.plan.runbook.path)
        return calls

    def _commands(self, step: PlannedStep, block: PlannedBlock, calls: Sequence[Call], state: _Attempt,
                  timeout_s: float | None, log_commands: bool = True) -> tuple[bool, str]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        recorded = self._recorded.setdefault(step.index, {})
        for call in calls:
            if log_commands:
                state.commands.append(call.display)
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.1)
            if len(calls) > 1:  # a single call was shown with its block
                self._event("call-started", f"    $ {_indent(call.display, 6)}", step=step, block=block)
            if block.block.generates_secret:
                result = self._generate(step, block, call, remaining)
            elif block.block.follows:
                result = self._follow(step, block, call, remaining)
            else:
                result = self.provider.execute(call, remaining, self.prompter.output, self.cancel)
            state.exit_status = result.exit_status
            state.tails.append(result.output_tail)
            if not result.ok:
                why = result.describe()
                if result.timed_out and timeout_s:  # the block's timeout, not what was left of it
                    why = f"timed out after {format_seconds(timeout_s)} s"
                return False, f"{_one_line(call.display, 80)}: {why}"
            values = {**records_of(call), **result.recorded}
            recorded.update(values)
            state.recorded.update(values)
        return True, "exit 0"

    def _compare_expected(self, step: PlannedStep, block: PlannedBlock, state: _Attempt) -> None:
        """A copied terminal session shows the output the doc expects: when the real output lacks some of its
        lines, the journal notes it (names, ages and counts often differ: a note, never a failure)."""
        expected = [" ".join(line.split()) for line in block.block.expected.splitlines() if line.strip()]
        seen = {" ".join(line.split()) for line in state.tail().splitlines()}
        missing = [line for line in expected if line not in seen]
        if not missing:
            return
        note = (f"output differs from what the doc shows: {len(expected) - len(missing)} of {len(expected)} "
                f"line(s) seen; first missing: {_one_line(masking.mask(missing[0]), 80)}")
        state.verification.append(note)
        self._event("note", f"    {note}", step=step, block=block)

    def _generate(self, step: PlannedStep, block: PlannedBlock, call: Call, remaining: float | None) -> runner.Result:
        """A block that prints a new secret: every line it prints is masked from now on (screen, journal, later
        output) and none is shown; the journal keeps no output of it."""
        hidden = [0]

        def swallow(line: str) -> None:
            for word in line.split():  # `pwgen 12 3` prints three on a line
                if _token_like(word):
                    masking.register(word)
            hidden[0] += 1

        result = self.provider.execute(call, remaining, swallow, self.cancel)
        self._event("note", f"    {hidden[0]} line(s) of output hidden: this block generates a secret, now masked "
                            "wherever it appears", step=step, block=block)
        return runner.Result(result.exit_status, "", result.duration_s, timed_out=result.timed_out,
                             error=result.error, recorded=result.recorded)

    def _follow(self, step: PlannedStep, block: PlannedBlock, call: Call, remaining: float | None) -> runner.Result:
        """A command that streams until stopped (`logs -f`): it runs until the engineer goes on (the prompter's
        `follow`) or, where nobody can (headless), for FOLLOW_HEADLESS_S or the block's own timeout. Either way
        it ends as a success with its output kept; an abort (the run's cancel) still stops the run."""
        stop = threading.Event()
        follow = getattr(self.prompter, "follow", None)
        done = follow(step, block, stop) if follow is not None else None
        bound = remaining
        if done is None:  # nobody can say when: a bounded look at the stream
            limit = block.block.timeout_s or FOLLOW_HEADLESS_S
            bound = limit if remaining is None else min(limit, remaining)
        started = time.monotonic()
        seen: list[str] = []  # what it printed, kept for the journal when it is stopped

        def output(line: str) -> None:
            seen.append(line)
            del seen[:-200]
            self.prompter.output(line)

        try:
            result = self.provider.execute(call, bound, output, _Either(self.cancel, stop))
        except runner.Aborted:
            if not stop.is_set() or (self.cancel is not None and self.cancel.is_set()):
                raise
            result = runner.Result(0, "\n".join(seen)[-runner.TAIL_CHARS:], time.monotonic() - started)
            why = "you went on"
        else:
            if not (result.timed_out and done is None):
                return result
            result = runner.Result(0, result.output_tail, result.duration_s)
            why = f"followed for {format_seconds(bound or 0)} s, as a run without a terminal does"
        finally:
            if done is not None:
                done()
        self._event("note", f"    stopped following ({why}): {_one_line(call.display, 60)}", step=step, block=block)
        return result

    def _expectations(self, expectations: Sequence[Expectation]) -> tuple[bool, str]:
        from opsconsole import expect

        rnd = self._round()
        results = [expect.evaluate(e, rnd) for e in expectations]
        ok = all(holds for holds, _ in results)
        return ok, masking.mask("; ".join(why for _, why in results))

    def _confirm_rotations(self, step: PlannedStep, state: _Attempt) -> None:
        """A rotation is confirmed good once a verify passes after it (its own step's, or a later one's): then
        the previous value it kept in the OS keyring is forgotten. Until then it stays, for `--rollback`."""
        from opsconsole import secret_values

        rotated = _rotated(step)
        self._unconfirmed.update(dict.fromkeys(rotated))
        if not step.of_role("verify"):
            for name in rotated:
                if secret_values.previous(self.env.name, name) is not None:
                    self._event("note", f"Nothing has verified the rotation of {name} yet: its previous value stays "
                                        f"in the OS keyring for `opsconsole rotate-secret {name} --rollback`",
                                step=step)
            return
        for name in list(self._unconfirmed):
            try:
                if not secret_values.forget_previous(self.env.name, name):
                    continue  # nothing was kept (no keyring, or a provider that keeps its own history)
                message = f"Rotation of {name} verified: its previous value is forgotten from the OS keyring"
            except UserError as exc:
                message = f"Rotation of {name} verified; its previous value could not be forgotten: {exc.message}"
            state.verification.append(message)
            self._event("note", message, step=step)
        self._unconfirmed.clear()

    # -- rollback --

    def _roll_back(self, step: PlannedStep, attempt: int, state: _Attempt) -> bool:
        """Run the step's rollback blocks; the journal keeps the attempt's record, with the rollback added."""
        blocks = step.of_role("rollback")
        if not blocks:
            self._event("note", f"Step {step.index} has no rollback blocks: nothing to roll back", step=step)
            return True
        self._event("rollback-started", f"Rolling back step {step.index}: {step.title}", step=step)
        for block in blocks:
            failure = self._change(step, block, state, attempt, forward=False)
            if failure is not None:
                note = f"rollback failed: {failure.message}"
                self._record(step, attempt, "rollback-failed", state, note=note)
                self._event("rollback-finished", f"Step {step.index} {note}", step=step, status="rollback-failed")
                return False
        self._record(step, attempt, "rolled-back", state)
        self._event("rollback-finished", f"Step {step.index} rolled back", step=step, status="rolled-back")
        return True

    # -- helpers --

    def _recorded_for(self, step: PlannedStep) -> dict[str, object]:
        """Values recorded so far, the step's own last (they win over earlier steps')."""
        merged: dict[str, object] = {}
        for index in sorted(self._recorded):
            if index != step.index:
                merged.update(self._recorded[index])
        merged.update(self._recorded.get(step.index, {}))
        return merged

    def _guard(self, block: PlannedBlock) -> None:
        """What runs is what was planned: the plan's fingerprint and the block's rendering must not have moved."""
        now = plan_fingerprint(self.plan.runbook, self.plan.environment, self.plan.provider, self.plan.protection,
                               self.plan.params, self.plan.steps)
        if now != self.plan.fingerprint:
            raise PlanChanged(f"the plan changed while running (fingerprint {now[:12]}, planned "
                              f"{self.plan.fingerprint[:12]}); stopping")
        if not block.deferred:
            again = masking.mask(render(block.block, self.plan.values, {}, self.plan.runbook.path).rstrip("\n"))
            if again != block.text:
                raise PlanChanged(f"block at line {block.block.line} renders differently than planned; stopping")

    def _record(self, step: PlannedStep, attempt: int, status: str, state: _Attempt, note: str = "") -> None:
        from opsconsole.journal import StepRecord

        ended = None if status == "running" else datetime.now(UTC)
        record = StepRecord(
            run_id=self.run_id, index=step.index, title=step.title, status=status, started_at=state.started_at,
            ended_at=ended, commands=tuple(state.commands), exit_status=state.exit_status, output_tail=state.tail(),
            verification="\n".join(state.verification), note=note, attempt=attempt,
            recorded=dict(state.recorded), fingerprint=step.fingerprint)
        if status == "running":
            doing = f"record that step {step.index} ({step.title}) starts, so it was not started"
        else:
            doing = (f"record that step {step.index} ({step.title}) {status}: it ran, but the journal still shows "
                     f"it running, so resuming runs it again")
        self._journaled(lambda: self.journal.record_step(record), doing)

    def _event(self, kind: str, message: str, step: PlannedStep | None = None, block: PlannedBlock | None = None,
               status: str | None = None) -> None:
        self.prompter.event(Event(kind, masking.mask(message), step, block, status))

    def _round(self) -> Any:
        from opsconsole.health import Monitor

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        if self._monitor is None:
            self._monitor = Monitor(self.env, self.config.timeout)  # one for the run: history, failures
        return self._loop.run_until_complete(self._monitor.round())

    def _close_monitor(self) -> None:
        if self._loop is None:
            return
        try:
            if self._monitor is not None:
                self._loop.run_until_complete(self._monitor.aclose())
        finally:
            self._loop.close()
            self._loop = None
            self._monitor = None

    def _sleep(self, seconds: float) -> None:
        if self.cancel is not None:
            if self.cancel.wait(seconds):
                raise runner.Aborted("stopped while waiting to verify")
        else:
            time.sleep(seconds)


# --- resume ----------------------------------------------------------------------------------------------------------

def check_resume(plan: Plan, record: RunRecord) -> None:
    """Refuse to resume `record` with `plan` unless it is the same runbook content on the same environment."""
    if record.environment != plan.environment:
        raise UserError(f"run {record.run_id} ran on environment {record.environment!r}, not "
                        f"{plan.environment!r}: resume it with --env {record.environment}")
    if record.status == "succeeded":
        raise UserError(f"run {record.run_id} already succeeded: nothing to resume")
    if record.content_hash != plan.runbook.content_hash:
        raise UserError(f"cannot resume run {record.run_id}: runbook {plan.runbook.name} changed since it ran "
                        f"({changed_steps(plan, record)}); start a new run instead", plan.runbook.path)
    if record.plan_fingerprint != plan.fingerprint:
        raise UserError(f"cannot resume run {record.run_id}: the plan differs from the one it started with "
                        f"(params or config changed; fingerprint {plan.fingerprint[:12]}, journal "
                        f"{record.plan_fingerprint[:12]})")


def changed_steps(plan: Plan, record: RunRecord) -> str:
    """Which steps differ between the journal's plan and this one, by step fingerprint."""
    before = {int(s.get("index", i)): s for i, s in enumerate(record.plan.get("steps", []) or [], 1)
              if isinstance(s, Mapping)}
    now = {s.index: s for s in plan.steps}
    differences = []
    for index in sorted(set(before) | set(now)):
        old, new = before.get(index), now.get(index)
        if old is None and new is not None:
            differences.append(f"step {index} ({new.title}) was added")
        elif new is None and old is not None:
            differences.append(f"step {index} ({old.get('title', '')}) was removed")
        elif old is not None and new is not None and old.get("fingerprint") != new.fingerprint:
            differences.append(f"step {index} ({new.title}) differs")
    return "; ".join(differences) or "only text outside the steps differs"


def masked_params(runbook: Runbook, record: RunRecord) -> tuple[str, ...]:
    """The params the journal keeps masked, which must be given again to resume: the secrets, and any other whose
    value held a password (`postgresql://app:***@db/app`)."""
    return tuple(p.name for p in runbook.params if p.name in record.params
                 and (p.type == "secret" or masking.MASK in record.params[p.name]))


def resume_params(plan_runbook: Runbook, record: RunRecord, given: Mapping[str, str]) -> dict[str, str]:
    """The params of a resumed run: the journal's, except those it holds masked: those must be given again."""
    params = dict(record.params)
    for name in masked_params(plan_runbook, record):
        if name not in given:
            what = "is a secret" if _is_secret(plan_runbook, name) else f"held a password ({params[name]})"
            raise UserError(f"param {name!r} {what} and the journal keeps it masked: give it again "
                            f"with -p {name}=VALUE to resume run {record.run_id}")
    for key, value in given.items():
        # The journal keeps what it was given masked: the same value, given again, masks to it.
        if key in params and params[key] not in (value, masking.mask(value)) and not _is_secret(plan_runbook, key):
            raise UserError(f"-p {key}: run {record.run_id} ran with {key}={params[key]}; a resumed run keeps "
                            f"its params")
    params.update(given)
    return params


def _is_secret(runbook: Runbook, name: str) -> bool:
    param = runbook.param(name)
    return param is not None and param.type == "secret"


def _rotated(step: PlannedStep) -> list[str]:
    """The secrets a step's run blocks rotate (not roll back)."""
    return [a.secret for b in step.of_role("run") for a in b.actions
            if a.verb == "rotate-secret" and not a.rollback and a.secret]


def _describe(block: PlannedBlock, calls: Sequence[Call]) -> str:
    """A block as the run shows it before it runs (and before it is confirmed)."""
    confirm = {"none": "", "yes": ", asks y/N", "typed": ", asks for the environment's name"}[block.confirmation]
    head = f"  {block.role} ({block.block.lang}{confirm})"
    if block.block.lang == "sh":
        return head + ":" + "".join(f"\n    $ {_indent(c.display, 6)}" for c in calls)
    if block.expectations:
        return head + ": " + _indent(block.text, 4)
    return head + ": " + _indent(block.text, 4) + "".join(f"\n    -> {_indent(c.display, 7)}" for c in calls)


def _indent(text: str, width: int) -> str:
    return text.replace("\n", "\n" + " " * width)


def _one_line(text: str, limit: int = 120) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    more = " ..." if len(text.strip().splitlines()) > 1 else ""
    if len(first) > limit:
        return first[:limit - 3] + "..." + more
    return first + more
