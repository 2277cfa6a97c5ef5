"""Dump files on this machine for providers whose pg_dump/pg_restore run elsewhere (railway: `railway run`,
compose: inside the database's container), kept exactly as the `local` provider keeps them (opsconsole.backups):
`<service>-<UTC time>.dump` in the environment's backups directory with its manifest beside it, `latest` the
newest complete one, and every dump verified (size, sha256, `pg_restore -l`) before anything is dropped; a
failed dump's file removed; a backup of another environment, service or database refused unless `--from-other`;
a safety copy of the database taken into `before-restore/` before a restore unless `--no-safety-copy`.

Reading a dump's table of contents and checksumming it happen here, with this machine's `pg_restore`
(the service's `pg_bin`, else PATH).
"""

from __future__ import annotations

import shlex
import shutil
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from opsconsole import backups, runner
from opsconsole.errors import UserError
from opsconsole.providers import Call, Output

if TYPE_CHECKING:
    from opsconsole.actions import Action
    from opsconsole.config import Target

CALLS = (backups.TakeDump, backups.WriteManifest, backups.VerifyBackup)


def pg_restore(target: Target, action: Action) -> str:
    """This machine's pg_restore, which reads dumps back for their manifest and verification."""
    bindir = target.options.get("pg_bin")
    path = str(Path(bindir) / "pg_restore") if isinstance(bindir, str) and bindir else shutil.which("pg_restore")
    if not path or not Path(path).is_file():
        where = f"in pg_bin = {bindir!r}" if bindir else "on PATH"
        raise UserError(f"`{action.text()}`: pg_restore not found {where}: it reads each dump back on this machine "
                        f"(install the PostgreSQL client, or set pg_bin = \"/usr/lib/postgresql/NN/bin\" on the "
                        f"service)")
    return path if bindir else "pg_restore"


def new_path(environment: str, service: str, safety_copy: bool = False) -> tuple[Path, str]:
    """(where a backup taken now goes, its time stamp, which a plan's fingerprint leaves out); a safety copy
    goes to `before-restore/`. Never the name of a backup there already."""
    directory = backups.safety_dir(environment) if safety_copy else backups.backups_dir(environment)
    path = backups.free_dump_path(directory, service, datetime.now(UTC))
    return path, path.name[len(service) + 1:-len(".dump")]


def take(command: runner.Command, partial: Path, stamp: str, safety_of: str | None = None) -> backups.TakeDump:
    """The dump `command` writes (`partial` removed if it fails); for a restore's safety copy of `safety_of`
    (environment/service) the plan says so, and it records `previous.safety_copy` instead of `previous.backup`."""
    if safety_of is None:
        return backups.TakeDump(command, partial, fingerprint_text=command.display.replace(stamp, "<time>"))
    path = command.records.get("backup")
    display = f"safety copy of {safety_of}, before anything is dropped: {command.display}"
    return backups.TakeDump(replace(command, records={}), partial, display=display,
                            fingerprint_text=display.replace(stamp, "<time>"), records={"safety_copy": str(path)})


def manifest(path: Path, stamp: str, program: str, environment: str, service: str,
             safety_copy: bool = False) -> backups.WriteManifest:
    note = restore_hint(environment, service, path) if safety_copy else ""
    call = backups.WriteManifest(dump=path, pg_restore=program, environment=environment, service=service, note=note)
    return replace(call, fingerprint_text=call.display.replace(stamp, "<time>"))


def restore_hint(environment: str, service: str, path: Path) -> str:
    """What a restore's output says about its safety copy: where it is and how to put it back."""
    return (f"safety copy of {environment}/{service} before the restore: {path}; to undo the restore: "
            f"opsconsole restore-backup {shlex.quote(service)} --env {shlex.quote(environment)} --from "
            f"{shlex.quote(str(path))}")


def resolve(environment: str, base_dir: Path, service: str, action: Action) -> Path:
    """The dump `--from` names; UserError (nothing ran) when there is none."""
    wanted = action.source or ""
    directory = backups.backups_dir(environment)
    if wanted == "latest":
        try:
            return backups.latest(directory, service).path
        except backups.BackupError as exc:
            raise UserError(f"`{action.text()}`: {exc}") from None
    for candidate in (Path(wanted).expanduser(), base_dir / wanted, directory / wanted):
        if candidate.is_file():
            return candidate.resolve()
    raise UserError(f"`{action.text()}`: no backup {wanted!r}: not a file, and not in {directory} "
                    f"(`opsconsole backup {service}` prints the file it writes; `latest` takes the newest)")


def verified(source: Path, program: str, action: Action, environment: str, service: str,
             database: str | None) -> tuple[backups.Verified, backups.VerifyBackup]:
    """Check the dump now (a bad one, or one of another environment, service or database without --from-other,
    is refused before anything is planned), and again right before the restore."""
    try:
        checked = backups.verify(source, program)
    except backups.BackupError as exc:
        raise UserError(f"`{action.text()}`: refusing {source}: {exc}; nothing was restored") from None
    display = f"verify {source} before anything is dropped: {checked.describe()}"
    foreign = origin(action, source, checked, environment, service, database)
    if foreign:
        display = f"{foreign} (--from-other)\n{display}"
    return checked, backups.VerifyBackup(path=source, pg_restore=program, sha256=checked.sha256, display=display)


def origin(action: Action, source: Path, checked: backups.Verified, environment: str, service: str,
           database: str | None) -> str | None:
    """None for a backup of this environment's service; for another's, the plan's plain words when --from-other
    asks for it, else a UserError: staging's rows restored over production's is a mistake until said otherwise."""
    foreign = backups.foreign_origin(checked, environment, service, database)
    if foreign and not action.from_other:
        raise UserError(f"`{action.text()}`: refusing {source}: that would be {foreign}; add --from-other if that "
                        f"is what you mean (the restore is confirmed as usual); nothing was restored")
    return foreign


def execute(call: Call, run_id: str, timeout_s: float | None, on_output: Output,
            cancel: threading.Event | None) -> runner.Result:
    """Run one of CALLS: they start pg_restore themselves, so the step's timeout and Ctrl-C reach it."""
    if isinstance(call, backups.WriteManifest):
        call = replace(call, run_id=run_id)  # the manifest names the run that made it
    return call.perform(on_output, timeout_s, cancel)
