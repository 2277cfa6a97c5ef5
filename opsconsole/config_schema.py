"""Which keys each table of opsconsole.toml may hold, and the one message for a key it may not.

A typo (`kidn = "postgres"`, `qeueu = "emails"`) is an error with its line and, when a known key is close, a
"did you mean"; a key another provider or kind reads says which one does. Keys are listed by who reads them: a
provider's planning code, a probe, rotation. Adding a key to the code means adding it here, or every config that
uses it is refused (tests/unit/test_config_schema.py holds the readers to these lists).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

MEMBER = frozenset({"kind", "url", "thresholds"})

# [environments.X.services.Y]: what the probe of each kind reads, and what each provider's verbs read
SERVICE_BY_KIND: Mapping[str, frozenset[str]] = {
    "http": frozenset({"ca_file", "tls_verify"}),
}
SERVICE_BY_PROVIDER: Mapping[str, frozenset[str]] = {
    "local": frozenset({"deploy", "migrate", "restart", "pg_bin", "restore_jobs", "restore_verify"}),
    "compose": frozenset({"compose_service", "migrate", "pg_bin"}),
    "railway": frozenset({"railway_service_id", "migrate", "url_variable", "pg_bin"}),
    "kubernetes": frozenset({"deployment", "migrate", "migrate_job", "migrate_container"}),
    "aws": frozenset({"ecs_service", "migrate", "task_definition", "container", "db_instance"}),
}

# [environments.X.queues.Y]: what each queue probe reads
QUEUE_BY_KIND: Mapping[str, frozenset[str]] = {
    "bullmq": frozenset({"prefix", "queue"}),
    "bull": frozenset({"prefix", "queue"}),
    "redis-list": frozenset({"key"}),
    "rabbitmq": frozenset({"vhost", "queue"}),
    "sqs": frozenset({"region", "endpoint_url", "profile"}),
}

# [environments.X.secrets.Y]: rotation's own keys, then where each provider keeps the secret
SECRET = frozenset({"restart", "length", "alphabet", "verify_timeout"})
SECRET_BY_PROVIDER: Mapping[str, frozenset[str]] = {
    "local": frozenset({"bytes"}),
    "compose": frozenset(),
    "railway": frozenset({"service"}),
    "kubernetes": frozenset({"secret", "key"}),
    "aws": frozenset({"secret_id"}),
}

# [environments.X.provider_options]: each provider's; region/endpoint_url/profile also serve SQS queues anywhere
PROVIDER_OPTIONS_ANY = frozenset({"region", "endpoint_url", "profile"})
PROVIDER_OPTIONS: Mapping[str, frozenset[str]] = {
    "local": frozenset({"migrate"}),
    "compose": frozenset({"compose_file", "project_name", "env_file", "docker"}),
    "railway": frozenset({"project_id", "environment_id", "api_url", "railway", "poll_interval", "deploy_timeout",
                          "token_kind", "shell_service", "scale_redeploys"}),
    "aws": frozenset({"cluster", "wait_timeout", "poll"}),
    "kubernetes": frozenset({"context", "namespace", "kubectl", "kubeconfig", "rollout_timeout"}),
}


def service_keys(provider: str, kind: str | None) -> frozenset[str]:
    """A service's keys; `kind` None when it cannot be told yet (url = "${API_URL}"): any probe's keys then."""
    probes = SERVICE_BY_KIND.get(kind, frozenset()) if kind else frozenset().union(*SERVICE_BY_KIND.values())
    return MEMBER | SERVICE_BY_PROVIDER.get(provider, frozenset()) | probes


def close_match(key: str, known: Iterable[str]) -> str | None:
    """The known key a typo most likely meant, if one is close."""
    found = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
    return found[0] if found else None


def queue_keys(kind: str | None) -> frozenset[str]:
    return MEMBER | QUEUE_BY_KIND.get(kind or "", frozenset())


def secret_keys(provider: str) -> frozenset[str]:
    return SECRET | SECRET_BY_PROVIDER.get(provider, frozenset())


def provider_option_keys(provider: str) -> frozenset[str]:
    return PROVIDER_OPTIONS_ANY | PROVIDER_OPTIONS.get(provider, frozenset())


def readers(*tables: tuple[str, Mapping[str, frozenset[str]]]) -> dict[str, frozenset[str]]:
    """Who reads what, by phrase ("aws provider", "http probe"), for the hint on a key read elsewhere."""
    return {f"{name} {what}": keys for what, table in tables for name, keys in table.items()}


def unknown_key(key: str, where: str, known: Iterable[str], elsewhere: Mapping[str, frozenset[str]] | None = None) -> str:
    """`unknown key 'kidn' in service 'db' (did you mean 'kind'?; known: ...)`: the message for a key no reader of
    this table reads. A key another provider or kind reads says so instead of guessing."""
    known = sorted(known)
    close = close_match(key, known)
    who = sorted(phrase for phrase, keys in (elsewhere or {}).items() if key in keys)
    if who:
        hint = f"only the {', the '.join(who)} read{'s' if len(who) == 1 else ''} it; "
    elif close:
        hint = f"did you mean {close!r}?; "
    else:
        hint = ""
    return f"unknown key {key!r} in {where} ({hint}known: {', '.join(known)})"
