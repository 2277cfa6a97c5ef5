"""The `local` provider: changes happen on this machine.

- sh blocks run as `bash -e -c SCRIPT` in the config's directory, with the environment's `.env` values
  (read when each command starts, so a command after `rotate-secret` sees the new value).
- deploy / migrate run the command configured on the service (`deploy = "..."`, `migrate = "..."`;
  a `migrate` without a service uses `[environments.X.provider_options] migrate`, else the only service
  that has one). `rotate-secret --restart SERVICE` runs the service's `restart = "..."`.
- scale is refused: a local process has no replica count.
- rotate-secret rewrites `.env.<environment>` (atomically, every other byte untouched; a quoted value spanning
  lines, a PEM key, is one statement as python-dotenv reads it); the statement it replaces is kept in
  `.env.<environment>.previous` (mode 0600), once per rotation: a retry or resume of the same run keeps what the
  first attempt kept. `--rollback` puts it back byte for byte, once: a second rollback changes nothing. A name
  missing from the file, a missing file, or a name also set in opsconsole's own environment (which wins over the
  file for every command it runs) is refused at plan time.
- backup runs `pg_dump -Fc` of a postgres service into the user state dir and writes a manifest beside it
  (opsconsole/backups.py); a dump that fails is removed. restore-backup verifies the dump (checksum against the
  manifest, `pg_restore -l`) and refuses one of another environment, service or database unless `--from-other`,
  before anything is dropped; optionally restores into a scratch database first; dumps the database into
  `before-restore/` (a safety copy, unless `--no-safety-copy`); then runs `pg_restore --clean --if-exists`, in one
  transaction (the default) or with parallel jobs. The password goes through PGPASSWORD, never argv.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from opsconsole import backups, masking, runner, secret_values
from opsconsole.actions import RESTORE_VERIFY
from opsconsole.backups import WriteManifest
from opsconsole.errors import ConfigError, UserError
from opsconsole.providers import Call, Output, Provider, backup_files, rotation

if TYPE_CHECKING:
    from opsconsole.actions import Action
    from opsconsole.config import Config, Environment, Target

# .env variables whose values are masked wherever they would show (beside URL passwords, always masked).
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?)$", re.IGNORECASE)
# A script that holds a secret travels on stdin (runner.SECRET_SCRIPT_ARGV), not in argv (`ps`) nor in the
# environment (/proc/PID/environ keeps the first environment for the life of the process, whatever `unset` does);
# the script itself then reads /dev/null, as every other script does.


_BACKUP_CALLS = (backups.ReserveDump, backups.TakeDump, WriteManifest, backups.VerifyBackup,
                 backups.ScratchRestore, backups.CheckRestored)


def bash(script: str, cwd: Path, display: str | None = None) -> runner.Command:
    """`bash -e -c SCRIPT`: stops at the first failing command, as a person following the runbook would."""
    shown = masking.mask((display if display is not None else script).rstrip("\n"))
    if masking.mask(script) != script:
        return runner.Command(runner.SECRET_SCRIPT_ARGV, display=shown, stdin=script, cwd=cwd)
    return runner.Command(("bash", "-e", "-c", script), display=shown, cwd=cwd)


class LocalProvider(Provider):
    name = "local"
    options = frozenset({"--jobs", "--single-transaction", "--verify", "--scratch-only", "--count-rows",
                         "--from-other", "--no-safety-copy"})

    def __init__(self, config: Config, env: Environment) -> None:
        self.config = config
        self.env = env
        self.base_dir = config.base_dir
        self.env_file = self.base_dir / f".env.{env.name}"
        self.previous_file = self.base_dir / f".env.{env.name}.previous"
        self.file_values()  # registers the secrets among them before anything is shown

    # --- context ---------------------------------------------------------------------------------------------

    def file_values(self) -> dict[str, str]:
        """`.env` then `.env.<environment>`, for the commands' environment; registers secret-looking values."""
        from opsconsole.config import env_file_values

        values: dict[str, str] = {}
        for path in (self.base_dir / ".env", self.env_file):
            if path.is_file():
                values.update(env_file_values(path))
        for key, value in values.items():
            masking.register_url(value)
            if key in self.env.secrets or _SECRET_NAME.search(key):
                masking.register(value)
        return values

    def shell(self, script: str) -> runner.Command:
        return bash(script, self.base_dir)

    def execute(self, call: Call, timeout_s: float | None, on_output: Output, cancel: Any = None) -> runner.Result:
        if isinstance(call, runner.Command):
            call = self._with_files(call)
        if isinstance(call, backups.TakeDump):  # pg_dump gets the .env values like any command
            call = replace(call, command=self._with_files(call.command))
        if isinstance(call, SecretRewrite):
            call = replace(call, run_id=self.run_id)  # what it keeps names its run: a retry keeps it
        if isinstance(call, _BACKUP_CALLS):
            if isinstance(call, WriteManifest):
                call = replace(call, run_id=self.run_id)  # the manifest names the run that made it
            # They run subprocesses (pg_restore) of their own: the step's timeout and Ctrl-C reach those too.
            return call.perform(on_output, timeout_s, cancel)
        return super().execute(call, timeout_s, on_output, cancel)

    def _with_files(self, call: runner.Command) -> runner.Command:
        """`call` with the `.env` files' values; the process environment wins over the files, as everywhere else
        in opsconsole."""
        fresh = {k: v for k, v in self.file_values().items() if k not in os.environ}
        return runner.Command(call.argv, display=call.display, stdin=call.stdin, env={**fresh, **call.env},
                              cwd=call.cwd, fingerprint_text=call.fingerprint_text, records=call.records)

    # --- planning --------------------------------------------------------------------------------------------

    def plan(self, action: Action) -> tuple[Call, ...]:
        verb = action.verb
        if verb == "deploy":
            return (self._configured(self._service(action, "deploy"), "deploy"),)
        if verb == "migrate":
            return (self._migrate(action),)
        if verb == "scale":
            raise UserError(f"`{action.text()}`: the local provider cannot scale services (a local process has "
                            f"no replica count); use a provider with replicas or an sh block")
        if verb == "rotate-secret":
            return self._rotate(action)
        if verb == "backup":
            return self._backup(action)
        if verb == "restore-backup":
            return self._restore(action)
        raise UserError(f"`{action.text()}`: the local provider does not know {verb!r}")

    def _line(self, *key: str) -> int | None:
        return self.config.lines.line("environments", self.env.name, *key)

    def _configured(self, target: Target, key: str) -> runner.Command:
        command = target.options.get(key)
        where = f"[environments.{self.env.name}.services.{target.name}]"
        if command is None:
            raise ConfigError(f"service {target.name!r} has no {key} command for the local provider: add "
                              f"{key} = \"...\" to {where}", self.config.source,
                              self._line("services", target.name))
        if not isinstance(command, str) or not command.strip():
            raise ConfigError(f"{key} must be a non-empty command string", self.config.source,
                              self._line("services", target.name, key))
        return bash(command, self.base_dir)

    def _migrate(self, action: Action) -> runner.Command:
        if action.service:
            return self._configured(self._service(action, "migrate"), "migrate")
        default = self.env.provider_options.get("migrate")
        if default is not None:
            if not isinstance(default, str) or not default.strip():
                raise ConfigError("migrate must be a non-empty command string", self.config.source,
                                  self._line("provider_options", "migrate"))
            return bash(default, self.base_dir)
        with_migrate = [t for t in self.env.services if "migrate" in t.options]
        if len(with_migrate) == 1:
            return self._configured(with_migrate[0], "migrate")
        which = ", ".join(t.name for t in with_migrate)
        raise UserError(f"`migrate`: say which service to migrate ({which})" if with_migrate else
                        f"`migrate`: environment {self.env.name!r} has no migrate command: add migrate = \"...\" to "
                        f"[environments.{self.env.name}.provider_options] or to a service")

    # --- rotate-secret ---------------------------------------------------------------------------------------

    def _rotate(self, action: Action) -> tuple[Call, ...]:
        spec = rotation.secret_spec(self.config, self.env, action)  # restart, length, alphabet: checked
        name = spec.name
        length, alphabet = spec.length, spec.alphabet
        if "bytes" in spec.options and "length" not in spec.options and "alphabet" not in spec.options:
            size = spec.options["bytes"]
            if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 512:
                raise ConfigError("bytes must be a whole number from 16 to 512", self.config.source,
                                  self._line("secrets", name, "bytes"))
            length, alphabet = -(-4 * size // 3), "urlsafe"
        restarts = tuple(self._configured(self._service(action, "restart", s), "restart") for s in spec.restart)
        current = _statements(_read_text(self.env_file))
        old = _last(current, name)
        self._check_rotatable(action, old is not None)
        if old:
            rotation.register_old(_value_of(old.text))
        if action.rollback:
            # Whether a previous value is kept is checked when it runs: a rotate-secret step's own rollback
            # block is planned before the rotation that keeps it.
            rewrite = SecretRewrite(path=self.env_file, previous=self.previous_file, name=name, value=None,
                                    display=f"rewrite {self.env_file}: {name} back to the line kept in "
                                            f"{self.previous_file} (which keeps the current one in turn)")
        else:
            value = secret_values.generate(length, alphabet)
            made = f"{length or secret_values.DEFAULT_LENGTH[alphabet]} {alphabet} characters"
            was = f" ({secret_values.fingerprint(_value_of(old.text))})" if old else ""
            kept = f"the previous line{was} is kept in {self.previous_file} (mode 0600)"
            # The new value is drawn for each plan, so the plan names how it is made; its fingerprint shows
            # once it is written (SecretRewrite's output). The value it replaces is left out of the plan's
            # fingerprint: a resume after a failed restart finds the value its first attempt wrote there.
            display = f"rewrite {self.env_file}: {name}={masking.MASK} (new value: {made}); {kept}"
            rewrite = SecretRewrite(path=self.env_file, previous=self.previous_file, name=name, value=value,
                                    display=display, fingerprint_text=display.replace(was, "", 1) if was else "")
        return (rewrite, *restarts)

    def _check_rotatable(self, action: Action, in_file: bool) -> None:
        name = action.secret or ""
        rotation.refuse_unreachable(
            action, self.env_file, known=in_file or action.rollback or name in _file_keys(self.base_dir / ".env"),
            missing=(f"(where the local provider keeps {name} for environment {self.env.name!r}): create it with "
                     f"{name}=<the current value>, or pick the environment that has it with --env"),
            unknown=(f"it is set in neither {self.env_file} nor {self.base_dir / '.env'}, so there is nothing to "
                     f"rotate; add {name}=<the current value> to {self.env_file.name} first"),
            exported=(f"that value wins over {self.env_file.name} for every command opsconsole runs: the restarted "
                      f"services would keep it"))

    # --- backup / restore ------------------------------------------------------------------------------------

    def _database(self, action: Action) -> Target:
        target = self._service(action, action.verb)
        if target.kind != "postgres":
            known = ", ".join(t.name for t in self.env.services if t.kind == "postgres") or "none"
            raise UserError(f"`{action.text()}`: service {target.name!r} is not a postgres service "
                            f"(postgres services: {known})")
        return target

    def _pg_program(self, target: Target, program: str, action: Action) -> str:
        bindir = target.options.get("pg_bin")
        path = str(Path(bindir) / program) if bindir else shutil.which(program)
        if not path or not Path(path).is_file():
            where = f"in pg_bin = {bindir!r}" if bindir else "on PATH"
            raise UserError(f"`{action.text()}`: {program} not found {where} (install the PostgreSQL client, or "
                            f"set pg_bin = \"/usr/lib/postgresql/NN/bin\" on the service)")
        return program if not bindir else path

    def _backup(self, action: Action) -> tuple[Call, ...]:
        return self._dump(self._database(action), action)

    def _dump(self, target: Target, action: Action, safety_copy: bool = False) -> tuple[Call, ...]:
        """Create the dump's file, `pg_dump -Fc` into it (removed if that fails), write its manifest: a backup,
        or a restore's safety copy of the database it is about to replace."""
        program = self._pg_program(target, "pg_dump", action)
        pg_restore = self._pg_program(target, "pg_restore", action)  # reads the dump back for its manifest
        path, stamp = backup_files.new_path(self.env.name, target.name, safety_copy)
        dbname, env, prefix = _pg_connection(target.url or "")
        argv = (program, "-Fc", "--file", str(path), "--dbname", dbname)
        reserve = backups.ReserveDump(path)
        dump = runner.Command(argv, display=prefix + shlex.join(argv), env=env, cwd=self.base_dir,
                              records={"backup": str(path)})
        # The file name is chosen when the plan is made; the fingerprint ignores its time so that a plan
        # reviewed a minute ago still matches.
        return (replace(reserve, fingerprint_text=reserve.display.replace(stamp, "<time>")),
                backup_files.take(dump, path, stamp, f"{self.env.name}/{target.name}" if safety_copy else None),
                backup_files.manifest(path, stamp, pg_restore, self.env.name, target.name, safety_copy))

    def _restore(self, action: Action) -> tuple[Call, ...]:
        """Verify the dump now (a bad one, or another environment's, is refused before anything is planned, let
        alone dropped), then: verify it again right before, optionally restore into a scratch database and check
        it, take a safety copy of the database, restore, check the tables are there. With --scratch-only (a drill)
        the database itself is never touched."""
        target = self._database(action)
        pg_restore = self._pg_program(target, "pg_restore", action)
        source = backup_files.resolve(self.env.name, self.base_dir, target.name, action)
        dbname, env, prefix = _pg_connection(target.url or "")
        checked, verify_call = backup_files.verified(source, pg_restore, action, self.env.name, target.name,
                                                     backups.database_of(dbname) or None)
        mode, verify = self._restore_settings(target, action)
        password = env.get("PGPASSWORD")
        names, count = checked.contents.table_names, checked.contents.tables
        calls: list[Call] = [verify_call]
        if verify == "scratch":
            now = datetime.now(UTC)
            scratch = backups.scratch_name(backups.database_of(dbname) or target.name, now)
            scratch_db = backups.with_database(dbname, scratch)
            argv = (pg_restore, "--clean", "--if-exists", *mode, "--dbname", scratch_db, str(source))
            call = backups.ScratchRestore(dump=source, conninfo=dbname, password=password, scratch=scratch,
                                          restore_argv=argv, restore_display=prefix + shlex.join(argv),
                                          table_names=names, tables=count, count_rows=action.count_rows)
            # The scratch database's name holds the time the plan was made: the fingerprint leaves it out.
            calls.append(replace(call, fingerprint_text=call.display.replace(scratch, backups.SCRATCH_PREFIX + "*")))
        if not action.scratch_only:
            if not action.no_safety_copy:
                calls += self._dump(target, action, safety_copy=True)
            argv = (pg_restore, "--clean", "--if-exists", *mode, "--dbname", dbname, str(source))
            calls.append(runner.Command(argv, display=prefix + shlex.join(argv), env=env, cwd=self.base_dir))
            calls.append(backups.CheckRestored(conninfo=dbname, password=password, table_names=names, tables=count,
                                               count_rows=action.count_rows))
        return tuple(calls)

    def _restore_settings(self, target: Target, action: Action) -> tuple[tuple[str, ...], str]:
        """(pg_restore's mode flags, "none" | "scratch") from the flags, else the service's config:
        `restore_jobs = N` (N > 1: parallel, not atomic; 1, the default: one transaction) and
        `restore_verify = "scratch" | "none"`."""
        jobs = target.options.get("restore_jobs", 1)
        if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= 64:
            raise ConfigError("restore_jobs must be a whole number from 1 (one transaction, the default) to 64",
                              self.config.source, self._line("services", target.name, "restore_jobs"))
        verify = target.options.get("restore_verify", "none")
        if verify not in RESTORE_VERIFY:
            raise ConfigError(f"restore_verify must be one of {', '.join(map(repr, RESTORE_VERIFY))}, got {verify!r}",
                              self.config.source, self._line("services", target.name, "restore_verify"))
        if action.single_transaction:
            jobs = 1
        elif action.jobs is not None:
            jobs = action.jobs
        mode = ("--single-transaction",) if jobs == 1 else ("--jobs", str(jobs))
        if action.scratch_only:
            return mode, "scratch"
        return mode, action.verify or verify


# --- in-process calls ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MakeDirectory:
    path: Path
    display: str = ""
    fingerprint_text: str = ""
    records: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "display", self.display or f"mkdir -p -m 700 {shlex.quote(str(self.path))}")
        object.__setattr__(self, "fingerprint_text", self.fingerprint_text or self.display)

    def perform(self, on_output: Output) -> runner.Result:
        started = time.monotonic()
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            return runner.Result(1, "", time.monotonic() - started, error=f"cannot create {self.path}: {exc}")
        return runner.Result(0, "", time.monotonic() - started)


@dataclass(frozen=True)
class SecretRewrite:
    """Set one variable of a .env file, keeping the statement it replaces in the `.previous` file (0600).

    `value=None` is a rollback: the kept statement comes back and the current one is kept in its place, marked
    rolled back, so a second rollback refuses instead of toggling back. What is kept is written once per rotation:
    a retry of this call (the file already holds `value`) or of its run (`run_id`, a resume draws a new value)
    leaves the kept statement alone, so the original survives until `--rollback` puts it back. (A second rotation
    of the same name within one run is taken as such a retry: the rollback goes back to before the run.)
    """

    path: Path
    previous: Path
    name: str
    value: str | None = field(repr=False)
    display: str = ""
    fingerprint_text: str = ""
    records: dict[str, object] = field(default_factory=dict)
    run_id: str = ""  # the run executing it (set by the provider at run time): names what it keeps

    def __post_init__(self) -> None:
        object.__setattr__(self, "display", masking.mask(self.display))
        object.__setattr__(self, "fingerprint_text", masking.mask(self.fingerprint_text) or self.display)

    def perform(self, on_output: Output) -> runner.Result:
        started = time.monotonic()
        try:
            if not self.path.is_file():
                raise UserError(f"no {self.path}: nothing to rewrite; nothing was changed")
            current = _statements(_read_text(self.path))
            kept = _statements(_read_text(self.previous))
            if self.value is None:
                message, kept_value = self._roll_back(current, kept)
            else:
                message, kept_value = self._rotate(current, kept, self.value)
        except UserError as exc:
            return runner.Result(1, "", time.monotonic() - started, error=masking.mask(exc.message))
        except (OSError, UnicodeError) as exc:
            return runner.Result(1, "", time.monotonic() - started, error=masking.mask(f"cannot rewrite: {exc}"))
        on_output(message)
        recorded = {"secret": self.name, "previous_value": masking.mask(kept_value) if kept_value else "",
                    "previous_file": str(self.previous)}
        return runner.Result(0, message, time.monotonic() - started, recorded=recorded)

    def _rotate(self, current: list[_Statement], kept: list[_Statement], value: str) -> tuple[str, str]:
        """Write `value`; keep the replaced statement unless this rotation already kept one."""
        old = _last(current, self.name)
        old_value = _value_of(old.text) if old else ""
        rotation.register_old(old_value)
        mark = _marker(kept, self.name)
        retry = old_value == value or bool(self.run_id and mark and mark.mark == "kept" and mark.run == self.run_id)
        new = f"{_prefix(old.text)}{self.name}={value}{_line_end(old.text)}" if old else f"{self.name}={value}\n"
        if retry:
            before = _last(kept, self.name)
            kept_value = _value_of(before.text) if before else ""
            rotation.register_old(kept_value)
            note = (f"{self.previous} still keeps the value from before this rotation "
                    f"({secret_values.fingerprint(kept_value) if before else 'none'}): a retry keeps what the first "
                    f"attempt kept")
        else:
            # The replaced statement is safe in the .previous file before the .env file changes: a crash in
            # between leaves both files consistent (and a retry of this run finds it kept).
            keep = old.text if old else f"{_UNSET}{self.name}\n"
            _atomic_write(self.previous, _put(kept, self.name, _marked("kept", self.name, self.run_id, keep)), 0o600)
            kept_value = old_value
            note = f"the value it replaced is kept in {self.previous}"
        if old is None or old.text != new:
            _atomic_write(self.path, _put(current, self.name, new), stat.S_IMODE(self.path.stat().st_mode))
        return f"{self.name} rotated ({secret_values.fingerprint(value)}) in {self.path}; {note}", kept_value

    def _roll_back(self, current: list[_Statement], kept: list[_Statement]) -> tuple[str, str]:
        """Put the kept statement back, once; the current one is kept in its place, marked rolled back."""
        mark = _marker(kept, self.name)
        if mark is not None and mark.mark == "rolled-back":
            if self.run_id and mark.run == self.run_id:  # a retry of this very rollback: it is done
                return f"{self.name} was restored by this run already; {self.path} is left as it is", ""
            by = f" (run {mark.run})" if mark.run else ""
            raise UserError(f"{self.name} was already rolled back{by}: {self.path.name} holds the value from before "
                            f"the rotation again; nothing was changed (rotate it again to replace it)")
        restored = _last(kept, self.name)
        if restored is None:
            raise UserError(f"no previous value of {self.name} kept in {self.previous}: nothing to roll back to; "
                            f"nothing was changed")
        old = _last(current, self.name)
        old_value = _value_of(old.text) if old else ""
        rotation.register_old(old_value)
        new = None
        if not restored.unset:
            rotation.register_old(_value_of(restored.text))
            # Its own line end was lost only if it had none (the file's last line): the rotated one kept that.
            new = _strip_line_end(restored.text) + (_line_end(old.text) if old else _line_end(restored.text) or "\n")
        keep = old.text if old else f"{_UNSET}{self.name}\n"
        _atomic_write(self.previous, _put(kept, self.name, _marked("rolled-back", self.name, self.run_id, keep)),
                      0o600)
        _atomic_write(self.path, _put(current, self.name, new), stat.S_IMODE(self.path.stat().st_mode))
        now = secret_values.fingerprint(_value_of(new)) if new else "unset"
        return (f"{self.name} restored ({now}) in {self.path}; the value it replaced is kept in {self.previous}, "
                f"marked rolled back", old_value)


# --- .env files, statement by statement ---------------------------------------------------------------------------
#
# A statement is what python-dotenv reads as one: `NAME=value` with its line end, a comment, blank lines, or a
# quoted value spanning lines (a PEM key). A file is exactly the concatenation of its statements, so replacing one
# leaves every other byte as it was, and a rollback puts the replaced one back byte for byte.
#
# The .previous file holds, for each rotated name, a marker comment and the statement kept after it:
#   #opsconsole-kept NAME run=RUN          the statement run RUN's rotation replaced: what --rollback restores
#   #opsconsole-rolled-back NAME run=RUN   the statement run RUN's rollback replaced: a second rollback refuses
#   #opsconsole-unset NAME                 (as the kept statement) NAME was not in the file before
# A statement kept without a marker (written by hand, or by an older opsconsole) is kept all the same.

_UNSET = "#opsconsole-unset "
_MARK = re.compile(r"#opsconsole-(?P<kind>kept|rolled-back) (?P<name>\S+)(?: run=(?P<run>\S*))?[^\S\r\n]*"
                   r"(?:\r\n|\n|\r)?\Z")
_BLANK_LINES = re.compile(r"(?:[^\S\r\n]*(?:\r\n|\n|\r))*")
_LINE_END = re.compile(r"(?:\r\n|\n|\r)\Z")
_PREFIX = re.compile(r"[^\S\r\n]*(?:export[^\S\r\n]+)?")  # what a rewritten statement keeps in front of NAME=


@dataclass(frozen=True)
class _Statement:
    text: str  # exactly as in the file, its line end included
    key: str | None = None  # the variable it sets, or the name a marker is about; None: comment, blank, unparsable
    mark: str | None = None  # "kept" | "rolled-back" for a .previous marker
    run: str = ""  # the run that wrote the marker

    @property
    def unset(self) -> bool:
        return self.text.startswith(_UNSET)


def _read_text(path: Path) -> str:
    """The file's text exactly (no newline translation: a CRLF file stays CRLF); "" when there is none."""
    return path.read_bytes().decode("utf-8") if path.is_file() else ""


def _statements(text: str) -> list[_Statement]:
    """`text` cut where python-dotenv's own parser cuts it; the texts joined give `text` back."""
    from dotenv.parser import parse_stream

    out: list[_Statement] = []
    if text.startswith("\ufeff"):  # python-dotenv skips a byte-order mark: kept as a statement of its own
        out.append(_Statement("\ufeff"))
        text = text[1:]
    for binding in parse_stream(io.StringIO(text)):
        body = binding.original.string
        blank = _BLANK_LINES.match(body)
        lead = blank.end() if blank else 0
        if 0 < lead < len(body):  # the blank lines before a statement stay where they are when it is replaced
            out.append(_Statement(body[:lead]))
            body = body[lead:]
        mark = _MARK.match(body)
        if body.startswith(_UNSET):
            out.append(_Statement(body, key=body[len(_UNSET):].strip()))
        elif mark:
            out.append(_Statement(body, key=mark["name"], mark=mark["kind"], run=mark["run"] or ""))
        elif binding.error or binding.value is None:
            out.append(_Statement(body))
        else:
            out.append(_Statement(body, key=binding.key))
    return out


def _read_lines(path: Path) -> list[str]:
    """The file's statements (a quoted value spanning lines is one), for readers outside this module."""
    return [s.text for s in _statements(_read_text(path))]


def _last(statements: list[_Statement], name: str) -> _Statement | None:
    """The statement that sets `name` (the last one wins, as in python-dotenv); markers aside."""
    found = [s for s in statements if s.key == name and s.mark is None]
    return found[-1] if found else None


def _marker(statements: list[_Statement], name: str) -> _Statement | None:
    found = [s for s in statements if s.key == name and s.mark is not None]
    return found[-1] if found else None


def _entry(lines: list[str], name: str) -> str | None:
    """The statement of `_read_lines` that sets `name`, or None."""
    found = _last(_statements("".join(lines)), name)
    return found.text if found else None


def _file_keys(path: Path) -> set[str]:
    return {s.key for s in _statements(_read_text(path)) if s.key and s.mark is None and not s.unset}


def _value_of(statement: str) -> str:
    from dotenv import dotenv_values

    if statement.startswith(_UNSET):
        return ""
    values = dotenv_values(stream=io.StringIO(statement))
    return next((v for v in values.values() if v is not None), "")


def _prefix(text: str) -> str:
    found = _PREFIX.match(text)
    return found.group() if found else ""


def _line_end(text: str) -> str:
    found = _LINE_END.search(text)
    return found.group() if found else ""


def _strip_line_end(text: str) -> str:
    return text[:len(text) - len(_line_end(text))]


def _marked(kind: str, name: str, run_id: str, statement: str) -> str:
    """A .previous entry: the marker, then the kept statement (given a line end if it was the file's last)."""
    return f"#opsconsole-{kind} {name} run={run_id}\n{statement}{'' if _line_end(statement) else chr(10)}"


def _put(statements: list[_Statement], name: str, new: str | None) -> str:
    """The file with every statement about `name` (markers included) replaced by `new`, in the first one's place
    (later duplicates dropped); appended when there is none; removed when `new` is None. Every other
    statement is kept byte for byte."""
    out: list[str] = []
    placed = False
    for statement in statements:
        if statement.key == name:
            if new is not None and not placed:
                out.append(new)
                placed = True
            continue
        out.append(statement.text)
    if new is not None and not placed:
        if out and not _line_end(out[-1]):
            out.append("\n")
        out.append(new)
    return "".join(out)


def _atomic_write(path: Path, text: str, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _pg_connection(url: str) -> tuple[str, dict[str, str], str]:
    """(connection string without the password, env carrying it, display prefix) for pg_dump/pg_restore."""
    password: str | None = None
    if "://" in url:
        parts = urlsplit(url)
        if parts.password is not None:
            password = unquote(parts.password)
            host = parts.netloc.rsplit("@", 1)[1]
            user = quote(unquote(parts.username or ""), safe="")
            parts = parts._replace(netloc=f"{user}@{host}" if user else host)
        query = parse_qsl(parts.query, keep_blank_values=True)
        kept = [(k, v) for k, v in query if k.lower() != "password"]
        if len(kept) != len(query):
            password = password or next(v for k, v in query if k.lower() == "password")
            parts = parts._replace(query=urlencode(kept))
        dbname = urlunsplit(parts)
    else:  # a libpq keyword string: host=... dbname=... password=...
        m = re.search(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", url)
        if m:
            value = m.group(1)
            password = value[1:-1].replace("\\'", "'").replace("\\\\", "\\") if value.startswith("'") else value
            url = (url[:m.start()] + url[m.end():]).strip()
        dbname = url
    if not password:
        return dbname, {}, ""
    masking.register(password)
    return dbname, {"PGPASSWORD": password}, f"PGPASSWORD={masking.MASK} "
