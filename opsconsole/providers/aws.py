"""The `aws` provider: ECS services, Secrets Manager secrets and RDS databases, through boto3.

`[environments.X.provider_options]`: `region`, `profile`, `endpoint_url` (LocalStack, a moto server),
`cluster` (the ECS cluster, default "default"), `wait_timeout` (seconds one wait may take, default 900),
`poll` (seconds between the checks of a wait, default 15).
Services: `ecs_service` (default: the service's own name); `migrate` (the command, a string split like a
shell would or a list) with optional `container` (default: the task definition's first) and
`task_definition` (default: the service's); postgres services name their RDS instance with `db_instance`.
Secrets: `[environments.X.secrets.NAME] secret_id` (name or ARN) besides `restart`, `length`, `alphabet`.

| verb | calls |
| deploy | ecs.update_service(forceNewDeployment=True), then the services_stable waiter |
| scale | ecs.describe_services (plan: previous.replicas), update_service(desiredCount=N), services_stable |
| migrate | ecs.run_task with the service's task definition and a command override, until the task stops |
| rotate-secret | secretsmanager.put_secret_value (AWSCURRENT moves, AWSPREVIOUS keeps the old version), then each
|               | restart service redeploys; --rollback moves AWSCURRENT back (update_secret_version_stage) |
| backup | rds.create_db_snapshot, until the snapshot is available |
| restore-backup | rds.restore_db_instance_to_point_in_time (--from a time or `latest-restorable`) or
|                | restore_db_instance_from_db_snapshot (--from a snapshot or `latest`) into a NEW instance |

Each call's `display` is the boto3 call it makes, secret values masked. What a plan needs to know (current
desired count, current secret version, the instance's network settings) is read in `plan`, before any
confirmation. Boto3 blocks, so every call runs in a worker thread; waits poll with the waiter's own
success and failure rules and stop at the block's timeout, `wait_timeout` or the engine's cancel.
"""

from __future__ import annotations

import os
import re
import shlex
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsconsole import credentials, masking, runner, secret_values
from opsconsole.errors import ConfigError, UserError
from opsconsole.providers import Call, Output, Provider

if TYPE_CHECKING:
    from opsconsole.actions import Action
    from opsconsole.config import Config, Environment, Target

DEFAULT_CLUSTER = "default"
WAIT_TIMEOUT_S = 900.0
POLL_S = 15.0  # the ECS waiters' own delay
_STAMP = "%Y%m%d%H%M%S"
# Keyring accounts used when neither the environment nor a profile provides credentials.
KEYRING_KEYS = ("access_key_id", "secret_access_key", "session_token")
ENV_VARS = {"access_key_id": ("AWS_ACCESS_KEY_ID",), "secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
            "session_token": ("AWS_SESSION_TOKEN",)}


# --- settings and clients -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    region: str | None
    profile: str | None
    endpoint_url: str | None
    cluster: str = DEFAULT_CLUSTER
    wait_timeout: float = WAIT_TIMEOUT_S
    poll: float = POLL_S

    @classmethod
    def of(cls, config: Config, env: Environment) -> Settings:
        """provider_options, checked (ConfigError with the line of the bad key)."""
        options = env.provider_options

        def line(key: str) -> int | None:
            return config.lines.line("environments", env.name, "provider_options", key)

        def text(key: str) -> str | None:
            value = options.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{key} must be a non-empty string", config.source, line(key))
            return value

        def seconds(key: str, default: float) -> float:
            value = options.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"{key} must be a number of seconds above 0, got {value!r}", config.source,
                                  line(key))
            return float(value)

        return cls(region=text("region"), profile=text("profile"), endpoint_url=text("endpoint_url"),
                   cluster=text("cluster") or DEFAULT_CLUSTER, wait_timeout=seconds("wait_timeout", WAIT_TIMEOUT_S),
                   poll=seconds("poll", POLL_S))


def session(profile: str | None, region: str | None) -> Any:
    """A boto3 session: boto3's own credential chain (environment, profile, SSO, instance role), except that
    keys kept with `opsconsole auth set aws` are used when neither the environment nor a profile names any."""
    import boto3

    kwargs: dict[str, Any] = {"profile_name": profile, "region_name": region}
    if not profile and not _env_names_credentials():
        kept = {key: credentials.from_keyring("aws", key) for key in KEYRING_KEYS}
        if kept["access_key_id"] and kept["secret_access_key"]:
            kwargs.update(aws_access_key_id=kept["access_key_id"].value,
                          aws_secret_access_key=kept["secret_access_key"].value,
                          aws_session_token=kept["session_token"].value if kept["session_token"] else None)
    return boto3.session.Session(**kwargs)


def _env_names_credentials() -> bool:
    return bool(os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"))


class Clients:
    """boto3 clients for one environment, made on first use (importing boto3 costs ~0.3 s) and shared by the
    worker threads (clients are thread-safe; the session that makes them is not, hence the lock)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                from botocore.config import Config as BotoConfig

                if self._session is None:
                    self._session = session(self.settings.profile, self.settings.region)
                config = BotoConfig(connect_timeout=10, read_timeout=60,
                                    retries={"max_attempts": 3, "mode": "standard"})
                client = self._session.client(service, endpoint_url=self.settings.endpoint_url, config=config)
                self._clients[service] = client
            return client


def arguments(params: Mapping[str, Any], secret: Sequence[str] = ()) -> str:
    return ", ".join(f"{key}={masking.MASK!r}" if key in secret else f"{key}={value!r}"
                     for key, value in params.items())


def api(client: str, operation: str, params: Mapping[str, Any], secret: Sequence[str] = ()) -> str:
    """A call as its display shows it: `ecs.update_service(cluster='prod', service='api', ...)`."""
    return masking.mask(f"{client}.{operation}({arguments(params, secret)})")


def _boto_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def error_text(exc: BaseException) -> str:
    """One line for a botocore error: the service's code and message when it sent one."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping) and isinstance(response.get("Error"), Mapping):
        error = response["Error"]
        code, message = error.get("Code", ""), error.get("Message", "")
        return masking.mask(f"{code}: {message}" if code and message else str(exc))
    return masking.mask(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


# --- calls -----------------------------------------------------------------------------------------------------------

class Failed(Exception):
    def __init__(self, message: str, exit_status: int = 1, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.exit_status = exit_status
        self.timed_out = timed_out


class Context:
    """What a running call may use: the clients, the output, its deadline and the stop signal."""

    def __init__(self, clients: Clients, out: Output, deadline: float | None, stop: threading.Event | None) -> None:
        self.clients = clients
        self.out = out
        self.deadline = deadline
        self.stop = stop or threading.Event()

    def wait(self, client: str, waiter_name: str, params: Mapping[str, Any], what: str,
             progress: Callable[[Mapping[str, Any]], str] | None = None) -> None:
        """Poll `waiter_name` (its acceptors decide success and failure) every `poll` seconds, until it succeeds,
        fails, or `wait_timeout` / the block's timeout runs out."""
        from botocore.exceptions import WaiterError

        settings = self.clients.settings
        started = time.monotonic()
        limit = started + settings.wait_timeout
        deadline = limit if self.deadline is None else min(limit, self.deadline)
        waiter = self.clients(client).get_waiter(waiter_name)
        shown = ""
        while True:
            try:
                # One check per round (MaxAttempts 1), so the loop can stop between checks.
                waiter.wait(**params, WaiterConfig={"Delay": 1, "MaxAttempts": 1})
                return
            except WaiterError as exc:
                reason = str(exc.kwargs.get("reason", "")) if hasattr(exc, "kwargs") else str(exc)
                if "Max attempts exceeded" not in reason:
                    raise Failed(f"{what}: {masking.mask(reason)}") from None
                last = exc.last_response or {}
            state = progress(last) if progress else ""
            if state and state != shown:
                self.out(f"{what}: {state}")
                shown = state
            elapsed = time.monotonic() - started
            if time.monotonic() + settings.poll > deadline:
                which = "wait_timeout" if deadline == limit else "the block's timeout"
                raise Failed(f"{what}: not done after {elapsed:.0f} s ({which}){'; ' + state if state else ''}",
                             timed_out=True)
            if self.stop.wait(settings.poll):
                raise runner.Aborted(f"stopped while waiting: {what}")


class AwsCall:
    """A planned call: `display` says exactly what `run` does. Subclasses implement `run`."""

    def __init__(self, clients: Clients, display: str, *, fingerprint_text: str | None = None,
                 records: Mapping[str, object] | None = None) -> None:
        self.clients = clients
        self.display = masking.mask(display)
        self.fingerprint_text = masking.mask(fingerprint_text) if fingerprint_text else self.display
        self.records: dict[str, object] = dict(records or {})

    def __repr__(self) -> str:  # never the parameters: a secret value may be among them
        return f"{type(self).__name__}({self.display!r})"

    def run(self, ctx: Context) -> Mapping[str, object] | None:
        raise NotImplementedError

    def perform(self, on_output: Output, deadline: float | None = None,
                stop: threading.Event | None = None) -> runner.Result:
        started = time.monotonic()
        lines: list[str] = []

        def out(line: str) -> None:
            line = masking.mask(line)
            lines.append(line)
            on_output(line)

        def tail() -> str:
            return "\n".join(lines)[-runner.TAIL_CHARS:]

        try:
            recorded = self.run(Context(self.clients, out, deadline, stop)) or {}
        except Failed as exc:
            return runner.Result(exc.exit_status, tail(), time.monotonic() - started, timed_out=exc.timed_out,
                                 error=masking.mask(exc.message))
        except _boto_errors() as exc:
            return runner.Result(1, tail(), time.monotonic() - started, error=error_text(exc))
        except UserError as exc:  # no keyring to keep or forget a value in
            return runner.Result(1, tail(), time.monotonic() - started, error=masking.mask(exc.message))
        return runner.Result(0, tail(), time.monotonic() - started, recorded=dict(recorded))


class ApiCall(AwsCall):
    """One API call, exactly as displayed; `check` runs first (a precondition), `report` turns the response
    into a line of output and recorded values."""

    def __init__(self, clients: Clients, client: str, operation: str, params: Mapping[str, Any], *,
                 secret: Sequence[str] = (), note: str = "", fingerprint_note: str | None = None,
                 check: Callable[[Context], None] | None = None,
                 report: Callable[[Mapping[str, Any]], tuple[str, Mapping[str, object]]] | None = None,
                 records: Mapping[str, object] | None = None,
                 fingerprint_params: Mapping[str, Any] | None = None) -> None:
        shown = api(client, operation, params, secret)
        fingerprint = api(client, operation, fingerprint_params, secret) if fingerprint_params is not None else shown
        # The fingerprint leaves out what each plan draws afresh (a new value's hash, a time in a name).
        fingerprint_note = note if fingerprint_note is None else fingerprint_note
        super().__init__(clients, shown + (f"  # {note}" if note else ""),
                         fingerprint_text=fingerprint + (f"  # {fingerprint_note}" if fingerprint_note else ""),
                         records=records)
        self.client = client
        self.operation = operation
        self._params = dict(params)
        self._check = check
        self._report = report

    def run(self, ctx: Context) -> Mapping[str, object] | None:
        if self._check is not None:
            self._check(ctx)
        response = getattr(self.clients(self.client), self.operation)(**self._params)
        if self._report is None:
            return None
        line, recorded = self._report(response)
        if line:
            ctx.out(line)
        return recorded


class WaitCall(AwsCall):
    """A boto3 waiter, polled until it succeeds (see Context.wait)."""

    def __init__(self, clients: Clients, client: str, waiter: str, params: Mapping[str, Any], what: str,
                 progress: Callable[[Mapping[str, Any]], str] | None = None, done: str = "") -> None:
        settings = clients.settings
        super().__init__(clients, f"{client}.get_waiter({waiter!r}).wait({arguments(params)})  "
                                  f"# every {settings.poll:g} s, up to {settings.wait_timeout:g} s")
        self.client = client
        self.waiter = waiter
        self._params = dict(params)
        self.what = what
        self.progress = progress
        self.done = done

    def run(self, ctx: Context) -> Mapping[str, object] | None:
        ctx.wait(self.client, self.waiter, self._params, self.what, self.progress)
        if self.done:
            ctx.out(self.done)
        return None


def _service_progress(response: Mapping[str, Any]) -> str:
    services = response.get("services") or []
    parts = [f"{s.get('serviceName')} {s.get('runningCount', 0)}/{s.get('desiredCount', 0)} running, "
             f"{len(s.get('deployments') or [])} deployment(s)" for s in services]
    return "; ".join(parts)


class RunTask(AwsCall):
    """ecs.run_task, then the tasks_stopped waiter on that task; the container's exit code is the result."""

    def __init__(self, clients: Clients, params: Mapping[str, Any], container: str) -> None:
        settings = clients.settings
        display = (f"{api('ecs', 'run_task', params)}\n"
                   f"ecs.get_waiter('tasks_stopped').wait(cluster={params['cluster']!r}, tasks=[<that task>])  "
                   f"# every {settings.poll:g} s, up to {settings.wait_timeout:g} s; container {container!r}'s "
                   f"exit code is the result")
        super().__init__(clients, display)
        self._params = dict(params)
        self.container = container

    def run(self, ctx: Context) -> Mapping[str, object] | None:
        ecs = self.clients("ecs")
        response = ecs.run_task(**self._params)
        failures = response.get("failures") or []
        tasks = response.get("tasks") or []
        if failures or not tasks:
            why = "; ".join(f"{f.get('arn', '')} {f.get('reason', '')} {f.get('detail', '')}".strip()
                            for f in failures) or "no task started"
            raise Failed(f"run_task: {why}")
        arn = tasks[0]["taskArn"]
        ctx.out(f"started task {arn}")
        cluster = self._params["cluster"]
        ctx.wait("ecs", "tasks_stopped", {"cluster": cluster, "tasks": [arn]}, f"task {arn.rsplit('/', 1)[-1]}",
                 progress=lambda r: ", ".join(str(t.get("lastStatus")) for t in r.get("tasks") or []))
        task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        container = next((c for c in task.get("containers") or [] if c.get("name") == self.container), None)
        code = container.get("exitCode") if container else None
        reason = task.get("stoppedReason") or ""
        if code is None:
            why = (container or {}).get("reason") or reason or task.get("stopCode") or "no exit code"
            raise Failed(f"task {arn} stopped without an exit code for container {self.container!r}: {why}")
        ctx.out(f"task {arn} stopped: container {self.container!r} exited {code}" + (f" ({reason})" if reason else ""))
        if code != 0:
            raise Failed(f"migration task exited {code}" + (f": {reason}" if reason else ""), exit_status=int(code))
        return {"task": arn}


# --- the provider ----------------------------------------------------------------------------------------------------

class AwsProvider(Provider):
    name = "aws"
    options = frozenset({"--from-other"})  # a restore makes a new instance: there is nothing to take a copy of

    def __init__(self, config: Config, env: Environment) -> None:
        self.config = config
        self.env = env
        self.settings = Settings.of(config, env)
        self.clients = Clients(self.settings)
        # Rotations this plan makes, by secret: (version before, version after). A rollback block planned
        # after them moves AWSCURRENT back exactly (the rotation has not happened yet when it is planned).
        self._rotations: dict[str, tuple[str, str]] = {}

    # -- context --

    def shell(self, script: str) -> runner.Command:
        """sh blocks run here, with the environment's AWS settings in AWS_* variables (for the aws CLI)."""
        from opsconsole.providers.local import bash

        command = bash(script, self.config.base_dir)
        extra = {"AWS_REGION": self.settings.region, "AWS_DEFAULT_REGION": self.settings.region,
                 "AWS_PROFILE": self.settings.profile, "AWS_ENDPOINT_URL": self.settings.endpoint_url}
        env = {k: v for k, v in extra.items() if v}
        return runner.Command(command.argv, display=command.display, stdin=command.stdin, env={**env, **command.env},
                              cwd=command.cwd)

    def execute(self, call: Call, timeout_s: float | None, on_output: Output,
                cancel: threading.Event | None = None) -> runner.Result:
        if not isinstance(call, AwsCall):
            return super().execute(call, timeout_s, on_output, cancel)
        # boto3 blocks: the call runs in a worker thread; this one stays free to notice a cancel.
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        stop = threading.Event()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = call.perform(on_output, deadline, stop)
            except BaseException as exc:  # handed to the engine's thread below
                box["error"] = exc

        worker = threading.Thread(target=work, name=f"aws: {call.display[:40]}", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.1)
                if cancel is not None and cancel.is_set():
                    stop.set()
                    worker.join(5)
                    raise runner.Aborted("stopped while an AWS call was running")
        except KeyboardInterrupt:
            stop.set()
            raise
        if "error" in box:
            raise box["error"]
        return box["result"]

    # -- planning --

    def plan(self, action: Action) -> tuple[Call, ...]:
        verb = action.verb
        if verb == "deploy":
            service = self._ecs_service(action, self._service(action, "deploy"))
            return self._redeploy(service)
        if verb == "scale":
            return self._scale(action)
        if verb == "migrate":
            return (self._migrate(action),)
        if verb == "rotate-secret":
            return self._rotate(action)
        if verb == "backup":
            return self._backup(action)
        if verb == "restore-backup":
            return self._restore(action)
        raise UserError(f"`{action.text()}`: the aws provider does not know {verb!r}")

    def _line(self, *key: str) -> int | None:
        return self.config.lines.line("environments", self.env.name, *key)

    def _read(self, action: Action, what: str, fn: Callable[[], Any]) -> Any:
        """A read-only call at plan time; its failure is a one-line UserError (nothing has changed)."""
        try:
            return fn()
        except _boto_errors() as exc:
            raise UserError(f"`{action.text()}`: cannot read {what}: {error_text(exc)}") from None

    def _option(self, target: Target, key: str, default: Any = None) -> Any:
        value = target.options.get(key, default)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{key} must be a non-empty string", self.config.source,
                              self._line("services", target.name, key))
        return value

    def _ecs_service(self, action: Action, target: Target) -> dict[str, Any]:
        """describe_services of the target's ECS service (plan time): it must exist and be ACTIVE."""
        name = self._option(target, "ecs_service", target.name)
        cluster = self.settings.cluster
        response = self._read(action, f"ECS service {name!r} in cluster {cluster!r}",
                              lambda: self.clients("ecs").describe_services(cluster=cluster, services=[name]))
        found = [s for s in response.get("services") or [] if s.get("status") == "ACTIVE"]
        if not found:
            reasons = "; ".join(f"{f.get('reason')}" for f in response.get("failures") or []) or "not active"
            raise UserError(f"`{action.text()}`: ECS service {name!r} not found in cluster {cluster!r} ({reasons}); "
                            f"set ecs_service on [environments.{self.env.name}.services.{target.name}] or cluster "
                            f"in provider_options")
        return found[0]

    def _redeploy(self, service: Mapping[str, Any]) -> tuple[Call, ...]:
        cluster, name = self.settings.cluster, service["serviceName"]
        return (ApiCall(self.clients, "ecs", "update_service",
                        {"cluster": cluster, "service": name, "forceNewDeployment": True},
                        report=lambda r: (f"{name}: new deployment {_primary(r['service'])} started", {})),
                self._stable(name))

    def _stable(self, name: str) -> WaitCall:
        cluster = self.settings.cluster
        return WaitCall(self.clients, "ecs", "services_stable", {"cluster": cluster, "services": [name]},
                        f"{name} stable", _service_progress, done=f"{name} is stable")

    def _scale(self, action: Action) -> tuple[Call, ...]:
        service = self._ecs_service(action, self._service(action, "scale"))
        current = int(service.get("desiredCount", 0))
        name = service["serviceName"]
        update = ApiCall(self.clients, "ecs", "update_service",
                         {"cluster": self.settings.cluster, "service": name, "desiredCount": action.replicas},
                         note=f"desiredCount was {current}", records={"replicas": current},
                         report=lambda r: (f"{name}: desiredCount {current} -> {r['service']['desiredCount']}", {}))
        return (update, self._stable(name))

    # -- migrate --

    def _migrate(self, action: Action) -> RunTask:
        target = self._migrate_target(action)
        command = target.options["migrate"]
        where = f"[environments.{self.env.name}.services.{target.name}]"
        if isinstance(command, str) and command.strip():
            argv = shlex.split(command)
        elif isinstance(command, list) and command and all(isinstance(w, str) for w in command):
            argv = list(command)
        else:
            raise ConfigError(f"migrate must be a command string or a list of words, in {where}",
                              self.config.source, self._line("services", target.name, "migrate"))
        service = self._ecs_service(action, target)
        task_definition = self._option(target, "task_definition") or service["taskDefinition"]
        container = self._option(target, "container")
        if container is None:
            described = self._read(action, f"task definition {task_definition!r}",
                                   lambda: self.clients("ecs").describe_task_definition(taskDefinition=task_definition))
            containers = described["taskDefinition"].get("containerDefinitions") or []
            if not containers:
                raise UserError(f"`{action.text()}`: task definition {task_definition!r} has no containers")
            container = containers[0]["name"]
        params: dict[str, Any] = {"cluster": self.settings.cluster, "taskDefinition": task_definition}
        # The task runs where the service's tasks run: same launch type or capacity providers, same network.
        if service.get("capacityProviderStrategy"):
            params["capacityProviderStrategy"] = service["capacityProviderStrategy"]
        elif service.get("launchType"):
            params["launchType"] = service["launchType"]
        if (service.get("networkConfiguration") or {}).get("awsvpcConfiguration"):
            params["networkConfiguration"] = service["networkConfiguration"]
        if service.get("platformVersion"):
            params["platformVersion"] = service["platformVersion"]
        params.update(count=1, startedBy="opsconsole",
                      overrides={"containerOverrides": [{"name": container, "command": argv}]})
        return RunTask(self.clients, params, container)

    def _migrate_target(self, action: Action) -> Target:
        if action.service:
            target = self._service(action, "migrate")
            if "migrate" not in target.options:
                raise ConfigError(f"service {target.name!r} has no migrate command: add migrate = \"...\" to "
                                  f"[environments.{self.env.name}.services.{target.name}]", self.config.source,
                                  self._line("services", target.name))
            return target
        with_migrate = [t for t in self.env.services if "migrate" in t.options]
        if len(with_migrate) == 1:
            return with_migrate[0]
        which = ", ".join(t.name for t in with_migrate)
        raise UserError(f"`migrate`: say which service to migrate ({which})" if with_migrate else
                        f"`migrate`: no service of environment {self.env.name!r} has a migrate command: add "
                        f"migrate = \"...\" to the service whose task definition runs it")

    # -- rotate-secret --

    def _rotate(self, action: Action) -> tuple[Call, ...]:
        from opsconsole.providers import rotation

        spec = rotation.secret_spec(self.config, self.env, action)
        secret_id = spec.option("secret_id")
        if not isinstance(secret_id, str) or not secret_id.strip():
            raise ConfigError(f"secret {spec.name} needs secret_id (its Secrets Manager name or ARN): add "
                              f"[environments.{self.env.name}.secrets.{spec.name}] secret_id = \"...\"",
                              self.config.source, self._line("secrets", spec.name))
        restarts = [self._ecs_service(action, self._service(action, "restart", s)) for s in spec.restart]
        described = self._read(action, f"secret {secret_id!r}",
                               lambda: self.clients("secretsmanager").describe_secret(SecretId=secret_id))
        stages: dict[str, list[str]] = described.get("VersionIdsToStages") or {}
        current = next((v for v, s in stages.items() if "AWSCURRENT" in s), None)
        previous = next((v for v, s in stages.items() if "AWSPREVIOUS" in s), None)
        if current is None:
            raise UserError(f"`{action.text()}`: secret {secret_id!r} has no AWSCURRENT version")
        restart_calls = [call for service in restarts for call in self._redeploy(service)]
        if action.rollback:
            return (*self._rollback(action, spec.name, secret_id, current, previous), *restart_calls)
        # The value being replaced: registered for masking at once, kept in the keyring before the change.
        old = self._read(action, f"the current value of {secret_id!r}", lambda: self.clients(
            "secretsmanager").get_secret_value(SecretId=secret_id, VersionId=current)).get("SecretString")
        if old is None:
            raise UserError(f"`{action.text()}`: secret {secret_id!r} holds a binary value; opsconsole rotates "
                            f"string secrets only")
        rotation.register_old(old)
        value = rotation.new_value(spec)
        token = str(uuid.uuid4())  # the new version's id, chosen now so that the plan names it
        self._rotations[spec.name] = (current, token)
        # AWSPREVIOUS keeps the old version in any case; the keyring copy survives a second rotation by someone
        # else, and is what `--rollback` needs on providers without versions. No keyring: AWSPREVIOUS only.
        keep: tuple[Call, ...] = ()
        kept_note = "AWSPREVIOUS keeps it (no OS keyring on this machine)"
        if credentials.backend() is not None:
            keep = (rotation.KeepPrevious(self.env.name, spec.name, old, where=f"version {current} of {secret_id}"),)
            kept_note = "AWSPREVIOUS and the OS keyring keep it"
        was = secret_values.fingerprint(old)
        put = ApiCall(
            self.clients, "secretsmanager", "put_secret_value",
            {"SecretId": secret_id, "ClientRequestToken": token, "SecretString": value}, secret=("SecretString",),
            note=(f"new value: {rotation.generated(spec)}, {secret_values.fingerprint(value)}; AWSCURRENT moves from "
                  f"version {current} ({was}), {kept_note}"),
            fingerprint_params={"SecretId": secret_id, "ClientRequestToken": "<new version>", "SecretString": ""},
            fingerprint_note=f"new value: {rotation.generated(spec)}; AWSCURRENT moves from version {current}",
            check=lambda ctx: self._still_current(ctx, secret_id, current),
            report=lambda r: (f"{spec.name}: AWSCURRENT is version {r.get('VersionId')} "
                              f"({secret_values.fingerprint(value)}); AWSPREVIOUS is version {current} ({was})",
                              {"secret": spec.name, "secret_version": r.get("VersionId"),
                               "previous_secret_version": current}))
        # Checked before the old value is kept, and again by the put itself.
        still = ApiCall(self.clients, "secretsmanager", "describe_secret", {"SecretId": secret_id},
                        note=f"AWSCURRENT must still be version {current}",
                        check=lambda ctx: self._still_current(ctx, secret_id, current))
        return (still, *keep, put, *restart_calls)

    def _rollback(self, action: Action, name: str, secret_id: str, current: str,
                  previous: str | None) -> tuple[Call, ...]:
        planned = self._rotations.get(name)
        if planned is not None:  # the undo of a rotation in this same plan
            back_to, move_from = planned
        elif previous is not None:
            back_to, move_from = previous, current
        else:
            raise UserError(f"`{action.text()}`: secret {secret_id!r} has no AWSPREVIOUS version to go back to")
        environment = self.env.name
        move = ApiCall(
            self.clients, "secretsmanager", "update_secret_version_stage",
            {"SecretId": secret_id, "VersionStage": "AWSCURRENT", "MoveToVersionId": back_to,
             "RemoveFromVersionId": move_from},
            note=f"AWSCURRENT back to version {back_to}; AWSPREVIOUS then holds {move_from}",
            check=lambda ctx: self._still_current(ctx, secret_id, move_from),
            report=lambda r: (f"{name}: AWSCURRENT is version {back_to} again; AWSPREVIOUS is {move_from}",
                              {"secret": name, "secret_version": back_to, "previous_secret_version": move_from}))
        forget = secret_values.ForgetPrevious(environment, name)
        return (move, forget) if credentials.backend() is not None else (move,)

    def _still_current(self, ctx: Context, secret_id: str, version: str) -> None:
        """Nothing changes when the secret moved on since the plan (someone else rotated it)."""
        stages = self.clients("secretsmanager").describe_secret(SecretId=secret_id).get("VersionIdsToStages") or {}
        now = next((v for v, s in stages.items() if "AWSCURRENT" in s), None)
        if now != version:
            raise Failed(f"secret {secret_id} changed since the plan: AWSCURRENT is version {now}, planned for "
                         f"{version}; nothing was changed, plan again")

    # -- backup / restore --

    def _db_instance(self, action: Action) -> tuple[Target, dict[str, Any]]:
        target = self._service(action, action.verb)
        if target.kind not in (None, "postgres"):
            raise UserError(f"`{action.text()}`: service {target.name!r} is not a database ({target.kind})")
        identifier = self._option(target, "db_instance")
        if identifier is None:
            raise ConfigError(f"service {target.name!r} needs db_instance (its RDS instance identifier) for "
                              f"{action.verb}: add db_instance = \"...\" to "
                              f"[environments.{self.env.name}.services.{target.name}]", self.config.source,
                              self._line("services", target.name))
        response = self._read(action, f"RDS instance {identifier!r}",
                              lambda: self.clients("rds").describe_db_instances(DBInstanceIdentifier=identifier))
        return target, response["DBInstances"][0]

    def _backup(self, action: Action) -> tuple[Call, ...]:
        _, instance = self._db_instance(action)
        identifier = instance["DBInstanceIdentifier"]
        stamp = datetime.now(UTC).strftime(_STAMP)
        snapshot = f"{identifier}-opsconsole-{stamp}"
        create = ApiCall(self.clients, "rds", "create_db_snapshot",
                         {"DBInstanceIdentifier": identifier, "DBSnapshotIdentifier": snapshot},
                         fingerprint_params={"DBInstanceIdentifier": identifier,
                                             "DBSnapshotIdentifier": f"{identifier}-opsconsole-<time>"},
                         records={"backup": snapshot},
                         report=lambda r: (f"snapshot {snapshot} {r['DBSnapshot'].get('Status', 'creating')}", {}))
        wait = WaitCall(self.clients, "rds", "db_snapshot_available", {"DBSnapshotIdentifier": snapshot},
                        f"snapshot {snapshot}", lambda r: ", ".join(
                            str(s.get("Status")) for s in r.get("DBSnapshots") or []),
                        done=f"snapshot {snapshot} is available")
        wait.fingerprint_text = wait.display.replace(stamp, "<time>")
        return (create, wait)

    def _restore(self, action: Action) -> tuple[Call, ...]:
        _, instance = self._db_instance(action)
        identifier = instance["DBInstanceIdentifier"]
        stamp = datetime.now(UTC).strftime(_STAMP)
        target = self._unused_instance_name(action, f"{identifier[:50 - len(stamp)].rstrip('-')}-restored-{stamp}")
        # The new instance goes where the old one lives (subnet group, security groups, class): restoring into
        # the default VPC is the classic surprise.
        where: dict[str, Any] = {}
        if instance.get("DBInstanceClass"):
            where["DBInstanceClass"] = instance["DBInstanceClass"]
        group = (instance.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")
        if group:
            where["DBSubnetGroupName"] = group
        groups = [g["VpcSecurityGroupId"] for g in instance.get("VpcSecurityGroups") or []
                  if g.get("VpcSecurityGroupId")]
        if groups:
            where["VpcSecurityGroupIds"] = groups
        source = action.source or ""
        point = _point_in_time(source)
        if source == "latest-restorable" or point is not None:
            when: dict[str, Any] = {"UseLatestRestorableTime": True} if point is None else {"RestoreTime": point}
            params = {"SourceDBInstanceIdentifier": identifier, "TargetDBInstanceIdentifier": target, **when, **where}
            operation, what = "restore_db_instance_to_point_in_time", (
                "the latest restorable time" if point is None else point.isoformat())
            fingerprint = {**params, "TargetDBInstanceIdentifier": "<new instance>"}
        else:
            snapshot = self._snapshot(action, identifier, source)
            params = {"DBInstanceIdentifier": target, "DBSnapshotIdentifier": snapshot, **where}
            operation, what = "restore_db_instance_from_db_snapshot", f"snapshot {snapshot}"
            fingerprint = {**params, "DBInstanceIdentifier": "<new instance>"}
        restore = ApiCall(self.clients, "rds", operation, params, fingerprint_params=fingerprint,
                          note=f"a NEW instance from {what}; {identifier} is not touched",
                          records={"restored_instance": target},
                          report=lambda r: (f"instance {target} {r['DBInstance'].get('DBInstanceStatus', 'creating')}",
                                            {}))
        wait = WaitCall(self.clients, "rds", "db_instance_available", {"DBInstanceIdentifier": target},
                        f"instance {target}", lambda r: ", ".join(
                            str(i.get("DBInstanceStatus")) for i in r.get("DBInstances") or []),
                        done=f"instance {target} is available: point the service at it when it checks out")
        wait.fingerprint_text = wait.display.replace(target, "<new instance>")
        return (restore, wait)

    def _unused_instance_name(self, action: Action, base: str) -> str:
        """`base`, or `base-2`, `base-3` ... when an instance has it already (two restores in one second)."""
        for n in range(1, 100):
            name = base if n == 1 else f"{base}-{n}"
            try:
                self.clients("rds").describe_db_instances(DBInstanceIdentifier=name)
            except _boto_errors() as exc:
                if getattr(exc, "response", {}).get("Error", {}).get("Code") == "DBInstanceNotFound":
                    return name
                raise UserError(f"`{action.text()}`: cannot check instance {name!r}: {error_text(exc)}") from None
        raise UserError(f"`{action.text()}`: every name {base}[-N] is taken")

    def _snapshot(self, action: Action, identifier: str, source: str) -> str:
        """The snapshot `--from` names (an identifier or ARN), or the newest available one for `latest`."""
        if source == "latest":
            found = self._read(action, f"snapshots of {identifier!r}",
                               lambda: self.clients("rds").describe_db_snapshots(DBInstanceIdentifier=identifier))
            available = [s for s in found.get("DBSnapshots") or [] if s.get("Status") == "available"]
            if not available:
                raise UserError(f"`{action.text()}`: no available snapshot of {identifier} yet")
            newest = max(available, key=lambda s: s.get("SnapshotCreateTime") or datetime.min.replace(tzinfo=UTC))
            return newest["DBSnapshotIdentifier"]
        try:
            found = self.clients("rds").describe_db_snapshots(DBSnapshotIdentifier=source)
        except _boto_errors() as exc:
            raise UserError(f"`{action.text()}`: no snapshot {source!r} ({error_text(exc)}); --from takes a snapshot "
                            f"identifier or ARN, `latest`, a time (2024-05-01T12:00:00Z) or "
                            f"`latest-restorable`") from None
        snapshots = found.get("DBSnapshots") or []
        if not snapshots or snapshots[0].get("Status") != "available":
            state = snapshots[0].get("Status") if snapshots else "missing"
            raise UserError(f"`{action.text()}`: snapshot {source!r} is {state}, not available")
        origin = snapshots[0].get("DBInstanceIdentifier")
        if origin and origin != identifier and not action.from_other:
            # Another instance's data (staging's, say) to put this service on: only when that is what is meant.
            raise UserError(f"`{action.text()}`: snapshot {source!r} is of instance {origin!r}, not {identifier!r} "
                            f"(this environment's); if restoring {origin}'s data for this service is meant, add "
                            f"--from-other; nothing was changed")
        return snapshots[0]["DBSnapshotIdentifier"]


def _primary(service: Mapping[str, Any]) -> str:
    return next((d.get("id", "?") for d in service.get("deployments") or [] if d.get("status") == "PRIMARY"), "?")


_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})\Z")


def _point_in_time(text: str) -> datetime | None:
    """A --from that is a moment (with its time zone: a restore time is never guessed), else None."""
    if not _ISO.match(text):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


# --- where boto3 finds credentials (for `opsconsole auth status aws`) ------------------------------------------------

_METHODS = {
    "env": "environment ($AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY)",
    "explicit": "keyring",
    "shared-credentials-file": "shared credentials file (~/.aws/credentials)",
    "config-file": "config file (~/.aws/config)",
    "assume-role": "assumed role (profile)",
    "sso": "AWS SSO (profile)",
    "iam-role": "instance role (EC2 metadata)",
    "container-role": "container role (ECS task)",
    "assume-role-with-web-identity": "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "custom-process": "credential_process (profile)",
}


def credential_source(profile: str | None = None, region: str | None = None) -> str:
    """Where boto3 would take credentials from right now, never the values: "environment (...)", "keyring",
    "profile NAME: shared credentials file", or "missing"."""
    try:
        found = session(profile, region).get_credentials()
    except Exception as exc:  # botocore's profile errors are plain exceptions; this is a report, not a run
        return f"missing ({error_text(exc)})"
    if found is None:
        return "missing"
    credentials.register(getattr(found, "secret_key", None))
    credentials.register(getattr(found, "token", None))
    method = getattr(found, "method", "") or "unknown"
    where = _METHODS.get(method, method)
    if method == "env" and os.environ.get("AWS_SESSION_TOKEN"):
        where = where[:-1] + ", $AWS_SESSION_TOKEN)"
    return f"profile {profile}: {where}" if profile and method != "env" else where
