"""What every remote provider's rotate-secret shares: the secret's config, the new value, the kept old one.

`[environments.X.secrets.NAME]` says where the secret lives (provider-specific keys) and, for all
providers, `restart` (services to restart afterwards), `length` and `alphabet` (how the new value is
generated, `secret_values.generate`). The value being replaced is kept in the OS keyring
(`secret_values.keep_previous`) before anything changes, so `--rollback` can put it back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsconsole import masking, runner, secret_values
from opsconsole.errors import ConfigError, UserError
from opsconsole.providers import Output

if TYPE_CHECKING:
    from pathlib import Path

    from opsconsole.actions import Action
    from opsconsole.config import Config, Environment

@dataclass(frozen=True)
class SecretSpec:
    """One rotatable secret as configured (an unconfigured name gets the defaults)."""

    name: str
    options: Mapping[str, Any]  # the [environments.X.secrets.NAME] table
    restart: tuple[str, ...]  # --restart services first, then the configured ones, each once
    length: int | None
    alphabet: str

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


def secret_spec(config: Config, env: Environment, action: Action) -> SecretSpec:
    """The secret `action` rotates, its config checked; ConfigError(path:line) for a bad key."""
    name = action.secret or ""
    options = env.secrets.get(name, {})
    line = config.lines.line

    def fail(message: str, *key: str) -> None:
        raise ConfigError(message, config.source, line("environments", env.name, "secrets", name, *key))

    restart = options.get("restart", [])
    if isinstance(restart, str):
        restart = [restart]
    if not isinstance(restart, list) or not all(isinstance(s, str) for s in restart):
        fail("restart must be a list of service names", "restart")
    length = options.get("length")
    if length is not None and (isinstance(length, bool) or not isinstance(length, int)):
        fail(f"length must be a whole number of characters, got {length!r}", "length")
    alphabet = options.get("alphabet", "hex")
    if alphabet not in secret_values.ALPHABETS:
        fail(f"alphabet must be one of {', '.join(secret_values.ALPHABETS)}, got {alphabet!r}", "alphabet")
    spec = SecretSpec(name=name, options=options, restart=tuple(dict.fromkeys([*action.restart, *restart])),
                      length=length, alphabet=alphabet)
    try:  # a bad length shows now, at plan time, with its line
        secret_values.generate(spec.length, spec.alphabet)
    except UserError as exc:
        fail(exc.message, "length")
    return spec


def new_value(spec: SecretSpec) -> str:
    """A fresh value for `spec` (registered for masking by `generate`)."""
    return secret_values.generate(spec.length, spec.alphabet)


def generated(spec: SecretSpec) -> str:
    """How the new value is made, for a plan line: "64 hex characters"."""
    length = spec.length or secret_values.DEFAULT_LENGTH[spec.alphabet]
    return f"{length} {spec.alphabet} characters"


def refuse_unreachable(action: Action, env_file: Path, *, known: bool, missing: str, unknown: str,
                       exported: str) -> None:
    """For the providers that rotate a `.env` file (local, compose): refuse, before anything changes, a rotation
    that would not reach what runs: no `env_file` (it would be created, and nothing reads it), a name it does not
    hold (`known`), or a name also set in opsconsole's own environment, which wins over the file. `missing`,
    `unknown` and `exported` say it in the provider's words."""
    import os

    name = action.secret or ""
    unchanged = "nothing was changed"
    if not env_file.is_file():
        raise UserError(f"`{action.text()}`: there is no {env_file} {missing}; {unchanged}")
    if not known and not action.rollback:
        raise UserError(f"`{action.text()}`: unknown secret {name}: {unknown}; {unchanged}")
    if name in os.environ:
        raise UserError(f"`{action.text()}`: {name} is also set in opsconsole's own environment (exported in "
                        f"the shell that started it), and {exported}. Run `unset {name}` (or `env -u {name} "
                        f"opsconsole ...`) and try again; {unchanged}")


def register_old(value: str | None) -> None:
    masking.register(value)  # an old value shorter than masking.MIN_LENGTH ("1") is not one: not registered


@dataclass(frozen=True)
class KeepPrevious:
    """Keep the value about to be replaced in the OS keyring, for `rotate-secret --rollback`.

    Runs before the change: without a usable keyring the rotation stops here, with nothing changed.
    """

    environment: str
    name: str
    value: str = field(repr=False)
    where: str = ""  # where the value was read, for the plan line
    display: str = ""
    fingerprint_text: str = ""
    records: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        register_old(self.value)
        shown = (f"keep the current {self.name} ({secret_values.fingerprint(self.value)}{', ' + self.where if self.where else ''})"
                 f" in the OS keyring as previous/{self.environment}/{self.name}, for --rollback")
        object.__setattr__(self, "display", masking.mask(self.display or shown))
        object.__setattr__(self, "fingerprint_text", self.fingerprint_text or self.display)

    def perform(self, on_output: Output) -> runner.Result:
        started = time.monotonic()
        try:
            secret_values.keep_previous(self.environment, self.name, self.value)
        except UserError as exc:
            return runner.Result(1, "", time.monotonic() - started,
                                 error=masking.mask(f"cannot keep the previous {self.name} for --rollback, nothing "
                                                    f"was changed: {exc.message}"))
        message = f"previous {self.name} ({secret_values.fingerprint(self.value)}) kept in the OS keyring"
        on_output(message)
        return runner.Result(0, message, time.monotonic() - started,
                             recorded={"secret": self.name,
                                       "previous_fingerprint": secret_values.fingerprint(self.value)})


def kept_previous(environment: str, name: str) -> str:
    """The value `KeepPrevious` kept, for a rollback at run time; UserError when there is none."""
    value = secret_values.previous(environment, name)
    if not value:
        raise UserError(f"no previous value of {name} is kept in the OS keyring for {environment!r} "
                        f"(previous/{environment}/{name}): nothing to roll back to")
    return value
