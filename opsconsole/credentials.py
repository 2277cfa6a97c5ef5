"""Provider credentials: the process environment first, then the OS keyring; never a file opsconsole writes.

Keyring entries live under service "opsconsole", account "<provider>/<key>" (e.g. "railway/token").
Every value found (four characters or more) is registered with `masking.register`, so it cannot leak
through any output.

A keyring backend counts as usable only when it is a recommended one (macOS Keychain, Secret Service,
Windows Credential Locker, KWallet) or the user chose it explicitly (`PYTHON_KEYRING_BACKEND` or keyring's
own keyringrc.cfg). Installing `keyrings.alt` alone makes keyring pick its plaintext file backend silently;
opsconsole does not store credentials there unless asked to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from opsconsole import masking
from opsconsole.errors import UserError

SERVICE = "opsconsole"

NO_BACKEND = ("no usable OS keyring on this machine (install one such as gnome-keyring/Secret Service or KWallet, "
              "or choose a backend with PYTHON_KEYRING_BACKEND); environment variables still work")


@dataclass(frozen=True)
class Credential:
    """A credential and where it came from: "environment ($NAME)" or "keyring".

    Its repr never shows the value (tracebacks, logs, debuggers).
    """

    value: str
    source: str

    def __repr__(self) -> str:
        return f"Credential(value={masking.MASK!r}, source={self.source!r})"


def register(value: str | None) -> None:
    """Register a credential for masking (defence in depth: opsconsole never prints one)."""
    masking.register(value)  # (one shorter than masking.MIN_LENGTH is no credential: not registered)


def account(provider: str, key: str) -> str:
    return f"{provider}/{key}"


def backend() -> Any | None:
    """The keyring backend opsconsole may use, or None when there is no usable one."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        chosen = keyring.get_keyring()
    except Exception:  # a broken keyringrc.cfg or backend import: same as no backend
        return None
    if isinstance(chosen, fail.Keyring):
        return None
    if getattr(chosen, "priority", 0) >= 1 or _explicitly_chosen():
        return chosen
    return None


def _explicitly_chosen() -> bool:
    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        return True
    try:
        import keyring.core

        return keyring.core.load_config() is not None
    except Exception:
        return False


def backend_name() -> str | None:
    """Human name of the usable backend (for `auth status`), or None."""
    chosen = backend()
    if chosen is None:
        return None
    cls = type(chosen)
    return f"{cls.__module__}.{cls.__name__}"


def from_environment(env_vars: tuple[str, ...]) -> Credential | None:
    for name in env_vars:
        value = os.environ.get(name)
        if value:
            register(value)
            return Credential(value, f"environment (${name})")
    return None


def from_keyring(provider: str, key: str) -> Credential | None:
    """The keyring's value for provider/key; None when absent or when there is no usable backend."""
    value = get(account(provider, key))
    if value is None:
        return None
    return Credential(value, "keyring")


def lookup(provider: str, key: str, env_vars: tuple[str, ...] = ()) -> Credential | None:
    """The credential from the first set variable of `env_vars`, else the keyring; None when missing."""
    return from_environment(env_vars) or from_keyring(provider, key)


def store(provider: str, key: str, value: str) -> None:
    """Keep `value` in the OS keyring; UserError when there is no usable backend or it refuses."""
    if not value:
        raise UserError(f"refusing to store an empty value for {account(provider, key)}")
    register(value)
    put(account(provider, key), value)


def delete(provider: str, key: str) -> bool:
    """Remove provider/key from the keyring; False when it was not there. UserError without a backend."""
    return remove(account(provider, key))


# Raw keyring access by account, shared with secret_values (which keeps previous secret values).

def get(name: str) -> str | None:
    chosen = backend()
    if chosen is None:
        return None
    from keyring.errors import KeyringError

    try:
        value = chosen.get_password(SERVICE, name)
    except KeyringError:
        return None
    register(value)
    return value


def put(name: str, value: str) -> None:
    chosen = _required_backend()
    from keyring.errors import KeyringError

    register(value)
    try:
        chosen.set_password(SERVICE, name, value)
    except KeyringError as exc:
        raise UserError(f"the OS keyring refused to store {name}: {masking.mask(str(exc))}") from None


def remove(name: str) -> bool:
    chosen = _required_backend()
    from keyring.errors import KeyringError, PasswordDeleteError

    try:
        chosen.delete_password(SERVICE, name)
    except PasswordDeleteError:
        return False
    except KeyringError as exc:
        raise UserError(f"the OS keyring refused to delete {name}: {masking.mask(str(exc))}") from None
    return True


def _required_backend() -> Any:
    chosen = backend()
    if chosen is None:
        raise UserError(NO_BACKEND)
    return chosen


# --- what each provider uses (for `opsconsole auth`) ---------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """One credential a provider reads: its keyring key, the variables that win over it, and what it is."""

    key: str
    env_vars: tuple[str, ...]
    description: str
    optional: bool = False


KNOWN: dict[str, tuple[Spec, ...]] = {
    "railway": (Spec("token", ("RAILWAY_TOKEN", "RAILWAY_API_TOKEN"),
                     "API token ($RAILWAY_TOKEN: a project token; $RAILWAY_API_TOKEN: an account or workspace "
                     "token)"),),
    "aws": (Spec("access_key_id", ("AWS_ACCESS_KEY_ID",), "access key id"),
            Spec("secret_access_key", ("AWS_SECRET_ACCESS_KEY",), "secret access key"),
            Spec("session_token", ("AWS_SESSION_TOKEN",), "session token (temporary keys only)", optional=True)),
    "rabbitmq": (),  # one password per user@host of a rabbitmq url without a password (see rabbitmq_accounts)
    "kubernetes": (),  # kubectl's kubeconfig
    "compose": (),  # docker's own login
    "local": (),
}
NOTHING_KEPT = {
    "kubernetes": "kubectl authenticates with its kubeconfig (the environment's `context`); opsconsole keeps nothing",
    "compose": "docker compose uses docker's own login; opsconsole keeps nothing",
    "local": "the local provider runs commands on this machine; opsconsole keeps nothing",
}


def rabbitmq_accounts(config: Any) -> list[tuple[str, str, bool]]:
    """(user@host, where it is used, password in the url?) for every rabbitmq queue of every environment,
    as the probe looks them up (account "rabbitmq/user@host")."""
    from urllib.parse import urlsplit

    found: dict[str, tuple[str, str, bool]] = {}
    for name in config.environment_names:
        for queue in config.environment(name).queues:
            if queue.kind != "rabbitmq" or not queue.url:
                continue
            parts = urlsplit(queue.url)
            if not parts.username:
                continue
            key = f"{parts.username}@{parts.hostname}"
            where = f"queue {queue.name} of {name}"
            seen = found.get(key)
            found[key] = (key, f"{seen[1]}, {where}" if seen else where,
                          parts.password is not None or bool(seen and seen[2]))
    return list(found.values())


def status(provider: str, config: Any | None) -> list[tuple[str, str]]:
    """(what, where it comes from) for each credential `provider` uses: "environment ($NAME)", "keyring",
    "missing", or where boto3 finds AWS credentials. Never a value."""
    usable = backend() is not None
    absent = "missing" if usable else "missing (no usable OS keyring to look in)"
    rows: list[tuple[str, str]] = []
    for spec in KNOWN.get(provider, ()):
        found = lookup(provider, spec.key, spec.env_vars)
        label = f"{provider} {spec.key}"
        rows.append((label, found.source if found else absent + (" (optional)" if spec.optional else "")))
    if provider == "aws":
        from opsconsole.providers.aws import credential_source

        environments = [config.environment(n) for n in config.environment_names] if config is not None else []
        aws_envs = [e for e in environments if e.provider == "aws"]
        for env in aws_envs or [None]:
            options = env.provider_options if env is not None else {}
            profile, region = options.get("profile"), options.get("region")
            label = "aws credentials boto3 finds" + (f" for {env.name}" if env is not None else "") \
                + (f" (profile {profile})" if profile else "")
            rows.append((label, credential_source(profile, region)))
    if provider == "rabbitmq":
        accounts = rabbitmq_accounts(config) if config is not None else []
        for key, where, in_url in accounts:
            if in_url:
                source = "in the url (config)"
            else:
                found = from_keyring("rabbitmq", key)
                source = "keyring" if found else absent
            rows.append((f"rabbitmq {key} ({where})", source))
        if not accounts:
            rows.append(("rabbitmq", "no rabbitmq queue with a user in its url in the config"))
    if provider in NOTHING_KEPT:
        rows.append((provider, NOTHING_KEPT[provider]))
    return rows
