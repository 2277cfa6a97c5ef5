"""The `railway` provider: Railway's public GraphQL API (through httpx) and the `railway` CLI.

- deploy SERVICE: the service's latest deployment in the environment is looked up when the plan is made;
  `deploymentRedeploy` of exactly that deployment (refused if a newer one appeared since), then the new
  deployment is polled until SUCCESS; FAILED, CRASHED, REMOVED (or a timeout) fail the step.
- scale SERVICE --replicas N: `serviceInstance.numReplicas` is read first (recorded as previous.replicas), then
  `serviceInstanceUpdate` sets it and it is read back.
- rotate-secret NAME: the variable is read (`variables`, unrendered) when the plan is made and again before
  the change; if it changed in between, nothing happens. The current value goes to the OS keyring, then
  `variableUpsert` (value only in the JSON body, `skipDeploys` since opsconsole redeploys itself), then each
  service to restart is redeployed and waited for. `--rollback` puts the kept value back the same way.
- migrate, backup, restore-backup: `railway run --project P --environment E --service S -- <command>` on this
  machine with the service's variables; the token travels in the child's environment, never argv. Dumps are
  kept and verified as the `local` provider keeps them (a manifest beside each; checked before a restore).
- sh blocks: `railway run --project P --environment E [--service S] -- bash -e -c SCRIPT`.

The token: `RAILWAY_TOKEN` (a project token, sent as `Project-Access-Token`), else `RAILWAY_API_TOKEN` (an
account or workspace token, sent as `Authorization: Bearer`), else the OS keyring (`opsconsole auth set
railway`). `token_kind` in provider_options overrides how it is sent.
"""

from __future__ import annotations

import math
import re
import shlex
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole import __version__, masking, runner, secret_values
from opsconsole.errors import ConfigError, UserError
from opsconsole.providers import Call, Output, Provider, backup_files, rotation
from opsconsole.providers.local import MakeDirectory, bash

if TYPE_CHECKING:
    from opsconsole.actions import Action
    from opsconsole.config import Config, Environment, Target
    from opsconsole.credentials import Credential

API_URL = "https://backboard.railway.com/graphql/v2"
TOKEN_VARS = ("RAILWAY_TOKEN", "RAILWAY_API_TOKEN")
TOKEN_KINDS = ("project", "account", "workspace")
POLL_S = 5.0
DEPLOY_TIMEOUT_S = 900.0
REQUEST_TIMEOUT_S = 30.0
SUCCESS = "SUCCESS"
FAILED = frozenset({"FAILED", "CRASHED", "REMOVED", "REMOVING", "SKIPPED"})
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

LATEST_DEPLOYMENT = """\
query OpsconsoleLatestDeployment($input: DeploymentListInput!) {
  deployments(input: $input, first: 1) { edges { node { id status createdAt } } }
}"""
DEPLOYMENT = """\
query OpsconsoleDeployment($id: String!) {
  deployment(id: $id) { id status }
}"""
REDEPLOY = """\
mutation OpsconsoleRedeploy($id: String!) {
  deploymentRedeploy(id: $id) { id status }
}"""
SERVICE_INSTANCE = """\
query OpsconsoleServiceInstance($serviceId: String!, $environmentId: String!) {
  serviceInstance(serviceId: $serviceId, environmentId: $environmentId) { id numReplicas }
}"""
SCALE = """\
mutation OpsconsoleScale($serviceId: String!, $environmentId: String!, $input: ServiceInstanceUpdateInput!) {
  serviceInstanceUpdate(serviceId: $serviceId, environmentId: $environmentId, input: $input)
}"""
VARIABLES = """\
query OpsconsoleVariables($projectId: String!, $environmentId: String!, $serviceId: String) {
  variables(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId, unrendered: true)
}"""
UPSERT = """\
mutation OpsconsoleVariableUpsert($input: VariableUpsertInput!) {
  variableUpsert(input: $input)
}"""


class RailwayError(UserError):
    """The API said no, or could not be reached: one line, the token never in it."""


@dataclass(frozen=True)
class Deployment:
    id: str
    status: str
    created_at: str = ""


@dataclass(frozen=True)
class RailwayAPI:
    """One GraphQL endpoint and one token. Every failure is a RailwayError with one clear line."""

    url: str
    token: Credential = field(repr=False)
    kind: str  # project | account | workspace
    project_id: str
    environment_id: str
    # Deployments this process created: a retried deploy may find its own failed one as the latest.
    ours: set[str] = field(default_factory=set, repr=False, compare=False)

    def headers(self) -> dict[str, str]:
        auth = ({"Project-Access-Token": self.token.value} if self.kind == "project"
                else {"Authorization": f"Bearer {self.token.value}"})
        return {"Content-Type": "application/json", "User-Agent": f"opsconsole/{__version__}", **auth}

    def _refused(self, why: str) -> str:
        sent = "Project-Access-Token" if self.kind == "project" else "Authorization: Bearer"
        other = "account" if self.kind == "project" else "project"
        return (f"the Railway API refused the token from {self.token.source} ({why}; sent as a {self.kind} token, "
                f"{sent}): check it, or set token_kind = \"{other}\" in provider_options if it is an {other} token")

    def request(self, operation: str, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        import httpx

        body = {"query": query, "variables": dict(variables), "operationName": operation}
        try:
            response = httpx.post(self.url, json=body, headers=self.headers(), timeout=REQUEST_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise RailwayError(masking.mask(f"cannot reach the Railway API at {self.url} ({operation}): "
                                            f"{exc or type(exc).__name__}")) from None
        if response.status_code in (401, 403):
            raise RailwayError(masking.mask(self._refused(f"HTTP {response.status_code}")))
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            snippet = " ".join(response.text.split())[:120]
            raise RailwayError(masking.mask(f"the Railway API answered {operation} with HTTP {response.status_code} "
                                            f"and no GraphQL body: {snippet!r}"))
        errors = payload.get("errors")
        if errors:
            messages = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
            text = "; ".join(messages)
            if any("not authorized" in m.lower() for m in messages):
                raise RailwayError(masking.mask(self._refused(f"{operation}: {text}")))
            raise RailwayError(masking.mask(f"the Railway API refused {operation}: {text}"))
        if response.status_code != 200 or not isinstance(payload.get("data"), dict):
            raise RailwayError(masking.mask(f"the Railway API answered {operation} with HTTP {response.status_code} "
                                            f"and no data"))
        return payload["data"]

    # --- the calls opsconsole makes ---

    def latest_deployment(self, service_id: str) -> Deployment | None:
        data = self.request("OpsconsoleLatestDeployment", LATEST_DEPLOYMENT, {"input": {
            "projectId": self.project_id, "environmentId": self.environment_id, "serviceId": service_id}})
        edges = ((data.get("deployments") or {}).get("edges")) or []
        if not edges:
            return None
        node = edges[0]["node"]
        return Deployment(node["id"], node["status"], node.get("createdAt") or "")

    def deployment(self, deployment_id: str) -> Deployment:
        node = self.request("OpsconsoleDeployment", DEPLOYMENT, {"id": deployment_id}).get("deployment")
        if not node:
            raise RailwayError(f"the Railway API knows no deployment {deployment_id}")
        return Deployment(node["id"], node["status"])

    def redeploy(self, deployment_id: str) -> Deployment:
        node = self.request("OpsconsoleRedeploy", REDEPLOY, {"id": deployment_id}).get("deploymentRedeploy")
        if not node or not node.get("id"):
            raise RailwayError(f"deploymentRedeploy of {deployment_id} returned no deployment")
        self.ours.add(node["id"])
        return Deployment(node["id"], node.get("status") or "")

    def replicas(self, service_id: str) -> int:
        node = self.request("OpsconsoleServiceInstance", SERVICE_INSTANCE,
                            {"serviceId": service_id, "environmentId": self.environment_id}).get("serviceInstance")
        if not node:
            raise RailwayError(f"service {service_id} has no instance in environment {self.environment_id}")
        count = node.get("numReplicas")
        return 1 if count is None else int(count)  # unset means Railway's default of one

    def scale(self, service_id: str, replicas: int) -> None:
        done = self.request("OpsconsoleScale", SCALE, {"serviceId": service_id, "environmentId": self.environment_id,
                                                       "input": {"numReplicas": replicas}})
        if done.get("serviceInstanceUpdate") is not True:
            raise RailwayError(f"serviceInstanceUpdate of {service_id} did not succeed")

    def variables(self, service_id: str | None) -> dict[str, str]:
        data = self.request("OpsconsoleVariables", VARIABLES, {
            "projectId": self.project_id, "environmentId": self.environment_id, "serviceId": service_id})
        found = data.get("variables") or {}
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    def upsert(self, service_id: str | None, name: str, value: str) -> None:
        variable = {"projectId": self.project_id, "environmentId": self.environment_id, "name": name,
                    "value": value, "skipDeploys": True}
        if service_id:
            variable["serviceId"] = service_id
        if self.request("OpsconsoleVariableUpsert", UPSERT, {"input": variable}).get("variableUpsert") is not True:
            raise RailwayError(f"variableUpsert of {name} did not succeed")


class RailwayProvider(Provider):
    name = "railway"
    # Its restores always run in one transaction.
    options = frozenset({"--single-transaction", "--from-other", "--no-safety-copy"})

    def __init__(self, config: Config, env: Environment) -> None:
        self.config = config
        self.env = env
        self.base_dir = config.base_dir
        self.project_id = self._string("project_id")
        self.environment_id = self._string("environment_id")
        self.api_url = self._string("api_url", API_URL)
        self.cli = self._string("railway", "railway")
        self.poll_s = self._seconds("poll_interval", POLL_S)
        self.deploy_timeout_s = self._seconds("deploy_timeout", DEPLOY_TIMEOUT_S)
        kind = env.provider_options.get("token_kind")
        if kind is not None and kind not in TOKEN_KINDS:
            raise ConfigError(f"token_kind must be one of {', '.join(TOKEN_KINDS)}, got {kind!r}", config.source,
                              self._line("provider_options", "token_kind"))
        self._kind = kind
        self._api: RailwayAPI | None = None

    # --- config ----------------------------------------------------------------------------------------------

    def _line(self, *key: str) -> int | None:
        return self.config.lines.line("environments", self.env.name, *key)

    def _string(self, key: str, default: str | None = None) -> str:
        value = self.env.provider_options.get(key, default)
        if value is None:
            raise ConfigError(f"the railway provider needs {key} = \"...\" in "
                              f"[environments.{self.env.name}.provider_options]", self.config.source,
                              self._line("provider_options") or self._line("provider"))
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key} must be a non-empty string", self.config.source,
                              self._line("provider_options", key))
        return value

    def _seconds(self, key: str, default: float) -> float:
        value = self.env.provider_options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ConfigError(f"{key} must be a positive number of seconds, got {value!r}", self.config.source,
                              self._line("provider_options", key))
        return float(value)

    def api(self) -> RailwayAPI:
        """The API client, with the token looked up the first time it is needed."""
        if self._api is None:
            from opsconsole import credentials

            token = credentials.lookup("railway", "token", TOKEN_VARS)
            if token is None:
                raise UserError("no Railway token: set RAILWAY_TOKEN (a project token) or RAILWAY_API_TOKEN (an "
                                "account or workspace token), or keep one in the OS keyring with "
                                "`opsconsole auth set railway`")
            kind = self._kind or ("account" if token.source == "environment ($RAILWAY_API_TOKEN)" else "project")
            self._api = RailwayAPI(self.api_url, token, kind, self.project_id, self.environment_id)
        return self._api

    def service_id(self, target: Target) -> str:
        value = target.options.get("railway_service_id")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"service {target.name!r} needs railway_service_id = \"...\" (the id of the Railway "
                              f"service) for the railway provider", self.config.source,
                              self._line("services", target.name, "railway_service_id")
                              or self._line("services", target.name))
        return value

    # --- the railway CLI -------------------------------------------------------------------------------------

    def token_env(self) -> dict[str, str]:
        """How `railway` finds the token: the variable matching its kind, in the child's environment only."""
        api = self.api()
        return {"RAILWAY_TOKEN" if api.kind == "project" else "RAILWAY_API_TOKEN": api.token.value}

    def run_argv(self, service_id: str | None, *command: str) -> tuple[str, ...]:
        scope = ("--service", service_id) if service_id else ()
        return (self.cli, "run", "--project", self.project_id, "--environment", self.environment_id, *scope,
                "--", *command)

    def shell(self, script: str) -> runner.Command:
        inner = bash(_WRAPPER + script, self.base_dir, display=script)
        shell_service = self.env.provider_options.get("shell_service")
        service_id = None
        if shell_service is not None:
            target = next((t for t in self.env.services if t.name == shell_service), None)
            if target is None:
                raise ConfigError(f"shell_service {shell_service!r} is not a service of {self.env.name!r}",
                                  self.config.source, self._line("provider_options", "shell_service"))
            service_id = self.service_id(target)
        argv = self.run_argv(service_id, *inner.argv)
        head = shlex.join(self.run_argv(service_id, "bash", "-e", "-c"))
        pinned = {"OPSCONSOLE_RAILWAY": self.cli, "OPSCONSOLE_RAILWAY_PROJECT": self.project_id,
                  "OPSCONSOLE_RAILWAY_ENVIRONMENT": self.environment_id}
        return runner.Command(argv, display=f"{inner.display}\n# through: {head}\n# railway in the script: a nested `railway run` "
                                            f"unwrapped; logs, up, connect, variables pinned to environment "
                                            f"{self.environment_id}; variables set values on stdin",
                              stdin=inner.stdin, env={**inner.env, **self.token_env(), **pinned}, cwd=self.base_dir)

    def execute(self, call: Call, timeout_s: float | None, on_output: Output,
                cancel: threading.Event | None = None) -> runner.Result:
        if isinstance(call, (Redeploy, Scale, SetVariable)):
            return call.perform(on_output, timeout_s, cancel)
        if isinstance(call, backup_files.CALLS):
            return backup_files.execute(call, self.run_id, timeout_s, on_output, cancel)
        return super().execute(call, timeout_s, on_output, cancel)

    # --- planning --------------------------------------------------------------------------------------------

    def plan(self, action: Action) -> tuple[Call, ...]:
        verb = action.verb
        if verb == "deploy":
            return (self.redeploy(self._service(action, "deploy")),)
        if verb == "migrate":
            return (self._migrate(action),)
        if verb == "scale":
            return self._scale(action)
        if verb == "rotate-secret":
            return self._rotate(action)
        if verb == "backup":
            return self._backup(action)
        if verb == "restore-backup":
            return self._restore(action)
        raise UserError(f"`{action.text()}`: the railway provider does not know {verb!r}")

    def redeploy(self, target: Target) -> Redeploy:
        service_id = self.service_id(target)
        latest = self.api().latest_deployment(service_id)
        if latest is None:
            raise UserError(f"service {target.name!r} ({service_id}) has no deployment in environment "
                            f"{self.environment_id} to redeploy: deploy it once (`railway up` or the dashboard)")
        return Redeploy(api=self.api(), service=target.name, service_id=service_id, planned=latest,
                        poll_s=self.poll_s, timeout_s=self.deploy_timeout_s)

    def _scale(self, action: Action) -> tuple[Call, ...]:
        target = self._service(action, "scale")
        service_id = self.service_id(target)
        current = self.api().replicas(service_id)
        scale = Scale(api=self.api(), service=target.name, service_id=service_id, replicas=action.replicas or 0,
                      current=current)
        if self.env.provider_options.get("scale_redeploys") is True:
            return (scale, self.redeploy(target))
        return (scale,)

    def _rotate(self, action: Action) -> tuple[Call, ...]:
        spec = rotation.secret_spec(self.config, self.env, action)
        scope_name = spec.option("service")
        service_id = None
        if scope_name is not None:
            service_id = self.service_id(self._service(action, "hold the secret", str(scope_name)))
        restarts = [self.redeploy(self._service(action, "restart", s)) for s in spec.restart]
        if action.rollback:
            # The kept value is read when it runs: a rotation's own undo is planned before the rotation keeps it.
            return (SetVariable(api=self.api(), environment=self.env.name, name=spec.name, service_id=service_id,
                                value=None, planned_old=None), *restarts)
        current = self.api().variables(service_id)
        old = current.get(spec.name)
        if old is None and spec.name not in self.env.secrets:
            scope = f"service {scope_name!r}" if scope_name else "the environment's shared variables"
            raise UserError(f"`{action.text()}`: unknown secret {spec.name}: not a variable of {scope} on Railway, "
                            f"and no [environments.{self.env.name}.secrets.{spec.name}]")
        rotation.register_old(old)
        value = rotation.new_value(spec)
        return (SetVariable(api=self.api(), environment=self.env.name, name=spec.name, service_id=service_id,
                            value=value, planned_old=old, generated=rotation.generated(spec)), *restarts)

    def _migrate(self, action: Action) -> runner.Command:
        if action.service:
            target = self._service(action, "migrate")
        else:
            with_migrate = [t for t in self.env.services if "migrate" in t.options]
            if len(with_migrate) != 1:
                which = ", ".join(t.name for t in with_migrate)
                raise UserError(f"`migrate`: say which service to migrate ({which})" if with_migrate else
                                f"`migrate`: no service of environment {self.env.name!r} has a migrate command")
            target = with_migrate[0]
        command = target.options.get("migrate")
        where = self._line("services", target.name, "migrate") or self._line("services", target.name)
        if isinstance(command, str) and command.strip():
            try:
                words = shlex.split(command)
            except ValueError as exc:
                raise ConfigError(f"migrate: {exc}", self.config.source, where) from None
        elif isinstance(command, list) and command and all(isinstance(w, str) for w in command):
            words = command
        else:
            raise ConfigError(f"service {target.name!r} needs migrate = \"command\" (run with `railway run`)",
                              self.config.source, where)
        argv = self.run_argv(self.service_id(target), *words)
        return runner.Command(argv, env=self.token_env(), cwd=self.base_dir)

    def _database(self, action: Action) -> tuple[Target, str, str]:
        """(target, its Railway service id, the variable holding a URL reachable from here)."""
        target = self._service(action, action.verb)
        if target.kind not in (None, "postgres"):
            raise UserError(f"`{action.text()}`: service {target.name!r} is not a postgres service")
        variable = target.options.get("url_variable", "DATABASE_PUBLIC_URL")
        if not isinstance(variable, str) or not _VARIABLE_NAME.match(variable):
            raise ConfigError("url_variable must be a variable name such as DATABASE_PUBLIC_URL", self.config.source,
                              self._line("services", target.name, "url_variable"))
        return target, self.service_id(target), variable

    def _pg(self, target: Target, program: str) -> str:
        bindir = target.options.get("pg_bin")
        return str(Path(bindir) / program) if isinstance(bindir, str) and bindir else program

    def _backup(self, action: Action) -> tuple[Call, ...]:
        return self._dump(action)

    def _dump(self, action: Action, safety_copy: bool = False) -> tuple[Call, ...]:
        """`pg_dump -Fc` through `railway run` into a file here, then its manifest: a backup, or a restore's
        safety copy."""
        target, service_id, variable = self._database(action)
        program = backup_files.pg_restore(target, action)  # reads the dump back for its manifest
        path, stamp = backup_files.new_path(self.env.name, target.name, safety_copy)
        # Written aside and renamed once complete: a failed dump never looks like a backup (and is removed).
        script = f'"$1" -Fc --file "$0.partial" --dbname "${variable}" && mv "$0.partial" "$0"'
        argv = self.run_argv(service_id, "sh", "-c", script, str(path), self._pg(target, "pg_dump"))
        command = runner.Command(argv, env=self.token_env(), cwd=self.base_dir, records={"backup": str(path)})
        return (MakeDirectory(path.parent),
                backup_files.take(command, path.with_name(path.name + ".partial"), stamp,
                                  f"{self.env.name}/{target.name}" if safety_copy else None),
                backup_files.manifest(path, stamp, program, self.env.name, target.name, safety_copy))

    def _restore(self, action: Action) -> tuple[Call, ...]:
        target, service_id, variable = self._database(action)
        program = backup_files.pg_restore(target, action)
        source = backup_files.resolve(self.env.name, self.base_dir, target.name, action)
        # The database's name is in a Railway variable, not known here: the environment and service are checked.
        _, verify = backup_files.verified(source, program, action, self.env.name, target.name, None)
        safety = () if action.no_safety_copy else self._dump(action, safety_copy=True)
        script = f'exec "$1" --clean --if-exists --single-transaction --dbname "${variable}" "$0"'
        argv = self.run_argv(service_id, "sh", "-c", script, str(source), program)
        return (verify, *safety, runner.Command(argv, env=self.token_env(), cwd=self.base_dir))


# --- in-process calls (GraphQL) --------------------------------------------------------------------------------

# The `railway` a runbook's script calls, as kubectl is bound for kubernetes: it already runs inside
# `railway run` for this project and environment, so a nested `railway run [flags] [--] CMD` runs CMD itself (the
# same variables; with its own --service, a real nested run pinned to this project and environment); the commands
# that take --environment get this one unless they name one; and `variables set KEY=VALUE` passes VALUE on stdin
# (`--stdin`) from a shell function, so a secret never sits in any process's argv.
_WRAPPER = r"""railway() {
  local cli="$OPSCONSOLE_RAILWAY" env="$OPSCONSOLE_RAILWAY_ENVIRONMENT" sub="${1:-}" arg
  [ $# -gt 0 ] && shift
  if [ "$sub" = run ] || [ "$sub" = local ]; then  # already inside `railway run` for this project and environment
    local service=""
    while [ $# -gt 0 ]; do  # railway's own flags, up to the command
      case "$1" in
        --) shift; break ;;
        -s|--service) service="${2:-}"; shift; [ $# -gt 0 ] && shift ;;
        --service=*) service="${1#*=}"; shift ;;
        -e|--environment|-p|--project) shift; [ $# -gt 0 ] && shift ;;
        -*) shift ;;
        *) break ;;
      esac
    done
    if [ -n "$service" ]; then
      command "$cli" run --project "$OPSCONSOLE_RAILWAY_PROJECT" --environment "$env" --service "$service" -- "$@"
    else
      "$@"
    fi
    return
  fi
  local named_env="" args=() pairs=()
  while [ $# -gt 0 ]; do
    arg="$1"
    case "$arg" in
      -e|--environment) named_env="${2:-}"; args+=("$arg" "${2:-}"); shift; [ $# -gt 0 ] && shift; continue ;;
      --environment=*) named_env="${arg#*=}"; args+=("$arg") ;;
      -s|--service) args+=("$arg" "${2:-}"); shift; [ $# -gt 0 ] && shift; continue ;;
      --set) pairs+=("${2:-}"); shift; [ $# -gt 0 ] && shift; continue ;;
      --set=*) pairs+=("${arg#*=}") ;;
      *) args+=("$arg") ;;
    esac
    shift
  done
  case "$sub" in
    variables|variable|vars|var)
      local pin=()
      [ -z "$named_env" ] && pin=(--environment "$env")
      if [ "${args[0]:-}" = set ]; then  # KEY=VALUE words become values on stdin
        local flags=()
        for arg in "${args[@]:1}"; do
          case "$arg" in -*) flags+=("$arg") ;; *=*) pairs+=("$arg") ;; *) flags+=("$arg") ;; esac
        done
        args=("${flags[@]}")
      fi
      if [ ${#pairs[@]} -gt 0 ]; then  # each value on stdin, never in an argv
        local pair
        for pair in "${pairs[@]}"; do
          printf '%s' "${pair#*=}" | command "$cli" "$sub" set "${pair%%=*}" --stdin "${args[@]}" "${pin[@]}" || return $?
        done
      else
        command "$cli" "$sub" "${args[@]}" "${pin[@]}"
      fi ;;
    logs|up|connect)
      if [ -z "$named_env" ]; then command "$cli" "$sub" "${args[@]}" --environment "$env"
      else command "$cli" "$sub" "${args[@]}"; fi ;;
    *) command "$cli" "$sub" "${args[@]}" ;;
  esac
}
"""


def _collect(on_output: Output, lines: list[str]) -> Output:
    def out(line: str) -> None:
        line = masking.mask(line)
        lines.append(line)
        on_output(line)
    return out


def _tail(lines: list[str]) -> str:
    return "\n".join(lines)[-runner.TAIL_CHARS:]


def _wait(seconds: float, cancel: threading.Event | None, what: str) -> None:
    if cancel is not None:
        if cancel.wait(seconds):
            raise runner.Aborted(f"stopped while {what}")
    else:
        time.sleep(seconds)


@dataclass(frozen=True)
class Redeploy:
    """deploymentRedeploy of the deployment found at plan time, then poll the new one to a final status."""

    api: RailwayAPI = field(repr=False)
    service: str
    service_id: str
    planned: Deployment
    poll_s: float
    timeout_s: float
    display: str = ""
    fingerprint_text: str = ""
    records: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        what = (f"deploymentRedeploy(id: \"{self.planned.id}\"): redeploy the latest deployment of {self.service} "
                f"({self.service_id})")
        wait = (f"then poll deployment(id) every {self.poll_s:g} s until SUCCESS (FAILED, CRASHED or REMOVED fail; "
                f"at most {self.timeout_s:g} s)")
        when = f", {self.planned.status} since {self.planned.created_at}" if self.planned.created_at else ""
        object.__setattr__(self, "display", masking.mask(f"{what}{when}; {wait}"))
        # Its status may move between review and run; which deployment is redeployed may not.
        object.__setattr__(self, "fingerprint_text", masking.mask(f"{what}; {wait}"))

    def perform(self, on_output: Output, timeout_s: float | None = None,
                cancel: threading.Event | None = None) -> runner.Result:
        started = time.monotonic()
        lines: list[str] = []
        out = _collect(on_output, lines)
        budget = self.timeout_s if timeout_s is None else min(self.timeout_s, timeout_s)
        try:
            # Someone else's newer deployment would be rolled back by redeploying the planned one.
            latest = self.api.latest_deployment(self.service_id)
            if latest is None or (latest.id != self.planned.id and latest.id not in self.api.ours):
                newer = latest.id if latest else "none"
                return runner.Result(1, "", time.monotonic() - started,
                                     error=f"{self.service}'s latest deployment is now {newer}, not "
                                           f"{self.planned.id} as planned: nothing was redeployed; plan again")
            new = self.api.redeploy(self.planned.id)
            out(f"{self.service}: redeploying {self.planned.id} as deployment {new.id}")
            status = ""
            while True:
                current = self.api.deployment(new.id).status
                if current != status:
                    status = current
                    out(f"{self.service}: deployment {new.id} {status}")
                elapsed = time.monotonic() - started
                if status == SUCCESS:
                    return runner.Result(0, _tail(lines), elapsed, recorded={"deployment": new.id})
                if status in FAILED:
                    return runner.Result(1, _tail(lines), elapsed,
                                         error=f"deployment {new.id} of {self.service} ended {status}")
                if elapsed + self.poll_s > budget:
                    return runner.Result(1, _tail(lines), elapsed, timed_out=True,
                                         error=f"deployment {new.id} of {self.service} still {status} after "
                                               f"{runner.format_seconds(budget)} s")
                _wait(self.poll_s, cancel, f"waiting for deployment {new.id}")
        except RailwayError as exc:
            return runner.Result(1, _tail(lines), time.monotonic() - started, error=exc.message)


@dataclass(frozen=True)
class Scale:
    """serviceInstanceUpdate numReplicas, then read back."""

    api: RailwayAPI = field(repr=False)
    service: str
    service_id: str
    replicas: int
    current: int
    display: str = ""
    fingerprint_text: str = ""
    records: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        call = (f"serviceInstanceUpdate(serviceId: \"{self.service_id}\", environmentId: "
                f"\"{self.api.environment_id}\", input: {{numReplicas: {self.replicas}}})")
        object.__setattr__(self, "display", f"{call}: {self.service} from {self.current} to {self.replicas} "
                                            f"replica(s), then read back")
        object.__setattr__(self, "fingerprint_text", self.display)
        object.__setattr__(self, "records", {"replicas": self.current})

    def perform(self, on_output: Output, timeout_s: float | None = None,
                cancel: threading.Event | None = None) -> runner.Result:
        started = time.monotonic()
        lines: list[str] = []
        out = _collect(on_output, lines)
        try:
            self.api.scale(self.service_id, self.replicas)
            now = self.api.replicas(self.service_id)
        except RailwayError as exc:
            return runner.Result(1, "", time.monotonic() - started, error=exc.message)
        if now != self.replicas:
            return runner.Result(1, "", time.monotonic() - started,
                                 error=f"{self.service} reads back {now} replica(s) after asking for {self.replicas}")
        out(f"{self.service}: numReplicas {self.current} -> {now}")
        return runner.Result(0, _tail(lines), time.monotonic() - started)


@dataclass(frozen=True)
class SetVariable:
    """variableUpsert of a secret; the value it replaces goes to the OS keyring first.

    `value=None` is a rollback: the kept value comes back, and is then forgotten from the keyring (the value
    rolled back from is not kept: a new rotation draws a new one).
    `planned_old` is the value read at plan time: if the variable moved since, nothing changes.
    """

    api: RailwayAPI = field(repr=False)
    environment: str
    name: str
    service_id: str | None
    value: str | None = field(repr=False)
    planned_old: str | None = field(repr=False)
    generated: str = ""
    display: str = ""
    fingerprint_text: str = ""
    records: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        scope = f"serviceId: \"{self.service_id}\", " if self.service_id else ""
        call = (f"variableUpsert(input: {{projectId: \"{self.api.project_id}\", environmentId: "
                f"\"{self.api.environment_id}\", {scope}name: \"{self.name}\", value: {masking.MASK}, "
                f"skipDeploys: true}})")
        kept = f"previous/{self.environment}/{self.name}"
        if self.value is None:
            shown = f"{call} with the value kept in the OS keyring ({kept}), then forget it there"
            fingerprint = shown
        else:
            old = (f"the current value ({secret_values.fingerprint(self.planned_old)}) is kept in the OS keyring "
                   f"({kept}) first" if self.planned_old is not None else "a new variable: nothing to keep")
            fingerprint = f"{call}: new value, {self.generated}; {old}"
            shown = f"{call}: new value, {self.generated}, {secret_values.fingerprint(self.value)}; {old}"
        object.__setattr__(self, "display", masking.mask(shown))
        # The new value is drawn for each plan: the fingerprint a reviewer compares leaves its hash out.
        object.__setattr__(self, "fingerprint_text", masking.mask(fingerprint))

    def perform(self, on_output: Output, timeout_s: float | None = None,
                cancel: threading.Event | None = None) -> runner.Result:
        started = time.monotonic()
        lines: list[str] = []
        out = _collect(on_output, lines)
        try:
            current = self.api.variables(self.service_id).get(self.name)
            rotation.register_old(current)
            if self.value is None:
                value = rotation.kept_previous(self.environment, self.name)
            else:
                if current != self.planned_old:
                    now = secret_values.fingerprint(current) if current is not None else "unset"
                    was = secret_values.fingerprint(self.planned_old) if self.planned_old is not None else "unset"
                    return runner.Result(1, "", time.monotonic() - started,
                                         error=f"{self.name} changed since the plan (was {was}, now {now}): nothing "
                                               f"was changed; plan again")
                if current is not None:
                    try:
                        secret_values.keep_previous(self.environment, self.name, current)
                    except UserError as exc:
                        raise UserError(f"cannot keep the previous {self.name} for --rollback, nothing was changed: "
                                        f"{exc.message}") from None
                value = self.value
            self.api.upsert(self.service_id, self.name, value)
            if self.value is None:  # only once the old value is back is its copy no longer needed
                secret_values.forget_previous(self.environment, self.name)
        except UserError as exc:  # RailwayError, or no keyring to keep the previous value in
            return runner.Result(1, _tail(lines), time.monotonic() - started, error=masking.mask(exc.message))
        what = "restored from the OS keyring" if self.value is None else "set to a new value"
        out(f"{self.name} {what} ({secret_values.fingerprint(value)}) on Railway")
        recorded: dict[str, object] = {"secret": self.name}
        if current is not None:
            recorded["previous_fingerprint"] = secret_values.fingerprint(current)
        return runner.Result(0, _tail(lines), time.monotonic() - started, recorded=recorded)

