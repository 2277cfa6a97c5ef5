"""The `kubernetes` provider: every change is a `kubectl --context CONTEXT -n NAMESPACE ...` command.

The context and namespace always come from `[environments.X.provider_options]`, never from whatever the
kubeconfig's current context happens to be at 3 a.m.

- deploy SERVICE: `rollout restart deployment/X`, then `rollout status deployment/X --timeout=T`.
  Undoing it is a rollback block of the runbook: ```sh {"role": "rollback"}``` `kubectl rollout undo deployment/X`.
- scale SERVICE --replicas N: the current `.spec.replicas` is read when the plan is made (recorded as
  previous.replicas) and the change is conditional on it: `scale --current-replicas=CUR --replicas=N`, so a
  replica count changed by someone else in between fails the step instead of being overwritten; then
  `rollout status` waits for the replicas.
- migrate [SERVICE]: `exec deploy/X -- <the service's migrate command>`, or, with `migrate_job = "job.yaml"`,
  that Job afresh: `delete job --ignore-not-found`, `create -f`, `wait --for=condition=complete`, `logs`.
- rotate-secret NAME: the Secret is read (`get secret -o json`) when the plan is made; the new manifest is built
  here (every other key kept, base64 data, the read resourceVersion as a precondition) and piped to
  `kubectl apply -f -` on stdin; the value it replaces is kept in the OS keyring first. Then each deployment
  to restart is restarted and waited for. No secret value is ever in argv.
- sh blocks run in local bash where `kubectl` is a function adding `--context` and `-n` (so a block's
  `kubectl get pods` sees the environment's cluster); KUBECONFIG is set when `kubeconfig` is configured.
- backup / restore-backup: not offered (docs/providers.md#kubernetes): a database in the cluster is restored by its own
  tooling in a runbook block.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shlex
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsconsole import masking, runner, secret_values
from opsconsole.errors import ConfigError, UserError
from opsconsole.providers import Call, Output, Provider, queries, rotation
from opsconsole.providers.local import bash

if TYPE_CHECKING:
    from opsconsole.actions import Action
    from opsconsole.config import Config, Environment, Target

ROLLOUT_TIMEOUT = "5m"
_DURATION = re.compile(r"\d+(s|m|h)\Z")
_WRAPPER = ('kubectl() { command "$OPSCONSOLE_KUBECTL" --context "$OPSCONSOLE_KUBE_CONTEXT" '
            '-n "$OPSCONSOLE_KUBE_NAMESPACE" "$@"; }\n')


class KubernetesProvider(Provider):
    name = "kubernetes"

    def __init__(self, config: Config, env: Environment) -> None:
        self.config = config
        self.env = env
        self.base_dir = config.base_dir
        self.context = self._option("context")
        self.namespace = self._option("namespace")
        self.kubectl = self._option("kubectl", "kubectl")
        kubeconfig = self._option("kubeconfig", "")
        self.env_vars = {"KUBECONFIG": str((self.base_dir / kubeconfig).expanduser())} if kubeconfig else {}
        self.rollout_timeout = self._option("rollout_timeout", ROLLOUT_TIMEOUT)
        if not _DURATION.match(self.rollout_timeout):
            raise ConfigError(f"rollout_timeout must be a kubectl duration such as \"300s\" or \"5m\", got "
                              f"{self.rollout_timeout!r}", config.source,
                              self._line("provider_options", "rollout_timeout"))

    # --- config ----------------------------------------------------------------------------------------------

    def _line(self, *key: str) -> int | None:
        return self.config.lines.line("environments", self.env.name, *key)

    def _option(self, key: str, default: str | None = None) -> str:
        value = self.env.provider_options.get(key, default)
        if value is None:
            raise ConfigError(f"the kubernetes provider needs {key} = \"...\" in "
                              f"[environments.{self.env.name}.provider_options] (kubectl always gets an explicit "
                              f"--context and -n)", self.config.source, self._line("provider_options")
                              or self._line("provider"))
        if not isinstance(value, str) or (not value.strip() and default != ""):
            raise ConfigError(f"{key} must be a non-empty string", self.config.source,
                              self._line("provider_options", key))
        return value

    def kubectl_argv(self, *args: str) -> tuple[str, ...]:
        return (self.kubectl, "--context", self.context, "-n", self.namespace, *args)

    def command(self, *args: str, display: str | None = None, **kw: Any) -> runner.Command:
        argv = self.kubectl_argv(*args)
        return runner.Command(argv, display=display or shlex.join(argv), env=self.env_vars, cwd=self.base_dir, **kw)

    def deployment(self, target: Target) -> str:
        value = target.options.get("deployment", target.name)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError("deployment must be a non-empty string", self.config.source,
                              self._line("services", target.name, "deployment"))
        return value

    def read(self, *args: str, what: str) -> str:
        """A read-only kubectl call made while planning."""
        return queries.read(self.kubectl_argv(*args), what, cwd=self.base_dir, env=self.env_vars)

    # --- context ---------------------------------------------------------------------------------------------

    def shell(self, script: str) -> runner.Command:
        # Plan and the journal show the script and what it runs through: the same kubectl every command gets.
        through = shlex.join((self.kubectl, "--context", self.context, "-n", self.namespace))
        cmd = bash(_WRAPPER + script, self.base_dir, display=f"{script.rstrip()}\n# through: bash -e -c, kubectl = {through}")
        env = {**cmd.env, **self.env_vars, "OPSCONSOLE_KUBECTL": self.kubectl,
               "OPSCONSOLE_KUBE_CONTEXT": self.context, "OPSCONSOLE_KUBE_NAMESPACE": self.namespace}
        return runner.Command(cmd.argv, display=cmd.display, stdin=cmd.stdin, env=env, cwd=cmd.cwd)

    def execute(self, call: Call, timeout_s: float | None, on_output: Output,
                cancel: threading.Event | None = None) -> runner.Result:
        if isinstance(call, SecretRollback):
            return call.perform(on_output, timeout_s, cancel)
        return super().execute(call, timeout_s, on_output, cancel)

    # --- planning --------------------------------------------------------------------------------------------

    def plan(self, action: Action) -> tuple[Call, ...]:
        verb = action.verb
        if verb == "deploy":
            return self.restart(self.deployment(self._service(action, "deploy")))
        if verb == "migrate":
            return self._migrate(action)
        if verb == "scale":
            return self._scale(action)
        if verb == "rotate-secret":
            return self._rotate(action)
        if verb in ("backup", "restore-backup"):
            raise UserError(f"`{action.text()}`: the kubernetes provider does not {verb.replace('-', ' ')} "
                            f"databases; use the database's own tooling in a runbook sh block")
        raise UserError(f"`{action.text()}`: the kubernetes provider does not know {verb!r}")

    def restart(self, deployment: str) -> tuple[runner.Command, ...]:
        return (self.command("rollout", "restart", f"deployment/{deployment}"), self.wait(deployment))

    def wait(self, deployment: str) -> runner.Command:
        return self.command("rollout", "status", f"deployment/{deployment}", f"--timeout={self.rollout_timeout}")

    def _scale(self, action: Action) -> tuple[Call, ...]:
        deployment = self.deployment(self._service(action, "scale"))
        out = self.read("get", "deployment", deployment, "-o", "jsonpath={.spec.replicas}",
                        what=f"read the replicas of deployment {deployment}").strip()
        if not out.isdigit():
            raise UserError(f"cannot read the replicas of deployment {deployment}: kubectl printed {out[:40]!r}")
        current = int(out)
        scale = self.command("scale", f"deployment/{deployment}", f"--current-replicas={current}",
                             f"--replicas={action.replicas}", records={"replicas": current})
        return (scale, self.wait(deployment))

    def _migrate(self, action: Action) -> tuple[Call, ...]:
        if action.service:
            target = self._service(action, "migrate")
        else:
            with_migrate = [t for t in self.env.services if "migrate" in t.options or "migrate_job" in t.options]
            if len(with_migrate) != 1:
                which = ", ".join(t.name for t in with_migrate)
                raise UserError(f"`migrate`: say which service to migrate ({which})" if with_migrate else
                                f"`migrate`: no service of environment {self.env.name!r} has migrate or "
                                f"migrate_job")
            target = with_migrate[0]
        if "migrate_job" in target.options:
            return self._migrate_job(target)
        command = target.options.get("migrate")
        where = ("services", target.name, "migrate")
        if isinstance(command, str) and command.strip():
            try:
                words = shlex.split(command)
            except ValueError as exc:
                raise ConfigError(f"migrate: {exc}", self.config.source, self._line(*where)) from None
        elif isinstance(command, list) and command and all(isinstance(w, str) for w in command):
            words = command
        else:
            raise ConfigError(f"service {target.name!r} needs migrate = \"command\" (run with kubectl exec) or "
                              f"migrate_job = \"job.yaml\"", self.config.source, self._line(*where)
                              or self._line("services", target.name))
        container = target.options.get("migrate_container")
        pick = ("-c", container) if isinstance(container, str) and container else ()
        return (self.command("exec", f"deploy/{self.deployment(target)}", *pick, "--", *words),)

    def _migrate_job(self, target: Target) -> tuple[Call, ...]:
        import yaml

        given = target.options["migrate_job"]
        where = self._line("services", target.name, "migrate_job")
        path = self.base_dir / given if isinstance(given, str) else None
        if path is None or not path.is_file():
            raise ConfigError(f"migrate_job must name a Job manifest file (relative to {self.base_dir})",
                              self.config.source, where)
        try:
            manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
            job = manifest["metadata"]["name"]
            assert manifest.get("kind") == "Job" and isinstance(job, str) and job
        except Exception:
            raise ConfigError(f"{given}: not a Job manifest with metadata.name", self.config.source, where) from None
        return (self.command("delete", "job", job, "--ignore-not-found"),
                self.command("create", "-f", str(path)),
                self.command("wait", "--for=condition=complete", f"job/{job}", f"--timeout={self.rollout_timeout}"),
                self.command("logs", f"job/{job}"))

    # --- rotate-secret ---------------------------------------------------------------------------------------

    def _rotate(self, action: Action) -> tuple[Call, ...]:
        spec = rotation.secret_spec(self.config, self.env, action)
        secret = spec.option("secret")
        key = spec.option("key", spec.name)
        where = ("secrets", spec.name)
        if not isinstance(secret, str) or not secret:
            raise ConfigError(f"rotating {spec.name} on kubernetes needs the Secret it lives in: add secret = "
                              f"\"NAME\" to [environments.{self.env.name}.secrets.{spec.name}]",
                              self.config.source, self._line(*where) or self._line())
        if not isinstance(key, str) or not key:
            raise ConfigError("key must be the Secret's data key (a string)", self.config.source,
                              self._line(*where, "key"))
        restarts = [c for s in spec.restart for c in self.restart(self.deployment(self._service(action, "restart", s)))]
        if action.rollback:
            # The kept value is read when it runs: a rotation's own undo is planned before the rotation keeps it.
            rollback = SecretRollback(provider=self, environment=self.env.name, name=spec.name, secret=secret, key=key)
            return (rollback, *restarts)
        current = read_secret(self, secret)
        old = current.value(key)
        value = rotation.new_value(spec)
        manifest = current.manifest({key: value})
        others = sorted(k for k in current.data if k != key)
        argv = self.kubectl_argv("apply", "-f", "-")
        new = secret_values.fingerprint(value)
        shown = (f"{shlex.join(argv)}  < Secret {secret}: {key}={masking.MASK} (new, {rotation.generated(spec)}, "
                 f"{new}); other keys kept: {', '.join(others) or 'none'}; only if still at resourceVersion "
                 f"{current.resource_version}")
        # The new value is drawn for each plan: the fingerprint a reviewer compares leaves its hash out.
        apply = runner.Command(argv, display=shown, stdin=manifest, env=self.env_vars, cwd=self.base_dir,
                               fingerprint_text=shown.replace(new, "<new value>"))
        keep = () if old is None else (
            rotation.KeepPrevious(self.env.name, spec.name, old, where=f"key {key} of secret/{secret}"),)
        return (*keep, apply, *restarts)


@dataclass(frozen=True)
class SecretData:
    """A Secret as `kubectl get secret -o json` showed it when read."""

    name: str
    namespace: str
    type: str
    resource_version: str
    data: dict[str, str] = field(repr=False)  # key -> base64, as stored

    def value(self, key: str) -> str | None:
        """The decoded text of `key` (registered for masking), None when the key is absent."""
        if key not in self.data:
            return None
        try:
            value = base64.b64decode(self.data[key], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise UserError(f"key {key} of secret/{self.name} is not UTF-8 text: opsconsole rotates text "
                            f"values only") from None
        rotation.register_old(value)
        return value

    def manifest(self, changes: dict[str, str]) -> str:
        """The Secret with `changes` applied, every other key as it was; its resourceVersion makes the apply
        fail if anyone changed the Secret since it was read."""
        data = dict(self.data)
        data.update({k: base64.b64encode(v.encode()).decode() for k, v in changes.items()})
        return json.dumps({"apiVersion": "v1", "kind": "Secret", "type": self.type,
                           "metadata": {"name": self.name, "namespace": self.namespace,
                                        "resourceVersion": self.resource_version},
                           "data": data}, indent=2)


def read_secret(provider: KubernetesProvider, secret: str) -> SecretData:
    out = provider.read("get", "secret", secret, "-o", "json", what=f"read secret/{secret}")
    try:
        obj = json.loads(out)
        meta = obj["metadata"]
        data = obj.get("data") or {}
        assert isinstance(data, dict) and all(isinstance(v, str) for v in data.values())
        return SecretData(name=meta["name"], namespace=meta.get("namespace", provider.namespace),
                          type=obj.get("type", "Opaque"), resource_version=str(meta["resourceVersion"]), data=data)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise UserError(f"cannot read secret/{secret}: `kubectl get secret -o json` did not print a Secret") from None


@dataclass(frozen=True)
class SecretRollback:
    """Put back the value kept in the OS keyring, then forget it there (the value rolled back from is not
    kept: a new rotation draws a new one). The Secret is read when this runs, not when it was planned."""

    provider: KubernetesProvider = field(repr=False)
    environment: str
    name: str
    secret: str
    key: str
    display: str = ""
    fingerprint_text: str = ""
    records: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.provider
        shown = (f"{self.name}: the value kept in the OS keyring (previous/{self.environment}/{self.name}) back into "
                 f"key {self.key} of secret/{self.secret}: {shlex.join(p.kubectl_argv('get', 'secret', self.secret, '-o', 'json'))}, "
                 f"then {shlex.join(p.kubectl_argv('apply', '-f', '-'))} < the Secret with that key changed "
                 f"(only if still at the resourceVersion read); then forget the kept value")
        object.__setattr__(self, "display", masking.mask(shown))
        object.__setattr__(self, "fingerprint_text", self.display)

    def perform(self, on_output: Output, timeout_s: float | None = None,
                cancel: threading.Event | None = None) -> runner.Result:
        started = time.monotonic()
        try:
            previous = rotation.kept_previous(self.environment, self.name)
            current = read_secret(self.provider, self.secret)
            current.value(self.key)  # registers the value rolled back from, for masking
        except UserError as exc:
            return runner.Result(1, "", time.monotonic() - started, error=masking.mask(exc.message))
        apply = runner.Command(self.provider.kubectl_argv("apply", "-f", "-"),
                               stdin=current.manifest({self.key: previous}), env=self.provider.env_vars,
                               cwd=self.provider.base_dir)
        result = runner.run(apply, timeout_s, on_output, cancel)
        if not result.ok:
            return result
        try:  # only once the old value is back is its copy no longer needed
            secret_values.forget_previous(self.environment, self.name)
        except UserError as exc:
            return runner.Result(1, result.output_tail, time.monotonic() - started,
                                 error=masking.mask(f"{self.name} is back, but its kept copy could not be forgotten "
                                                    f"from the OS keyring: {exc.message}"))
        return runner.Result(0, result.output_tail, time.monotonic() - started,
                             recorded={"secret": self.name, "restored_fingerprint": secret_values.fingerprint(previous)})

