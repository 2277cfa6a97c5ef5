"""The one entry point: `opsconsole` opens the TUI; subcommands do the same work without a screen."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Sequence

from opsconsole import __version__, masking
from opsconsole.errors import UserError

EXIT_ERROR = 2  # a user error: config, runbook, plan, refusal
EXIT_USAGE = 3  # a usage error (unknown verb, bad flag) in every verb (README, Command line); for `check` every error:
# Nagios reads 3 as UNKNOWN, where 2 would page as CRITICAL


class UsageError(UserError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, our exit code, no usage dump
        raise UsageError(f"{self.prog}: {message} (see {self.prog.split()[0]} --help)")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1, got {text!r}")
    return int(text)


def _common(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--env", metavar="NAME", default=default, help="environment to use (default: the first in the config)")
    parser.add_argument("--config", metavar="PATH", default=default, help="config file (default: discovered, see README)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="opsconsole", description="Live health and guided runbooks for on-call engineers.")
    parser.add_argument("--version", action="version", version=f"opsconsole {__version__}")
    _common(parser, None)
    parser.add_argument("--read-only", action="store_true", help="hide and refuse every change")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    # Subcommands accept --env/--config too; SUPPRESS keeps a value given before the subcommand.
    check = sub.add_parser("check", help="probe once; Nagios exit codes (0 ok, 1 warn, 2 crit, 3 unknown)")
    _common(check, argparse.SUPPRESS)
    check.add_argument("--json", action="store_true", help="print one JSON object (one per line with --watch)")
    check.add_argument("--watch", metavar="SECONDS", type=_positive, help="probe again every SECONDS until interrupted")
    check.add_argument("--rounds", metavar="N", type=_count, help="with --watch: stop after N rounds")

    snapshot = sub.add_parser("snapshot", help="render the dashboard once, after the first probe round, to an SVG file")
    _common(snapshot, argparse.SUPPRESS)
    snapshot.add_argument("--output", "-o", metavar="FILE.svg", required=True, help="where to write the SVG")
    snapshot.add_argument("--size", metavar="COLSxROWS", type=_size, default=(120, 36), help="terminal size (default 120x36)")
    snapshot.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS, help="show the environment as read-only")

    envs = sub.add_parser("envs", help="list environments, provider and protection")
    _common(envs, argparse.SUPPRESS)
    envs.add_argument("--json", action="store_true", help="print JSON")

    _journal_parsers(sub)
    _runbooks_parsers(sub)
    _engine_parsers(sub)
    _auth_parsers(sub)

    backups = sub.add_parser("backups", help="list the backups `opsconsole backup` took (name, size, created, tables)")
    _common(backups, argparse.SUPPRESS)
    backups.add_argument("database", metavar="DATABASE", nargs="?", help="only this postgres service's backups")
    backups.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _runbooks_parsers(sub: argparse._SubParsersAction) -> None:
    runbooks = sub.add_parser("runbooks", help="list, validate or show runbooks")
    _common(runbooks, argparse.SUPPRESS)
    rsub = runbooks.add_subparsers(dest="runbooks_command", metavar="list | validate [PATH...] | show NAME",
                                   parser_class=_Parser, required=True)
    rlist = rsub.add_parser("list", help="runbooks in the config's runbooks directory")
    rlist.add_argument("--json", action="store_true", help="print JSON")
    rvalidate = rsub.add_parser("validate", help="check runbooks; prints path:line: problem (exit 1 if any)")
    rvalidate.add_argument("paths", metavar="PATH", nargs="*", help="files or directories (default: the runbooks directory)")
    rvalidate.add_argument("--env", metavar="NAME", default=argparse.SUPPRESS,
                           help="also check every `expect` against this environment's members")
    rshow = rsub.add_parser("show", help="a runbook's params and steps")
    rshow.add_argument("name", metavar="NAME", help="runbook name (file stem) or path")
    rshow.add_argument("--json", action="store_true", help="print JSON")
    for leaf in (rlist, rvalidate, rshow):
        leaf.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")


def _journal_parsers(sub: argparse._SubParsersAction) -> None:
    # `journal` alone is `journal list`; --json/--env/--config work before or after `list`/`show`.
    journal = sub.add_parser("journal", help="past and interrupted runbook runs (the audit journal)")
    _common(journal, argparse.SUPPRESS)
    journal.add_argument("--json", action="store_true", help="print JSON (stable keys, ISO-8601 times)")
    journal.add_argument("--limit", metavar="N", type=_count, default=50, help="list at most N runs (default 50)")
    jsub = journal.add_subparsers(dest="journal_command", metavar="list | show RUN_ID", parser_class=_Parser)
    jlist = jsub.add_parser("list", help="runs, most recent first (--env NAME filters)")
    _common(jlist, argparse.SUPPRESS)
    jlist.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    jlist.add_argument("--limit", metavar="N", type=_count, default=argparse.SUPPRESS, help="list at most N runs")
    jshow = jsub.add_parser("show", help="one run: its header and every step")
    jshow.add_argument("run_id", metavar="RUN_ID", help="a run id from `journal list` (a unique prefix is enough)")
    jshow.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")
    jshow.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")


def _param(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {masking.mask(text)!r}")
    return key.strip(), value


def _engine_parsers(sub: argparse._SubParsersAction) -> None:
    from opsconsole import actions

    def params(p: argparse.ArgumentParser) -> None:
        p.add_argument("runbook", metavar="RUNBOOK", help="a runbook name in the runbooks directory, or a path")
        p.add_argument("-p", "--param", dest="params", metavar="KEY=VALUE", type=_param, action="append",
                       default=[], help="a runbook param (repeatable); KEY=- reads the value from stdin (a hidden "
                                        "prompt on a terminal), for secrets")
        p.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS, help="refuse every change")

    def running(p: argparse.ArgumentParser) -> None:
        p.add_argument("--yes", action="store_true", help="confirm y/N questions (needed without a terminal)")
        p.add_argument("--confirm-env", metavar="NAME", help="confirm typed questions with the environment's name")
        p.add_argument("--take-over", action="store_true", help="take the environment's lock from a dead holder")
        p.add_argument("--on-failure", choices=("abort", "retry", "rollback", "rollback-all", "skip"),
                       help="what to do when a step fails without asking (default: ask, or abort without a terminal)")
        p.add_argument("--note", metavar="TEXT", default="", help="why skipping is fine (with --on-failure skip)")

    plan = sub.add_parser("plan", help="show a runbook's resolved steps and exact commands; changes nothing")
    _common(plan, argparse.SUPPRESS)
    params(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")

    run = sub.add_parser("run", help="run a runbook: confirm, execute, verify and journal each step")
    _common(run, argparse.SUPPRESS)
    params(run)
    running(run)
    run.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted or failed run at its first unfinished step")
    run.add_argument("--fingerprint", metavar="F", help="refuse to run unless the plan has this fingerprint (from `plan`)")

    for verb_parser in actions.add_verb_parsers(sub).values():
        _common(verb_parser, argparse.SUPPRESS)
        running(verb_parser)
        verb_parser.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS, help="refuse every change")


AUTH_PROVIDERS = ("railway", "aws", "rabbitmq", "kubernetes", "compose", "local")  # credentials.KNOWN


def _auth_parsers(sub: argparse._SubParsersAction) -> None:
    auth = sub.add_parser("auth", help="provider credentials in the OS keyring: set, delete, or where they come from")
    asub = auth.add_subparsers(dest="auth_command", metavar="set | delete | status", parser_class=_Parser,
                               required=True)
    helps = {"set": "keep a credential in the OS keyring (read from stdin, or a hidden prompt; never argv)",
             "delete": "remove a credential from the OS keyring",
             "status": "where each credential comes from (environment, keyring, missing); never its value"}
    for name, text in helps.items():
        leaf = asub.add_parser(name, help=text, description=text)
        leaf.add_argument("provider", metavar="PROVIDER", choices=AUTH_PROVIDERS,
                          help=" | ".join(AUTH_PROVIDERS))
        leaf.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")
        if name != "status":
            leaf.add_argument("--key", metavar="KEY", help="which credential (railway: token; aws: access_key_id, "
                                                           "secret_access_key, session_token; rabbitmq: USER@HOST)")


def _is_check(argv: Sequence[str]) -> bool:
    words = [a for a in argv if not a.startswith("-")]
    return bool(words) and words[0] == "check" or (len(words) > 1 and words[1] == "check")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        if args.command == "check":
            return cmd_check(args)
        if args.command == "envs":
            return cmd_envs(args)
        if args.command == "snapshot":
            return cmd_snapshot(args)
        if args.command == "journal":
            return cmd_journal(args)
        if args.command == "runbooks":
            return cmd_runbooks(args)
        if args.command == "plan":
            return cmd_plan(args)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "backups":
            return cmd_backups(args)
        if args.command == "auth":
            return cmd_auth(args)
        if getattr(args, "action_verb", None):
            return cmd_action(args)
        return cmd_tui(args)
    except UserError as exc:
        print(masking.printable(str(exc)), file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) or _is_check(argv) else EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `opsconsole check | head -1`: the reader left; so do we, quietly, as a shell tool does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141


def cmd_check(args: argparse.Namespace) -> int:
    from opsconsole import config, report
    from opsconsole.health import Monitor

    if args.rounds and not args.watch:
        raise UsageError("opsconsole check: --rounds needs --watch SECONDS")
    cfg = config.load(args.config)
    env = cfg.environment(args.env)
    rounds = args.rounds or (None if args.watch else 1)

    def show(rnd) -> None:
        if args.json:
            print(report.dumps(report.round_json(rnd)), flush=True)
        else:
            print(report.table(rnd) + ("\n" if args.watch else ""), flush=True)

    async def watch() -> int:
        # One Monitor across rounds, so queues get their trend; rounds never overlap.
        monitor = Monitor(env, cfg.timeout)
        code = 3
        done = 0
        try:
            while rounds is None or done < rounds:
                rnd = await monitor.round()
                done += 1
                show(rnd)
                code = rnd.status.exit_code
                if rounds is None or done < rounds:
                    await asyncio.sleep(max(0.0, args.watch - rnd.duration_s))
        finally:
            await monitor.aclose()
        return code

    return asyncio.run(watch())


def cmd_envs(args: argparse.Namespace) -> int:
    from opsconsole import config

    cfg = config.load(args.config)
    rows = []
    names = (cfg.known_environment(args.env),) if args.env else cfg.environment_names
    for name in names:
        raw = cfg.summary(name)
        rows.append({
            "name": name,
            "provider": raw.get("provider", "local"),
            "protection": raw.get("protection", "open"),
            "read_only": bool(raw.get("read_only", False)),
            "services": len(raw.get("services", {})),
            "queues": len(raw.get("queues", {})),
            "default": name == cfg.default_environment,
        })
    if args.json:
        print(json.dumps({"config": cfg.source, "environments": rows}))
        return 0
    print(f"config: {cfg.source}")
    header = ("ENVIRONMENT", "PROVIDER", "PROTECTION", "READ-ONLY", "SERVICES", "QUEUES")
    table = [header] + [
        (r["name"] + (" *" if r["default"] else ""), r["provider"], r["protection"],
         "yes" if r["read_only"] else "no", str(r["services"]), str(r["queues"]))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def cmd_journal(args: argparse.Namespace) -> int:
    from opsconsole import config, journal

    cfg = config.load(args.config)
    with journal.open_for_config(cfg) as store:
        if args.journal_command == "show":
            run = store.get(args.run_id)
            print(json.dumps({"journal": store.location, **journal.run_json(run, detail=True)}) if args.json
                  else masking.printable(journal.format_run(run)))
            return 0
        runs = store.runs(limit=args.limit, environment=args.env)
        if args.json:
            print(json.dumps({"journal": store.location, "runs": [journal.run_json(r) for r in runs]}))
        elif runs:
            print(masking.printable(journal.format_runs(runs)))
        elif args.env and args.env not in cfg.environment_names:
            # A typo, not a quiet environment: say so (runs of an environment since removed still list above).
            raise UserError(f"unknown environment {args.env!r} (known: {', '.join(cfg.environment_names)}), and "
                            f"the journal {store.location} has no runs for it")
        else:
            where = f" for environment {args.env!r}" if args.env else ""
            print(f"no runs{where} in the journal {store.location}", file=sys.stderr)
        return 0


def cmd_tui(args: argparse.Namespace) -> int:
    from opsconsole.ui.app import load_and_create

    # Config, theme and keymap errors are raised here, before the screen takes over.
    app = load_and_create(args.config, args.env, read_only=args.read_only)
    app.run()
    return app.return_code or 0  # 130 after a hang-up or SIGTERM


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected COLUMNSxROWS such as 120x40, got {text!r}") from None
    if not (40 <= width <= 500 and 10 <= height <= 300):
        raise argparse.ArgumentTypeError(f"size {text} is out of range (40x10 to 500x300)")
    return width, height


def cmd_snapshot(args: argparse.Namespace) -> int:
    from pathlib import Path

    output = Path(args.output)
    if output.suffix.lower() != ".svg":
        raise UsageError(f"opsconsole snapshot: --output must name an .svg file, got {args.output!r}")
    if not output.parent.is_dir():
        raise UserError(f"opsconsole snapshot: no such directory: {output.parent}")
    from opsconsole.ui.app import load_and_create

    app = load_and_create(args.config, args.env, read_only=args.read_only, snapshot=output.resolve())
    app.run(headless=True, size=args.size)
    if not output.exists():
        raise UserError(f"opsconsole snapshot: the dashboard could not be rendered to {output}")
    print(f"wrote {output}", file=sys.stderr)
    return 0


def cmd_runbooks(args: argparse.Namespace) -> int:
    from pathlib import Path

    from opsconsole import config, runbook, runbook_report

    cfg = config.load(args.config)
    if args.runbooks_command == "validate":
        env = cfg.environment(args.env) if getattr(args, "env", None) else None
        if args.paths:
            paths = [Path(p) for p in args.paths]
        else:
            paths = [path for path, _shelf, _hidden in runbook.catalog(runbook.shelves(cfg))]
            if not paths:
                raise UserError("no runbooks to validate")
        text, invalid = runbook_report.validate(paths, env)
        print(masking.printable(text))
        return 1 if invalid else 0
    if args.runbooks_command == "show":
        book = runbook.load(runbook.find(args.name, runbook.shelves(cfg)))
        out = json.dumps(runbook_report.as_json(book)) if args.json else runbook_report.outline(book)
        print(masking.mask(out) if args.json else masking.printable(out))
        return 0
    shelves = runbook.shelves(cfg)
    entries = runbook_report.listing(shelves)
    if args.json:
        print(masking.mask(json.dumps({"directory": str(cfg.runbooks),
                                       "search_path": [{"path": str(s.path), "source": s.label} for s in shelves],
                                       "runbooks": entries})))
    else:
        print(masking.printable(runbook_report.table(shelves, entries)))
    return 1 if any(not e["valid"] for e in entries) else 0


def _given(args: argparse.Namespace) -> dict[str, str]:
    """The -p params; `-p KEY=-` reads KEY's value from stdin (a hidden prompt on a terminal), so a secret
    need not sit in opsconsole's own argv."""
    from opsconsole import terminal

    given: dict[str, str] = {}
    from_stdin = [key for key, value in args.params if value == "-"]
    if len(from_stdin) > 1:
        raise UsageError(f"opsconsole {args.command}: only one -p KEY=- can read stdin (got {', '.join(from_stdin)})")
    for key, value in args.params:
        if key in given:
            raise UsageError(f"opsconsole {args.command}: -p {key} given twice")
        given[key] = terminal.read_param(key) if value == "-" else value
    return given


def _ask_missing_secrets(book, given: dict[str, str], resume=None) -> dict[str, str]:
    """On a terminal, `secret` params the run needs and -p did not give are asked for at a hidden prompt:
    required ones without a default, or (resuming) the ones the journal keeps masked."""
    from opsconsole import engine, terminal

    if resume is not None:
        masked = set(engine.masked_params(book, resume))
        wanted = [p for p in book.params if p.name in masked]
    else:
        wanted = [p for p in book.params if p.type == "secret" and p.required and p.default is None]
    return terminal.ask_secrets(wanted, given, tty=sys.stdin.isatty())


def cmd_plan(args: argparse.Namespace) -> int:
    from opsconsole import config, engine, runbook, terminal

    cfg = config.load(args.config)
    env = cfg.environment(args.env)
    book = runbook.load(runbook.find(args.runbook, runbook.shelves(cfg)))
    plan = engine.build_plan(cfg, env, book, _ask_missing_secrets(book, _given(args)), read_only=args.read_only)
    print(masking.mask(json.dumps(plan.to_json())) if args.json else masking.printable(terminal.format_plan(plan)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from opsconsole import config, engine, journal, runbook

    cfg = config.load(args.config)
    env = cfg.environment(args.env)
    book = runbook.load(runbook.find(args.runbook, runbook.shelves(cfg)))
    given = _given(args)
    with journal.open_for_config(cfg) as store:
        resume = store.get(args.resume) if args.resume else None
        given = _ask_missing_secrets(book, given, resume)
        if resume is not None:
            given = engine.resume_params(book, resume, given)
        plan = engine.build_plan(cfg, env, book, given, read_only=args.read_only)
        if args.fingerprint is not None:
            wanted = args.fingerprint.strip().lower()
            if len(wanted) < 12 or not plan.fingerprint.startswith(wanted):
                raise UserError(f"the plan differs from the one you reviewed (fingerprint {wanted[:16]}, now "
                                f"{plan.fingerprint[:16]}): look at `opsconsole plan {args.runbook}` again; nothing was run")
        if resume is not None:
            engine.check_resume(plan, resume)
        return _execute(args, cfg, env, plan, store, resume)


def _auth_keys(args: argparse.Namespace) -> list[str]:
    """The keyring keys `auth set|delete PROVIDER [--key KEY]` acts on."""
    from opsconsole import config, credentials

    provider, key = args.provider, args.key
    if provider in credentials.NOTHING_KEPT:
        raise UserError(f"opsconsole auth {args.auth_command} {provider}: {credentials.NOTHING_KEPT[provider]}")
    if provider == "rabbitmq":
        if key is None:
            accounts = [a for a, _, in_url in credentials.rabbitmq_accounts(config.load(args.config)) if not in_url]
            if len(accounts) != 1:
                which = f" (the config uses: {', '.join(accounts)})" if accounts else ""
                raise UsageError(f"opsconsole auth {args.auth_command} rabbitmq: say which account with --key "
                                 f"USER@HOST{which}")
            return accounts
        if not re.fullmatch(r"[^@\s/]+@[^@\s/]+", key):
            raise UsageError(f"opsconsole auth {args.auth_command} rabbitmq: --key must be USER@HOST, got {key!r}")
        return [key]
    specs = credentials.KNOWN[provider]
    if key is not None:
        if key not in {s.key for s in specs}:
            raise UsageError(f"opsconsole auth {args.auth_command} {provider}: --key must be one of "
                             f"{', '.join(s.key for s in specs)}, got {key!r}")
        return [key]
    if args.auth_command == "set":
        return [s.key for s in specs if not s.optional]
    return [s.key for s in specs]


def cmd_auth(args: argparse.Namespace) -> int:
    from opsconsole import config, credentials, terminal

    if args.auth_command == "status":
        cfg = config.load(args.config) if args.provider in ("aws", "rabbitmq") else None
        name = credentials.backend_name()
        rows = [("OS keyring", f"{name} (service opsconsole)" if name else f"none usable: {credentials.NO_BACKEND}"),
                *credentials.status(args.provider, cfg)]
        width = max(len(what) for what, _ in rows)
        for what, source in rows:
            print(masking.mask(f"{what.ljust(width)}  {source}"))
        return 0
    keys = _auth_keys(args)
    if credentials.backend() is None:  # before asking for anything
        raise UserError(credentials.NO_BACKEND)
    if args.auth_command == "delete":
        for key in keys:
            gone = credentials.delete(args.provider, key)
            print(f"{'deleted' if gone else 'not in the OS keyring:'} {credentials.account(args.provider, key)}")
        return 0
    tty = sys.stdin.isatty()
    for key in keys:
        value = terminal.read_line_secret(f"{args.provider} {key}: ", tty=tty)
        if not value:
            raise UserError(f"opsconsole auth set {args.provider}: no value for {key} (nothing was stored)")
        credentials.store(args.provider, key, value)
        print(f"stored {credentials.account(args.provider, key)} in the OS keyring (service opsconsole)")
    return 0


def cmd_backups(args: argparse.Namespace) -> int:
    from opsconsole import backups, config

    cfg = config.load(args.config)
    env = cfg.environment(args.env)
    if args.database is not None and args.database not in {t.name for t in env.services}:
        known = ", ".join(t.name for t in env.services if t.kind == "postgres") or "none"
        raise UserError(f"environment {env.name!r} has no service {args.database!r} (postgres services: {known})")
    directory = backups.backups_dir(env.name)
    found = backups.list_backups(directory, args.database)
    if args.json:
        print(json.dumps({"environment": env.name, "directory": str(directory),
                          "backups": [b.to_json() for b in reversed(found)]}))
        return 0
    if not found:
        what = f" of {args.database}" if args.database else ""
        print(f"no backups{what} in {directory} (`opsconsole backup DATABASE` takes one)", file=sys.stderr)
        return 0
    print(f"backups: {directory}")
    print(backups.format_listing(found))
    return 0


def cmd_action(args: argparse.Namespace) -> int:
    from opsconsole import actions, config, engine, journal

    cfg = config.load(args.config)
    env = cfg.environment(args.env)
    action = actions.checked(actions.from_namespace(args))
    plan = engine.build_plan(cfg, env, engine.action_runbook(action, env), {}, read_only=args.read_only)
    with journal.open_for_config(cfg) as store:
        return _execute(args, cfg, env, plan, store, None)


def _execute(args: argparse.Namespace, cfg, env, plan, store, resume) -> int:
    """Run a plan from the command line: the headless rules first, then the engine with a terminal or flags."""
    import signal

    from opsconsole import engine, journal, terminal

    if plan.refused:
        step, _ = plan.refused[0]
        raise UserError(f"environment {plan.environment!r} is read-only: step {step.index} ({step.title}) would "
                        "change it; nothing was run")
    done = {i for i, s in resume.latest_steps().items() if s.status in journal.DONE} if resume else set()
    remaining = [s for s in plan.steps if s.index not in done]
    tty = sys.stdin.isatty()
    terminal.require_confirmations(plan, remaining, tty=tty, yes=args.yes, confirm_env=args.confirm_env)
    write = terminal.printer()
    if tty:
        prompter = terminal.TerminalPrompter(plan.environment, yes=args.yes, confirm_env=args.confirm_env,
                                             on_failure=args.on_failure, note=args.note, write=write)
    else:
        prompter = engine.HeadlessPrompter(plan.environment, yes=args.yes, confirm_env=args.confirm_env,
                                           on_failure=args.on_failure or "abort", note=args.note, write=write)

    def stop(signum, frame):  # SIGHUP (a closed terminal), SIGTERM (a supervisor) end the run like Ctrl-C: resumable
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    if resume is None and args.command == "run":
        from opsconsole import resume as resume_mod

        earlier = resume_mod.unfinished_of(store, plan.environment, plan.runbook)
        if earlier is not None and earlier.content_hash == plan.runbook.content_hash:  # else it cannot resume
            print(f"note: run {earlier.run_id} of {args.runbook} {earlier.status} at step "
                  f"{min(earlier.steps_done + 1, earlier.steps_total)}/{earlier.steps_total} "
                  f"({earlier.started_at.astimezone().strftime('%Y-%m-%d %H:%M %Z')}); this is a new run from step 1 "
                  f"- to continue that one instead: opsconsole run {args.runbook} --resume {earlier.run_id}",
                  file=sys.stderr)
    write(f"Plan fingerprint: {plan.fingerprint}")
    runner = engine.Engine(plan, store, cfg, env, prompter, take_over=args.take_over)

    def resume_hint(run_id: str) -> str:  # only `run` can resume; an action verb is run again instead
        return f"resume it with `opsconsole run {args.runbook} --resume {run_id}`" if args.command == "run" else ""
    try:
        record = runner.run(resume)
    except KeyboardInterrupt:
        if not runner.run_id:
            raise
        hint = resume_hint(runner.run_id)
        print(f"interrupted: run {runner.run_id} stopped" + (f": {hint}" if hint else ""), file=sys.stderr)
        return 130
    except engine.JournalLost as exc:
        hint = resume_hint(exc.run_id) if exc.resumable else ""
        print(masking.printable(str(exc)) + (f"; once the journal is back, {hint}" if hint else ""), file=sys.stderr)
        return 1
    if record.status != "succeeded":
        hint = resume_hint(record.run_id) if record.status in ("failed", "aborted") else ""
        print(f"run {record.run_id} {record.status}; see `opsconsole journal show {record.run_id}`"
              + (f", or {hint}" if hint else ""), file=sys.stderr)
    return 0 if record.status == "succeeded" else 1
