"""What `opsconsole runbooks list | validate | show` print: tables, problem lines, outlines, JSON."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole import runbook
from opsconsole.errors import ConfigError, UserError
from opsconsole.runbook import Block, Runbook

if TYPE_CHECKING:
    from opsconsole.config import Environment


shown = runbook.shown_path


def _problem(error: UserError) -> str:
    return str(ConfigError(error.message, shown(error.path) if error.path is not None else None, error.line))


def validate(paths: list[Path], environment: Environment | None = None) -> tuple[str, int]:
    """One `path:line: message` per problem (every problem of every file), one `path: ok` per good
    runbook, and a closing count. Returns (text, number of invalid files). A path that does not
    exist, or a directory without runbooks, is a UserError (a usage mistake, not an invalid runbook).
    A block line holding an invisible character (zero-width, bidi, U+00A0...) is a problem: such a runbook still
    loads, shown escaped, but is refused on `typed` environments. With an environment, an `expect` naming a member
    or field it does not have is a problem too."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = runbook.runbook_files(path)
            if not found:
                raise UserError(f"no runbooks (*.md) in {shown(path)}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"no such file or directory: {shown(path)}")
    lines: list[str] = []
    invalid = 0
    for path in files:
        book, problems = runbook.inspect(path)
        if book is not None:
            problems = [*problems, *runbook.invisible_characters(book)]
        if book is not None and environment is not None:
            problems = [*problems, *_expectation_problems(book, environment)]
        if problems:
            invalid += 1
            lines.extend(_problem(p) for p in problems)
        else:
            assert book is not None
            lines.append(f"{shown(path)}: ok, {_steps(len(book.steps))}")
            from opsconsole import lint

            lines.extend(f"{shown(path)}:{a.line}: advice: {a.message}" for a in lint.advice(book))
    lines.append(f"{len(files)} runbook{'s' if len(files) != 1 else ''} checked: "
                 f"{len(files) - invalid} valid, {invalid} invalid")
    return "\n".join(lines), invalid


def _expectation_problems(book: Runbook, environment: Environment) -> list[UserError]:
    """`expect` lines that can never hold in `environment`, read with the params' defaults; a line still holding a
    {{ placeholder }} without one (a required param, a {{ previous.* }}) is checked by `plan` once it is known."""
    from opsconsole import expect

    defaults = {p.name: p.default for p in book.params if p.default is not None and p.type != "member"}
    # A member param is what the environment offers (its default only where the environment has it); where it
    # leaves a choice, the lines using it are checked by `plan` once it is given.
    defaults.update({p.name: chosen for p in book.params
                     if p.type == "member" and (chosen := p.member_default(environment)) is not None})
    problems: list[UserError] = []
    for step in book.steps:
        for block in step.blocks:
            if block.lang != "ops":
                continue
            lines = block.source.split("\n")
            try:
                rendered = runbook.render(block, defaults, {}, book.path).split("\n")
            except UserError:
                rendered = []
            if len(rendered) != len(lines):  # not renderable with the defaults alone: the lines without a placeholder
                rendered = ["" if "{{" in line else line for line in lines]
            try:
                items = runbook.parse_ops(block, "\n".join(rendered), book.path)
            except UserError:
                continue  # inspect() reported it already
            for exp in (i for i in items if isinstance(i, expect.Expectation)):
                why = expect.unknowable(exp, environment)
                if why is not None:
                    templated = "{{" in lines[exp.line - block.line - 1]
                    given = " (with the params' defaults)" if templated else ""
                    problems.append(UserError(f"`{exp.text}`{given}: {why}", book.path, exp.line))
    return problems


def _steps(n: int) -> str:
    return f"{n} step{'s' if n != 1 else ''}"


def listing(shelves: tuple[runbook.Shelf, ...]) -> list[dict[str, Any]]:
    """Every runbook on the search path with its title, summary, step count (or its first problem) and where it
    came from (`source`: the user's folder or `built-in`; `overrides`: the built-in one it hides)."""
    entries = []
    for path, shelf, hidden in runbook.catalog(shelves):
        book, problems = inspected(path)
        entries.append({
            "name": path.stem,
            "path": str(path),
            "source": shelf.label,
            "overrides": hidden.label if hidden is not None else None,
            "title": book.title if book else path.stem,
            "summary": book.summary if book else "",
            "steps": len(book.steps) if book else 0,
            "environments": list(book.environments) if book and book.environments is not None else None,
            "params": [p.name for p in book.params] if book else [],
            "valid": not problems,
            "problems": [_problem(p) for p in problems],
        })
    return entries


_INSPECTED: dict[Path, tuple[tuple[int, int], Any]] = {}


def inspected(path: Path) -> Any:
    """runbook.inspect, once per version of the file (mtime, size): listings and the palette ask again and again
    (the palette on every key), and reading a runbook runs `bash -n` per shell block."""
    try:
        stat = path.stat()
    except OSError:
        return runbook.inspect(path)
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _INSPECTED.get(path)
    if cached is None or cached[0] != key:
        cached = (key, runbook.inspect(path))
        _INSPECTED[path] = cached
    return cached[1]


def table(shelves: tuple[runbook.Shelf, ...], entries: list[dict[str, Any]]) -> str:
    where = ", then ".join(s.label for s in shelves) or "nowhere"
    if not entries:
        return f"no runbooks in {where}"
    rows = [("NAME", "FROM", "STEPS", "TITLE", "SUMMARY")]
    for e in entries:
        summary = e["summary"] if e["valid"] else f"INVALID: {e['problems'][0]}"
        source = e["source"] + (f" (over {e['overrides']})" if e["overrides"] else "")
        rows.append((e["name"], source, str(e["steps"]) if e["valid"] else "-", e["title"], summary))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = [f"runbooks: {where}"]
    for row in rows:
        out.append("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[4]]).rstrip())
    invalid = [e for e in entries if not e["valid"]]
    if invalid:
        out.append(f"{len(invalid)} invalid: opsconsole runbooks validate "
                   + " ".join(dict.fromkeys(shown(Path(e["path"]).parent) for e in invalid)))
    return "\n".join(out)


def _param_line(p: runbook.Param) -> list[str]:
    if p.default is not None:
        default = f"default {runbook.value_text(p.default)}"
    else:
        default = "required" if p.required else "optional"
    return [p.name, p.describe(), default, p.description]


def _block_head(block: Block) -> str:
    bits = [f"{block.lang} {block.role}"]
    if block.name:
        bits.append(f"name {block.name}")
    if block.confirm:
        bits.append(f"confirm {block.confirm}")
    if block.timeout_s is not None:
        bits.append(f"timeout {duration(block.timeout_s)}")
    if block.retries:
        bits.append(f"retries {block.retries}")
    return ", ".join(bits) + f"  (line {block.line})"


def duration(seconds: float) -> str:
    """300 -> 5m, 5400 -> 1h30m, 0.25 -> 250ms: as a runbook author writes it."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


def outline(book: Runbook) -> str:
    """The runbook as `show` prints it: header, params, then every step's prose and blocks."""
    out = [f"{book.title}  ({book.name}, {shown(book.path)})"]
    if book.summary:
        out.append(book.summary)
    out.append("environments: " + (", ".join(book.environments) if book.environments else "any"))
    out.append("")
    if book.intro:
        out.append(textwrap.indent(book.intro, "  "))
        out.append("")
    if book.params:
        out.append("Params")
        rows = [_param_line(p) for p in book.params]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            out.append(("  " + "  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[3]])).rstrip())
        out.append("")
    out.append("Steps")
    for step in book.steps:
        where = f"in {' › '.join(step.context)}, line {step.line}" if step.context else f"line {step.line}"
        out.append(f"  {step.index}. {step.title}  ({where})")
        if step.prose:
            out.append(textwrap.indent(step.prose, "     "))
        for block in step.blocks:
            out.append(f"     [{_block_head(block)}]")
            out.append(textwrap.indent(block.source.rstrip("\n"), "       ", lambda _: True))
        out.append("")
    return "\n".join(out).rstrip()


def as_json(book: Runbook) -> dict[str, Any]:
    return {
        "name": book.name,
        "path": str(book.path),
        "title": book.title,
        "summary": book.summary,
        "intro": book.intro,
        "environments": list(book.environments) if book.environments is not None else None,
        "content_hash": book.content_hash,
        "params": [{
            "name": p.name, "type": p.type, "default": p.default, "required": p.required, "min": p.minimum,
            "max": p.maximum, "choices": list(p.choices), "pattern": p.pattern, "kind": p.kind,
            "description": p.description, "line": p.line,
        } for p in book.params],
        "steps": [{
            "index": s.index, "title": s.title, "context": list(s.context), "line": s.line, "prose": s.prose, "fingerprint": s.fingerprint(),
            "blocks": [{
                "lang": b.lang, "role": b.role, "confirm": b.confirm, "timeout_s": b.timeout_s,
                "retries": b.retries, "name": b.name, "line": b.line, "source": b.source,
                "placeholders": sorted(runbook.placeholders(b)), "attrs": dict(b.attrs),
            } for b in s.blocks],
        } for s in book.steps],
    }
