"""`opsconsole runbooks list | validate | show` as real processes; `expect` against a real round."""

from __future__ import annotations

import asyncio
import json
import shutil
import textwrap
from pathlib import Path

import pytest

from opsconsole import expect, runbook
from opsconsole.health import Monitor
from tests.integration.conftest import environment

SHIPPED = Path(__file__).resolve().parents[2] / "opsconsole" / "shipped_runbooks"

BROKEN = """\
---
params:
  n: {type: int, min: 5, max: 1}
---
## One
```sh {"role": "sometimes"}
echo {{ m }}
```
## Two
```ops
scale worker --replicas lots
```
"""


@pytest.fixture
def project(tmp_path: Path, write_config) -> Path:
    """A project directory: opsconsole.toml and a copy of the shipped runbooks."""
    shutil.copytree(SHIPPED, tmp_path / "runbooks")
    write_config("""\
        [environments.local]
        provider = "local"
        """)
    return tmp_path


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


def test_list(run_cli, project):
    result = run_cli("runbooks", "list")
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "runbooks: runbooks, then built-in"
    assert lines[1].split() == ["NAME", "FROM", "STEPS", "TITLE", "SUMMARY"]
    row = next(line for line in lines if line.startswith("scale-workers "))
    # The project's copy hides the shipped one of the same name, and says so.
    assert row.split()[:7] == ["scale-workers", "runbooks", "(over", "built-in)", "2", "Scale", "workers"]
    assert row.endswith("Add worker replicas when the queue backs up.")
    assert not any(line.startswith("README") for line in lines)


def test_list_json_and_an_invalid_runbook(run_cli, project):
    (project / "runbooks" / "broken.md").write_text(BROKEN)
    result = run_cli("runbooks", "list", "--json")
    no_traceback(result)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["directory"] == str(project / "runbooks")
    by_name = {r["name"]: r for r in data["runbooks"]}
    assert set(by_name) == {"broken", "deploy", "local-smoke", "migrate", "restore-backup", "rotate-secret",
                            "scale-workers", "queue-backlog", "db-connections-exhausted", "restore-drill"}
    scale = by_name["scale-workers"]
    assert (scale["title"], scale["steps"], scale["valid"], scale["params"], scale["environments"]) == (
        "Scale workers", 2, True, ["replicas", "service", "queue"], ["staging", "production"])
    assert by_name["broken"]["valid"] is False
    assert by_name["broken"]["problems"][0] == "runbooks/broken.md:3: param 'n': min 5 is above max 1"


def test_list_respects_config_and_a_missing_directory(run_cli, tmp_path, write_config):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "only.md").write_text("# Only\n\n```sh\necho one\n```\n")
    config = write_config('[opsconsole]\nrunbooks = "elsewhere"\n[environments.local]\n', name="custom.toml")
    result = run_cli("runbooks", "list", "--config", str(config))
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "runbooks: elsewhere, then built-in"
    only = next(line for line in result.stdout.splitlines() if line.startswith("only "))
    assert only.split()[:4] == ["only", "elsewhere", "1", "Only"]
    # The shipped runbooks stay available beside the user's own, labelled as built-in.
    assert any(line.split()[:2] == ["local-smoke", "built-in"] for line in result.stdout.splitlines())
    missing = write_config('[opsconsole]\nrunbooks = "nowhere"\n[environments.local]\n', name="missing.toml")
    result = run_cli("runbooks", "--config", str(missing), "list")
    no_traceback(result)
    assert result.returncode == 2 and result.stderr.strip().startswith("no runbooks directory at nowhere")


def test_validate_the_shipped_runbooks(run_cli, project):
    result = run_cli("runbooks", "validate")
    no_traceback(result)
    assert result.returncode == 0, result.stdout
    assert "runbooks/scale-workers.md: ok, 2 steps" in result.stdout
    assert result.stdout.strip().endswith("9 runbooks checked: 9 valid, 0 invalid")


def test_validate_reports_every_problem_with_its_line(run_cli, project):
    bad = project / "broken.md"
    bad.write_text(BROKEN)
    result = run_cli("runbooks", "validate", "broken.md", "runbooks/deploy.md")
    no_traceback(result)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "broken.md:3: param 'n': min 5 is above max 1",
        "broken.md:6: role must be one of run, check, verify, rollback, watch, got 'sometimes'",
        "broken.md:7: unknown placeholder {{ m }} (params: n; \\{{ for a literal {{)",
        "broken.md:11: scale: argument --replicas: must be a whole number from 0, got 'lots'",
        "runbooks/deploy.md: ok, 2 steps",
        "2 runbooks checked: 1 valid, 1 invalid",
    ]


def test_validate_a_plain_readme_and_a_shell_syntax_error(run_cli, tmp_path):
    (tmp_path / "README.md").write_text(textwrap.dedent("""\
        # Tool

        ```bash
        make install
        ```

        ```sh
        if [ -f x ]; then
          echo yes
        ```
        """))
    result = run_cli("runbooks", "validate", "README.md")
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "README.md:10: shell syntax error: unexpected end of file"


def test_validate_usage_errors(run_cli, project):
    result = run_cli("runbooks", "validate", "nope.md")
    no_traceback(result)
    assert (result.returncode, result.stderr.strip()) == (2, "no such file or directory: nope.md")
    (project / "empty").mkdir()
    result = run_cli("runbooks", "validate", "empty")
    assert (result.returncode, result.stderr.strip()) == (2, "no runbooks (*.md) in empty")
    result = run_cli("runbooks")
    assert result.returncode == 3 and result.stderr.count("\n") == 1  # a usage error
    assert "list | validate [PATH...] | show NAME" in result.stderr


def test_show(run_cli, project):
    result = run_cli("runbooks", "show", "scale-workers")
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("Scale workers  (scale-workers, runbooks/scale-workers.md)\n"
                          "Add worker replicas when the queue backs up.\n"
                          "environments: staging, production\n")
    assert "  replicas  int 1..20" in out and "default 4" in out
    assert "  2. Scale the worker service  (line 27)" in out
    assert "     [ops verify, timeout 5m  (line 37)]\n       expect {{ queue }}.depth < 1000" in out
    assert "Workers drain about 50 jobs/s each." in out


def test_show_json_and_by_path(run_cli, project):
    result = run_cli("runbooks", "show", "runbooks/restore-backup.md", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["name"] == "restore-backup" and len(data["content_hash"]) == 64
    assert [p["name"] for p in data["params"]] == ["database", "backup"]
    restore = data["steps"][2]
    assert [b["role"] for b in restore["blocks"]] == ["run", "verify", "rollback"]
    assert restore["blocks"][0]["confirm"] == "typed"
    assert restore["blocks"][2]["placeholders"] == ["database", "previous.backup"]


def test_show_errors_are_one_line(run_cli, project):
    (project / "runbooks" / "broken.md").write_text(BROKEN)
    result = run_cli("runbooks", "show", "broken")
    no_traceback(result)
    assert result.returncode == 2
    assert result.stderr == (f"{project}/runbooks/broken.md:3: param 'n': min 5 is above max 1 "
                             "(and 3 more: opsconsole runbooks validate)\n")
    result = run_cli("runbooks", "show", "scale")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "no runbook 'scale'" in result.stderr and "scale-workers" in result.stderr


def test_bad_config_is_one_line(run_cli, write_config):
    config = write_config("[opsconsole]\nrunbooks = 3\n[environments.local]\n")
    result = run_cli("runbooks", "list", "--config", str(config))
    no_traceback(result)
    assert result.returncode == 2 and result.stderr == f"{config}:2: runbooks must be a string\n"


@pytest.mark.integration
def test_expect_against_a_real_round(pg_running, blackhole):
    env = environment({"db": {"kind": "postgres", "url": pg_running.url()},
                       "down": {"kind": "postgres", "url": f"postgresql://127.0.0.1:{blackhole.port}/x"},
                       "cache": {"kind": "redis", "url": f"redis://127.0.0.1:{blackhole.port}/0"}})

    async def probe():
        monitor = Monitor(env, 1.0)
        try:
            return await monitor.round()
        finally:
            await monitor.aclose()

    rnd = asyncio.run(probe())
    book = runbook.load(SHIPPED / "local-smoke.md")
    values = runbook.bind_params(book, {"db": "db"}, env)  # two postgres members: named; the only redis: chosen
    assert values == {"db": "db", "cache": "cache"}
    (check,) = book.steps[2].blocks[:1]
    (db_ok,) = runbook.parse_ops(check, runbook.render(check, values, {}))
    assert expect.evaluate(db_ok, rnd) == (True, "db is ok")
    holds, reason = expect.evaluate(expect.parse("expect db.latency_ms < 200"), rnd)
    assert holds and reason.startswith("db.latency_ms is ")
    holds, reason = expect.evaluate(expect.parse("expect down is not crit"), rnd)
    assert not holds and reason.startswith("down is crit: ")
    holds, reason = expect.evaluate(expect.parse("expect down.latency_ms < 200"), rnd)
    assert not holds and "down is down (crit: " in reason


@pytest.mark.integration
def test_local_smoke_runs_end_to_end(run_cli, project, write_config, pg_running, redis_running, tmp_path):
    """The shipped harmless runbook really runs: its shell steps, and its expects on a real database and cache."""
    write_config(f"""\
        [environments.local]
        provider = "local"

        [environments.local.services.db]
        url = "{pg_running.url()}"

        [environments.local.services.redis]
        url = "{redis_running.url}"
        """)
    env = {"OPSCONSOLE_JOURNAL": str(tmp_path / "journal.sqlite3"), "XDG_STATE_HOME": str(tmp_path / "state")}
    result = run_cli("run", "local-smoke", "--env", "local", "--yes", env=env)
    no_traceback(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "disk " in result.stdout and "% used" in result.stdout
    (run,) = json.loads(run_cli("journal", "list", "--json", env=env).stdout)["runs"]
    assert (run["runbook"], run["status"]) == ("local-smoke", "succeeded")


def test_validate_against_an_environment_checks_the_built_in_runbooks_fairly(run_cli, tmp_path, write_config):
    """A bare `validate --env` reads the whole search path, the built-in runbooks included: a member param the
    environment leaves open (no `emails` queue, two databases) is not read as its front-matter default."""
    write_config("""\
        [environments.local]
        provider = "local"
        [environments.local.services.main]
        url = "postgresql://localhost:5432/main"
        [environments.local.services.reports]
        url = "postgresql://localhost:5432/reports"
        """)
    result = run_cli("runbooks", "validate", "--env", "local")
    no_traceback(result)
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().endswith("9 runbooks checked: 9 valid, 0 invalid")
