"""The one entry point: `opsconsole` opens the TUI; subcommands do the same work without a screen."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from opsconsole import __version__, masking
from opsconsole.errors import UserError

EXIT_USAGE = 2
EXIT_CHECK_USAGE = 3  # Nagios: UNKNOWN


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

    envs = sub.add_parser("envs", help="list environments, provider and protection")
    _common(envs, argparse.SUPPRESS)
    envs.add_argument("--json", action="store_true", help="print JSON")
    return parser


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
        return cmd_tui(args)
    except UserError as exc:
        print(masking.mask(str(exc)), file=sys.stderr)
        return EXIT_CHECK_USAGE if _is_check(argv) else EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


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
    for name in cfg.environment_names:
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


def cmd_tui(args: argparse.Namespace) -> int:
    from opsconsole import config

    cfg = config.load(args.config)
    env = cfg.environment(args.env)  # fail on bad config before the screen takes over
    from opsconsole.ui.app import OpsConsole

    OpsConsole(cfg, env, read_only=args.read_only).run()
    return 0
