from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsconsole import config
from opsconsole.errors import ConfigError
from opsconsole.thresholds import Threshold

GOOD = """\
[opsconsole]
refresh = 2
timeout = 0.5

[thresholds]
latency_ms = { warn = 20 }
redis = { latency_ms = { crit = 30 } }

[environments.local]
provider = "compose"

[environments.local.services.db]
kind = "postgres"
url = "${DATABASE_URL}"

[environments.local.services.cache]
url = "${REDIS_URL:-redis://localhost:6379/0}"

[environments.local.services.api]
kind = "http"
url = "http://localhost:3801/health"
thresholds = { latency_ms = { warn = 100, crit = 300 } }

[environments.local.services.worker]
compose_service = "worker"

[environments.local.queues.emails]
kind = "bullmq"
url = "${REDIS_URL:-redis://localhost:6379/0}"
thresholds = { depth = { warn = 50, crit = 100 } }

[environments.production]
provider = "aws"
protection = "typed"
thresholds = { postgres = { latency_ms = 500 } }

[environments.production.services.db]
kind = "postgres"
url = "${PROD_DATABASE_URL}"
"""


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("OPSCONSOLE") or key in ("DATABASE_URL", "REDIS_URL", "PROD_DATABASE_URL"):
            monkeypatch.delenv(key)


def error_of(path: Path, env: str | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        config.load(str(path)).environment(env)
    return info.value


def test_loads_settings_and_resolves_environment(write_config, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.internal/app")
    cfg = config.load(str(write_config(GOOD)))
    assert (cfg.refresh, cfg.timeout) == (2.0, 0.5)
    assert cfg.environment_names == ("local", "production")
    env = cfg.environment("local")
    assert env.provider == "compose" and env.protection == "open" and not env.read_only
    by_name = {t.name: t for t in env.services + env.queues}
    assert by_name["db"].url == "postgresql://app@db.internal/app"
    assert by_name["cache"].kind == "redis"  # inferred from the scheme
    assert by_name["cache"].url == "redis://localhost:6379/0"  # the default after :-
    assert not by_name["worker"].probed  # a deployable service without a probe
    assert [t.name for t in env.targets] == ["db", "cache", "api", "emails"]
    assert by_name["db"].line == 12


def test_threshold_layers(write_config, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@h/d")
    monkeypatch.setenv("PROD_DATABASE_URL", "postgresql://x@h/d")
    cfg = config.load(str(write_config(GOOD)))
    local = {t.name: t for t in cfg.environment("local").targets}
    # global generic warn applies to every kind, keeping each kind's default crit
    assert local["db"].thresholds["latency_ms"] == Threshold(warn=20, crit=200)
    # global per-kind beats global generic
    assert local["cache"].thresholds["latency_ms"] == Threshold(warn=20, crit=30)
    # the member's own table wins
    assert local["api"].thresholds["latency_ms"] == Threshold(warn=100, crit=300)
    assert local["emails"].thresholds["depth"] == Threshold(warn=50, crit=100)
    assert local["db"].thresholds["failures"] == Threshold(crit=3)
    prod = {t.name: t for t in cfg.environment("production").targets}
    assert prod["db"].thresholds["latency_ms"] == Threshold(warn=20, crit=500)


def test_defaults_follow_the_adrs():
    assert config.parse(config.BUILTIN_TOML, None, Path.cwd()).journal_retry == 10.0
    env = config.parse(config.BUILTIN_TOML, None, Path.cwd()).environment("local")
    db, cache = env.targets
    assert db.thresholds["latency_ms"].crit == 200
    assert cache.thresholds["latency_ms"].crit == 100
    assert cache.thresholds["memory_pct"].crit == 80
    assert db.thresholds["failures"].crit == 3


def test_env_files_and_precedence(write_config, monkeypatch):
    path = write_config(GOOD, files={
        ".env": "DATABASE_URL=postgresql://from-dotenv/app\nREDIS_URL=redis://dotenv:6379/1\n",
        ".env.local": "REDIS_URL=redis://dotenv-local:6379/2\n",
    })
    env = config.load(str(path)).environment("local")
    urls = {t.name: t.url for t in env.targets}
    assert urls["db"] == "postgresql://from-dotenv/app"
    assert urls["cache"] == "redis://dotenv-local:6379/2"  # .env.<environment> over .env
    monkeypatch.setenv("REDIS_URL", "redis://process:6379/3")
    env = config.load(str(path)).environment("local")
    assert {t.name: t.url for t in env.targets}["cache"] == "redis://process:6379/3"  # the process wins


def test_undefined_variable_names_file_and_line(write_config):
    path = write_config(GOOD)
    err = error_of(path, "local")
    assert err.line == 14 and str(err).startswith(f"{path}:14: ${{DATABASE_URL}} is not set")


def test_undefined_variable_in_another_environment_does_not_matter(write_config, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@h/d")
    cfg = config.load(str(write_config(GOOD)))
    cfg.environment("local")
    with pytest.raises(ConfigError, match="PROD_DATABASE_URL"):
        cfg.environment("production")


def test_unknown_environment(write_config):
    path = write_config(GOOD)
    with pytest.raises(ConfigError, match=r"unknown environment 'staging' \(known: local, production\)"):
        config.load(str(path)).environment("staging")


@pytest.mark.parametrize("text, line, message", [
    ("[environments.a.services.x]\nkind = \"mysql\"\nurl = \"x\"\n", 2, "unknown kind 'mysql'"),
    ("[environments.a.services.x]\nkind = \"bullmq\"\nurl = \"redis://h\"\n", 2, "bullmq belongs under queues"),
    ("[environments.a]\nprovider = \"heroku\"\n", 2, "unknown provider 'heroku'"),
    ("[environments.a]\nprotection = \"strict\"\n", 2, "unknown protection"),
    ("[environments.a]\nread_only = \"yes\"\n", 2, "read_only must be true or false"),
    ("[environments.a]\nservcies = {}\n", 2, "unknown key 'servcies'"),
    ("[opsconsole]\nrefesh = 5\n[environments.a]\n", 2, "unknown setting 'refesh'"),
    ("[opsconsole]\ntimeout = -1\n[environments.a]\n", 2, "timeout must be a positive number"),
    ("[opsconsole]\njournal_retry = 60\n[environments.a]\n", 2, "journal_retry must be a number of seconds from 0 to 20"),
    ("[opsconsole]\njournal_retry = true\n[environments.a]\n", 2, "journal_retry must be a number"),
    ("[environments.a.queues.q]\nurl = \"redis://h\"\n", 1, "queue 'q' needs a kind"),
    ("[environments.a.queues.q]\nkind = \"bullmq\"\nurl = \"redis://h\"\n"
     "thresholds = { depth = { warn = 10, crit = 5 } }\n", 4, "warn (10) is above crit (5)"),
    ("[environments.a.queues.q]\nkind = \"bullmq\"\nurl = \"redis://h\"\n"
     "thresholds = { depth = { crit = \"lots\" } }\n", 4, "threshold must be a number"),
    ("[environments.a.services.db]\nkind = \"postgres\"\nurl = \"postgresql://h/d\"\n\n"
     "[environments.a.services.db.thresholds]\ndepth = 5\n", 6, "unknown threshold 'depth' for postgres"),
    ("[thresholds]\nlatency = 5\n[environments.a]\n", 2, "unknown threshold 'latency'"),
    ("[environment.a]\n", 1, "unknown section 'environment'"),
    ("[opsconsole]\nrefresh = 5\n", None, "no environments"),
])
def test_structure_errors_name_the_line(write_config, text, line, message):
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert message in str(info.value)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}:{line}:" if line else f"{path}:")


@pytest.mark.parametrize("text, line, message", [
    ("[environments.a.services.x]\nkind = \"postgres\"\n", 1, "needs a url"),
    ("[environments.a.services.x]\nkind = \"postgres\"\nurl = \"mysql://h/d\"\n", 3, "postgres url must start with"),
    ("[environments.a.services.x]\nkind = \"tcp\"\nurl = \"tcp://nohost\"\n", 3, "tcp url needs host:port"),
    ("[environments.a.services.x]\nurl = \"ftp://h\"\n", 1, "cannot tell the kind"),
])
def test_member_errors_name_the_line(write_config, text, line, message):
    path = write_config(text)
    err = error_of(path, "a")
    assert message in str(err) and err.line == line


def test_toml_syntax_error_names_the_line(write_config):
    path = write_config("[opsconsole]\nrefresh = 5\n[environments.a\nprovider = 'local'\n")
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert info.value.line == 3
    assert "TOML syntax error" in str(info.value)


def test_password_in_bad_url_is_not_shown(write_config):
    path = write_config("[environments.a.services.x]\nkind = \"postgres\"\nurl = \"mysql://me:hunter2@h/d\"\n")
    err = error_of(path, "a")
    assert "hunter2" not in str(err) and "me:***@h" in str(err)


def test_discovery_order(tmp_path, monkeypatch, write_config):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.discover(None) is None  # nothing anywhere: the built-in default
    user = tmp_path / "xdg" / "opsconsole" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[environments.user]\n")
    assert config.discover(None) == user
    (tmp_path / "opsconsole.toml").write_text("[environments.cwd]\n")
    assert config.discover(None) == Path("opsconsole.toml")
    env_file = tmp_path / "from-env.toml"
    env_file.write_text("[environments.envvar]\n")
    monkeypatch.setenv("OPSCONSOLE_CONFIG", str(env_file))
    assert config.discover(None) == env_file
    flag = tmp_path / "flag.toml"
    flag.write_text("[environments.flag]\n")
    assert config.discover(str(flag)) == flag
    assert config.load(str(flag)).environment_names == ("flag",)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(str(tmp_path / "nope.toml"))


def test_builtin_default(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    cfg = config.load(None)
    assert cfg.source == config.BUILTIN
    env = cfg.environment()
    assert env.name == "local"
    assert [(t.name, t.kind, t.url) for t in env.targets] == [
        ("postgres", "postgres", "postgresql://localhost:5432/postgres"),
        ("redis", "redis", "redis://localhost:6379/0"),
    ]
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6380/1")
    assert config.load(None).environment().targets[1].url == "redis://elsewhere:6380/1"
