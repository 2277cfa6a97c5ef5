"""`opsconsole check` and `envs` as real processes against real servers."""

from __future__ import annotations

import json
import signal
from datetime import datetime

import pytest

CONFIG = """\
[opsconsole]
timeout = 2

[environments.local]
provider = "local"

[environments.local.services.db]
kind = "postgres"
url = "${{DATABASE_URL}}"

[environments.local.services.cache]
kind = "redis"
url = "{redis}"

[environments.local.services.api]
kind = "http"
url = "{api}"

[environments.production]
provider = "aws"
protection = "typed"
"""


@pytest.fixture
def setup(write_config, pg_running, redis_running, http_server):
    path = write_config(CONFIG.format(redis=redis_running.url, api=http_server.url("/healthy")),
                        files={".env": f"DATABASE_URL={pg_running.url()}\n"})
    return path


def test_check_json_matches_the_contract(setup, run_cli, pg_running):
    proc = run_cli("check", "--env", "local", "--json", "--config", str(setup))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["environment"] == "local" and out["status"] == "ok"
    assert datetime.fromisoformat(out["checked_at"]).utcoffset() is not None
    assert out["queues"] == []
    by_name = {s["name"]: s for s in out["services"]}
    assert list(by_name) == ["db", "cache", "api", "api/db"]
    for item in out["services"]:
        assert {"name", "kind", "status", "latency_ms", "metrics", "error"} <= set(item)
        assert item["status"] == "ok" and item["error"] is None
    assert by_name["db"]["kind"] == "postgres" and by_name["db"]["latency_ms"] > 0
    assert by_name["db"]["metrics"]["max_connections"] == 50
    assert by_name["cache"]["metrics"]["role"] == "master"
    assert by_name["api"]["metrics"]["status_code"] == 200
    assert by_name["api/db"]["parent"] == "api"
    assert pg_running.password not in proc.stdout + proc.stderr


def test_target_down_exits_2_and_names_it(setup, run_cli, redis_running):
    redis_running.stop(signal.SIGKILL)
    try:
        proc = run_cli("check", "--json", "--config", str(setup))
        assert proc.returncode == 2
        out = json.loads(proc.stdout)
        cache = next(s for s in out["services"] if s["name"] == "cache")
        assert out["status"] == "crit" and cache["status"] == "crit"
        assert cache["error"] == f"connection refused by 127.0.0.1:{redis_running.port}"
        table = run_cli("check", "--config", str(setup))
        assert table.returncode == 2
        line = next(line for line in table.stdout.splitlines() if " cache " in line)
        assert line.startswith("crit") and "connection refused" in line
    finally:
        redis_running.start()


def test_check_table_is_readable(setup, run_cli):
    proc = run_cli("check", "--config", str(setup))
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("local: OK")
    assert lines[1].split() == ["STATUS", "NAME", "KIND", "LATENCY", "DETAIL"]
    assert any(line.startswith("ok") and " db " in line and "/50 conns" in line for line in lines)


def test_warn_exits_1(write_config, run_cli, http_server):
    path = write_config(f'[environments.a.services.api]\nkind = "http"\nurl = "{http_server.url("/redirect")}"\n')
    assert run_cli("check", "--config", str(path)).returncode == 1


def test_nothing_to_probe_is_unknown(write_config, run_cli):
    path = write_config('[environments.a]\nprovider = "local"\n')
    proc = run_cli("check", "--config", str(path))
    assert proc.returncode == 3 and "nothing to probe" in proc.stdout


def test_password_in_url_never_printed(write_config, run_cli, pg_running):
    url = pg_running.url(password="Wr0ng-But-Secret")
    path = write_config(f'[environments.a.services.db]\nurl = "{url}"\n')
    for args in (("check",), ("check", "--json")):
        proc = run_cli(*args, "--config", str(path))
        assert proc.returncode == 2
        assert "Wr0ng-But-Secret" not in proc.stdout + proc.stderr
        assert "password authentication failed" in proc.stdout


@pytest.mark.parametrize("args, text, expected", [
    (("check", "--env", "staging"), None, "unknown environment 'staging' (known: local, production)"),
    (("check", "--frobnicate"), None, "unrecognized arguments: --frobnicate"),
    (("check",), "[environments.a\n", ":1: TOML syntax error"),
    (("check",), '[environments.a.services.db]\nurl = "${NOPE_UNSET}"\n', ":2: ${NOPE_UNSET} is not set"),
    (("check",), '[environments.a.services.db]\nkind = "mongo"\nurl = "x"\n', ":2: unknown kind 'mongo'"),
])
def test_user_errors_are_one_line_and_exit_3(setup, write_config, run_cli, args, text, expected):
    path = write_config(text, name="bad.toml") if text else setup
    proc = run_cli(*args, "--config", str(path))
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert expected in proc.stderr
    if text:
        assert proc.stderr.startswith(str(path))


def test_missing_config_flag_file(run_cli, tmp_path):
    proc = run_cli("envs", "--config", str(tmp_path / "nope.toml"))
    assert proc.returncode == 2 and "config file not found" in proc.stderr and "Traceback" not in proc.stderr


def test_envs_lists_environments(setup, run_cli):
    proc = run_cli("envs", "--config", str(setup))
    assert proc.returncode == 0
    rows = [line.split() for line in proc.stdout.splitlines()]
    assert rows[1] == ["ENVIRONMENT", "PROVIDER", "PROTECTION", "READ-ONLY", "SERVICES", "QUEUES"]
    assert rows[2] == ["local", "*", "local", "open", "no", "3", "0"]
    assert rows[3] == ["production", "aws", "typed", "no", "0", "0"]
    data = json.loads(run_cli("envs", "--json", "--config", str(setup)).stdout)
    assert [e["name"] for e in data["environments"]] == ["local", "production"]


def test_config_discovered_from_env_var_and_cwd(setup, run_cli, tmp_path):
    proc = run_cli("envs", env={"OPSCONSOLE_CONFIG": str(setup)}, cwd=tmp_path.parent)
    assert proc.returncode == 0 and f"config: {setup}" in proc.stdout
    proc = run_cli("envs", cwd=tmp_path)  # ./opsconsole.toml
    assert "config: opsconsole.toml" in proc.stdout
