"""The action verb grammar, shared by `ops` lines and the command line."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsconsole import actions, cli
from opsconsole.actions import Action
from opsconsole.errors import UserError
from tests.budget import examples


@pytest.mark.parametrize("line, expected", [
    ("deploy api", Action("deploy", service="api")),
    ("migrate", Action("migrate")),
    ("migrate api", Action("migrate", service="api")),
    ("scale worker --replicas 4", Action("scale", service="worker", replicas=4)),
    ("scale worker --replicas=0", Action("scale", service="worker", replicas=0)),
    ("scale --replicas 2 worker", Action("scale", service="worker", replicas=2)),
    ("rotate-secret JWT_SECRET", Action("rotate-secret", secret="JWT_SECRET")),
    ("rotate-secret app/jwt --restart api --restart worker --restart api --rollback",
     Action("rotate-secret", secret="app/jwt", restart=("api", "worker"), rollback=True)),
    ("backup db", Action("backup", service="db")),
    ("restore-backup db --from s3://backups/db-2026-11-21.dump",
     Action("restore-backup", service="db", source="s3://backups/db-2026-11-21.dump")),
    ("  restore-backup 'db' --from \"backups/db_1.dump\"  ",
     Action("restore-backup", service="db", source="backups/db_1.dump")),
])
def test_parse(line, expected):
    action = actions.parse(line)
    assert action == expected
    assert actions.parse(action.text()) == action


def test_canonical_text_and_risk():
    assert actions.parse("scale  worker   --replicas 04").text() == "scale worker --replicas 4"
    assert actions.parse("rotate-secret X --rollback --restart a").text() == "rotate-secret X --restart a --rollback"
    assert [v for v in actions.VERBS if actions.parse(_minimal(v)).destructive] == ["rotate-secret", "restore-backup"]
    assert actions.parse("scale w --replicas 1").records == ("replicas",)
    assert actions.parse("backup db").records == ("backup",)
    assert actions.parse("deploy api").records == ()
    assert actions.RECORDED_KEYS == {"replicas", "backup", "backup_age_hours", "verify_seconds", "restore_seconds",
                                     "tables", "rows", "safety_copy"}


def _minimal(verb: str) -> str:
    return {"deploy": "deploy a", "migrate": "migrate", "scale": "scale a --replicas 1",
            "rotate-secret": "rotate-secret A", "backup": "backup db",
            "restore-backup": "restore-backup db --from x"}[verb]


@pytest.mark.parametrize("line, message", [
    ("", "empty action line"),
    ("# just a comment", "unknown action '#'"),
    ("deploy", "deploy: the following arguments are required: SERVICE"),
    ("deploy api web", "deploy: unrecognized arguments: web"),
    ("scale worker", "scale: the following arguments are required: --replicas"),
    ("scale worker --replicas many", "scale: argument --replicas: must be a whole number from 0, got 'many'"),
    ("scale worker --replicas -1", "scale: argument --replicas: must be a whole number from 0, got '-1'"),
    ("scale worker --rep 3", "scale: the following arguments are required: --replicas"),
    ("deploy 'api; rm -rf /'", "deploy: argument SERVICE: not a valid service name: 'api; rm -rf /'"),
    ("deploy 'api\nx'", "not a valid service name"),
    ("restore-backup db", "restore-backup: the following arguments are required: --from"),
    ("restore-backup db --from ''", "not a valid backup reference: ''"),
    ("deploy -h", "deploy: --help is not an action"),
    ("deploy 'unclosed", "cannot read action \"deploy 'unclosed\": no closing quotation"),
    ("kubectl delete ns prod", "unknown action 'kubectl' (actions: deploy, migrate, scale, rotate-secret, backup, "
                               "restore-backup; or `expect ...` to check health)"),
])
def test_errors_carry_path_and_line(line, message):
    with pytest.raises(UserError) as err:
        actions.parse(line, "runbooks/x.md", 12)
    assert str(err.value).startswith("runbooks/x.md:12: ")
    assert message in str(err.value)


def test_the_cli_shares_the_grammar():
    parser = cli._Parser(prog="opsconsole")
    sub = parser.add_subparsers(dest="command", parser_class=cli._Parser)
    verbs = actions.add_verb_parsers(sub)
    assert sorted(verbs) == sorted(actions.VERBS)
    verbs["scale"].add_argument("--yes", action="store_true")  # the CLI adds its own flags
    ns = parser.parse_args(["scale", "worker", "--replicas", "3", "--yes"])
    assert ns.command == "scale" and ns.yes
    assert actions.from_namespace(ns) == actions.parse("scale worker --replicas 3")
    with pytest.raises(cli.UsageError) as err:
        parser.parse_args(["scale", "worker", "--replicas", "x"])
    assert "must be a whole number from 0, got 'x'" in str(err.value)
    with pytest.raises(cli.UsageError):
        parser.parse_args(["restore-backup", "db"])


def test_cli_help_lists_the_verbs(capsys):
    parser = argparse.ArgumentParser(prog="x")
    actions.add_verb_parsers(parser.add_subparsers())
    assert all(verb in parser.format_help() for verb in actions.VERBS)


NAMES = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.:/@\-]{0,20}", fullmatch=True)


@settings(max_examples=examples(150), deadline=None)
@given(st.one_of(
    st.builds(lambda s: Action("deploy", service=s), NAMES),
    st.builds(lambda s: Action("migrate", service=s), st.none() | NAMES),
    st.builds(lambda s, n: Action("scale", service=s, replicas=n), NAMES, st.integers(0, 999999)),
    st.builds(lambda s, r, b: Action("rotate-secret", secret=s, restart=tuple(dict.fromkeys(r)), rollback=b),
              NAMES, st.lists(NAMES, max_size=3), st.booleans()),
    st.builds(lambda s: Action("backup", service=s), NAMES),
    st.builds(lambda s, f: Action("restore-backup", service=s, source=f), NAMES,
              st.from_regex(r"[^\s\-\x00-\x1f\x7f][^\s\x00-\x1f\x7f]{0,30}", fullmatch=True)),
))
def test_text_round_trips(action):
    assert actions.parse(action.text()) == action


@settings(max_examples=examples(200), deadline=None)
@given(st.text(max_size=60))
def test_any_line_is_an_action_or_a_user_error_with_its_line(line):
    try:
        actions.parse(line, "r.md", 3)
    except UserError as exc:
        assert (exc.path, exc.line) == ("r.md", 3)
