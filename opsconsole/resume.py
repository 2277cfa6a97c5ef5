"""Resuming a journaled run: which runs can be resumed, their runbook found again, their plan rebuilt.

The CLI's `run --resume` and the TUI's journal screen follow the same rules: the run's own runbook file
(or action line), unchanged since it ran, on the environment it ran on, with the params the journal kept;
`secret` params are kept masked, so they are the only ones typed again.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from opsconsole import actions, engine
from opsconsole.errors import UserError

if TYPE_CHECKING:
    from opsconsole.config import Config, Environment
    from opsconsole.engine import Plan
    from opsconsole.journal import Journal, RunRecord
    from opsconsole.runbook import Runbook

# A run in one of these stopped before its end and may continue at its first unfinished step.
RESUMABLE = ("interrupted", "failed", "aborted")
ACTION_PREFIX = "opsconsole "  # the runbook path of an action verb typed on the command line (engine.action_runbook)


def interrupted_runs(journal: Journal, environment: str, limit: int = 200) -> list[RunRecord]:
    """The runs of `environment` that stopped mid-way (crash, closed terminal, kill -9), newest first."""
    return [r for r in journal.runs(limit=limit, environment=environment) if r.status == "interrupted"]


def unfinished_of(journal: Journal, environment: str, book: Runbook) -> RunRecord | None:
    """The newest run of `book` on `environment` when it stopped mid-way (aborted, failed, interrupted): a new run
    would start again at step 1 beside it, so whoever starts one is told it can be resumed instead."""
    for record in journal.runs(limit=200, environment=environment):
        if record.runbook_name == book.name and Path(record.runbook_path).name == book.path.name:
            return record if record.status in RESUMABLE else None
    return None


def banner(runs: list[RunRecord], environment: str) -> str | None:
    """One line telling that interrupted runs exist, naming the newest; None when there are none."""
    if not runs:
        return None
    newest = runs[0]
    who = newest.user + (f" ({newest.git_identity})" if newest.git_identity else "")
    more = f" and {len(runs) - 1} more" if len(runs) > 1 else ""
    return (f"{environment}: run {newest.run_id} of {newest.runbook_name} by {who} was interrupted at step "
            f"{min(newest.steps_done + 1, newest.steps_total)}/{newest.steps_total}{more}; "
            f"open the journal to resume it")


def refusal(record: RunRecord, environment: str) -> str | None:
    """Why `record` cannot be resumed from `environment`, or None when it can be tried."""
    if record.status == "running":
        return f"run {record.run_id} is still running (its process holds the lock of {record.environment})"
    if record.status not in RESUMABLE:
        return f"run {record.run_id} {record.status}: nothing to resume"
    if record.environment != environment:
        return (f"run {record.run_id} ran on {record.environment}, not {environment}: switch to "
                f"{record.environment} to resume it")
    return None


def runbook_for(record: RunRecord, config: Config) -> Runbook:
    """The runbook `record` ran: its file again (absolute, or relative to the working directory or the config),
    or the one-step runbook of its action line. UserError when the file is gone or no longer valid."""
    from opsconsole import runbook as runbook_mod

    path_text = record.runbook_path
    if path_text.startswith(ACTION_PREFIX) and record.runbook_name in actions.VERBS:
        return engine.action_runbook(actions.parse(path_text[len(ACTION_PREFIX):]))
    path = Path(path_text)
    candidates = [path] if path.is_absolute() else [path, config.base_dir / path]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise UserError(f"cannot resume run {record.run_id}: its runbook {record.runbook_name} is gone "
                        f"({path_text} no longer exists); start a new run instead")
    try:
        return runbook_mod.load(found)
    except UserError as exc:
        raise UserError(f"cannot resume run {record.run_id}: its runbook {record.runbook_name} changed and is no "
                        f"longer valid: {exc}") from None


def secret_params(book: Runbook, record: RunRecord) -> tuple[str, ...]:
    """The params the journal keeps masked, which must be given again to resume."""
    return engine.masked_params(book, record)


def known_params(book: Runbook, record: RunRecord) -> dict[str, str]:
    """The params the journal kept as they were given (every param but the secrets), to prefill a form."""
    secrets = set(secret_params(book, record))
    return {k: v for k, v in record.params.items() if k not in secrets}


def plan(config: Config, environment: Environment, record: RunRecord, book: Runbook, given: Mapping[str, str],
         *, read_only: bool = False) -> Plan:
    """The plan that continues `record`: checked against the journal (same content, same params, same plan).

    `given` holds the secrets typed again; a non-secret value that differs from the run's is refused."""
    secrets = set(secret_params(book, record))
    for key, value in given.items():
        if key not in secrets and key in record.params and record.params[key] != value:
            raise UserError(f"run {record.run_id} ran with {key}={record.params[key]}; a resumed run keeps its "
                            f"params (start a new run to change them)")
    params = engine.resume_params(book, record, {k: v for k, v in given.items() if k in secrets})
    try:
        built = engine.build_plan(config, environment, book, params, read_only=read_only)
    except UserError as exc:
        if book.content_hash != record.content_hash:
            raise UserError(f"cannot resume run {record.run_id}: runbook {book.name} changed since it ran and "
                            f"cannot be planned with the run's params ({exc.message}); start a new run instead",
                            book.path) from None
        raise
    engine.check_resume(built, record)
    return built
