"""One end-to-end secret scan across every way out of opsconsole.

Distinctive secrets come from every source a secret has: `secret` runbook params (one on stdin with `-p KEY=-`,
one in `-p`, holding a quote so it is shell-quoted into pieces), a Railway token kept in the OS keyring by
`auth set`, a password inside the postgres URL of `.env` (`${DATABASE_URL}`, percent-encoded), the values
`rotate-secret` generates and replaces (local `.env.local`, Railway through its GraphQL API, Kubernetes through the
fake `kubectl`), and the password of a PostgreSQL journal URL (`${JOURNAL_PASSWORD}`). Real commands then run for
every CLI verb, a step fails echoing secrets into its output, and the TUI is walked with Pilot; afterwards every
output, the SQLite journal's bytes, the PostgreSQL journal's tables, every file left behind (except the stores that
are meant to hold a secret: `.env` files, the keyring file, the fakes' state), and every argv the fake provider CLIs
were given are scanned for each secret in every encoding (`forms`). Each output path is its own test id; each also
proves it really ran (`EXPECT`), so a path that silently printed nothing cannot pass.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import html
import json
import os
import re
import secrets as secrets_mod
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from opsconsole import cli
from tests.security.conftest import assert_nowhere
from tests.servers import free_port

pytestmark = pytest.mark.integration

FAKES = Path(__file__).resolve().parent.parent / "fakes"
TAG = secrets_mod.token_hex(4)

PARAM = f"PrmSecret-{TAG}-plain"
QUOTED_HEAD, QUOTED_TAIL = f"QuotedHead-{TAG}", f"QuotedTail-{TAG}"
QUOTED = f"{QUOTED_HEAD}'{QUOTED_TAIL}"  # shlex quotes it as 'QuotedHead-..'"'"'QuotedTail-..': two pieces
RW_TOKEN = f"rw-token-{TAG}-keyring"
DB_USER, DB_PW = f"scan_{TAG}", f"DbPw@Scan-{TAG}"  # in the URL as DbPw%40Scan-...
JOURNAL_USER, JOURNAL_PW = f"jrnl_{TAG}", f"JrnlPw-{TAG}-team"
LOCAL_OLD = f"LocalJwtOld-{TAG}-value"
RW_OLD = f"RailwayJwtOld-{TAG}-value"
K8S_OLD = f"KubeJwtOld-{TAG}-value"

SECRET_PARAM_RUNBOOK = """\
---
title: Use a token
params:
  token: {type: secret}
  quoted: {type: secret, required: false}
---
# Use a token

## Use it
Writes both tokens where the runbook wants them and says so.
```sh
printf '%s\\n' {{ token }} {{ quoted }} > got-token.txt
echo "the token is {{ token }} and '{{ quoted }}'"
```
"""

FAILING_RUNBOOK = """\
---
title: Fails loudly
params:
  token: {type: secret}
---
# Fails loudly

## Echo and fail
```sh
echo "leaking {{ token }} and $JWT_SECRET"
echo "db is $DATABASE_URL"
exit 3
```
"""

QUOTED_ONLY_RUNBOOK = """\
---
params:
  quoted: {type: secret}
---
## Only the quoted one
```sh
test -n {{ quoted }} && echo "given"
```
"""


def config_text(api_url: str, journal: str | None = None) -> str:
    head = f'journal = "{journal}"\n' if journal else ""
    return f"""\
[opsconsole]
refresh = 0.2
timeout = 2
{head}
[environments.local]
provider = "local"
protection = "open"

[environments.local.services.db]
kind = "postgres"
url = "${{DATABASE_URL}}"

[environments.local.services.db_down]
kind = "postgres"
url = "${{DOWN_URL}}"

[environments.local.services.app]
deploy = 'echo "deploying with JWT=$JWT_SECRET"'
migrate = 'echo "migrating with $DATABASE_URL"'

[environments.local.secrets.JWT_SECRET]

[environments.production]
provider = "railway"
protection = "typed"

[environments.production.provider_options]
project_id = "proj-1"
environment_id = "env-1"
api_url = "{api_url}"
poll_interval = 0.05
deploy_timeout = 20

[environments.production.services.api]
railway_service_id = "svc-api"

[environments.production.services.worker]
railway_service_id = "svc-worker"

[environments.production.secrets.JWT_SECRET]
restart = ["api"]

[environments.k8s]
provider = "kubernetes"
protection = "open"

[environments.k8s.provider_options]
context = "scan-ctx"
namespace = "scan-ns"
rollout_timeout = "30s"

[environments.k8s.services.api]
deployment = "shop-api"

[environments.k8s.secrets.JWT_SECRET]
secret = "shop-secrets"
restart = ["api"]
"""


@dataclass(frozen=True)
class Cmd:
    """One real command: its test id, argv (the verb first), stdin, the exit code it must end with, and what its
    output must say (proof that the path really ran, with the secret masked where it would have been)."""

    id: str
    args: tuple[str, ...]
    stdin: str | None = None
    code: int = 0
    expect: tuple[str, ...] = ()


YES_PROD = ("--yes", "--confirm-env", "production")
COMMANDS = (
    Cmd("auth-set", ("auth", "set", "railway"), stdin=RW_TOKEN + "\n", expect=("stored railway/token",)),
    Cmd("check", ("check", "--env", "local"), code=2, expect=("db_down", "Connection refused")),
    Cmd("check-json", ("check", "--env", "local", "--json"), code=2, expect=('"name": "db_down"',)),
    Cmd("snapshot", ("snapshot", "--env", "local", "--output", "snap.svg"), expect=("wrote snap.svg",)),
    Cmd("envs", ("envs",), expect=("production",)),
    Cmd("envs-json", ("envs", "--json"), expect=('"protection": "typed"',)),
    Cmd("runbooks-list", ("runbooks", "list"), expect=("secret-param",)),
    Cmd("runbooks-show", ("runbooks", "show", "secret-param"), expect=("{{ token }}",)),
    Cmd("runbooks-validate", ("runbooks", "validate"), expect=("valid",)),
    Cmd("plan", ("plan", "secret-param", "--env", "local", "-p", "token=-", "-p", f"quoted={QUOTED}"),
        stdin=PARAM + "\n", expect=("Params: token=*** quoted=***",)),
    Cmd("plan-json", ("plan", "secret-param", "--env", "local", "--json", "-p", "token=-", "-p", f"quoted={QUOTED}"),
        stdin=PARAM + "\n", expect=('"token": "***"',)),
    Cmd("run", ("run", "secret-param", "--env", "local", "-p", "token=-", "-p", f"quoted={QUOTED}", "--yes"),
        stdin=PARAM + "\n", expect=("| the token is *** and", "succeeded")),
    Cmd("rotate-secret-local", ("rotate-secret", "JWT_SECRET", "--env", "local", "--yes"), expect=("sha256:",)),
    Cmd("deploy-local", ("deploy", "app", "--env", "local", "--yes"), expect=("| deploying with JWT=***",)),
    Cmd("migrate-local", ("migrate", "app", "--env", "local", "--yes"), expect=("| migrating with postgresql://",)),
    Cmd("run-failing", ("run", "fails", "--env", "local", "-p", "token=-", "--yes"), stdin=PARAM + "\n", code=1,
        expect=("| leaking *** and ***", "Step 1 failed: ", "exit 3")),
    Cmd("backup", ("backup", "db", "--env", "local", "--yes"), expect=("previous.backup=",)),
    Cmd("restore-backup", ("restore-backup", "db", "--env", "local", "--from", "latest", "--yes"),
        expect=("PGPASSWORD=***",)),
    Cmd("backups", ("backups", "db", "--env", "local"), expect=(".dump",)),
    Cmd("backups-json", ("backups", "--env", "local", "--json"), expect=('"backups"',)),
    Cmd("deploy-railway", ("deploy", "api", "--env", "production", *YES_PROD), expect=("SUCCESS",)),
    Cmd("scale-railway", ("scale", "worker", "--env", "production", "--replicas", "3", *YES_PROD),
        expect=("numReplicas 2 -> 3",)),
    Cmd("run-railway", ("run", "secret-param", "--env", "production", "-p", "token=-", "-p", f"quoted={QUOTED}",
                        *YES_PROD), stdin=PARAM + "\n", expect=("| the token is *** and", "# through: railway run")),
    Cmd("run-railway-quoted", ("run", "quoted-only", "--env", "production", "-p", "quoted=-", *YES_PROD),
        stdin=QUOTED + "\n", expect=("| given", "# through: railway run")),
    Cmd("rotate-secret-railway", ("rotate-secret", "JWT_SECRET", "--env", "production", *YES_PROD),
        expect=("value: ***", "kept in the OS keyring")),
    Cmd("rotate-secret-railway-rollback", ("rotate-secret", "JWT_SECRET", "--rollback", "--env", "production",
                                           *YES_PROD), expect=("kept in the OS keyring",)),
    Cmd("rotate-secret-k8s", ("rotate-secret", "JWT_SECRET", "--env", "k8s", "--yes"), expect=("apply -f -",)),
    Cmd("team-check", ("check", "--env", "local", "--config", "team.toml"), code=2, expect=("db_down",)),
    Cmd("team-run-failing", ("run", "fails", "--env", "local", "--config", "team.toml", "-p", "token=-", "--yes"),
        stdin=PARAM + "\n", code=1, expect=("| leaking *** and ***",)),
    Cmd("team-journal-down", ("journal", "list", "--config", "team-down.toml"), code=2, expect=("journal",)),
    Cmd("team-journal-list", ("journal", "list", "--config", "team.toml"), expect=("fails",)),
    Cmd("team-journal-show-json", ("journal", "show", "{team_failed}", "--config", "team.toml", "--json"),
        expect=("leaking *** and ***",)),
    Cmd("journal-list", ("journal", "list"), expect=("fails",)),
    Cmd("journal-list-json", ("journal", "list", "--json"), expect=('"runbook": "fails"',)),
    Cmd("journal-show", ("journal", "show", "{failed}"), expect=("leaking *** and ***",)),
    Cmd("journal-show-json", ("journal", "show", "{failed}", "--json"), expect=("leaking *** and ***",)),
    Cmd("auth-status", ("auth", "status", "railway"), expect=("keyring",)),
)
LATE_COMMANDS = (  # after the TUI, which reads the keyring's previous values
    Cmd("auth-delete", ("auth", "delete", "railway"), expect=("deleted railway/token",)),
)

# Outputs that are not one command's stdout/stderr; what each must show to prove it was really produced.
OTHER_PATHS = {
    "snapshot-svg": ("<svg", "db_down"),
    "sqlite-journal": (b"SQLite format 3",),
    "state-dir-files": ('"sha256"',),  # backups, manifests, locks beside the journal
    "postgres-journal": ("leaking *** and ***",),
    "fake-cli-argv": ("bash",),
    "generated-files": ("opsconsole.toml",),
    "tui-dashboard": ("db_down",),
    "tui-detail": ("db_down",),
    "tui-runbooks": ("Use a token",),
    "tui-secrets": ("JWT_SECRET", "sha256:"),
    "tui-journal": ("fails",),
    "tui-journal-detail": ("leaking *** and ***",),
    "tui-params": ("token",),
    "tui-run": ("the token is *** and",),
    "tui-failure": ("leaking *** and ***",),
}
PATHS = [c.id for c in COMMANDS + LATE_COMMANDS] + list(OTHER_PATHS)

# Files that are meant to hold a secret: what the user keeps, the rotation's target and its kept previous line,
# the runbook's own output file, the keyring, and the fakes' "cluster" state (their argv log is scanned apart).
INTENDED = (".env", ".env.local", ".env.local.previous", "got-token.txt", "fake-state.json", "fake-log.jsonl",
            "keyring-data/python_keyring/keyring_pass.cfg")
SCANNED_APART = ("state",)  # the journal and backups: their own paths below


@dataclass
class Scan:
    root: Path
    secrets: dict[str, str] = field(default_factory=dict)
    places: dict[str, dict[str, str | bytes]] = field(default_factory=dict)
    procs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    facts: dict[str, object] = field(default_factory=dict)


def svg_text(svg: str) -> str:
    """The text an SVG screenshot shows: tags dropped, entities and non-breaking spaces decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\u00a0", " ")


def _psql(url: str, *statements: str) -> list[tuple]:
    import psycopg

    rows: list[tuple] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            cur = conn.execute(statement)
            rows = cur.fetchall() if cur.description else []
    return rows


def _databases(pg) -> tuple[str, str]:
    """A role and database for the probed `db` (and its backup), and one for the team journal."""
    admin = pg.url()
    for user, password in ((DB_USER, DB_PW), (JOURNAL_USER, JOURNAL_PW)):
        _psql(admin, f"CREATE ROLE {user} LOGIN PASSWORD '{password}'", f"CREATE DATABASE {user} OWNER {user}")
    db_url = f"postgresql://{DB_USER}:{DB_PW.replace('@', '%40')}@127.0.0.1:{pg.port}/{DB_USER}"
    _psql(db_url, "CREATE TABLE orders (id int PRIMARY KEY, item text)", "INSERT INTO orders VALUES (1, 'apple')")
    return db_url, f"postgresql://{JOURNAL_USER}:${{JOURNAL_PASSWORD}}@127.0.0.1:{pg.port}/{JOURNAL_USER}"


@pytest.fixture(scope="module")
def scan(tmp_path_factory, pg) -> Iterator[Scan]:
    from tests.integration.test_provider_railway import Railway

    pg.start()
    root = tmp_path_factory.mktemp("secret-scan")
    result = Scan(root)
    db_url, journal_url = _databases(pg)
    api = Railway()
    api.token = RW_TOKEN
    api.variables[None]["JWT_SECRET"] = RW_OLD
    mp = pytest.MonkeyPatch()
    try:
        _write_home(root, api, db_url, journal_url)
        keyring_env = {"PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
                       "XDG_DATA_HOME": str(root / "keyring-data"), "XDG_CONFIG_HOME": str(root / "keyring-config")}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPSCONSOLE", "RAILWAY", "PG")) and k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(keyring_env, PATH=f"{FAKES}{os.pathsep}{os.environ['PATH']}",
                   FAKE_STATE=str(root / "fake-state.json"), FAKE_LOG=str(root / "fake-log.jsonl"),
                   XDG_STATE_HOME=str(root / "state"))
        for cmd in COMMANDS:
            _run(result, cmd, env)
            if cmd.id == "rotate-secret-railway":  # before the rollback puts the old value back
                result.facts["railway_new"] = api.variables[None]["JWT_SECRET"]
        result.facts["local_new"] = _env_value(root / ".env.local", "JWT_SECRET")
        result.facts["railway_now"] = api.variables[None]["JWT_SECRET"]
        result.facts["k8s_new"] = base64.b64decode(
            json.loads((root / "fake-state.json").read_text())["kubectl"]["secrets"]["shop-secrets"]["data"]
            ["JWT_SECRET"]).decode()
        result.facts["railway_ops"] = api.ops()
        # The TUI, in this process: its own masking registry (as a fresh process has), the same keyring and state.
        import keyring
        import keyring.core

        from opsconsole import masking

        for key, value in {**keyring_env, "XDG_STATE_HOME": str(root / "state")}.items():
            mp.setenv(key, value)
        for key in ("DATABASE_URL", "REDIS_URL", "OPSCONSOLE_JOURNAL"):
            mp.delenv(key, raising=False)
        mp.setattr(masking, "_secrets", set())
        previous_keyring = keyring.get_keyring()
        keyring.core.init_backend()
        mp.chdir(root)
        try:
            asyncio.run(_walk_tui(result))
        finally:
            keyring.set_keyring(previous_keyring)
        for cmd in LATE_COMMANDS:
            _run(result, cmd, env)
        _collect(result, pg)
        result.secrets.update({
            "secret param (stdin)": PARAM, "secret param with a quote": QUOTED, "its first piece": QUOTED_HEAD,
            "its second piece": QUOTED_TAIL, "railway token (keyring)": RW_TOKEN, "postgres URL password": DB_PW,
            "journal URL password": JOURNAL_PW, "local secret before rotation": LOCAL_OLD,
            "local secret after rotation": str(result.facts["local_new"]),
            "railway secret before rotation": RW_OLD, "railway secret after rotation": str(result.facts["railway_new"]),
            "kubernetes secret before rotation": K8S_OLD,
            "kubernetes secret after rotation": str(result.facts["k8s_new"])})
        yield result
    finally:
        mp.undo()
        api.close()


def _write_home(root: Path, api, db_url: str, journal_url: str) -> None:
    (root / "opsconsole.toml").write_text(config_text(api.url))
    (root / "team.toml").write_text(config_text(api.url, journal=journal_url))
    down_port = journal_url.split("@127.0.0.1:", 1)[1].split("/", 1)[0]
    (root / "team-down.toml").write_text(config_text(api.url, journal=journal_url.replace(down_port, str(free_port()))))
    down = f"postgresql://{DB_USER}:{DB_PW.replace('@', '%40')}@127.0.0.1:{free_port()}/{DB_USER}"
    (root / ".env").write_text(f"DATABASE_URL={db_url}\nDOWN_URL={down}\nJOURNAL_PASSWORD={JOURNAL_PW}\n")
    (root / ".env.local").write_text(f"JWT_SECRET={LOCAL_OLD}\n")
    (root / "runbooks").mkdir()
    (root / "runbooks" / "secret-param.md").write_text(SECRET_PARAM_RUNBOOK)
    (root / "runbooks" / "fails.md").write_text(FAILING_RUNBOOK)
    (root / "runbooks" / "quoted-only.md").write_text(QUOTED_ONLY_RUNBOOK)
    (root / "fake-state.json").write_text(json.dumps({
        "railway": {"token": RW_TOKEN, "project": "proj-1", "environment": "env-1",
                    "variables": {"shared": {"JWT_SECRET": RW_OLD}, "svc-api": {}, "svc-worker": {}}},
        "kubectl": {"context": "scan-ctx", "namespace": "scan-ns", "deployments": {"shop-api": {"replicas": 2}},
                    "secrets": {"shop-secrets": {"type": "Opaque", "resourceVersion": "7", "data": {
                        "JWT_SECRET": base64.b64encode(K8S_OLD.encode()).decode()}}}}}))


def _env_value(path: Path, key: str) -> str:
    from dotenv import dotenv_values

    return dotenv_values(path)[key] or ""


def _run(result: Scan, cmd: Cmd, env: dict[str, str]) -> None:
    args = [a.format(**{k: v for k, v in result.facts.items() if isinstance(v, str)}) for a in cmd.args]
    proc = subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True, env=env,
                          cwd=result.root, input=cmd.stdin, stdin=None if cmd.stdin is not None else subprocess.DEVNULL,
                          timeout=120)
    result.procs[cmd.id] = proc
    result.places[cmd.id] = {f"{cmd.id} stdout": proc.stdout, f"{cmd.id} stderr": proc.stderr}
    if cmd.id in ("run-failing", "team-run-failing"):
        found = re.search(r"^Run (\S+): ", proc.stdout, re.M)
        result.facts["failed" if cmd.id == "run-failing" else "team_failed"] = found.group(1) if found else "none"


async def _walk_tui(result: Scan) -> None:
    from textual.widgets import Input, RichLog

    from opsconsole import config
    from opsconsole.ui.app import create
    from opsconsole.ui.dialogs.failure import FailureDialog
    from opsconsole.ui.dialogs.params import ParamsDialog
    from opsconsole.ui.screens.detail import MemberDetail
    from opsconsole.ui.screens.journal import JournalScreen, RunDetailScreen
    from opsconsole.ui.screens.run import RunScreen
    from opsconsole.ui.screens.runbooks import RunbooksScreen
    from opsconsole.ui.screens.secrets import SecretsScreen
    from tests.ui.test_app import wait_until

    root = result.root
    cfg = config.load(str(root / "opsconsole.toml"))
    app = create(cfg, cfg.environment("local"))

    def keep(name: str, extra: str = "") -> None:
        svg = app.export_screenshot()
        result.places[name] = {f"{name} svg": svg, f"{name} text": svg_text(svg) + extra}

    def log_text(screen) -> str:
        return "\n".join(line.text for line in screen.query_one("#output", RichLog).lines)

    async def run_runbook(name: str, values: dict[str, str]) -> RunScreen:
        app.start_runbook(root / "runbooks" / f"{name}.md")
        await wait_until(pilot, lambda: isinstance(app.screen, ParamsDialog) and bool(app.screen.query("#param-token")),
                         5, "the params form")
        for key, value in values.items():
            app.screen.query_one(f"#param-{key}", Input).value = value
        await pilot.pause()
        if name == "secret-param":
            keep("tui-params")
        app.screen.submit()
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and bool(app.screen.query("#state"))
                         and "press s" in str(app.screen.query_one("#state").render()), 10, "the run screen")
        run = app.screen
        await pilot.press("s")
        return run

    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.rounds_shown >= 1, 20, "the first round")
        keep("tui-dashboard")
        app.open_detail("db_down")
        await wait_until(pilot, lambda: isinstance(app.screen, MemberDetail), 5, "the detail")
        await pilot.pause(0.3)
        keep("tui-detail")
        await pilot.press("escape")
        await pilot.press("b")
        await wait_until(pilot, lambda: isinstance(app.screen, RunbooksScreen), 5, "the runbooks")
        await pilot.pause(0.3)
        keep("tui-runbooks")
        await pilot.press("escape")
        secrets_screen = SecretsScreen()
        app.push_screen(secrets_screen)
        await wait_until(pilot, lambda: secrets_screen.loads >= 1, 10, "the secrets")
        keep("tui-secrets")
        await pilot.press("escape")
        journal_screen = JournalScreen(select=str(result.facts["failed"]))
        app.push_screen(journal_screen)
        await wait_until(pilot, lambda: journal_screen.loads >= 1, 10, "the journal")
        keep("tui-journal")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunDetailScreen), 5, "the run's detail")
        await wait_until(pilot, lambda: "leaking" in svg_text(app.export_screenshot()), 5, "the failed step")
        keep("tui-journal-detail")
        await pilot.press("escape")
        await pilot.press("escape")

        run = await run_runbook("secret-param", {"token": PARAM, "quoted": QUOTED})
        await wait_until(pilot, lambda: run.finished is not None, 30, "the run")
        result.facts["tui_run"] = run.finished
        keep("tui-run", log_text(run))
        await pilot.press("escape")
        failing = await run_runbook("fails", {"token": PARAM})
        await wait_until(pilot, lambda: isinstance(app.screen, FailureDialog), 30, "the failure dialog")
        keep("tui-failure", log_text(failing))
        await pilot.click("#abort")
        await wait_until(pilot, lambda: failing.finished is not None, 30, "the abort")


def _collect(result: Scan, pg) -> None:
    root = result.root
    snap = root / "snap.svg"
    svg = snap.read_text() if snap.exists() else ""
    result.places["snapshot-svg"] = {"snap.svg": svg, "snap.svg text": svg_text(svg)}
    state = root / "state"
    journal_files = sorted(state.rglob("journal.sqlite3*"))
    result.places["sqlite-journal"] = {str(p.relative_to(root)): p.read_bytes() for p in journal_files if p.is_file()}
    result.places["state-dir-files"] = {str(p.relative_to(root)): p.read_bytes() for p in sorted(state.rglob("*"))
                                        if p.is_file() and p not in journal_files}
    tables = ("opsconsole_runs", "opsconsole_steps", "opsconsole_events", "opsconsole_locks", "opsconsole_schema")
    admin = pg.url(database=JOURNAL_USER)
    result.places["postgres-journal"] = {
        table: "\n".join(str(row[0]) for row in _psql(admin, f"SELECT t::text FROM {table} t")) for table in tables}
    calls = [json.loads(line) for line in (root / "fake-log.jsonl").read_text().splitlines()]
    result.facts["fake_calls"] = calls
    # What the fakes were given on stdin is allowed to hold a secret (that is where it should travel); the rest not.
    result.places["fake-cli-argv"] = {f"{c['tool']} call {i}": json.dumps({k: v for k, v in c.items() if k != "stdin"})
                                      for i, c in enumerate(calls)}
    generated: dict[str, str | bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0] in SCANNED_APART or str(rel) in INTENDED or rel.name == "snap.svg" \
                or str(rel).startswith("fake-state.json"):
            continue
        generated[str(rel)] = path.read_bytes()
    generated["(file names)"] = "\n".join(str(p.relative_to(root)) for p in root.rglob("*"))
    result.places["generated-files"] = generated


def _blob(places: dict[str, str | bytes]) -> bytes:
    return b"\n".join(v if isinstance(v, bytes) else v.encode("utf-8", "surrogateescape") for v in places.values())


@pytest.mark.parametrize("path", PATHS)
def test_no_secret_shows_in(scan: Scan, path: str):
    places = scan.places.get(path)
    assert places, f"{path} was never produced"
    cmd = next((c for c in COMMANDS + LATE_COMMANDS if c.id == path), None)
    if cmd is not None:
        proc = scan.procs[path]
        assert proc.returncode == cmd.code, (proc.stdout[-3000:], proc.stderr[-3000:])
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    blob = _blob(places)
    for shown in (cmd.expect if cmd is not None else OTHER_PATHS[path]):
        wanted = shown if isinstance(shown, bytes) else shown.encode()
        assert wanted in blob, f"{path} does not show {shown!r}: it did not run as the scan needs"
    for name, value in scan.secrets.items():
        try:
            assert_nowhere(value, places)
        except AssertionError as exc:
            raise AssertionError(f"the {name}: {exc}") from None


def test_the_secrets_were_really_in_play(scan: Scan):
    """Each secret reached where it belongs, so not finding it elsewhere means something."""
    root = scan.root
    assert (root / "got-token.txt").read_text() == f"{PARAM}\n{QUOTED}\n"  # the last run wrote it (the TUI's)
    assert scan.facts["tui_run"] == "succeeded"
    new_local = str(scan.facts["local_new"])
    assert re.fullmatch(r"[0-9a-f]{64}", new_local) and LOCAL_OLD in (root / ".env.local.previous").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", str(scan.facts["railway_new"]))
    assert scan.facts["railway_now"] == RW_OLD  # the rollback put back what the keyring kept
    assert "OpsconsoleVariableUpsert" in scan.facts["railway_ops"] and "OpsconsoleScale" in scan.facts["railway_ops"]
    assert re.fullmatch(r"[0-9a-f]{64}", str(scan.facts["k8s_new"]))
    keyring_file = root / "keyring-data" / "python_keyring" / "keyring_pass.cfg"
    kept = b"".join(keyring_file.read_bytes().split())
    assert base64.b64encode(K8S_OLD.encode()) in kept  # the replaced value, kept for --rollback
    calls = scan.facts["fake_calls"]
    railway_runs = [c for c in calls if c["tool"] == "railway"]
    assert railway_runs and all(c["token_ok"] and c["token_var"] == "RAILWAY_TOKEN" for c in railway_runs)
    applied = [c for c in calls if c["tool"] == "kubectl" and c["argv"][-3:] == ["apply", "-f", "-"]]
    assert len(applied) == 1 and base64.b64encode(str(scan.facts["k8s_new"]).encode()).decode() in applied[0]["stdin"]
    assert "runbooks/fails.md" in scan.places["postgres-journal"]["opsconsole_runs"]
    assert DB_PW.replace("@", "%40") in (root / ".env").read_text()


def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every command path of the CLI: ("check",), ("journal", "show"), ("auth", "set"), ..."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix}
    out = {prefix} if prefix and not subs[0].required else set()
    for name, child in subs[0].choices.items():
        out |= _leaves(child, prefix + (name,))
    return out


def test_every_cli_verb_is_scanned():
    """A verb added to opsconsole/cli.py without a place in COMMANDS fails here: add it to the scan."""
    leaves = _leaves(cli.build_parser())
    scanned = set()
    for cmd in COMMANDS + LATE_COMMANDS:
        words = [a for a in cmd.args if not a.startswith("-")]
        scanned.add(tuple(words[:1]))
        scanned.add(tuple(words[:2]))
    missing = sorted(" ".join(leaf) for leaf in leaves if leaf not in scanned)
    assert not missing, f"CLI commands the secret scan does not run: {missing}"
    assert ("journal", "show") in leaves and ("auth", "delete") in leaves and ("rotate-secret",) in leaves
