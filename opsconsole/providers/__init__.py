"""Providers: where an environment's changes happen.

A provider turns an action verb into its exact calls at plan time (`plan`), gives sh blocks their
context (`shell`), and later executes exactly those calls (`execute`). A call is either a
`runner.Command` (a subprocess, through the one runner) or an in-process call (an API request,
a file rewrite) with the same `display` / `fingerprint_text` and a `perform` method.

One module per provider (providers/local.py, railway.py, ...); `for_environment` picks the environment's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from opsconsole import runner
from opsconsole.errors import ConfigError, UserError

if TYPE_CHECKING:
    from opsconsole.actions import Action
    from opsconsole.config import Config, Environment, Target

Output = Callable[[str], None]


@runtime_checkable
class InProcessCall(Protocol):
    """A planned call that is not a subprocess. `perform` does exactly what `display` says."""

    display: str
    fingerprint_text: str
    records: dict[str, object]

    def perform(self, on_output: Output) -> runner.Result: ...


Call = runner.Command | InProcessCall


class Provider:
    """The interface the engine uses; one instance per environment and run."""

    name = ""
    # The optional verb flags (Action.options, e.g. "--jobs") this provider carries out; `plan_action`
    # refuses an action using any other, so a flag is never silently ignored.
    options: frozenset[str] = frozenset()
    # The journal's id of the run being executed, set by the engine when the run starts ("" outside a run),
    # for what a provider writes that should name its run (a backup's manifest).
    run_id: str = ""
    env: Environment  # set by each provider's constructor

    def _service(self, action: Action, what: str, name: str | None = None) -> Target:
        """The environment's service `name` (default: the action's), or a UserError naming the ones there are."""
        name = name or action.service
        for target in self.env.services:
            if target.name == name:
                return target
        known = ", ".join(t.name for t in self.env.services) or "none"
        raise UserError(f"`{action.text()}`: environment {self.env.name!r} has no service {name!r} to {what} "
                        f"(services: {known})")

    def shell(self, script: str) -> runner.Command:
        """The command that runs an `sh` block's (rendered) script in this provider's context."""
        raise NotImplementedError

    def plan(self, action: Action) -> tuple[Call, ...]:
        """The exact calls `action` makes; UserError when it cannot be done here."""
        raise NotImplementedError

    def execute(self, call: Call, timeout_s: float | None, on_output: Output,
                cancel: threading.Event | None = None) -> runner.Result:
        if isinstance(call, runner.Command):
            return runner.run(call, timeout_s, on_output, cancel)
        return call.perform(on_output)


def for_environment(config: Config, env: Environment) -> Provider:
    """The provider of `env`; a one-line ConfigError for a provider that cannot run changes yet."""
    if env.provider == "local":
        from opsconsole.providers.local import LocalProvider

        return LocalProvider(config, env)
    if env.provider == "aws":
        from opsconsole.providers.aws import AwsProvider

        return AwsProvider(config, env)
    if env.provider == "railway":
        from opsconsole.providers.railway import RailwayProvider

        return RailwayProvider(config, env)
    if env.provider == "kubernetes":
        from opsconsole.providers.kubernetes import KubernetesProvider

        return KubernetesProvider(config, env)
    if env.provider == "compose":
        from opsconsole.providers.compose import ComposeProvider

        return ComposeProvider(config, env)
    raise ConfigError(
        f"environment {env.name!r} uses provider {env.provider!r}, which cannot run runbooks or actions yet",
        config.source, config.lines.line("environments", env.name, "provider"))


def plan_action(provider: Provider, action: Action) -> tuple[Call, ...]:
    """`provider.plan(action)`, refusing first any optional flag the provider does not carry out."""
    unknown = [flag for flag in action.options if flag not in provider.options]
    if unknown:
        raise UserError(f"`{action.text()}`: the {provider.name} provider cannot do {' or '.join(unknown)}; "
                        f"leave it out (it would otherwise be ignored)")
    return provider.plan(action)


def records_of(call: Call) -> dict[str, object]:
    """What a call records (`previous.*`) when it succeeds, known at plan time (e.g. a backup's file)."""
    return dict(getattr(call, "records", None) or {})
