"""A read-only environment refuses every change to it, and still answers every question about it.

"Read-only" comes from `--read-only` (before or after the verb) or `read_only = true` in the config. Every verb
that changes an environment is refused in one line, before anything runs: no provider call (the fake `docker`
records every argv), nothing written (marker files, `.env` files, the database, the backups directory) and no run
in the journal. Each case then runs the same command without read-only and sees its change happen once, so the
refusal is not a command that would have done nothing anyway.

What SPEC implies, decided here: read-only is about the environment. Reading it (check, plan, envs, snapshot,
backups, journal, runbooks list/show/validate, auth status) works; a runbook whose steps only check (`expect`
lines, `check` shell blocks) runs, and is journaled, since nothing in it changes the environment; a runbook with
one change is refused before its first check runs. `auth set/delete` keep credentials on this machine, not in the
environment, and are not refused. In the TUI a read-only environment offers no change anywhere (palette, runbooks,
secrets, the run screen's `s`), whether `--read-only` or the config says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsconsole.journal import open_journal
from tests.security.conftest import assert_user_error

pytestmark = pytest.mark.integration

FAKES = Path(__file__).resolve().parent.parent / "fakes"

RUNBOOKS = {
    "touch": "## Touch\n```sh\necho touched >> touched.txt\n```\n",
    "ship": "## Ship\n```ops\ndeploy api\n```\n",
    "check-then-touch": "## Look first\n```sh {\"role\": \"check\"}\necho checked >> touched.txt\n```\n"
                        "```sh\necho touched >> touched.txt\n```\n",
    "look": "## Look\n```ops\nexpect db is ok\n```\n",
    # A shell check can change as much as a run (`rm` in a "check"): refused like any change
    "peek": "## Peek\n```sh {\"role\": \"check\"}\ntouch peeked\n```\n```sh {\"role\": \"verify\"}\ntouch verified\n```\n"
            "```sh {\"role\": \"verify\"}\ntest -d runbooks\n```\n",
}


def config_text(db_url: str, prod: bool = False, box: bool = False) -> str:
    return f"""\
[opsconsole]
refresh = 0.2
timeout = 2

[environments.prod]
provider = "local"
protection = "open"
read_only = {str(prod).lower()}
[environments.prod.services.db]
kind = "postgres"
url = "{db_url}"
[environments.prod.services.api]
deploy = "echo deploy >> touched.txt"
migrate = "echo migrate >> touched.txt"
[environments.prod.secrets.JWT_SECRET]

[environments.box]
provider = "compose"
protection = "open"
read_only = {str(box).lower()}
[environments.box.provider_options]
compose_file = "compose.yaml"
project_name = "shop"
[environments.box.services.api]
[environments.box.services.worker]
compose_service = "queue-worker"
[environments.box.secrets.JWT_SECRET]
restart = ["api"]
"""


@dataclass
class Home:
    root: Path
    db_url: str

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE") and k != "DATABASE_URL"}
        env.update(PATH=f"{FAKES}{os.pathsep}{os.environ['PATH']}", FAKE_STATE=str(self.root / "fake-state.json"),
                   FAKE_LOG=str(self.root / "fake-log.jsonl"), OPSCONSOLE_JOURNAL=str(self.root / "journal.sqlite3"),
                   XDG_STATE_HOME=str(self.root / "state"))
        return env

    def configure(self, **read_only: bool) -> None:
        (self.root / "opsconsole.toml").write_text(config_text(self.db_url, **read_only))

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True,
                              env=self.env, cwd=self.root, input=stdin,
                              stdin=subprocess.DEVNULL if stdin is None else None, timeout=60)

    def ok(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = self.run(*args, stdin=stdin)
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
        return proc

    def changes(self) -> Counter[str]:
        """Everything done to either environment so far."""
        out: list[str] = []
        touched = self.root / "touched.txt"
        if touched.exists():
            out += [f"sh:{line}" for line in touched.read_text().splitlines()]
        for name in (".env.prod", ".env"):
            out.append(f"env-file:{name}:{(self.root / name).read_text()}")
        log = self.root / "fake-log.jsonl"
        if log.exists():
            calls = [json.loads(line)["argv"][5:] for line in log.read_text().splitlines()]
            out += ["docker:" + " ".join(c) for c in calls if c[:1] != ["ps"]]  # ps only reads
        backups = self.root / "state" / "opsconsole" / "backups" / "prod"
        out += [f"backup:{p.name}" for p in backups.glob("*.dump")] if backups.is_dir() else []
        out += [f"db:rows {rows(self.db_url)}"]
        return Counter(out)

    def runs(self) -> int:
        path = self.root / "journal.sqlite3"
        if not path.exists():
            return 0
        with open_journal(str(path)) as store:
            return len(store.runs(limit=1000))


def rows(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM orders ORDER BY id").fetchall()]


def sql(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture
def home(tmp_path: Path, pg_running) -> Home:
    name = f"ro_{tmp_path.name[-12:].replace('-', '_').lower()}"
    sql(pg_running.url(), f"DROP DATABASE IF EXISTS {name}")
    sql(pg_running.url(), f"CREATE DATABASE {name}")
    url = pg_running.url(database=name)
    sql(url, "CREATE TABLE orders (id int PRIMARY KEY, item text)")
    sql(url, "INSERT INTO orders VALUES (1, 'apple'), (2, 'pear')")
    h = Home(tmp_path, url)
    h.configure()
    (tmp_path / ".env.prod").write_text("JWT_SECRET=first-jwt-value\n")
    (tmp_path / ".env").write_text("JWT_SECRET=first-box-value\n")
    (tmp_path / "compose.yaml").write_text("services:\n  api: {build: .}\n  queue-worker: {build: .}\n")
    (tmp_path / "fake-state.json").write_text(json.dumps({"docker": {"project": "shop", "services": {
        "api": {"containers": 1}, "queue-worker": {"containers": 2}}, "exec_env": {}, "run": {}}}))
    (tmp_path / "runbooks").mkdir()
    for name, text in RUNBOOKS.items():
        (tmp_path / "runbooks" / f"{name}.md").write_text(text)
    return h


def rotated(home: Home) -> None:
    home.ok("rotate-secret", "JWT_SECRET", "--env", "prod", "--yes")


def backed_up(home: Home) -> None:
    home.ok("backup", "db", "--env", "prod", "--yes")
    sql(home.db_url, "DELETE FROM orders WHERE id = 2")


# (id, argv, environment, the change it makes when not read-only, what to do first)
CASES = [
    ("deploy", ("deploy", "api"), "prod", "sh:deploy", None),
    ("migrate", ("migrate", "api"), "prod", "sh:migrate", None),
    ("rotate-secret", ("rotate-secret", "JWT_SECRET"), "prod", "env-file:.env.prod", None),
    ("rotate-secret-rollback", ("rotate-secret", "JWT_SECRET", "--rollback"), "prod",
     "env-file:.env.prod:JWT_SECRET=first", rotated),
    ("backup", ("backup", "db"), "prod", "backup:db-", None),
    ("restore-backup", ("restore-backup", "db", "--from", "latest"), "prod", "db:rows [1, 2]", backed_up),
    ("run-sh", ("run", "touch"), "prod", "sh:touched", None),
    ("run-ops", ("run", "ship"), "prod", "sh:deploy", None),
    ("run-check-then-change", ("run", "check-then-touch"), "prod", "sh:touched", None),
    ("compose-deploy", ("deploy", "api"), "box", "docker:up -d --build api", None),
    ("compose-scale", ("scale", "worker", "--replicas", "3"), "box", "docker:up -d --no-recreate --scale", None),
    ("compose-rotate-secret", ("rotate-secret", "JWT_SECRET"), "box", "docker:up -d api", None),
]


@pytest.mark.parametrize("args,env,change,prepare", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_change_is_refused_when_read_only(home, args, env, change, prepare):
    if prepare:
        prepare(home)
    before, runs = home.changes(), home.runs()
    verb, rest = args[0], args[1:]
    attempts = {
        "--read-only after the verb": ((verb, *rest, "--env", env, "--read-only", "--yes"), {}),
        "--read-only before the verb": (("--read-only", verb, *rest, "--env", env, "--yes"), {}),
        "read_only = true in the config": ((verb, *rest, "--env", env, "--yes"), {env: True}),
    }
    for how, (argv, config) in attempts.items():
        home.configure(**config)
        proc = home.run(*argv)
        line = assert_user_error(proc, contains=f"environment {env!r} is read-only")
        assert "nothing was run" in line, (how, line)
        assert home.changes() == before, (how, home.changes() - before)
        assert home.runs() == runs, how  # refused before the run: nothing to journal
    home.configure()
    home.ok(*args, "--env", env, "--yes")
    made = [c for c in (home.changes() - before).elements() if c.startswith(change)]
    assert len(made) == 1, (change, home.changes() - before)
    assert home.runs() == runs + 1


def test_every_action_verb_is_refused_somewhere():
    from opsconsole import actions

    assert set(actions.VERBS) <= {c[1][0] for c in CASES}


@pytest.mark.parametrize("mode", ["flag", "config"])
def test_reading_a_read_only_environment_still_works(home, mode, file_keyring):
    done = home.ok("run", "touch", "--env", "prod", "--yes")  # a run to read back from the journal
    run_id = next(line.split()[1].rstrip(":") for line in done.stdout.splitlines() if line.startswith("Run "))
    home.ok("backup", "db", "--env", "prod", "--yes")
    home.configure(prod=mode == "config")
    flag = ("--read-only",) if mode == "flag" else ()
    before, runs = home.changes(), home.runs()

    assert "ok" in home.ok(*flag, "check", "--env", "prod").stdout
    assert json.loads(home.ok(*flag, "check", "--env", "prod", "--json").stdout)["status"] == "ok"
    plan = home.ok(*flag, "plan", "touch", "--env", "prod").stdout
    assert "REFUSED: read-only environment" in plan and "`run` would stop before anything" in plan
    assert "read-only" in home.ok(*flag, "plan", "look", "--env", "prod").stdout
    envs = home.ok(*flag, "envs", "--json").stdout
    if mode == "config":
        assert {e["name"]: e["read_only"] for e in json.loads(envs)["environments"]} == {"prod": True, "box": False}
    assert run_id in home.ok(*flag, "journal", "list").stdout
    assert json.loads(home.ok(*flag, "journal", "show", run_id, "--json").stdout)["status"] == "succeeded"
    assert "touch" in home.ok(*flag, "runbooks", "list").stdout
    assert "echo touched" in home.ok(*flag, "runbooks", "show", "touch").stdout
    home.ok(*flag, "runbooks", "validate")
    assert ".dump" in home.ok(*flag, "backups", "db", "--env", "prod").stdout
    # The keyring is this machine's, not the environment's: keeping a credential there is not a change to it.
    home.ok(*flag, "auth", "set", "railway", stdin="rw-read-only-token-1234\n")
    assert "keyring" in home.ok(*flag, "auth", "status", "railway").stdout
    assert file_keyring.holds("rw-read-only-token-1234")
    home.ok(*flag, "auth", "delete", "railway")
    home.ok(*flag, "snapshot", "--env", "prod", "--output", "ro.svg")
    assert "READ-ONLY" in (home.root / "ro.svg").read_text().replace("&#160;", " ")
    # A runbook that only asserts (`expect`) changes nothing: it runs (and is journaled), read-only or not.
    looked = home.ok(*flag, "run", "look", "--env", "prod")
    assert "Run " in looked.stdout and "succeeded" in looked.stdout
    assert home.runs() == runs + 1
    # Shell blocks in a check or verify role are changes: refused before anything runs.
    peek = home.run(*flag, "run", "peek", "--env", "prod", "--yes")
    assert peek.returncode == 2 and "read-only" in peek.stderr, peek.stderr
    assert not (home.root / "peeked").exists() and not (home.root / "verified").exists()
    assert "check (sh, timeout 300s (default)), REFUSED: read-only environment" in home.ok(*flag, "plan", "peek", "--env", "prod").stdout
    (home.root / "ro.svg").unlink()
    assert home.changes() == before, home.changes() - before


# --- the TUI --------------------------------------------------------------------------------------------------------

def tui_app(home: Home, monkeypatch, *, forced: bool = False, config_read_only: bool = False):
    from opsconsole import config
    from opsconsole.ui.app import create

    monkeypatch.setenv("OPSCONSOLE_JOURNAL", str(home.root / "journal.sqlite3"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home.root / "state"))
    home.configure(prod=config_read_only)
    cfg = config.load(str(home.root / "opsconsole.toml"))
    return create(cfg, cfg.environment("prod"), read_only=forced)


def titles(app) -> list[str]:
    return [c.title for c in app.get_system_commands(app.screen)]


async def test_the_palette_offers_changes_only_when_not_read_only(home, monkeypatch):
    from tests.ui.test_app import wait_until

    app = tui_app(home, monkeypatch)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: app.rounds_shown >= 1, 10, "a round")
        offered = titles(app)
        assert {"Run runbook: touch", "Action: deploy api", "Action: backup db", "Rotate secret: JWT_SECRET"} <= \
            set(offered)
    quiet = tui_app(home, monkeypatch, config_read_only=True)  # the config says so, no flag
    async with quiet.run_test(size=(140, 40)) as pilot:
        await wait_until(pilot, lambda: quiet.rounds_shown >= 1, 10, "a round")
        offered = titles(quiet)
        assert not [t for t in offered if t.startswith(("Run runbook", "Action:", "Rotate secret", "⚠"))], offered
        assert {"Runbooks", "Journal", "Secrets"} <= set(offered)
        assert "READ-ONLY" in str(quiet.query_one("#badge").render())


@pytest.mark.parametrize("how", ["--read-only", "read_only = true"])
async def test_no_key_or_entry_changes_a_read_only_environment(home, monkeypatch, how):
    from opsconsole import engine, runbook
    from opsconsole.ui.dialogs.params import ParamsDialog
    from opsconsole.ui.screens.run import RunScreen
    from opsconsole.ui.screens.runbooks import RunbooksScreen
    from opsconsole.ui.screens.secrets import RotationSummary, SecretsScreen
    from tests.ui.test_app import wait_until

    before = home.changes()
    app = tui_app(home, monkeypatch, forced=how == "--read-only", config_read_only=how != "--read-only")
    async with app.run_test(size=(140, 40)) as pilot:
        dashboard = app.screen
        # What the palette would call, called anyway: each says read-only and opens nothing.
        for call in (lambda: app.start_action("deploy api"), lambda: app.start_action("backup db"),
                     lambda: app.start_runbook(home.root / "runbooks" / "touch.md")):
            call()
            await pilot.pause(0.3)
            assert app.screen is dashboard
        assert sum("read-only" in n.message for n in app._notifications) >= 3
        # The runbooks list: enter plans nothing.
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, RunbooksScreen), 5, "the runbooks")
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, RunbooksScreen) and not isinstance(app.screen, ParamsDialog)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is dashboard, 5, "the dashboard again")
        # The secrets: enter (rotate) does nothing.
        await pilot.press("x")
        await wait_until(pilot, lambda: isinstance(app.screen, SecretsScreen) and app.screen.loads >= 1, 10,
                         "the secrets")
        await pilot.press("enter", "u")
        await pilot.pause(0.3)
        assert isinstance(app.screen, SecretsScreen) and not isinstance(app.screen, RotationSummary)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is dashboard, 5, "the dashboard again")
        # A run screen reached anyway (a plan made read-only): its steps say REFUSED and `s` starts nothing.
        book = runbook.load(home.root / "runbooks" / "touch.md")
        plan = engine.build_plan(app.config, app.environment, book, {}, read_only=app.read_only)
        run = RunScreen(plan)
        app.push_screen(run)
        await wait_until(pilot, lambda: app.screen is run and bool(run.query("#state"))
                         and "press s" in str(run.query_one("#state").render()), 5, "the run screen")
        assert "REFUSED: read-only environment" in str(run.query_one("#command").render())
        await pilot.press("s")
        await pilot.pause(0.5)
        assert run.finished is None and not run.running
    assert home.changes() == before and home.runs() == 0


async def test_the_same_tui_steps_do_change_it_when_not_read_only(home, monkeypatch):
    """The control for the test above: the same action from the same app runs and changes the environment."""
    from opsconsole.ui.screens.run import RunScreen
    from tests.ui.test_app import wait_until

    before = home.changes()
    app = tui_app(home, monkeypatch)
    async with app.run_test(size=(140, 40)) as pilot:
        app.start_action("deploy api")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and bool(app.screen.statuses), 10,
                         "the run screen")
        run = app.screen
        await pilot.press("s")  # open: a deploy runs once shown, without a question
        await wait_until(pilot, lambda: run.finished is not None, 20, "the deploy")
        assert run.finished == "succeeded"
    assert list((home.changes() - before).elements()) == ["sh:deploy"] and home.runs() == 1
