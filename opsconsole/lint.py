"""Advice on a runbook's shell blocks, with a line number: what a reviewer who has been paged at 3 a.m. would say.

Lint is advice, not a wall: `runbooks validate` and `plan` print it, and a runbook with advice still runs. The one
rule that refuses is a development-only command (`prisma migrate dev`, `db push`, `--force-reset`, `rails
db:reset`…) on an environment whose name must be typed to confirm (`refuse_development`): those commands may drop
and recreate a database, which on production is an outage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opsconsole.runbook import Block, Runbook

# Commands meant for a developer's own database: they reset, drop or push a schema without migrations.
_DEVELOPMENT = [
    (re.compile(r"\bprisma\s+migrate\s+(?:dev|reset)\b"), "`prisma migrate dev/reset` may reset the database"),
    (re.compile(r"\bprisma\s+db\s+push\b"), "`prisma db push` changes the schema without a migration"),
    (re.compile(r"--force-reset\b"), "`--force-reset` drops the database first"),
    (re.compile(r"\b(?:rails|rake)\s+db:(?:reset|drop|schema:load|setup)\b"), "this rails task drops or reloads the "
                                                                              "database"),
    (re.compile(r"\bmanage\.py\s+(?:flush|reset_db)\b"), "this Django command empties the database"),
    (re.compile(r"\bartisan\s+migrate:(?:fresh|reset|refresh)\b"), "this Laravel command drops every table"),
    (re.compile(r"\bsequelize(?:-cli)?\s+db:drop\b"), "`sequelize db:drop` drops the database"),
]
_PIPE_TO_SHELL = re.compile(r"\b(?:curl|wget)\b[^|#\n]*\|\s*(?:sudo\s+)?(?:ba|z)?sh\b")
# Hand-made versions of what a verb does with a plan, a journal entry, verification and an undo.
_BY_HAND = [
    (re.compile(r"\brailway\s+variables?\s+(?:set\s+|--set\s+)['\"]?(?P<name>[A-Z][A-Z0-9_]*)="), "rotate-secret"),
    (re.compile(r"\bkubectl\s+(?:create\s+secret|set\s+env)\b"), "rotate-secret"),
    (re.compile(r"\bkubectl\s+scale\b|\brailway\s+service\s+update\b[^#\n]*--replicas\b|"
                r"\bdocker[- ]compose\b[^#\n]*\bup\b[^#\n]*--scale\b"), "scale"),
    (re.compile(r"\bkubectl\s+rollout\s+restart\b|\brailway\s+(?:redeploy|up)\b"), "deploy"),
    (re.compile(r"\bprisma\s+migrate\s+deploy\b|\bmanage\.py\s+migrate\b|\b(?:rails|rake)\s+db:migrate\b|"
                r"\bartisan\s+migrate\b(?!:)"), "migrate"),
    (re.compile(r"\bpg_dump\b"), "backup"),
    (re.compile(r"\bpg_restore\b|\bpsql\b[^#\n]*<\s*\S+\.sql\b"), "restore-backup"),
]
_WHY = {
    "rotate-secret": "keeps the old value and can roll it back, restarts what uses it and verifies it",
    "scale": "reads the replica count first, so the rollback puts it back",
    "deploy": "names the deployment it replaces and waits for the new one to be healthy",
    "migrate": "runs the service's configured migrate command, journaled with its output",
    "backup": "writes a manifest (size, sha256, tables) that restore-backup verifies",
    "restore-backup": "verifies the dump and takes a safety copy of the database first",
}


@dataclass(frozen=True)
class Advice:
    line: int
    message: str


def development_command(text: str) -> str | None:
    """Why a script line is a development-only command, or None."""
    return next((why for pattern, why in _DEVELOPMENT if pattern.search(text)), None)


def _code_lines(block: Block) -> list[tuple[int, str]]:
    out = []
    for k, line in enumerate(block.source.split("\n")):
        if line.lstrip().startswith("#"):
            continue
        out.append((block.line + 1 + k, line.split(" #", 1)[0]))
    return out


def advice(book: Runbook, provider: str | None = None) -> list[Advice]:
    """Every piece of advice on the runbook's shell blocks, in line order; `provider`: where it is planned (None:
    anywhere, as `validate` reads it)."""
    secrets = {p.name for p in book.params if p.type == "secret"}
    out: list[Advice] = []
    for step in book.steps:
        for block in step.blocks:
            if block.lang != "sh":
                continue
            if block.generates_secret:
                out.append(Advice(block.line, "this block generates a secret: opsconsole hides its output and masks "
                                              "it; `rotate-secret NAME` generates, stores and restarts in one "
                                              "step, and can roll back"))
            for line, text in _code_lines(block):
                why = development_command(text)
                if why:
                    out.append(Advice(line, f"{why}: a development-only command; refused where the environment's "
                                            "name is typed to confirm"))
                if _PIPE_TO_SHELL.search(text):
                    out.append(Advice(line, "pipes a download into a shell: what runs is whatever the server sends "
                                            "that day; download, check its checksum, then run it"))
                for name in secrets:
                    if re.search(r"\{\{\s*" + re.escape(name) + r"\s*\}\}", text) and \
                            not _safe_secret_use(text, provider):
                        out.append(Advice(line, f"{{{{ {name} }}}} is a secret and lands in this command's argv, "
                                                "which every user of the host can read (ps): pass it on stdin or in "
                                                "an environment variable"))
                for pattern, verb in _BY_HAND:
                    found = pattern.search(text)
                    if found:
                        what = f"{verb} {found.group('name')}" if "name" in pattern.groupindex and \
                            found.group("name") else verb
                        out.append(Advice(line, f"this does `{verb}` by hand: `opsconsole {what}` (an ops block: "
                                                f"`{what}`) {_WHY[verb]}"))
                        break
    return sorted(out, key=lambda a: a.line)


def _safe_secret_use(text: str, provider: str | None) -> bool:
    """A secret that stays out of argv: an assignment, an export, a here-string, or on a railway environment
    `railway variables set KEY=…` / `--set` (whose value opsconsole's railway function sends on stdin)."""
    stripped = text.strip()
    if re.match(r"(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*=\S*\{\{", stripped) or "<<<" in stripped:
        return True
    return provider == "railway" and bool(re.search(r"\brailway\s+(?:variables?|vars?)\s+(?:set\b|--set\b)",
                                                     stripped))


def refuse_development(book: Runbook, environment: str, protection: str) -> None:
    """UserError when a development-only command would run where the environment's name is typed to confirm."""
    from opsconsole.errors import UserError

    if protection != "typed":
        return
    for step in book.steps:
        for block in step.blocks:
            if block.lang != "sh":
                continue
            for line, text in _code_lines(block):
                why = development_command(text)
                if why:
                    raise UserError(f"{why}: a development-only command does not run on {environment!r} "
                                    "(protection typed); use the deploy-time command (`prisma migrate deploy`, "
                                    "`rails db:migrate`, …) or the migrate verb", book.path, line)
