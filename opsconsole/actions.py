"""The action verbs (docs/runbooks.md#ops-blocks-action-verbs): one argparse grammar for the CLI and for `ops` blocks.

`opsconsole scale worker --replicas 4` and an `ops` line `scale worker --replicas 4` go through
the same parsers, so a runbook can never say something the command line would refuse (or the
other way round). This module only parses; providers turn an Action into real commands.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsconsole.errors import UserError

VERBS = ("deploy", "migrate", "scale", "rotate-secret", "backup", "restore-backup")
DESTRUCTIVE = frozenset({"rotate-secret", "restore-backup"})

# What each verb records before it changes anything, readable by a later block as
# `{{ previous.KEY }}` (e.g. a rollback scaling back to the replica count found before).
# `backup` records the identifier of the backup it made, so a later step can restore it.
# `restore-backup` records what it measured (a restore drill compares them with its objectives) and where its
# safety copy of the database, taken before anything is dropped, went.
RECORDS: Mapping[str, tuple[str, ...]] = {
    "scale": ("replicas",),
    "backup": ("backup",),
    "restore-backup": ("backup_age_hours", "verify_seconds", "restore_seconds", "tables", "rows", "safety_copy"),
}
RECORDED_KEYS = frozenset(key for keys in RECORDS.values() for key in keys)

# Service and database names as config keys allow them, plus the separators provider ids use.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@\-]{0,199}\Z")
# A backup reference can be a file path, an S3 URL, a snapshot ARN or a point in time.
_REFERENCE = re.compile(r"[^\s\-\x00-\x1f\x7f][^\s\x00-\x1f\x7f]{0,999}\Z")
# A table to count rows in: `orders` or `schema.orders`, as PostgreSQL spells unquoted names.
_TABLE = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_$]{0,62}\.)?[A-Za-z_][A-Za-z0-9_$]{0,62}\Z")
RESTORE_VERIFY = ("none", "scratch")


def _name(what: str):
    def check(text: str) -> str:
        if not _NAME.match(text):
            raise argparse.ArgumentTypeError(f"not a valid {what} name: {text!r}")
        return text
    check.__name__ = what  # argparse names the type in some messages
    return check


def _replicas(text: str) -> int:
    if not re.fullmatch(r"\d{1,6}", text.strip()):
        raise argparse.ArgumentTypeError(f"must be a whole number from 0, got {text!r}")
    return int(text)


def _reference(text: str) -> str:
    if not _REFERENCE.match(text):
        raise argparse.ArgumentTypeError(f"not a valid backup reference: {text!r}")
    return text


def _jobs(text: str) -> int:
    if not re.fullmatch(r"\d{1,3}", text.strip()) or not 2 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"must be a whole number from 2 to 64 (leave --jobs out for one "
                                         f"transaction), got {text!r}")
    return int(text)


def _table(text: str) -> str:
    if not _TABLE.match(text):
        raise argparse.ArgumentTypeError(f"not a table name (`orders` or `schema.orders`): {text!r}")
    return text


@dataclass(frozen=True)
class Action:
    """One parsed action verb line."""

    verb: str
    service: str | None = None  # deploy/scale SERVICE, migrate [SERVICE], backup/restore-backup DATABASE
    replicas: int | None = None  # scale --replicas N
    secret: str | None = None  # rotate-secret NAME
    restart: tuple[str, ...] = ()  # rotate-secret --restart SERVICE ...
    rollback: bool = False  # rotate-secret --rollback
    source: str | None = None  # restore-backup --from BACKUP
    # restore-backup's optional flags; None / False: the provider's configured default.
    jobs: int | None = None  # --jobs N: parallel pg_restore (not atomic)
    single_transaction: bool = False  # --single-transaction: atomic, whatever the config says
    verify: str | None = None  # --verify none|scratch: restore into a scratch database first
    scratch_only: bool = False  # --scratch-only: restore into a scratch database, check it, drop it; a drill
    count_rows: str | None = None  # --count-rows TABLE: count TABLE's rows in what was restored
    from_other: bool = False  # --from-other: a backup of another environment, service or database is meant
    no_safety_copy: bool = False  # --no-safety-copy: no dump of the database before it is restored over

    @property
    def destructive(self) -> bool:
        # A drill restores into a throwaway database: the real one is never touched.
        return self.verb in DESTRUCTIVE and not self.scratch_only

    @property
    def options(self) -> tuple[str, ...]:
        """The optional flags this action uses; a provider that cannot honour one refuses the action
        (providers.plan_action) rather than silently doing something else."""
        used = {"--jobs": self.jobs is not None, "--single-transaction": self.single_transaction,
                "--verify": self.verify is not None, "--scratch-only": self.scratch_only,
                "--count-rows": self.count_rows is not None, "--from-other": self.from_other,
                "--no-safety-copy": self.no_safety_copy}
        return tuple(flag for flag, on in used.items() if on)

    @property
    def records(self) -> tuple[str, ...]:
        return RECORDS.get(self.verb, ())

    def text(self) -> str:
        """The canonical one-line form; `parse(a.text()) == a`."""
        words = [self.verb]
        if self.verb == "rotate-secret":
            words.append(self.secret or "")
            for service in self.restart:
                words += ["--restart", service]
            if self.rollback:
                words.append("--rollback")
        elif self.service is not None:
            words.append(self.service)
        if self.verb == "scale":
            words += ["--replicas", str(self.replicas)]
        if self.verb == "restore-backup":
            words += ["--from", self.source or ""]
            if self.jobs is not None:
                words += ["--jobs", str(self.jobs)]
            if self.single_transaction:
                words.append("--single-transaction")
            if self.verify is not None:
                words += ["--verify", self.verify]
            if self.scratch_only:
                words.append("--scratch-only")
            if self.count_rows is not None:
                words += ["--count-rows", self.count_rows]
            if self.from_other:
                words.append("--from-other")
            if self.no_safety_copy:
                words.append("--no-safety-copy")
        return " ".join(shlex.quote(w) for w in words)

    def problem(self) -> str | None:
        """Flags that parse one by one but contradict each other."""
        if self.jobs is not None and self.single_transaction:
            return ("--single-transaction and --jobs cannot combine: one transaction runs on one connection, "
                    "parallel jobs need several (pg_restore refuses both); choose one")
        if self.scratch_only and self.verify is not None:
            return "--scratch-only already restores into a scratch database (and only there): leave --verify out"
        if self.scratch_only and self.no_safety_copy:
            return ("--scratch-only never touches the database, so there is no safety copy to skip: leave "
                    "--no-safety-copy out")
        return None


_HELP = {
    "deploy": "deploy a service (redeploy its latest build)",
    "migrate": "run database migrations (for one service, or the environment's default)",
    "scale": "set a service's replica count",
    "rotate-secret": "generate a new secret value, store it, restart what uses it",
    "backup": "take a backup of a postgres database",
    "restore-backup": "restore a postgres database from a backup (destructive)",
}


def add_verb_parsers(subparsers: Any, **parser_kwargs: Any) -> dict[str, argparse.ArgumentParser]:
    """Add the six verb parsers to `subparsers` (the CLI's, or the one `parse` uses).

    Returns them by verb so the CLI can add its own flags (--env, --yes, ...). Each sets
    `action_verb` on the namespace, so `from_namespace` works whatever the subparsers' dest.
    """
    parsers: dict[str, argparse.ArgumentParser] = {}

    def add(verb: str, description: str | None = None) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(verb, help=_HELP[verb], description=description or _HELP[verb],
                                       **parser_kwargs)
        parser.set_defaults(action_verb=verb)
        parsers[verb] = parser
        return parser

    add("deploy").add_argument("service", metavar="SERVICE", type=_name("service"))
    add("migrate").add_argument("service", metavar="SERVICE", nargs="?", type=_name("service"))
    scale = add("scale")
    scale.add_argument("service", metavar="SERVICE", type=_name("service"))
    scale.add_argument("--replicas", metavar="N", type=_replicas, required=True, help="replica count (0 stops it)")
    rotate = add("rotate-secret")
    rotate.add_argument("secret", metavar="NAME", type=_name("secret"))
    rotate.add_argument("--restart", metavar="SERVICE", type=_name("service"), action="append", default=[],
                        help="restart this service afterwards (repeatable)")
    rotate.add_argument("--rollback", action="store_true", help="go back to the previous value instead")
    add("backup").add_argument("database", metavar="DATABASE", type=_name("database"))
    restore = add("restore-backup")
    restore.add_argument("database", metavar="DATABASE", type=_name("database"))
    restore.add_argument("--from", dest="source", metavar="BACKUP", type=_reference, required=True,
                         help="the backup to restore (as `backup` printed it)")
    restore.add_argument("--jobs", metavar="N", type=_jobs,
                         help="restore with N parallel jobs (faster, not atomic: a failure leaves it half restored)")
    restore.add_argument("--single-transaction", action="store_true",
                         help="restore in one transaction: all or nothing (the default unless the config sets jobs)")
    restore.add_argument("--verify", choices=RESTORE_VERIFY,
                         help="scratch: restore into a scratch database first and check it, then the real one")
    restore.add_argument("--scratch-only", action="store_true",
                         help="restore into a scratch database, check it, drop it; the database is not touched")
    restore.add_argument("--count-rows", metavar="TABLE", type=_table,
                         help="count TABLE's rows in what was restored (recorded as previous.rows)")
    restore.add_argument("--from-other", action="store_true",
                         help="restore a backup whose manifest names another environment, service or database "
                              "(refused without it)")
    restore.add_argument("--no-safety-copy", action="store_true",
                         help="do not dump the database before restoring over it (the default takes that copy)")
    return parsers


def from_namespace(ns: argparse.Namespace) -> Action:
    verb = ns.action_verb
    database = getattr(ns, "database", None)
    return Action(
        verb=verb,
        service=getattr(ns, "service", None) if database is None else database,
        replicas=getattr(ns, "replicas", None),
        secret=getattr(ns, "secret", None),
        restart=tuple(dict.fromkeys(getattr(ns, "restart", None) or ())),  # once each, in order
        rollback=bool(getattr(ns, "rollback", False)),
        source=getattr(ns, "source", None),
        jobs=getattr(ns, "jobs", None),
        single_transaction=bool(getattr(ns, "single_transaction", False)),
        verify=getattr(ns, "verify", None),
        scratch_only=bool(getattr(ns, "scratch_only", False)),
        count_rows=getattr(ns, "count_rows", None),
        from_other=bool(getattr(ns, "from_other", False)),
        no_safety_copy=bool(getattr(ns, "no_safety_copy", False)),
    )


def checked(action: Action, path: Any = None, lineno: int | None = None) -> Action:
    """`action`, or a UserError when its flags contradict each other."""
    problem = action.problem()
    if problem:
        raise UserError(f"{action.verb}: {problem}", path, lineno)
    return action


class _GrammarError(Exception):
    pass


class _OpsParser(argparse.ArgumentParser):
    """Never prints or exits: an `ops` line is checked, not run as a program."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _GrammarError(message)

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise _GrammarError("--help is not an action")

    def _print_message(self, message: str, file: Any = None) -> None:
        pass


_parser: argparse.ArgumentParser | None = None


def _ops_parser() -> argparse.ArgumentParser:
    global _parser
    if _parser is None:
        parser = _OpsParser(prog="ops", add_help=False)
        sub = parser.add_subparsers(dest="verb", parser_class=_OpsParser)
        add_verb_parsers(sub, allow_abbrev=False)  # runbooks spell flags out
        _parser = parser
    return _parser


def parse(line: str, path: Any = None, lineno: int | None = None) -> Action:
    """Parse one action line, e.g. `scale worker --replicas 4`; UserError(path:line) when it is wrong."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UserError(f"cannot read action {line.strip()!r}: {str(exc).lower()}", path, lineno) from None
    if not words:
        raise UserError("empty action line", path, lineno)
    if words[0] not in VERBS:
        raise UserError(f"unknown action {words[0]!r} (actions: {', '.join(VERBS)}; or `expect ...` to check health)",
                        path, lineno)
    try:
        ns = _ops_parser().parse_args(words)
    except _GrammarError as exc:
        raise UserError(f"{words[0]}: {exc}", path, lineno) from None
    return checked(from_namespace(ns), path, lineno)
