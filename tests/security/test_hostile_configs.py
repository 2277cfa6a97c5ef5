"""Hostile configs (corpus/configs/) and `.env` files (corpus/dotenv/) through the real CLI: `check`, `envs` and
`plan` with `--config`. Every bad file is refused with exactly one `path:line:` line and a non-zero exit (`check`
exits 3, Nagios UNKNOWN), never a traceback; nothing raw is printed; no shell metacharacter in a url or a `.env`
value ever runs (they all `touch PWNED`); a password in the config shows in no form. Deep nesting and a 20 MB file
are refused or read in bounded time, not by overflowing the stack."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.security.conftest import CORPUS, assert_clean, assert_nowhere, assert_user_error

# file -> (stage, line, what the line says). stage "load": the file's structure is wrong, every command refuses it;
# "env": found when the environment is resolved (urls, ${VAR}), so `check` and `plan` refuse it and `envs`, which
# lists environments without resolving them, still lists it.
BAD = {
    "invalid_toml": ("load", 1, "TOML syntax error: expected ']' at the end of a table declaration"),
    "invalid_utf8": ("load", 2, "not UTF-8 text"),
    "escape_in_names": ("load", 3, r"name '\x1b[2Jx' may only hold letters, digits, '_' and '-'"),
    "escape_in_env_name": ("load", 1, r"environment name 'prod\x1b[2J\nfake' may only hold letters"),
    "unknown_provider": ("load", 2, "unknown provider 'evil; touch PWNED' (known: compose | railway"),
    "unknown_kind": ("load", 4, r"unknown kind 'evil\x1b[2J\x9b31m' (known: postgres | redis | http | tcp)"),
    "wrong_type_environment": ("load", 2, "environment 'local' must be a table"),
    "wrong_type_protection": ("load", 3, "unknown protection 5 (known: open | confirm | typed)"),
    "wrong_type_read_only": ("load", 3, "read_only must be true or false"),
    "wrong_type_refresh": ("load", 2, "refresh must be a positive number of seconds, got 'fast'"),
    "huge_integer_threshold": ("load", 6, "warn (1e+29) is above crit (1)"),
    "deep_array": ("load", 4, "arrays or inline tables nested deeper than 32 levels"),
    "deep_inline_table": ("load", 4, "arrays or inline tables nested deeper than 32 levels"),
    "deep_tables": ("load", 4, "tables or arrays nested deeper than 32 levels"),
    "huge_integer_port": ("env", 5, "tcp url 'tcp://127.0.0.1:99999999999999999999': port out of range 0-65535"),
    "url_invalid_ipv6": ("env", 5, "bullmq url 'redis://ops:***@[::1/0': invalid IPv6 URL"),
    "url_port_not_a_number": ("env", 6, "port could not be cast to integer value as '$(id)'"),
    "variable_hostile_value": ("env", 5, r"http url must start with http:// or https://, got '\x1b]52;c;cHduZWQ=\x07"
                                         r"ftp://x\n\x9b31m'"),
    "variable_markup_default": ("env", 5, r"got '[bold red]x[/] \x1b]8;;http://evil\x07'"),
}
# Valid configs that carry something hostile: file -> the exit code of `check`.
GOOD = {
    "journal_password": 3,     # nothing to probe: UNKNOWN
    "url_shell_metachars": 2,  # the urls are probed (and unreachable), never handed to a shell
}
# Passwords that must never be printed, in any form, by any command on that file.
SECRETS = {"journal_password": "Journal-Pw-7731", "url_invalid_ipv6": "Url-Pw-4417", "url_port_not_a_number": "Url-Pw-4417"}
# Process environment a file's ${VAR} takes (newlines, OSC 52 clipboard write, C1 CSI).
ENV = {"variable_hostile_value": {"HOSTILE_URL": "\x1b]52;c;cHduZWQ=\x07ftp://x\n\x9b31m"}}

# corpus/dotenv/<name>.env, as `.env` beside a config whose http service url is ${API_URL}: name -> (line, message),
# or None for a hostile but valid file (the service is probed, unreachable: crit, exit 2).
DOTENV = {
    "invalid_utf8": (2, "not UTF-8 text"),
    "unclosed_quote": (2, "cannot parse this line: expected NAME=value"),
    "not_an_assignment": (2, "cannot parse this line: expected NAME=value"),
    "ansi_value": None,
    "newline_value": None,
    "shell_value": None,
    "nul_value": None,
    "bom_and_export": None,
    "interpolation_loop": None,
}
DOTENV_CONFIG = """\
[environments.local]
provider = "local"
[environments.local.services.api]
kind = "http"
url = "${API_URL}"
"""
RUNBOOK = "## Say hello\n```sh\necho hello\n```\n"


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A copy of the corpus beside a runbooks/ directory, so `plan hello` gets as far as the config lets it."""
    home = tmp_path / "configs"
    shutil.copytree(CORPUS / "configs", home)
    (home / "runbooks").mkdir()
    (home / "runbooks" / "hello.md").write_text(RUNBOOK)
    return home


def test_the_corpus_is_all_here():
    assert {p.stem for p in (CORPUS / "configs").glob("*.toml")} == set(BAD) | set(GOOD)
    assert not set(BAD) & set(GOOD)
    assert {p.stem for p in (CORPUS / "dotenv").glob("*.env")} == set(DOTENV)
    assert set(SECRETS) | set(ENV) <= set(BAD) | set(GOOD)


def commands(config: Path) -> dict[str, tuple[str, ...]]:
    return {"check": ("check", "--config", str(config)), "envs": ("envs", "--config", str(config)),
            "plan": ("plan", "hello", "--config", str(config))}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_hostile_config_is_one_clear_line(configs, run_cli, name):
    stage, line, message = BAD[name]
    config = configs / f"{name}.toml"
    for command, args in commands(config).items():
        started = time.monotonic()
        proc = run_cli(*args, env=ENV.get(name), stdin=subprocess.DEVNULL, timeout=30)
        assert time.monotonic() - started < 15, command
        if command == "envs" and stage == "env":
            assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
            assert_clean(proc.stdout + proc.stderr)
            assert "local *" in proc.stdout
        else:
            assert_user_error(proc, where=config, line=line, contains=message)
            assert proc.returncode == (3 if command == "check" else 2), (command, proc.returncode)
        if name in SECRETS:
            assert_nowhere(SECRETS[name], {f"{command} stdout": proc.stdout, f"{command} stderr": proc.stderr})
    assert not (configs / "PWNED").exists() and not (configs.parent / "PWNED").exists()


@pytest.mark.parametrize("name", sorted(GOOD))
def test_a_valid_config_carrying_something_hostile_runs_it_as_text(configs, run_cli, name):
    config = configs / f"{name}.toml"
    outputs: dict[str, str] = {}
    for command, args in commands(config).items():
        proc = run_cli(*args, env=ENV.get(name), stdin=subprocess.DEVNULL, timeout=30)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
        assert_clean(proc.stdout + proc.stderr, command)
        assert proc.returncode == {"check": GOOD[name], "envs": 0, "plan": 0}[command], (command, proc.stderr)
        outputs[f"{command} stdout"], outputs[f"{command} stderr"] = proc.stdout, proc.stderr
    as_json = run_cli("check", "--json", "--config", str(config), stdin=subprocess.DEVNULL, timeout=30)
    assert as_json.returncode == GOOD[name]
    json.loads(as_json.stdout)
    outputs["check --json"] = as_json.stdout
    if name in SECRETS:
        # The journal is only opened by a run: it fails in one line, naming the journal without its password.
        run = run_cli("run", "hello", "--yes", "--config", str(config), stdin=subprocess.DEVNULL, timeout=30)
        assert run.returncode != 0 and "cannot open the journal postgresql://ops:***@127.0.0.1:1/journal" in run.stderr
        assert_user_error(run)
        journal = run_cli("journal", "--config", str(config), stdin=subprocess.DEVNULL, timeout=30)
        assert_user_error(journal, contains="cannot open the journal")
        outputs |= {"run": run.stdout + run.stderr, "journal": journal.stdout + journal.stderr}
        assert_nowhere(SECRETS[name], outputs)
    assert not (configs / "PWNED").exists() and not (configs.parent / "PWNED").exists()


@pytest.mark.parametrize("name", sorted(DOTENV))
def test_a_hostile_dotenv_is_one_clear_line_or_just_a_value(tmp_path, run_cli, name):
    home = tmp_path / "dotenv"
    home.mkdir()
    config = home / "opsconsole.toml"
    config.write_text(DOTENV_CONFIG)
    shutil.copy(CORPUS / "dotenv" / f"{name}.env", home / ".env")
    (home / "runbooks").mkdir()
    (home / "runbooks" / "hello.md").write_text(RUNBOOK)
    expected = DOTENV[name]
    for command, args in commands(config).items():
        proc = run_cli(*args, cwd=home, stdin=subprocess.DEVNULL, timeout=30)
        if command == "envs":  # `envs` reads no .env: it resolves nothing
            assert proc.returncode == 0 and "local *" in proc.stdout
            continue
        if expected is not None:
            line, message = expected
            assert_user_error(proc, where=(home / ".env").resolve(), line=line, contains=message)
            assert proc.returncode == (3 if command == "check" else 2)
        else:
            assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
            assert_clean(proc.stdout + proc.stderr, command)
            assert proc.returncode == (2 if command == "check" else 0), (command, proc.stderr[-2000:])
            if command == "check":
                rows = proc.stdout.splitlines()[2:]
                assert len(rows) == 1 and rows[0].startswith("crit    api   http"), proc.stdout  # no forged rows
    if expected is None:
        as_json = run_cli("check", "--json", "--config", str(config), cwd=home, stdin=subprocess.DEVNULL, timeout=30)
        assert as_json.returncode == 2 and json.loads(as_json.stdout)["services"][0]["status"] == "crit"
        assert_clean(as_json.stdout)
    assert not (home / "PWNED").exists() and not (tmp_path / "PWNED").exists()


def test_a_journal_password_from_dotenv_is_never_printed(tmp_path, run_cli):
    secret = "Dotenv-Jpw-\x1b[31m-5520"
    home = tmp_path / "team"
    home.mkdir()
    config = home / "opsconsole.toml"
    config.write_text('[opsconsole]\njournal = "postgresql://ops:${JOURNAL_PASSWORD}@127.0.0.1:1/ops"\n'
                      '[environments.local]\nprovider = "local"\n')
    (home / ".env").write_text(f'JOURNAL_PASSWORD="{secret}"\n')
    (home / "runbooks").mkdir()
    (home / "runbooks" / "hello.md").write_text(RUNBOOK)
    places: dict[str, str] = {}
    for args in (("journal",), ("journal", "--json"), ("run", "hello", "--yes"), ("check",), ("plan", "hello")):
        proc = run_cli(*args, "--config", str(config), cwd=home, stdin=subprocess.DEVNULL, timeout=30)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
        assert_clean(proc.stdout + proc.stderr, " ".join(args))
        places[" ".join(args)] = proc.stdout + proc.stderr
    assert "cannot open the journal postgresql://ops:***@127.0.0.1:1/ops" in places["journal"]
    assert_nowhere(secret, places)
    assert_nowhere("Dotenv-Jpw-", places)


def test_a_20_mb_config_is_read_in_bounded_time_and_its_error_still_has_its_line(tmp_path, run_cli):
    # Generated: too big to keep in the repository. 20 MB of comments and a 5 MB string, then one mistake.
    config = tmp_path / "huge.toml"
    comments = ("# " + "x" * 98 + "\n") * 150_000
    config.write_text('[environments.local]\nprovider = "local"\n[environments.local.provider_options]\n'
                      f'blob = "{"A" * 5_000_000}"\n' + comments + '[opsconsole]\nrefresh = "fast"\n')
    line = 4 + 150_000 + 2
    for args in (("check",), ("envs",), ("plan", "hello")):
        started = time.monotonic()
        proc = run_cli(*args, "--config", str(config), stdin=subprocess.DEVNULL, timeout=60)
        assert time.monotonic() - started < 20, args
        assert_user_error(proc, where=config, line=line, contains="refresh must be a positive number of seconds, got 'fast'")
    assert config.stat().st_size > 20_000_000


def test_nesting_the_stack_cannot_hold_is_refused_not_crashed(tmp_path, run_cli):
    # Far past Python's recursion limit (1000), in the parser and in anything walking the tables after it.
    head = '[environments.local]\nprovider = "local"\n[environments.local.provider_options]\n'
    cases = {
        "arrays.toml": (head + "x = " + "[" * 100_000 + "]" * 100_000 + "\n", 4, "arrays or inline tables"),
        "inline.toml": (head + "x = " + "{a=" * 100_000 + "1" + "}" * 100_000 + "\n", 4, "arrays or inline tables"),
        "tables.toml": ('[environments.local]\n[environments.local.provider_options.' + ".".join(["a"] * 20_000)
                        + "]\n", 2, "tables or arrays nested deeper"),
    }
    for filename, (text, line, message) in cases.items():
        config = tmp_path / filename
        config.write_text(text)
        started = time.monotonic()
        proc = run_cli("check", "--config", str(config), stdin=subprocess.DEVNULL, timeout=60)
        assert time.monotonic() - started < 20, filename
        assert_user_error(proc, where=config, line=line, contains=message)
        assert proc.returncode == 3


async def test_the_secrets_screen_shows_where_a_secret_lives_as_text(tmp_path, no_keyring):
    # `secret_id` is the config's text: read as markup, `[/]` raised MarkupError and took the TUI down; its
    # escape sequence reached the terminal raw.
    from textual.widgets import DataTable

    from opsconsole import config
    from opsconsole.ui.app import create
    from opsconsole.ui.screens.secrets import SecretsScreen
    from tests.ui.test_app import wait_until

    path = tmp_path / "opsconsole.toml"
    path.write_text('[environments.prod]\nprovider = "aws"\n[environments.prod.provider_options]\nregion = "eu-west-1"\n'
                    '[environments.prod.secrets.JWT]\nsecret_id = "[/]app/[bold red]jwt[/] \\u001b[2J"\n')
    cfg = config.load(str(path))
    app = create(cfg, cfg.environment("prod"))
    async with app.run_test(size=(160, 40)) as pilot:
        screen = SecretsScreen()
        app.push_screen(screen)
        await wait_until(pilot, lambda: screen.loads >= 1, what="the secrets to load")
        table = screen.query_one("#secrets", DataTable)
        cells = [str(c) for c in table.get_row_at(0)]
        assert "aws: secret_id [/]app/[bold red]jwt[/] \\x1b[2J" in cells, cells  # as text, the escape visible
        await pilot.pause(0.2)
        assert_clean(app.export_screenshot(), "the secrets screen")
    assert app._exception is None
