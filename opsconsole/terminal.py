"""The runbook engine on a terminal: the plan as text, prompts, and the headless rules of `run`.

The engine itself knows no terminal; this is what `opsconsole plan`, `run` and the action verbs show
and ask. Everything printed here is masked text the engine produced.
"""

from __future__ import annotations

import shlex
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from opsconsole import lint, masking, runbook
from opsconsole.engine import (FOLLOW_HEADLESS_S, Decision, Failure, HeadlessPrompter, Plan, PlannedBlock,
                               PlannedStep, confirmed_together, shown_commands)
from opsconsole.errors import UserError

if TYPE_CHECKING:
    from opsconsole.runbook import Param

PROSE_CHARS = 160


def confirmation_label(block: PlannedBlock, environment: str) -> str:
    if block.refused:
        return f"REFUSED: {block.refused}"
    return {"none": "runs without asking", "yes": "asks y/N",
            "typed": f"asks you to type {environment!r}"}[block.confirmation]


def short_prose(prose: str, limit: int = PROSE_CHARS) -> str:
    """The first paragraph of a step's prose on one line, cut at `limit`."""
    paragraph = prose.strip().split("\n\n", 1)[0] if prose.strip() else ""
    text = " ".join(paragraph.split())
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def format_plan(plan: Plan) -> str:
    """What `opsconsole plan` prints: every step, its exact commands, the confirmation each needs."""
    rb = plan.runbook
    lines = [f"Plan: {rb.title} ({rb.path})",
             f"Environment: {plan.environment} (provider {plan.provider}, protection {plan.protection}"
             + (", read-only" if plan.read_only else "") + ")"]
    if plan.params:
        lines.append("Params: " + " ".join(f"{k}={v if v == masking.MASK else shlex.quote(v)}"
                                           for k, v in plan.params.items()))
    for step in plan.steps:
        lines.append("")
        lines.append(f"Step {step.index}. {step.title}"
                     + (f"  (in {' › '.join(step.step.context)})" if step.step.context else ""))
        prose = short_prose(step.step.prose)
        if prose:
            lines.append(f"  {prose}")
        for block in step.blocks:
            lines.extend(_block_lines(block, plan.environment))
    lines.append("")
    changes = plan.changes
    refused = [b for b in changes if b.refused]
    summary = f"{len(changes)} change block(s)"
    if refused:
        summary += f", {len(refused)} refused: {plan.environment} is read-only; `run` would stop before anything"
    lines.append(summary)
    for check in (runbook.refuse_invisible, lint.refuse_development):
        try:
            check(rb, plan.environment, plan.protection)
        except UserError as exc:
            lines.append(f"REFUSED: line {exc.line}: {exc.message}; `run` would stop before anything")
            break
    advice = plan.advice
    if advice:
        lines.append(f"Advice ({len(advice)}):")
        lines.extend(f"  line {a.line}: {a.message}" for a in advice)
    lines.append(f"Fingerprint: {plan.fingerprint}")
    return masking.mask("\n".join(lines))


def _block_lines(block: PlannedBlock, environment: str) -> list[str]:
    details = [block.block.lang]
    if block.timeout_s is not None:
        details.append(f"timeout {block.timeout_s:g}s"
                       + (" (default)" if block.timeout_is_default else ""))
    if block.block.retries:
        details.append(f"retries {block.block.retries}")
    if block.block.generates_secret:
        details.append("prints a new secret: its output is hidden and masked from then on")
    if block.block.follows:
        limit = block.block.timeout_s or FOLLOW_HEADLESS_S
        details.append(f"follows its output until you go on; {limit:g}s without a terminal")
    head = f"  {block.role} ({', '.join(details)})"
    if block.is_change:
        head += f", {confirmation_label(block, environment)}"
    if block.deferred:
        head += f", resolved at run time from step {block.deferred_from}"
    out = [head + ":"]
    # A copied terminal session keeps its output lines blank, so lines match the file; plan shows the commands.
    lines = block.text.splitlines() if not block.block.expected else [ln for ln in block.text.splitlines() if ln.strip()]
    out.extend(f"    {line}" for line in lines or [""])
    if block.block.expected:
        shown = block.block.expected.splitlines()
        out.append("    the doc expects:")
        out.extend(f"    | {line}" for line in shown[:6])
        if len(shown) > 6:
            out.append(f"    | ... ({len(shown) - 6} more lines)")
    if block.block.lang == "ops":
        out.extend(f"    -> {call.display}" for call in block.calls)
    elif len(block.calls) == 1:  # what the script runs through on this provider: the same bytes the run uses
        out.extend(f"    {line}" for line in block.calls[0].display.splitlines() if line.startswith("# through: "))
    return out


def require_confirmations(plan: Plan, steps: Sequence[PlannedStep], *, tty: bool, yes: bool,
                          confirm_env: str | None) -> None:
    """The headless rules, checked before anything runs: without a terminal, changes need --yes, and typed
    confirmations also --confirm-env with the environment's name. (The engine refuses what no answer allows:
    read-only changes, hidden characters on `typed` environments.)"""
    if confirm_env is not None and confirm_env != plan.environment:
        raise UserError(f"--confirm-env {confirm_env!r} does not match the environment {plan.environment!r}; "
                        "nothing was run")
    changes = [b for s in steps for b in s.changes]
    if tty or not changes:
        return
    if not yes:
        raise UserError(f"stdin is not a terminal and this plan has {len(changes)} change block(s) for "
                        f"{plan.environment!r}: pass --yes to run it headless (nothing was run)")
    if any(b.confirmation == "typed" for b in changes) and confirm_env != plan.environment:
        raise UserError(f"environment {plan.environment!r} needs its name typed to confirm changes: pass "
                        f"--confirm-env {plan.environment} as well as --yes to run headless (nothing was run)")


class TerminalPrompter(HeadlessPrompter):
    """Asks on the terminal, unless a flag already answered: --yes (y/N), --confirm-env (typed),
    --on-failure (what to do when a step fails). Cancel is the default; end of input cancels."""

    def __init__(self, environment: str, *, yes: bool = False, confirm_env: str | None = None,
                 on_failure: str | None = None, note: str = "", write: Callable[[str], None] | None = None,
                 read: Callable[[str], str] | None = None) -> None:
        super().__init__(environment, yes=yes, confirm_env=confirm_env, on_failure=on_failure or "abort",
                         note=note, write=write)
        self.ask_on_failure = on_failure is None
        self.read = read or input

    def _ask(self, prompt: str) -> str | None:
        try:
            return self.read(prompt)
        except EOFError:
            self.write("")
            return None

    def confirm(self, step: PlannedStep, block: PlannedBlock, level: str) -> bool:
        if super().confirm(step, block, level):
            return True
        others = [b for b in confirmed_together(step, block) if b is not block]
        if others:  # one answer for the step's changes: show the ones not printed yet
            self.write(f"  This also confirms the rest of step {step.index}:")
            for line in shown_commands(others).splitlines():
                self.write(f"    $ {line}")
        if level == "typed":
            answer = self._ask(f"Type the environment name ({self.environment}) to run this, anything else "
                               f"cancels: ")
            return answer is not None and answer.strip() == self.environment
        answer = self._ask(f"Run this on {self.environment}? [y/N] ")
        return answer is not None and answer.strip().lower() in ("y", "yes")

    def follow(self, step: PlannedStep, block: PlannedBlock, stop: threading.Event,
               stdin=None) -> Callable[[], None] | None:
        """A follow command (`logs -f`) streams until Enter is pressed; Ctrl-C still stops the whole run. Returns
        what ends the listening once the command is over (so the next prompt gets its own line), or None without
        a terminal to listen on."""
        import select

        stream = stdin or sys.stdin
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            return None
        if not stream.isatty():
            return None
        over = threading.Event()
        self.write("    (following: press Enter to go on; Ctrl-C stops the run)")

        def listen() -> None:
            while not over.is_set():
                ready, _, _ = select.select([fd], [], [], 0.2)
                if ready and not over.is_set():
                    stream.readline()
                    stop.set()
                    return

        threading.Thread(target=listen, name="follow-enter", daemon=True).start()
        return over.set

    def on_failure(self, step: PlannedStep, error: Failure) -> Decision:
        if not self.ask_on_failure:
            return super().on_failure(step, error)
        rollback = "roll back [t]his step, roll back [a]ll finished steps, " if step.of_role("rollback") else \
            "roll back [a]ll finished steps, "
        choices = {"r": "retry", "t": "rollback", "a": "rollback-all", "s": "skip", "q": "abort", "": "abort"}
        while True:
            answer = self._ask(f"Step {step.index} failed. [r]etry, {rollback}[s]kip with a note, or "
                               f"[q]uit (default)? ")
            if answer is None:
                return Decision("abort")
            choice = choices.get(answer.strip().lower()[:1])
            if choice is None:
                continue
            if choice == "skip":
                note = self._ask("Why is skipping this step fine? (kept in the journal) ")
                if not note or not note.strip():
                    self.write("A skip needs a note; asking again.")
                    continue
                return Decision("skip", note.strip())
            return Decision(choice)


def read_param(key: str, *, stdin=None, ask: Callable[[str], str] | None = None) -> str:
    """The value of `-p KEY=-`: typed at a hidden prompt when stdin is a terminal, else all of stdin (one
    trailing newline dropped). A secret never has to appear in opsconsole's own argv."""
    import getpass

    stream = stdin or sys.stdin
    if stream.isatty():
        value = (ask or getpass.getpass)(f"{key}: ")
    else:
        value = stream.read()
        value = value[:-2] if value.endswith("\r\n") else value[:-1] if value.endswith("\n") else value
    if not value:
        raise UserError(f"-p {key}=-: no value given on stdin")
    return value


def read_line_secret(prompt: str, *, tty: bool, stdin=None, ask: Callable[[str], str] | None = None) -> str:
    """One secret: at a hidden prompt on a terminal, else the next line of stdin (its newline dropped)."""
    import getpass

    if tty:
        value = (ask or getpass.getpass)(prompt)
    else:
        value = (stdin or sys.stdin).readline().rstrip("\r\n")
    masking.register(value)
    return value


def ask_secrets(params: Sequence[Param], given: Mapping[str, str], *, tty: bool,
                ask: Callable[[str], str] | None = None) -> dict[str, str]:
    """`given` plus a hidden prompt (getpass) for each of `params` not in it, when stdin is a terminal.
    Without a terminal nothing is asked: binding the params then names what is missing."""
    import getpass

    out = dict(given)
    if not tty:
        return out
    for param in params:
        if param.name in out:
            continue
        value = (ask or getpass.getpass)(f"{param.name} ({param.describe()}, not shown): ")
        if not value:
            raise UserError(f"param {param.name!r}: nothing typed; nothing was run")
        masking.register(value)
        out[param.name] = value
    return out


def printer(stream=None) -> Callable[[str], None]:
    out = stream or sys.stdout

    def write(line: str) -> None:
        print(masking.printable(line), file=out, flush=True)
    return write
