"""`opsconsole journal [list | show RUN_ID] [--json]` as a real process against a real SQLite journal."""

from __future__ import annotations

import json
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from opsconsole import journal
from opsconsole.journal import RunRecord
from tests.integration.test_lock_sqlite import Child
from tests.unit.test_journal import T0, make_run, make_step


@pytest.fixture
def jpath(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


@pytest.fixture
def cli(run_cli, tmp_path: Path, jpath: Path):
    """run_cli with the journal in $OPSCONSOLE_JOURNAL and no user config to stumble on."""
    def run(*args: str, env: dict[str, str] | None = None):
        base = {"OPSCONSOLE_JOURNAL": str(jpath), "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
                "XDG_STATE_HOME": str(tmp_path / "xdg-state")}
        return run_cli(*args, env={**base, **(env or {})})
    return run


def populate(path: Path) -> list[RunRecord]:
    """Three runs: an old failed one on production, a succeeded and an interrupted one on staging."""
    runs = []
    with journal.open_journal(str(path)) as store:
        for minutes, env, status in ((0, "production", "failed"), (5, "staging", "succeeded"),
                                     (10, "staging", None)):
            run = make_run(env, params={"replicas": "4", "token": "***"})
            run = RunRecord(**{**run.__dict__, "started_at": T0 + timedelta(minutes=minutes)})
            store.start_run(run)
            store.record_step(make_step(run.run_id, 1))
            if status == "failed":
                store.record_step(make_step(run.run_id, 2, status="failed", exit_status=1,
                                            output_tail="error: no such service\nexit 1\n",
                                            verification="emails.depth is 1230, wanted < 1000"))
            if status:
                store.finish_run(run.run_id, status)
            runs.append(run)
    return runs


def test_list_is_most_recent_first_with_statuses(cli, jpath):
    old, done, dead = populate(jpath)
    out = cli("journal")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["RUN", "ID", "STARTED", "ENVIRONMENT", "RUNBOOK", "STATUS", "USER", "STEPS"]
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == [dead.run_id, done.run_id, old.run_id]
    assert rows[0][1:] == ["2026-11-21", "13:12:11Z", "staging", "scale-workers", "interrupted", dead.user, "1/2"]
    assert [r[5] for r in rows] == ["interrupted", "succeeded", "failed"]
    assert cli("journal", "list").stdout == out.stdout


def test_list_filters_by_environment_and_limits(cli, jpath):
    old, done, dead = populate(jpath)
    out = cli("journal", "list", "--env", "staging", "--json")
    assert [r["run_id"] for r in json.loads(out.stdout)["runs"]] == [dead.run_id, done.run_id]
    out = cli("--env", "production", "journal", "--json")
    assert [r["run_id"] for r in json.loads(out.stdout)["runs"]] == [old.run_id]
    out = cli("journal", "list", "--limit", "1", "--json")
    assert [r["run_id"] for r in json.loads(out.stdout)["runs"]] == [dead.run_id]
    unknown = cli("journal", "list", "--env", "nowhere")  # a typo must not read as a quiet environment
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert "unknown environment 'nowhere' (known: " in unknown.stderr
    assert unknown.stderr.endswith(f"and the journal {jpath} has no runs for it\n")


def test_list_json_has_stable_keys_and_iso_times(cli, jpath):
    populate(jpath)
    data = json.loads(cli("journal", "--json").stdout)
    assert data["journal"] == str(jpath)
    run = data["runs"][0]
    assert list(run) == ["run_id", "started_at", "ended_at", "environment", "runbook", "runbook_path", "content_hash",
                         "plan_fingerprint", "status", "user", "git_identity", "host", "pid", "params", "steps_done",
                         "steps_total"]
    assert run["started_at"] == "2026-11-21T13:12:11.123456+00:00" and run["ended_at"] is None
    assert run["params"] == {"replicas": "4", "token": "***"}
    assert (run["steps_done"], run["steps_total"]) == (1, 2)


def test_show_prints_the_header_and_every_step(cli, jpath):
    old = populate(jpath)[0]
    out = cli("journal", "show", old.run_id)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith(f"run {old.run_id}: failed\n")
    assert "  runbook      scale-workers (runbooks/scale-workers.md, content sha256 " + "c" * 64 + ")" in text
    assert "  environment  production" in text and "  params       replicas=4 token=***" in text
    assert f"  by           {old.user}" in text and f" on {old.host}, pid {old.pid}" in text
    assert "1. Step 1: succeeded (2026-11-21 13:02:11Z .. 2026-11-21 13:02:13Z)" in text
    assert "2. Step 2: failed" in text
    assert text.count("   $ scale worker --replicas 4") == 2
    assert "   exit status: 1" in text and "   verification: emails.depth is 1230, wanted < 1000" in text
    assert "   | error: no such service\n   | exit 1" in text
    assert "   recorded: previous.replicas=2" in text
    assert "finished: failed" in text


def test_show_json(cli, jpath):
    old = populate(jpath)[0]
    data = json.loads(cli("journal", "show", old.run_id[:-2], "--json").stdout)  # a unique prefix will do
    assert data["run_id"] == old.run_id and data["status"] == "failed"
    assert [(s["index"], s["attempt"], s["status"], s["exit_status"]) for s in data["steps"]] == [
        (1, 1, "succeeded", 0), (2, 1, "failed", 1)]
    step = data["steps"][1]
    assert list(step) == ["index", "attempt", "title", "status", "started_at", "ended_at", "commands", "exit_status",
                          "verification", "output_tail", "note", "recorded", "fingerprint"]
    assert step["started_at"] == "2026-11-21T13:02:11.123456+00:00"
    assert step["output_tail"] == "error: no such service\nexit 1\n"
    assert [e["kind"] for e in data["events"]] == ["started", "finished"]
    assert data["plan"]["steps"][1]["title"] == "Scale"


def test_an_unknown_run_is_one_line_and_exit_2(cli, jpath):
    populate(jpath)
    out = cli("journal", "show", "20990101-000000-ffffff")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == f"no run '20990101-000000-ffffff' in the journal {jpath}\n"
    out = cli("journal", "show")
    assert out.returncode == 3 and len(out.stderr.splitlines()) == 1 and "RUN_ID" in out.stderr  # usage


def test_a_killed_run_lists_as_interrupted(cli, jpath):
    child = Child(str(jpath), "staging", "scale-workers")
    try:
        first = child.line()
        running = json.loads(cli("journal", "--json").stdout)["runs"][0]
        assert (running["run_id"], running["status"]) == (first["run_id"], "running")
        child.kill(signal.SIGKILL)
    finally:
        child.kill()
        for stream in (child.proc.stdin, child.proc.stdout, child.proc.stderr):
            stream.close()
    assert json.loads(cli("journal", "--json").stdout)["runs"][0]["status"] == "interrupted"


def test_location_precedence_config_then_env_then_default(cli, jpath, tmp_path, write_config):
    populate(jpath)
    # The env var is set by `cli`; a config value wins over it, relative to the config file.
    cfg = write_config('[opsconsole]\njournal = "team/journal.sqlite3"\n[environments.local]\n', name="team.toml")
    out = cli("--config", str(cfg), "journal", "--json")
    assert json.loads(out.stdout) == {"journal": str(tmp_path / "team" / "journal.sqlite3"), "runs": []}
    out = cli("journal", "list", "--config", str(cfg), "--json")  # --config after the subcommand too
    assert json.loads(out.stdout)["journal"] == str(tmp_path / "team" / "journal.sqlite3")
    assert len(json.loads(cli("journal", "--json").stdout)["runs"]) == 3  # no config value: the env var
    out = cli("journal", "--json", env={"OPSCONSOLE_JOURNAL": ""})  # neither: the user state dir
    assert json.loads(out.stdout)["journal"] == str(tmp_path / "xdg-state" / "opsconsole" / "journal.sqlite3")


def test_a_bad_config_is_one_line(cli, write_config):
    cfg = write_config("[opsconsole]\njournal = 5\n[environments.local]\n")
    out = cli("--config", str(cfg), "journal")
    assert out.returncode == 2 and out.stderr == f"{cfg}:2: journal must be a string\n"
