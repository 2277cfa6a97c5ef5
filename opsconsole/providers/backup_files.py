"""Dump files on this machine for providers whose pg_dump/pg_restore run elsewhere (railway: `railway run`,
compose: inside the database's container), kept exactly as the `local` provider keeps them (opsconsole.backups):
`<service>-<UTC time>.dump` in the environment's backups directory with its manifest beside it, `latest` the
newest complete one, and every dump verified (size, sha256, `pg_restore -l`) before anything is dropped.

Reading a dump's table of contents and checksumming it happen here, with this machine's `pg_restore`
(the service's `pg_bin`, else PATH).
"""

from __future__ import annotations

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

CALLS = (backups.WriteManifest, backups.VerifyBackup)


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


def new_path(environment: str, service: str) -> tuple[Path, str]:
    """(where a backup taken now goes, its time stamp, which a plan's fingerprint leaves out)."""
    now = datetime.now(UTC)
    return backups.backups_dir(environment) / backups.dump_name(service, now), now.strftime(backups.STAMP)


def manifest(path: Path, stamp: str, program: str, environment: str, service: str) -> backups.WriteManifest:
    call = backups.WriteManifest(dump=path, pg_restore=program, environment=environment, service=service)
    return replace(call, fingerprint_text=call.display.replace(stamp, "<time>"))


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


def verified(source: Path, program: str, action: Action) -> backups.VerifyBackup:
    """Check the dump now (a bad one is refused before anything is planned), and again right before the restore."""
    try:
        checked = backups.verify(source, program)
    except backups.BackupError as exc:
        raise UserError(f"`{action.text()}`: refusing {source}: {exc}; nothing was restored") from None
    return backups.VerifyBackup(path=source, pg_restore=program, sha256=checked.sha256,
                                display=f"verify {source} before anything is dropped: {checked.describe()}")


def execute(call: Call, run_id: str, timeout_s: float | None, on_output: Output,
            cancel: threading.Event | None) -> runner.Result:
    """Run one of CALLS: they start pg_restore themselves, so the step's timeout and Ctrl-C reach it."""
    if isinstance(call, backups.WriteManifest):
        call = replace(call, run_id=run_id)  # the manifest names the run that made it
    return call.perform(on_output, timeout_s, cancel)
