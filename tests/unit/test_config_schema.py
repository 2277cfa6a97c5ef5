"""Strict config: a key nothing reads is an error with its line; the schema lists exactly what the code reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opsconsole import config, config_schema
from opsconsole.errors import ConfigError

PACKAGE = Path(config.__file__).parent


def load(text: str) -> config.Config:
    return config.parse(text, Path("/x/opsconsole.toml"), Path("/x"))


def error(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load(text)
    return str(err.value)


@pytest.mark.parametrize("text, message", [
    ('[environments.local.services.db]\nkidn = "postgres"\nurl = "postgresql://h/db"\n',
     "/x/opsconsole.toml:2: unknown key 'kidn' in service 'db' (did you mean 'kind'?; known: deploy, kind, "),
    ('[environments.local.queues.emails]\nkind = "bullmq"\nurl = "redis://h/0"\nqeueu = "x"\n',
     "/x/opsconsole.toml:4: unknown key 'qeueu' in bullmq queue 'emails' (did you mean 'queue'?; known: kind, "
     "prefix, queue, thresholds, url)"),
    ('[environments.local.queues.jobs]\nkind = "redis-list"\nurl = "redis://h/0"\nqueue = "x"\n',
     "/x/opsconsole.toml:4: unknown key 'queue' in redis-list queue 'jobs' (only the bull queue, the bullmq "
     "queue, the rabbitmq queue read it; known: key, kind, thresholds, url)"),
    ('[environments.p]\nprovider = "aws"\n[environments.p.services.api]\ndeployment = "api"\n',
     "/x/opsconsole.toml:4: unknown key 'deployment' in service 'api' (only the kubernetes provider reads it; "),
    ('[environments.p]\nprovider = "local"\n[environments.p.provider_options]\nnamespace = "x"\n',
     "/x/opsconsole.toml:4: unknown key 'namespace' in provider_options of a local environment (only the kubernetes "
     "provider reads it; known: endpoint_url, migrate, profile, region)"),
    ('[environments.p]\nprovider = "kubernetes"\n[environments.p.provider_options]\nnamepsace = "x"\n',
     "/x/opsconsole.toml:4: unknown key 'namepsace' in provider_options of a kubernetes environment (did you mean "
     "'namespace'?; "),
    ('[environments.p]\nprovider = "aws"\n[environments.p.secrets.JWT]\nsecret_di = "app/jwt"\n',
     "/x/opsconsole.toml:4: unknown key 'secret_di' in secret 'JWT' of a aws environment (did you mean "
     "'secret_id'?; "),
    ('[environments.p.secrets]\nJWT = "x"\n',
     "/x/opsconsole.toml:2: secret 'JWT' must be a table"),
    ('[environments.p.services.api]\nurl = "http://h/health"\nthresholds = { latncy_ms = 5 }\n',
     "/x/opsconsole.toml:3: unknown threshold 'latncy_ms' for http (did you mean 'latency_ms'?; "),
])
def test_unknown_keys_are_errors_with_their_line(text, message):
    assert error(text).startswith(message), error(text)


def test_a_kind_that_cannot_be_told_yet_allows_every_probes_keys(tmp_path):
    # url = "${API_URL}": the kind is known only once the environment resolves; tls_verify must not be refused
    (tmp_path / ".env").write_text("API_URL=https://api.internal/health\n")
    cfg = config.parse('[environments.l.services.api]\nurl = "${API_URL}"\ntls_verify = false\n',
                       tmp_path / "opsconsole.toml", tmp_path)
    (api,) = cfg.environment("l").services
    assert api.kind == "http" and api.options["tls_verify"] is False


def test_a_mistyped_kind_is_named_before_the_keys_it_would_read():
    assert error('[environments.l.services.api]\nkind = "htttp"\nurl = "http://h/"\ntls_verify = false\n'
                 ).startswith("/x/opsconsole.toml:2: unknown kind 'htttp'")
    assert error('[environments.l.queues.q]\nkidn = "bullmq"\nurl = "redis://h/0"\nqueue = "x"\n') == (
        "/x/opsconsole.toml:2: queue 'q' needs a kind (bullmq | bull | rabbitmq | sqs | redis-list); is 'kidn' a "
        "typo of 'kind'?")


def test_every_documented_key_loads():
    load("""
[environments.l]
provider = "local"
[environments.l.provider_options]
migrate = "make migrate"
region = "eu-west-1"
[environments.l.services.api]
url = "https://api/health"
ca_file = "ca.pem"
tls_verify = true
deploy = "./deploy.sh"
restart = "./restart.sh"
[environments.l.services.db]
url = "postgresql://h/db"
pg_bin = "/usr/lib/postgresql/15/bin"
restore_jobs = 2
restore_verify = "counts"
[environments.l.queues.a]
kind = "bullmq"
url = "redis://h/0"
prefix = "app"
queue = "emails"
[environments.l.queues.b]
kind = "rabbitmq"
url = "http://guest:guest@h:15672"
vhost = "/"
queue = "emails"
[environments.l.queues.c]
kind = "sqs"
url = "https://sqs.eu-west-1.amazonaws.com/1/q"
region = "eu-west-1"
endpoint_url = "http://localhost:4566"
profile = "dev"
[environments.l.secrets.JWT_SECRET]
restart = ["api"]
length = 64
alphabet = "hex"
verify_timeout = 30
[environments.l.secrets.SESSION_KEY]
bytes = 32
[environments.k]
provider = "kubernetes"
[environments.k.provider_options]
context = "prod"
namespace = "app"
[environments.k.secrets.JWT_SECRET]
secret = "app-secrets"
key = "JWT_SECRET"
""")


# How the providers, probes and rotation read a key of a config table; each must be in the schema.
READS = re.compile(r"""(?:options\.get|options\[|_option\((?:target,\s*)?|_string\(|_seconds\(|\.option\()\s*"""
                   r"""["']([a-z_]+)["']""")


def test_the_schema_lists_every_key_the_code_reads():
    listed = (config_schema.MEMBER | config_schema.SECRET | config_schema.PROVIDER_OPTIONS_ANY
              | set().union(*config_schema.SERVICE_BY_PROVIDER.values(), *config_schema.SERVICE_BY_KIND.values(),
                            *config_schema.QUEUE_BY_KIND.values(), *config_schema.SECRET_BY_PROVIDER.values(),
                            *config_schema.PROVIDER_OPTIONS.values()))
    read = {}
    for path in [*PACKAGE.glob("providers/*.py"), *PACKAGE.glob("probes/*.py"), PACKAGE / "engine.py"]:
        for key in READS.findall(path.read_text()):
            read.setdefault(key, path.name)
    assert len(read) >= 25, read  # the pattern still finds the readers
    missing = {k: where for k, where in read.items() if k not in listed}
    assert not missing, f"keys read by the code but refused by the config loader: {missing}"
