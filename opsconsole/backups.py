"""PostgreSQL dump files on this machine: the manifest beside each, verification, listing, scratch restores.

A backup is `<service>-<UTC time>.dump` (`pg_dump -Fc`) in the environment's backups directory, with
`<service>-<UTC time>.json` beside it: size, sha256, what `pg_restore -l` lists (tables, entries, server
version), when and by which run. The manifest is written only after the dump succeeded, so a dump without
one is incomplete (an interrupted backup) or was copied in by hand; `latest` never picks such a file.

A backup that fails (a pg_dump error, a full disk, a timeout, Ctrl-C) removes the file it was writing
(TakeDump), and one whose dump cannot be read back removes it too (WriteManifest): a failed backup leaves no
half dump to fill the disk or to be restored later. Only a kill of opsconsole itself can leave one (without a
manifest, so never `latest`).

Before a restore drops anything the dump is verified: its size and sha256 against the manifest, and its
table of contents must parse (`pg_restore -l`). A dump without a manifest is read whole instead
(`pg_restore --file /dev/null`), which is what catches truncation and corrupt data there: `-l` alone reads
only the table of contents at the start of the file. Its origin is checked too (`foreign_origin`): a backup
whose manifest names another environment or service, or whose archive names another database, is not
restored over this one unless the restore says so (`--from-other`).

A restore first dumps the database it is about to replace into `before-restore/` beside the backups (a safety
copy, with its manifest, never `latest`), so the restore itself can be undone.

The in-process calls here (ReserveDump, TakeDump, WriteManifest, VerifyBackup, ScratchRestore, CheckRestored)
are planned by a
provider like any command: `display` says exactly what they do; `perform` does it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opsconsole import masking, runner

MANIFEST_FORMAT = "opsconsole-backup/1"
STAMP = "%Y%m%dT%H%M%SZ"
SCRATCH_PREFIX = "opsconsole_scratch_"
TOC_TIMEOUT_S = 120.0  # `pg_restore -l` reads only the table of contents: seconds even for a big dump
_CHUNK = 1 << 20
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

Output = Callable[[str], None]


class BackupError(Exception):
    """A dump that must not be restored, or a check that failed; the message is one line."""


def backups_dir(environment: str) -> Path:
    from platformdirs import user_state_dir

    return Path(user_state_dir("opsconsole")) / "backups" / environment


def safety_dir(environment: str) -> Path:
    """Where a restore keeps its safety copy of the database it replaces: beside the backups, not among them,
    so `latest` (and `opsconsole backups`) never take the state a restore is about to undo for a backup."""
    return backups_dir(environment) / "before-restore"


def manifest_path(dump: Path) -> Path:
    """`db-20261121T130000Z.dump` -> `db-20261121T130000Z.json`, beside it."""
    return dump.with_suffix(".json")


def dump_name(service: str, when: datetime) -> str:
    return f"{service}-{when.strftime(STAMP)}.dump"


def free_dump_path(directory: Path, service: str, when: datetime) -> Path:
    """`<service>-<time>.dump` for a backup taken at `when`, a second later while that name is taken: two
    backups in the same second must never share a file."""
    while True:
        path = directory / dump_name(service, when)
        if not path.exists() and not manifest_path(path).exists():
            return path
        when += timedelta(seconds=1)


def _dump_pattern(service: str) -> re.Pattern[str]:
    # Exactly `<service>-<stamp>.dump`: the backups of `db` are not those of `db-replica`.
    return re.compile(re.escape(service) + r"-(\d{8}T\d{6}Z)\.dump\Z")


# --- what pg_restore -l says --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Contents:
    """A dump's table of contents, as `pg_restore -l` lists it."""

    entries: int  # listed TOC entries
    tables: int  # TABLE entries (not TABLE DATA / TABLE ATTACH)
    table_names: tuple[tuple[str, str], ...]  # (schema, name) of the tables whose names could be read
    database: str
    server_version: str
    pg_dump_version: str
    created_at: datetime | None  # when pg_dump started: the moment the backup's data is from


def parse_toc(text: str) -> Contents:
    header: dict[str, str] = {}
    entries = tables = 0
    names: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith(";"):
            text = line[1:].strip()
            if text.startswith("Archive created at "):  # its value holds colons
                header["Archive created at"] = text[len("Archive created at "):]
                continue
            key, sep, value = text.partition(":")
            if sep:
                header[key.strip()] = value.strip()
            continue
        m = re.match(r"\d+; \d+ \d+ (.*)\Z", line)
        if not m:
            continue
        entries += 1
        words = m.group(1).split(" ")
        # "TABLE schema name owner"; "TABLE DATA ..." and "TABLE ATTACH ..." are other entries.
        if words[0] == "TABLE" and (len(words) < 2 or words[1] not in ("DATA", "ATTACH")):
            tables += 1
            if len(words) == 4:  # a name holding a space cannot be split from its owner reliably
                names.append((words[1], words[2]))
    created = None
    stamp = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC\Z", header.get("Archive created at", ""))
    if stamp:  # read_toc runs pg_restore with TZ=UTC, so the header's local time is UTC
        created = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return Contents(entries=entries, tables=tables, table_names=tuple(names), database=header.get("dbname", ""),
                    server_version=header.get("Dumped from database version", ""),
                    pg_dump_version=header.get("Dumped by pg_dump version", ""), created_at=created)


def _pg_restore_error(lines: list[str], result: runner.Result) -> str:
    errors = [ln.split("error:", 1)[1].strip() for ln in lines if "error:" in ln]
    if errors:
        return errors[0]
    return result.describe() if not lines else lines[-1].strip()


def read_toc(path: Path, pg_restore: str, timeout_s: float | None = TOC_TIMEOUT_S,
             cancel: threading.Event | None = None) -> Contents:
    """`pg_restore -l PATH`, parsed; BackupError when pg_restore cannot read it."""
    lines: list[str] = []
    # pg_restore prints the archive's creation time in its own local time zone: make that UTC.
    result = runner.run(runner.Command((pg_restore, "-l", str(path)), env={"TZ": "UTC"}), timeout_s, lines.append,
                        cancel)
    if not result.ok:
        raise BackupError(f"pg_restore cannot read it: {_pg_restore_error(lines, result)}")
    return parse_toc("\n".join(lines))


def read_whole(path: Path, pg_restore: str, timeout_s: float | None, cancel: threading.Event | None = None) -> None:
    """Read every byte of the dump through pg_restore (SQL to /dev/null): catches truncation and bad data."""
    lines: list[str] = []
    result = runner.run(runner.Command((pg_restore, "--file", os.devnull, str(path))), timeout_s, lines.append,
                        cancel)
    if not result.ok:
        raise BackupError(f"pg_restore cannot read it to the end: {_pg_restore_error(lines, result)}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- the manifest ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Manifest:
    file: str
    environment: str
    service: str
    database: str
    server_version: str
    pg_dump_version: str
    size_bytes: int
    sha256: str
    tables: int
    entries: int
    created_at: datetime
    run_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"format": MANIFEST_FORMAT, "file": self.file, "environment": self.environment,
                "service": self.service, "database": self.database, "server_version": self.server_version,
                "pg_dump_version": self.pg_dump_version, "size_bytes": self.size_bytes, "sha256": self.sha256,
                "tables": self.tables, "entries": self.entries,
                "created_at": self.created_at.isoformat(timespec="seconds"), "run_id": self.run_id}


def read_manifest(dump: Path) -> Manifest | None:
    """The manifest beside `dump`; None when there is none; BackupError when it cannot be trusted."""
    path = manifest_path(dump)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        created = datetime.fromisoformat(data["created_at"])
        return Manifest(file=str(data["file"]), environment=str(data["environment"]), service=str(data["service"]),
                        database=str(data["database"]), server_version=str(data["server_version"]),
                        pg_dump_version=str(data["pg_dump_version"]), size_bytes=int(data["size_bytes"]),
                        sha256=str(data["sha256"]), tables=int(data["tables"]), entries=int(data["entries"]),
                        created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
                        run_id=data.get("run_id") or None)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"its manifest {path.name} cannot be read ({exc}); move it away to restore the dump "
                          f"without a checksum check") from None


def write_manifest(manifest: Manifest, dump: Path) -> Path:
    path = manifest_path(dump)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(manifest.to_json(), f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- finding and listing backups ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackupFile:
    path: Path
    size_bytes: int
    created_at: datetime  # the manifest's, else the file's modification time
    manifest: Manifest | None
    problem: str | None = None  # why the manifest cannot be used

    @property
    def complete(self) -> bool:
        return self.manifest is not None

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {"file": str(self.path), "name": self.path.name, "size_bytes": self.size_bytes,
                "created_at": self.created_at.isoformat(timespec="seconds"), "complete": self.complete,
                "service": m.service if m else None, "database": m.database if m else None,
                "tables": m.tables if m else None, "entries": m.entries if m else None,
                "sha256": m.sha256 if m else None, "run_id": m.run_id if m else None,
                "server_version": m.server_version if m else None, "problem": self.problem}


def list_backups(directory: Path, service: str | None = None) -> list[BackupFile]:
    """The dumps in `directory` (of `service`, or all), oldest first."""
    if not directory.is_dir():
        return []
    found: list[tuple[str, BackupFile]] = []
    for path in directory.glob("*.dump"):
        m = re.fullmatch(r"(.+)-(\d{8}T\d{6}Z)\.dump", path.name)
        if service is not None and not _dump_pattern(service).match(path.name):
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        problem = None
        try:
            manifest = read_manifest(path)
        except BackupError as exc:
            manifest, problem = None, str(exc)
        created = manifest.created_at if manifest else datetime.fromtimestamp(stat.st_mtime, UTC)
        found.append((m.group(2) if m else created.strftime(STAMP), BackupFile(path, stat.st_size, created, manifest,
                                                                                problem)))
    return [b for _, b in sorted(found, key=lambda item: (item[0], item[1].path.name))]


def latest(directory: Path, service: str) -> BackupFile:
    """The newest complete backup of `service`; BackupError naming what is there otherwise."""
    backups = list_backups(directory, service)
    complete = [b for b in backups if b.complete]
    if complete:
        return complete[-1]
    if backups:
        raise BackupError(f"no complete backup of {service} in {directory}: {len(backups)} dump(s) without a "
                          f"manifest (an interrupted backup leaves one); name the file to restore it anyway")
    raise BackupError(f"no backup of {service} in {directory} yet")


# --- verification ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verified:
    path: Path
    size_bytes: int
    sha256: str | None  # checked against the manifest; None when there is no manifest (read whole instead)
    contents: Contents
    manifest: Manifest | None
    created_at: datetime

    def age_hours(self, now: datetime | None = None) -> float:
        return max(0.0, ((now or datetime.now(UTC)) - self.created_at).total_seconds() / 3600)

    def describe(self) -> str:
        """What was checked, for the plan and the output."""
        size = human_size(self.size_bytes)
        if self.manifest is not None:
            m = self.manifest
            return (f"{size}, sha256 {m.sha256[:16]} as {manifest_path(self.path).name} says; a backup of "
                    f"{m.service} (database {m.database}, PostgreSQL {m.server_version.split(' ')[0]}) taken "
                    f"{m.created_at.strftime('%Y-%m-%d %H:%M:%S UTC')}; pg_restore -l lists {self.contents.tables} "
                    f"tables")
        return (f"{size}, no manifest beside it, so pg_restore reads it whole (pg_restore --file /dev/null); "
                f"pg_restore -l lists {self.contents.tables} tables")


def verify(path: Path, pg_restore: str, *, expect_sha256: str | None = None, timeout_s: float | None = None,
           cancel: threading.Event | None = None) -> Verified:
    """Check a dump before anything is dropped; BackupError (one line) when it must not be restored.

    With a manifest: the size, then the sha256, must match it, and `pg_restore -l` must parse the file.
    Without: `pg_restore -l` must parse it and pg_restore must read it to the end. `expect_sha256` (what a
    plan verified) must also still match, so a dump replaced since the plan is refused.
    """
    if not path.is_file():
        raise BackupError("it is not there any more")
    size = path.stat().st_size
    manifest = read_manifest(path)
    digest = None
    if manifest is not None:
        if size != manifest.size_bytes:
            raise BackupError(f"it is {size} bytes, its manifest says {manifest.size_bytes} (truncated or "
                              f"overwritten)")
        digest = sha256_of(path)
        if digest != manifest.sha256:
            raise BackupError(f"checksum mismatch: sha256 {digest[:16]}, its manifest says {manifest.sha256[:16]} "
                              f"(the file is corrupt or was changed)")
    elif expect_sha256 is not None:
        raise BackupError("its manifest disappeared since the plan")
    if expect_sha256 is not None and digest != expect_sha256:
        raise BackupError(f"it changed since the plan (sha256 {str(digest)[:16]}, planned {expect_sha256[:16]})")
    contents = read_toc(path, pg_restore, cancel=cancel)
    if manifest is None:
        read_whole(path, pg_restore, timeout_s, cancel)
    created = manifest.created_at if manifest else (contents.created_at
                                                    or datetime.fromtimestamp(path.stat().st_mtime, UTC))
    return Verified(path=path, size_bytes=size, sha256=digest, contents=contents, manifest=manifest,
                    created_at=created)


def foreign_origin(checked: Verified, environment: str, service: str, database: str | None) -> str | None:
    """None when `checked` is a backup of `environment`/`service` (and of `database`, when it is known) as far as
    its manifest and its archive say; else the plain words for restoring it here: "a backup of staging/db
    (database shop_staging) restored over production/db (database shop)".

    The manifest names the environment and service a backup was taken of; the archive itself names the database
    pg_dump read, which is all a dump without a manifest says about where it came from.
    """
    m = checked.manifest
    theirs_db = (m.database if m else "") or checked.contents.database
    other_db = bool(database and theirs_db and theirs_db != database)
    if m is None:
        if not other_db:
            return None
        theirs = f"database {theirs_db} (no manifest says which environment)"
    else:
        if m.environment == environment and m.service == service and not other_db:
            return None
        theirs = f"{m.environment}/{m.service}" + (f" (database {theirs_db})" if theirs_db else "")
    ours = f"{environment}/{service}" + (f" (database {database})" if database else "")
    return f"a backup of {theirs} restored over {ours}"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"


# --- connections --------------------------------------------------------------------------------------------------

def with_database(conninfo: str, database: str) -> str:
    """The same connection string (URL or libpq keywords), naming another database on the same server."""
    if "://" in conninfo:
        return urlunsplit(urlsplit(conninfo)._replace(path="/" + database))
    from psycopg.conninfo import make_conninfo

    return make_conninfo(conninfo, dbname=database)


def database_of(conninfo: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    try:
        return str(conninfo_to_dict(conninfo).get("dbname") or "")
    except Exception:  # psycopg.ProgrammingError for a malformed string; the restore names it later
        return ""


def scratch_name(database: str, when: datetime) -> str:
    """`opsconsole_scratch_<database>_<time>`, within PostgreSQL's 63-byte identifier limit."""
    stem = re.sub(r"[^a-z0-9_]", "_", database.lower())[:24] or "db"
    return f"{SCRATCH_PREFIX}{stem}_{when.strftime('%Y%m%dt%H%M%S')}"


def _connect(conninfo: str, password: str | None) -> Any:
    import psycopg

    extra = {"password": password} if password else {}
    return psycopg.connect(conninfo, autocommit=True, connect_timeout=10, application_name="opsconsole", **extra)


def _pg_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return masking.mask(text)


def check_tables(conn: Any, expected: tuple[tuple[str, str], ...], count: int, count_rows: str | None,
                 exact: bool) -> tuple[int, int | None, str]:
    """(user tables, rows of `count_rows`, a line saying so) in the database `conn` is on; BackupError when a
    table of the backup is missing (or, `exact`, the number of tables differs), or `count_rows` is not there."""
    from psycopg import sql

    placeholders = ", ".join(["%s"] * len(_SYSTEM_SCHEMAS))
    have = conn.execute(f"SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ({placeholders})",
                        _SYSTEM_SCHEMAS).fetchone()[0]
    missing: list[str] = []
    if expected:
        rows = conn.execute("SELECT s, n FROM unnest(%s::text[], %s::text[]) AS t(s, n) "
                            "WHERE to_regclass(format('%%I.%%I', s, n)) IS NULL",
                            ([s for s, _ in expected], [n for _, n in expected])).fetchall()
        missing = [f"{s}.{n}" for s, n in rows]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise BackupError(f"{len(missing)} of the backup's {count} tables are missing after the restore: {shown}")
    if exact and have != count:
        raise BackupError(f"the restored database has {have} tables, the backup lists {count}")
    message = f"{have} tables (the backup lists {count})"
    rows_counted = None
    if count_rows:
        if conn.execute("SELECT to_regclass(%s)", (count_rows,)).fetchone()[0] is None:
            raise BackupError(f"table {count_rows} is not in the restored database")
        rows_counted = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(*count_rows.split(".", 1)))).fetchone()[0]
        message += f"; {count_rows}: {rows_counted} rows"
    return have, rows_counted, message


# --- in-process calls -------------------------------------------------------------------------------------------

def _elapsed(started: float) -> float:
    return time.monotonic() - started


@dataclass(frozen=True)
class ReserveDump:
    """Create the backups directory (0700) and the dump's file (0600) for pg_dump to write into; refuse when
    the file exists already, so a backup never overwrites another."""

    path: Path
    display: str = ""
    fingerprint_text: str = ""
    records: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shown = self.display or (f"mkdir -p -m 700 {self.path.parent}; create {self.path.name} there (mode 0600), "
                                 f"never over an existing backup")
        object.__setattr__(self, "display", shown)
        object.__setattr__(self, "fingerprint_text", self.fingerprint_text or shown)

    def perform(self, on_output: Output, timeout_s: float | None = None,
                cancel: threading.Event | None = None) -> runner.Result:
        started = time.monotonic()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return runner.Result(1, "", _elapsed(started), error=f"refusing to overwrite the backup {self.path} "
                                                                  f"(taken in the same second?): back up again")
        except OSError as exc:
            return runner.Result(1, "", _elapsed(started), error=masking.mask(f"cannot create {self.path}: {exc}"))
        return runner.Result(0, "", _elapsed(started))


@dataclass(frozen=True)
class TakeDump:
    """pg_dump writing a backup (`command`), then nothing left behind if it fails.

    A pg_dump error, a full disk, a timeout or Ctrl-C leaves a half-written file; it is removed (`partial`: the
    file the command writes, the dump itself or a `.partial` beside it) so a failed backup neither keeps filling
    the disk nor leaves a dump that someone restores later. A retry then finds its file name free again.
    """

    command: runner.Command
    partial: Path
    display: str = ""
    fingerprint_text: str = ""
    records: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "display", self.display or self.command.display)
        object.__setattr__(self, "fingerprint_text", self.fingerprint_text or self.command.fingerprint_text)
        object.__setattr__(self, "records", self.records or self.command.records)

    def perform(self, on_output: Output, timeout_s: float | None = None,
                cancel: threading.Event | None = None) -> runner.Result:
        try:
            result = runner.run(self.command, timeout_s, on_output, cancel)
        except BaseException:  # Ctrl-C or an abort: the process group is gone, its half file goes too
            self._remove(on_output)
            raise
        if result.ok:
            return result
        removed = self._remove(on_output)
        return replace(result, error=f"{result.describe()}; {removed}")

    def _remove(self, on_output: Output) -> str:
        """Remove the half-written file; what was done, in words (also shown)."""
        try:
            size = self.partial.stat().st_size
            self.partial.unlink()
        except FileNotFoundError:
            return "no partial dump was left"
        except OSError as exc:
            message = masking.mask(f"could not remove the partial dump {self.partial} ({exc}): delete it by hand")
        else:
            message = f"removed the partial dump {self.partial} ({human_size(size)})"
        on_output(message)
        return message


@dataclass(frozen=True)
class WriteManifest:
    """After `pg_dump` wrote `dump`: read it back (`pg_restore -l`), checksum it, write the manifest beside it."""

    dump: Path
    pg_restore: str
    environment: str
    service: str
    display: str = ""
    fingerprint_text: str = ""
    records: Mapping[str, object] = field(default_factory=dict)
    run_id: str = ""  # the journal's run, filled in when it executes
    note: str = ""  # a line shown after the manifest is written (how to restore a safety copy)

    def __post_init__(self) -> None:
        shown = self.display or (f"write {manifest_path(self.dump)}: size, sha256 and what `{self.pg_restore} -l` "
                                 f"lists (tables, entries, server version), with the time and this run's id")
        object.__setattr__(self, "display", shown)
        object.__setattr__(self, "fingerprint_text", self.fingerprint_text or shown)

    def perform(self, on_output: Output, timeout_s: float | None = None,
                cancel: threading.Event | None = None) -> runner.Result:
        started = time.monotonic()
        try:
            contents = read_toc(self.dump, self.pg_restore, cancel=cancel)
            size = self.dump.stat().st_size
            manifest = Manifest(file=self.dump.name, environment=self.environment, service=self.service,
                                database=contents.database, server_version=contents.server_version,
                                pg_dump_version=contents.pg_dump_version, size_bytes=size,
                                sha256=sha256_of(self.dump), tables=contents.tables, entries=contents.entries,
                                created_at=contents.created_at or datetime.now(UTC).replace(microsecond=0),
                                run_id=self.run_id or None)
            path = write_manifest(manifest, self.dump)
        except BackupError as exc:
            return runner.Result(1, "", _elapsed(started), error=f"the dump {self.dump.name} is not readable: {exc}; "
                                                                  f"{self._remove_dump()}")
        except OSError as exc:
            return runner.Result(1, "", _elapsed(started), error=masking.mask(
                f"cannot write the manifest: {exc}; {self._remove_dump()}"))
        message = (f"backup {self.dump.name}: {human_size(size)}, {contents.tables} tables, {contents.entries} "
                   f"entries, sha256 {manifest.sha256[:16]}; manifest {path.name}")
        on_output(message)
        if self.note:
            on_output(self.note)
        return runner.Result(0, message, _elapsed(started))

    def _remove_dump(self) -> str:
        """A backup whose manifest cannot be written failed: its dump goes (it would only fill the disk, and a
        dump without a manifest is never `latest`); back up again once the cause is fixed."""
        try:
            self.dump.unlink()
        except FileNotFoundError:
            return "no dump was left"
        except OSError as exc:
            return f"could not remove the dump {self.dump} ({exc}): delete it by hand"
        return f"removed the dump {self.dump}"


@dataclass(frozen=True)
class VerifyBackup:
    """Right before a restore: the dump is still the one the plan verified, whole and readable."""

    path: Path
    pg_restore: str
    sha256: str | None  # what the plan found (None: no manifest, the dump is read whole again)
    display: str = ""
    fingerprint_text: str = ""
    records: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint_text", self.fingerprint_text or self.display)

    def perform(self, on_output: Output, timeout_s: float | None = None,
                cancel: threading.Event | None = None) -> runner.Result:
        started = time.monotonic()
        try:
            checked = verify(self.path, self.pg_restore, expect_sha256=self.sha256, timeout_s=timeout_s,
                             cancel=cancel)
        except BackupError as exc:
            return runner.Result(1, "", _elapsed(started),
                                 error=f"refusing {self.path.name}: {exc}; nothing was restored")
        seconds = round(_elapsed(started), 2)
        how = "size and sha256 match its manifest" if checked.sha256 else "pg_restore read it to the end"
        message = (f"verified {self.path.name} in {seconds:.2f} s: {how}; {checked.contents.tables} tables; "
                   f"taken {checked.age_hours():.1f} h ago")
        on_output(message)
        return runner.Result(0, message, _elapsed(started),
                             recorded={"verify_seconds": seconds, "backup_age_hours": round(checked.age_hours(), 2)})


@dataclass(frozen=True)
class ScratchRestore:
    """Restore the dump into a new scratch database on the same server, check it, and drop it whatever happens.

    The scratch restore runs with the same pg_restore flags as the real one, so its time is what a real
    restore of this dump would take here.
    """

    dump: Path
    conninfo: str  # the service's database, without its password
    password: str | None = field(repr=False)
    scratch: str  # the scratch database's name
    restore_argv: tuple[str, ...]  # pg_restore ... --dbname <scratch> <dump>
    restore_display: str
    table_names: tuple[tuple[str, str], ...]
    tables: int
    count_rows: str | None = None
    display: str = ""
    fingerprint_text: str = ""
    records: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = f", count the rows of {self.count_rows}" if self.count_rows else ""
        shown = self.display or (
            f"scratch check, on the same server as {masking.mask(self.conninfo)}:\n"
            f"CREATE DATABASE {self.scratch} TEMPLATE template0\n"
            f"{self.restore_display}\n"
            f"check that its {self.tables} tables are all there{rows}\n"
            f"DROP DATABASE {self.scratch} WITH (FORCE), whatever happened")
        object.__setattr__(self, "display", shown)
        object.__setattr__(self, "fingerprint_text", self.fingerprint_text or shown)

    def perform(self, on_output: Output, timeout_s: float | None = None,
                cancel: threading.Event | None = None) -> runner.Result:
        import psycopg
        from psycopg import sql

        started = time.monotonic()
        deadline = None if timeout_s is None else started + timeout_s
        tail: list[str] = []

        def say(line: str) -> None:
            tail.append(line)
            on_output(line)

        def fail(message: str) -> runner.Result:
            return runner.Result(1, "\n".join(tail)[-runner.TAIL_CHARS:], _elapsed(started), error=message)

        try:
            with _connect(self.conninfo, self.password) as conn:
                left = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                                   (SCRATCH_PREFIX.replace("_", r"\_") + "%",)).fetchall()]
                if left:
                    say(f"note: scratch databases left by earlier checks: {', '.join(left)} (drop them with "
                        f"dropdb once nobody uses them)")
                conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(self.scratch)))
        except psycopg.Error as exc:
            return fail(f"cannot create the scratch database {self.scratch}: {_pg_error(exc)} (the role needs "
                        f"CREATEDB for a scratch check)")
        say(f"created scratch database {self.scratch}")
        problem: str | None = None
        recorded: dict[str, object] = {}
        try:
            problem, recorded = self._restore_and_check(deadline, say, cancel)
        finally:
            # Whatever happened above (a failure, a timeout, Ctrl-C), the scratch database goes.
            dropped = self._drop()
            if dropped is None:
                say(f"dropped scratch database {self.scratch}")
            else:
                problem = (problem + "; " if problem else "") + dropped
        if problem:
            return fail(problem)
        return runner.Result(0, "\n".join(tail)[-runner.TAIL_CHARS:], _elapsed(started), recorded=recorded)

    def _restore_and_check(self, deadline: float | None, say: Output,
                           cancel: threading.Event | None) -> tuple[str | None, dict[str, object]]:
        """pg_restore into the scratch database, then check it: (what went wrong, or None; what it recorded)."""
        import psycopg

        started = time.monotonic()
        remaining = None if deadline is None else deadline - started
        if remaining is not None and remaining <= 0:
            return "out of time before pg_restore could start", {}
        env = {"PGPASSWORD": self.password} if self.password else {}
        result = runner.run(runner.Command(self.restore_argv, display=self.restore_display, env=env),
                            remaining, say, cancel)
        if not result.ok:
            return f"pg_restore into the scratch database failed: {result.describe()}", {}
        try:
            with _connect(with_database(self.conninfo, self.scratch), self.password) as conn:
                tables, rows, message = check_tables(conn, self.table_names, self.tables, self.count_rows,
                                                     exact=True)
        except BackupError as exc:
            return f"the scratch restore is not what the backup lists: {exc}", {}
        except psycopg.Error as exc:
            return f"cannot check the scratch database: {_pg_error(exc)}", {}
        seconds = round(time.monotonic() - started, 2)
        say(f"restored into {self.scratch} in {seconds:.2f} s: {message}")
        recorded: dict[str, object] = {"restore_seconds": seconds, "tables": tables}
        if rows is not None:
            recorded["rows"] = rows
        return None, recorded

    def _drop(self) -> str | None:
        """None when the scratch database is gone; else why not, with what to do."""
        import psycopg
        from psycopg import sql

        try:
            with _connect(self.conninfo, self.password) as conn:
                force = conn.info.server_version >= 130000
                if not force:  # before PostgreSQL 13: end its sessions by hand
                    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                                 (self.scratch,))
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}" + (" WITH (FORCE)" if force else "")).format(
                    sql.Identifier(self.scratch)))
        except psycopg.Error as exc:
            return f"the scratch database {self.scratch} could not be dropped ({_pg_error(exc)}): dropdb it by hand"
        return None


@dataclass(frozen=True)
class CheckRestored:
    """After a real restore: every table the backup lists is there (and, asked, how many rows one has)."""

    conninfo: str
    password: str | None = field(repr=False)
    table_names: tuple[tuple[str, str], ...]
    tables: int
    count_rows: str | None = None
    display: str = ""
    fingerprint_text: str = ""
    records: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = f"; count the rows of {self.count_rows}" if self.count_rows else ""
        shown = self.display or (f"check {masking.mask(self.conninfo)}: the backup's {self.tables} tables are all "
                                 f"there{rows}")
        object.__setattr__(self, "display", shown)
        object.__setattr__(self, "fingerprint_text", self.fingerprint_text or shown)

    def perform(self, on_output: Output, timeout_s: float | None = None,
                cancel: threading.Event | None = None) -> runner.Result:
        import psycopg

        started = time.monotonic()
        try:
            with _connect(self.conninfo, self.password) as conn:
                tables, rows, message = check_tables(conn, self.table_names, self.tables, self.count_rows,
                                                     exact=False)
        except BackupError as exc:
            return runner.Result(1, "", _elapsed(started), error=f"restored, but {exc}")
        except psycopg.Error as exc:
            return runner.Result(1, "", _elapsed(started), error=f"cannot check the restored database: {_pg_error(exc)}")
        on_output(f"restored: {message}")
        recorded: dict[str, object] = {"tables": tables}
        if rows is not None:
            recorded["rows"] = rows
        return runner.Result(0, f"restored: {message}", _elapsed(started), recorded=recorded)


def format_listing(found: list[BackupFile]) -> str:
    """A table, newest first: NAME SIZE CREATED TABLES SHA256 (or why it cannot be restored as `latest`)."""
    header = ("NAME", "SIZE", "CREATED", "TABLES", "SHA256")
    rows = [header]
    for b in reversed(found):
        m = b.manifest
        rows.append((b.path.name, human_size(b.size_bytes), b.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
                     str(m.tables) if m else "?",
                     m.sha256[:16] if m else (b.problem or "no manifest: incomplete, or copied in by hand")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths)), r[-1]]).rstrip() for r in rows)
