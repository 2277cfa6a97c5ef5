"""The `compose` provider: changes go through `docker compose -f FILE -p PROJECT`, always both explicit.

- deploy SERVICE: `up -d --build SERVICE`.
- migrate [SERVICE]: `run --rm SERVICE <the service's migrate command>`.
- scale SERVICE --replicas N: the running count is read first (`ps --format json SERVICE`, recorded as
  previous.replicas), then `up -d --no-recreate --scale SERVICE=N SERVICE`.
- rotate-secret NAME: rewrites NAME in the project's `.env` file with the `local` provider's atomic rewrite
  (the statement it replaces is kept in `.env.previous`, mode 0600, once per rotation; `--rollback` puts it
  back, once), then `up -d SERVICE` for each service to restart, which recreates the containers whose config
  changed. A missing `.env`, a name not in it, or a name also set in opsconsole's own environment (which
  Compose's interpolation prefers to the file) is refused at plan time.
- backup DB: `exec -T DB pg_dump -Fc` into a file in the user state dir (written aside, then renamed; removed if
  it fails), then its manifest as the `local` provider writes one (read back with this machine's pg_restore).
- restore-backup DB --from BACKUP: the dump is verified here (size, sha256, `pg_restore -l`; another
  environment's, service's or database's refused unless --from-other), a safety copy of DB is dumped as `backup`
  does into `before-restore/` (unless --no-safety-copy), then `exec -T DB pg_restore --clean --if-exists
  --single-transaction` with the dump on stdin.
- sh blocks: local bash in the project directory with COMPOSE_FILE and COMPOSE_PROJECT_NAME set, so a
  `docker compose ...` line in a block targets the same project.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from opsconsole import masking, runner
from opsconsole.errors import ConfigError, UserError
from opsconsole.providers import Call, Output, Provider, backup_files, queries, rotation
from opsconsole.providers.local import (_SECRET_NAME, MakeDirectory, SecretRewrite, _last, _read_text, _statements,
                                        _value_of, bash)

if TYPE_CHECKING:
    from opsconsole.actions import Action
    from opsconsole.config import Config, Environment, Target

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")


def default_project_name(directory: Path) -> str:
    """What docker compose itself would call the project: the directory's name, lowercased, [a-z0-9_-] only."""
    name = re.sub(r"[^a-z0-9_\-]", "", directory.name.lower()).lstrip("_-")
    return name or "default"


class ComposeProvider(Provider):
    name = "compose"
    # Its restores always run in one transaction.
    options = frozenset({"--single-transaction", "--from-other", "--no-safety-copy"})

    def __init__(self, config: Config, env: Environment) -> None:
        self.config = config
        self.env = env
        self.base_dir = config.base_dir
        given = self._string("compose_file", required=False)
        if given is not None:
            self.file_arg = given
            self.compose_file = (self.base_dir / given).resolve()
            if not self.compose_file.is_file():
                raise ConfigError(f"compose_file {given!r} not found (relative to {self.base_dir})",
                                  config.source, self._line("provider_options", "compose_file"))
        else:
            found = next((f for f in DEFAULT_FILES if (self.base_dir / f).is_file()), None)
            if found is None:
                raise ConfigError(f"environment {env.name!r} uses provider 'compose', but there is no "
                                  f"{' / '.join(DEFAULT_FILES)} beside the config: set compose_file = \"...\" in "
                                  f"[environments.{env.name}.provider_options]",
                                  config.source, self._line("provider"))
            self.file_arg = found
            self.compose_file = (self.base_dir / found).resolve()
        self.project_dir = self.compose_file.parent
        self.project = self._string("project_name", required=False) or default_project_name(self.project_dir)
        env_file = self._string("env_file", required=False)
        self.env_file = (self.base_dir / env_file).resolve() if env_file else self.project_dir / ".env"
        self.previous_file = self.env_file.with_name(self.env_file.name + ".previous")
        self.docker = self._string("docker", required=False) or "docker"
        self._register_env_secrets()

    # --- config ----------------------------------------------------------------------------------------------

    def _line(self, *key: str) -> int | None:
        return self.config.lines.line("environments", self.env.name, *key)

    def _string(self, key: str, required: bool = True) -> str | None:
        value = self.env.provider_options.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key} must be a non-empty string", self.config.source,
                              self._line("provider_options", key))
        return value

    def _register_env_secrets(self) -> None:
        """Secret-looking values of the project's .env are masked wherever they would show."""
        for statement in _statements(_read_text(self.env_file)):
            key = statement.key
            if key and statement.mark is None and (key in self.env.secrets or _SECRET_NAME.search(key)):
                rotation.register_old(_value_of(statement.text))

    def compose(self, *args: str) -> tuple[str, ...]:
        return (self.docker, "compose", "-f", self.file_arg, "-p", self.project, *args)

    def _command(self, *args: str, display: str | None = None, **kw: Any) -> runner.Command:
        argv = self.compose(*args)
        return runner.Command(argv, display=display or shlex.join(argv), cwd=self.base_dir, **kw)

    def compose_service(self, target: Target) -> str:
        value = target.options.get("compose_service", target.name)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError("compose_service must be a non-empty string", self.config.source,
                              self._line("services", target.name, "compose_service"))
        return value

    # --- context ---------------------------------------------------------------------------------------------

    def shell(self, script: str) -> runner.Command:
        cmd = bash(script, self.project_dir)
        env = {**cmd.env, "COMPOSE_FILE": str(self.compose_file), "COMPOSE_PROJECT_NAME": self.project}
        through = f"# through: bash -e -c in {self.project_dir}, docker compose -f {self.compose_file} -p {self.project}"
        return runner.Command(cmd.argv, display=f"{cmd.display.rstrip()}\n{through}", stdin=cmd.stdin, env=env,
                              cwd=cmd.cwd)

    def execute(self, call: Call, timeout_s: float | None, on_output: Output,
                cancel: threading.Event | None = None) -> runner.Result:
        if isinstance(call, SecretRewrite):
            call = replace(call, run_id=self.run_id)  # what it keeps names its run: a retry keeps it
        if isinstance(call, backup_files.CALLS):
            return backup_files.execute(call, self.run_id, timeout_s, on_output, cancel)
        return super().execute(call, timeout_s, on_output, cancel)

    # --- planning --------------------------------------------------------------------------------------------

    def plan(self, action: Action) -> tuple[Call, ...]:
        verb = action.verb
        if verb == "deploy":
            service = self.compose_service(self._service(action, "deploy"))
            return (self._command("up", "-d", "--build", service),)
        if verb == "migrate":
            return (self._migrate(action),)
        if verb == "scale":
            return (self._scale(action),)
        if verb == "rotate-secret":
            return self._rotate(action)
        if verb == "backup":
            return self._backup(action)
        if verb == "restore-backup":
            return self._restore(action)
        raise UserError(f"`{action.text()}`: the compose provider does not know {verb!r}")

    def _migrate(self, action: Action) -> runner.Command:
        if action.service:
            target = self._service(action, "migrate")
        else:
            with_migrate = [t for t in self.env.services if "migrate" in t.options]
            if len(with_migrate) != 1:
                which = ", ".join(t.name for t in with_migrate)
                raise UserError(f"`migrate`: say which service to migrate ({which})" if with_migrate else
                                f"`migrate`: no service of environment {self.env.name!r} has a migrate command: "
                                f"add migrate = \"...\" to one")
            target = with_migrate[0]
        command = target.options.get("migrate")
        where = ("services", target.name, "migrate")
        if command is None:
            raise ConfigError(f"service {target.name!r} has no migrate command: add migrate = \"...\" (run with "
                              f"`docker compose run --rm {self.compose_service(target)}`)", self.config.source,
                              self._line(*where[:2]))
        if isinstance(command, str) and command.strip():
            try:
                words = shlex.split(command)
            except ValueError as exc:
                raise ConfigError(f"migrate: {exc}", self.config.source, self._line(*where)) from None
        elif isinstance(command, list) and command and all(isinstance(w, str) for w in command):
            words = command
        else:
            raise ConfigError("migrate must be a command string or a list of words", self.config.source,
                              self._line(*where))
        return self._command("run", "--rm", "-T", self.compose_service(target), *words)

    def running(self, service: str) -> int:
        """How many containers of `service` run now (`docker compose ps --format json`)."""
        what = f"read the running containers of {service}"
        out = queries.read(self.compose("ps", "--format", "json", service), what, cwd=self.base_dir)
        try:
            rows = parse_ps(out)
        except ValueError:
            raise UserError(f"cannot {what}: `docker compose ps --format json` printed something that is not "
                            f"JSON") from None
        return sum(1 for c in rows if c.get("Service", service) == service)

    def _scale(self, action: Action) -> runner.Command:
        service = self.compose_service(self._service(action, "scale"))
        current = self.running(service)
        argv = self.compose("up", "-d", "--no-recreate", "--scale", f"{service}={action.replicas}", service)
        return runner.Command(argv, display=f"{shlex.join(argv)}  # running now: {current}", cwd=self.base_dir,
                              records={"replicas": current})

    def _rotate(self, action: Action) -> tuple[Call, ...]:
        spec = rotation.secret_spec(self.config, self.env, action)
        name = spec.name
        restarts = [self._command("up", "-d", self.compose_service(self._service(action, "restart", s)))
                    for s in spec.restart]
        old = _last(_statements(_read_text(self.env_file)), name)
        self._check_rotatable(action, old is not None)
        if old:
            rotation.register_old(_value_of(old.text))
        if action.rollback:
            rewrite = SecretRewrite(path=self.env_file, previous=self.previous_file, name=name, value=None,
                                    display=f"rewrite {self.env_file}: {name} back to the line kept in "
                                            f"{self.previous_file} (which keeps the current one in turn)")
        else:
            value = rotation.new_value(spec)
            rewrite = SecretRewrite(path=self.env_file, previous=self.previous_file, name=name, value=value,
                                    display=f"rewrite {self.env_file}: {name}={masking.MASK} (new value, "
                                            f"{rotation.generated(spec)}); the previous line is kept in "
                                            f"{self.previous_file} (mode 0600)")
        return (rewrite, *restarts)

    def _check_rotatable(self, action: Action, in_file: bool) -> None:
        name = action.secret or ""
        rotation.refuse_unreachable(
            action, self.env_file, known=in_file,
            missing=(f"(the project's env file, where the compose provider rotates {name}; set env_file = \"...\" "
                     f"in [environments.{self.env.name}.provider_options] if it lives elsewhere)"),
            unknown=(f"it is not set in {self.env_file}, so there is nothing to rotate; add {name}=<the current "
                     f"value> there first"),
            exported=(f"docker compose prefers that value to {self.env_file.name}: the recreated containers would "
                      f"keep it"))

    # --- backup / restore ------------------------------------------------------------------------------------

    def _database(self, action: Action) -> tuple[Target, str, str]:
        """(target, user, database name) of the postgres service `action` names."""
        target = self._service(action, action.verb)
        if target.kind != "postgres" or not target.url or "://" not in target.url:
            known = ", ".join(t.name for t in self.env.services if t.kind == "postgres") or "none"
            raise UserError(f"`{action.text()}`: service {target.name!r} is not a postgres service with a "
                            f"postgresql:// url (postgres services: {known})")
        parts = urlsplit(target.url)
        user = unquote(parts.username or "postgres")
        database = unquote(parts.path.lstrip("/")) or user
        return target, user, database

    def _backup(self, action: Action) -> tuple[Call, ...]:
        return self._dump(action)

    def _dump(self, action: Action, safety_copy: bool = False) -> tuple[Call, ...]:
        """`exec -T DB pg_dump -Fc` into a file here, then its manifest: a backup, or a restore's safety copy."""
        target, user, database = self._database(action)
        program = backup_files.pg_restore(target, action)  # reads the dump back here, for its manifest
        path, stamp = backup_files.new_path(self.env.name, target.name, safety_copy)
        partial = path.with_name(path.name + ".partial")
        dump = self.compose("exec", "-T", self.compose_service(target), "pg_dump", "-Fc", "--username", user,
                            "--dbname", database)
        # Written aside and renamed once complete: a failed dump never looks like a backup (and is removed).
        argv = ("sh", "-c", '"$@" > "$0.partial" && mv "$0.partial" "$0"', str(path), *dump)
        command = runner.Command(argv, display=f"{shlex.join(dump)} > {shlex.quote(str(path))}", cwd=self.base_dir,
                                 records={"backup": str(path)})
        return (MakeDirectory(path.parent),
                backup_files.take(command, partial, stamp, f"{self.env.name}/{target.name}" if safety_copy else None),
                backup_files.manifest(path, stamp, program, self.env.name, target.name, safety_copy))

    def _restore(self, action: Action) -> tuple[Call, ...]:
        target, user, database = self._database(action)
        program = backup_files.pg_restore(target, action)
        source = backup_files.resolve(self.env.name, self.base_dir, target.name, action)
        _, verify = backup_files.verified(source, program, action, self.env.name, target.name, database)
        safety = () if action.no_safety_copy else self._dump(action, safety_copy=True)
        restore = self.compose("exec", "-T", self.compose_service(target), "pg_restore", "--clean", "--if-exists",
                               "--single-transaction", "--username", user, "--dbname", database)
        # The dump reaches the container on stdin, straight from the file (the runner's stdin is text).
        argv = ("sh", "-c", 'exec "$@" < "$0"', str(source), *restore)
        return (verify, *safety, runner.Command(argv, display=f"{shlex.join(restore)} < {shlex.quote(str(source))}",
                                                cwd=self.base_dir))


def parse_ps(text: str) -> list[dict[str, Any]]:
    """`docker compose ps --format json`: one JSON object per line (compose >= 2.21) or one array (older)."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r for r in rows if isinstance(r, dict)]
