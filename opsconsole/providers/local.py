"""The `local` provider: changes happen on this machine.

- sh blocks run as `bash -e -c SCRIPT` in the config's directory, with the environment's `.env` values
  (read when each command starts, so a command after `rotate-secret` sees the new value).
- deploy / migrate run the command configured on the service (`deploy = "..."`, `migrate = "..."`;
  a `migrate` without a service uses `[environments.X.provider_options] migrate`, else the only service
  that has one). `rotate-secret --restart SERVICE` runs the service's `restart = "..."`.
- scale is refused: a local process has no replica count.
- rotate-secret rewrites `.env.<environment>` (atomically, other lines untouched); the line it replaces is
  kept in `.env.<environment>.previous` (mode 0600), which `--rollback` swaps back.
- backup runs `pg_dump -Fc` of a postgres service into the user state dir and writes a manifest beside it
  (opsconsole/backups.py); restore-backup verifies the dump (checksum against the manifest, `pg_restore -l`)
  before anything is dropped, optionally restores into a scratch database first, then runs
  `pg_restore --clean --if-exists`, in one transaction (the default) or with parallel jobs. The password goes
  through PGPASSWORD, never argv.
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
from opsconsole.backups import WriteManifest, backups_dir
from opsconsole.errors import ConfigError, UserError
from opsconsole.providers import Call, Output, Provider

if TYPE_CHECKING:
    from opsconsole.actions import Action
    from opsconsole.config import Config, Environment, Target

# .env variables whose values are masked wherever they would show (beside URL passwords, always masked).
_SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?)$", re.IGNORECASE)
_ENV_LINE = re.compile(r"^\s*(?P<export>export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.\-]*)\s*=")
_UNSET = "#opsconsole-unset "  # in the .previous file: the variable did not exist before the rotation
_SCRIPT_VAR = "OPSCONSOLE_SCRIPT"
# A script that holds a secret travels in the environment (readable by this user only), not argv (`ps`);
# the variable is unset before the script runs so its children do not inherit it.
_EVAL = f'__opsconsole_script=${_SCRIPT_VAR}; unset {_SCRIPT_VAR}; eval "$__opsconsole_script"'


_BACKUP_CALLS = (backups.ReserveDump, WriteManifest, backups.VerifyBackup, backups.ScratchRestore,
                 backups.CheckRestored)


def bash(script: str, cwd: Path, display: str | None = None) -> runner.Command:
    """`bash -e -c SCRIPT`: stops at the first failing command, as a person following the runbook would."""
    shown = masking.mask((display if display is not None else script).rstrip("\n"))
    if masking.mask(script) != script:
        return runner.Command(("bash", "-e", "-c", _EVAL), display=shown, env={_SCRIPT_VAR: script}, cwd=cwd)
    return runner.Command(("bash", "-e", "-c", script), display=shown, cwd=cwd)


class LocalProvider(Provider):
    name = "local"
    options = frozenset({"--jobs", "--single-transaction", "--verify", "--scratch-only", "--count-rows"})

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
        from dotenv import dotenv_values

        values: dict[str, str] = {}
        for path in (self.base_dir / ".env", self.env_file):
            if path.is_file():
                values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
        for key, value in values.items():
            masking.register_url(value)
            if (key in self.env.secrets or _SECRET_NAME.search(key)) and len(value) >= 4:
                masking.register(value)
        return values

    def shell(self, script: str) -> runner.Command:
        return bash(script, self.base_dir)

    def execute(self, call: Call, timeout_s: float | None, on_output: Output, cancel: Any = None) -> runner.Result:
        if isinstance(call, runner.Command):
            # The process environment wins over the files, as everywhere else in opsconsole.
            fresh = {k: v for k, v in self.file_values().items() if k not in os.environ}
            call = runner.Command(call.argv, display=call.display, stdin=call.stdin, env={**fresh, **call.env},
                                  cwd=call.cwd, fingerprint_text=call.fingerprint_text, records=call.records)
        if isinstance(call, _BACKUP_CALLS):
            if isinstance(call, WriteManifest):
                call = replace(call, run_id=self.run_id)  # the manifest names the run that made it
            # They run subprocesses (pg_restore) of their own: the step's timeout and Ctrl-C reach those too.
            return call.perform(on_output, timeout_s, cancel)
        return super().execute(call, timeout_s, on_output, cancel)

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
        from opsconsole.providers import rotation

        spec = rotation.secret_spec(self.config, self.env, action)  # restart, length, alphabet: checked
        name = spec.name
        length, alphabet = spec.length, spec.alphabet
        if "bytes" in spec.options and "length" not in spec.options and "alphabet" not in spec.options:
            size = spec.options["bytes"]
            if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 512:
                raise ConfigError("bytes must be a whole number from 16 to 512", self.config.source,
                                  self._line("secrets", name, "bytes"))
            length, alphabet = -(-4 * size // 3), "urlsafe"
        current = _read_lines(self.env_file)
        old = _entry(current, name)
        if old:
            masking.register(_value_of(old))
        if action.rollback:
            # Whether a previous value is kept is checked when it runs: a rotate-secret step's own rollback
            # block is planned before the rotation that keeps it.
            rewrite = SecretRewrite(path=self.env_file, previous=self.previous_file, name=name, value=None,
                                    display=f"rewrite {self.env_file}: {name} back to the line kept in "
                                            f"{self.previous_file} (which keeps the current one in turn)")
        else:
            defined = name in self.env.secrets or _entry(current, name) is not None
            if not defined and name not in _file_keys(self.base_dir / ".env"):
                raise UserError(f"`{action.text()}`: unknown secret {name}: define it in {self.env_file.name} or "
                                f"add [environments.{self.env.name}.secrets.{name}]")
            value = secret_values.generate(length, alphabet)
            made = f"{length or secret_values.DEFAULT_LENGTH[alphabet]} {alphabet} characters"
            was = f" ({secret_values.fingerprint(_value_of(old))})" if old else ""
            kept = f"the previous line{was} is kept in {self.previous_file} (mode 0600)"
            # The new value is drawn for each plan, so the plan names how it is made; its fingerprint shows
            # once it is written (SecretRewrite's output).
            rewrite = SecretRewrite(path=self.env_file, previous=self.previous_file, name=name, value=value,
                                    display=f"rewrite {self.env_file}: {name}={masking.MASK} (new value: {made}); "
                                            f"{kept}")
        return (rewrite, *(self._configured(self._service(action, "restart", s), "restart") for s in spec.restart))

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
        target = self._database(action)
        program = self._pg_program(target, "pg_dump", action)
        pg_restore = self._pg_program(target, "pg_restore", action)  # reads the dump back for its manifest
        path = backups.free_dump_path(backups_dir(self.env.name), target.name, datetime.now(UTC))
        stamp = path.name[len(target.name) + 1:-len(".dump")]
        dbname, env, prefix = _pg_connection(target.url or "")
        argv = (program, "-Fc", "--file", str(path), "--dbname", dbname)
        display = prefix + shlex.join(argv)
        reserve = backups.ReserveDump(path)
        manifest = WriteManifest(dump=path, pg_restore=pg_restore, environment=self.env.name, service=target.name)
        # The file name is chosen when the plan is made; the fingerprint ignores its time so that a plan
        # reviewed a minute ago still matches.
        return (replace(reserve, fingerprint_text=reserve.display.replace(stamp, "<time>")),
                runner.Command(argv, display=display, env=env, cwd=self.base_dir,
                               fingerprint_text=display.replace(stamp, "<time>"), records={"backup": str(path)}),
                replace(manifest, fingerprint_text=manifest.display.replace(stamp, "<time>")))

    def _restore(self, action: Action) -> tuple[Call, ...]:
        """Verify the dump now (a bad one is refused before anything is planned, let alone dropped), then:
        verify it again right before, optionally restore into a scratch database and check it, restore,
        check the tables are there. With --scratch-only (a drill) the database itself is never touched."""
        target = self._database(action)
        pg_restore = self._pg_program(target, "pg_restore", action)
        source = self._backup_file(target, action)
        try:
            checked = backups.verify(source, pg_restore)
        except backups.BackupError as exc:
            raise UserError(f"`{action.text()}`: refusing {source}: {exc}; nothing was restored") from None
        mode, verify = self._restore_settings(target, action)
        dbname, env, prefix = _pg_connection(target.url or "")
        password = env.get("PGPASSWORD")
        names, count = checked.contents.table_names, checked.contents.tables
        calls: list[Call] = [backups.VerifyBackup(
            path=source, pg_restore=pg_restore, sha256=checked.sha256,
            display=f"verify {source} before anything is dropped: {checked.describe()}")]
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

    def _backup_file(self, target: Target, action: Action) -> Path:
        wanted = action.source or ""
        directory = backups_dir(self.env.name)
        if wanted == "latest":
            try:
                return backups.latest(directory, target.name).path
            except backups.BackupError as exc:
                raise UserError(f"`{action.text()}`: {exc}") from None
        for candidate in (Path(wanted).expanduser(), self.base_dir / wanted, directory / wanted):
            if candidate.is_file():
                return candidate.resolve()
        raise UserError(f"`{action.text()}`: no backup {wanted!r}: not a file, and not in {directory} "
                        f"(`opsconsole backup {target.name}` prints the file it writes; `latest` takes the newest)")


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
    """Set one variable of a .env file, keeping the line it replaces in the `.previous` file (0600).

    `value=None` is a rollback: the kept line comes back and the current one is kept in its place.
    """

    path: Path
    previous: Path
    name: str
    value: str | None = field(repr=False)
    display: str = ""
    fingerprint_text: str = ""
    records: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "display", masking.mask(self.display))
        object.__setattr__(self, "fingerprint_text", self.fingerprint_text or self.display)

    def perform(self, on_output: Output) -> runner.Result:
        started = time.monotonic()
        try:
            lines = _read_lines(self.path)
            kept = _read_lines(self.previous)
            old = _entry(lines, self.name)
            if old:
                masking.register(_value_of(old))
            if self.value is None:
                restored = _entry(kept, self.name)
                if restored is None:
                    return runner.Result(1, "", time.monotonic() - started,
                                         error=f"no previous value of {self.name} kept in {self.previous}")
                new = None if restored.startswith(_UNSET) else restored
                if new:
                    masking.register(_value_of(new))
            else:
                m = _ENV_LINE.match(old) if old else None
                export = (m.group("export") or "") if m else ""
                new = f"{export}{self.name}={self.value}\n"
            # The old line is safe in the .previous file before the .env file changes: a crash in between
            # leaves both files consistent.
            keep = old if old is not None else f"{_UNSET}{self.name}\n"
            _atomic_write(self.previous, "".join(_replace(kept, self.name, keep)), 0o600)
            mode = stat.S_IMODE(self.path.stat().st_mode) if self.path.exists() else 0o600
            _atomic_write(self.path, "".join(_replace(lines, self.name, new)), mode)
        except OSError as exc:
            return runner.Result(1, "", time.monotonic() - started, error=masking.mask(f"cannot rewrite: {exc}"))
        what = "restored" if self.value is None else "rotated"
        now = secret_values.fingerprint(_value_of(new)) if new else "unset"
        message = f"{self.name} {what} ({now}) in {self.path}; the line it replaced is kept in {self.previous}"
        on_output(message)
        recorded = {"secret": self.name, "previous_value": masking.mask(_value_of(old)) if old else "",
                    "previous_file": str(self.previous)}
        return runner.Result(0, message, time.monotonic() - started, recorded=recorded)


# --- .env file lines ---------------------------------------------------------------------------------------------

def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _key(line: str) -> str | None:
    if line.startswith(_UNSET):
        return line[len(_UNSET):].strip()
    m = _ENV_LINE.match(line)
    return m.group("key") if m else None


def _entry(lines: list[str], name: str) -> str | None:
    """The line that sets `name` (the last one wins, as in python-dotenv)."""
    found = [line for line in lines if _key(line) == name]
    return found[-1] if found else None


def _file_keys(path: Path) -> set[str]:
    return {k for k in map(_key, _read_lines(path)) if k}


def _value_of(line: str) -> str:
    from dotenv import dotenv_values

    if line.startswith(_UNSET):
        return ""
    values = dotenv_values(stream=io.StringIO(line))
    return next((v for v in values.values() if v is not None), "")


def _replace(lines: list[str], name: str, new: str | None) -> list[str]:
    """Every line setting `name` replaced by `new` (the first kept in place, later duplicates dropped);
    appended when absent; removed when `new` is None. Every other line is kept as it was."""
    out: list[str] = []
    placed = False
    for line in lines:
        if _key(line) == name:
            if new is not None and not placed:
                out.append(new)
                placed = True
            continue
        out.append(line)
    if new is not None and not placed:
        out.append(new)
    return out


def _atomic_write(path: Path, text: str, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
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
