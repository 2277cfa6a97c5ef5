"""README.md and docs/ stay true to the code: every link resolves, every runbook and config example loads, every
flag exists, and the references name every key, type and verb the code accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from opsconsole import actions, cli, config, config_schema, expect, probes, runbook, thresholds

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
SHIPPED = ROOT / "opsconsole" / "shipped_runbooks"


def _page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def split_fences(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(the lines outside code fences, [(info string, body)] of every top-level fenced block). A fence closes on a
    line of at least as many backticks as opened it, so ```` blocks may hold ``` blocks."""
    prose: list[str] = []
    blocks: list[tuple[str, str]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"(`{3,})(.*)", lines[i])
        if m is None:
            prose.append(lines[i])
            i += 1
            continue
        ticks, info = m.group(1), m.group(2).strip()
        body: list[str] = []
        i += 1
        while i < len(lines) and not re.fullmatch(re.escape(ticks) + r"`*\s*", lines[i]):
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"a {ticks} block opened with {info!r} is never closed"
        blocks.append((info, "\n".join(body) + "\n"))
        i += 1
    return prose, blocks


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for line in prose:
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", "\n".join(prose))  # inline code is not a link
    return re.findall(r"\]\(([^)\s]+)\)", text)


def commands(path: Path) -> list[str]:
    """Every `opsconsole ...` command line the page shows: in code blocks (after `$ `) and in inline code."""
    prose, blocks = split_fences(path.read_text(encoding="utf-8"))
    found = re.findall(r"`(opsconsole [^`\n]+)`", "\n".join(prose))
    for _info, body in blocks:
        for line in body.split("\n"):
            m = re.match(r"(?:\$ )?(opsconsole .*)", line.strip())
            if m:
                found.append(m.group(1))
    # What follows a command: a `# comment`, or a description after two spaces.
    return [re.split(r"\s+#|\s{2,}", c)[0] for c in found]


# --- the pages ----------------------------------------------------------------------------------------------------


def test_the_readme_stays_short_and_user_first():
    text = README.read_text(encoding="utf-8")
    assert len(text.split("\n")) < 400
    headings = [line[3:] for line in split_fences(text)[0] if line.startswith("## ")]
    assert headings[:7] == ["Two commands", "The screens", "Configuration", "Runbooks", "Providers", "Command line",
                            "Documentation"]


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_link_and_picture_resolves(page: Path):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # https://..., mailto:
        file_part, _, anchor = target.partition("#")
        destination = (page.parent / file_part).resolve() if file_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and anchor not in anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    assert broken == []


def test_link_checking_can_fail(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Two words\n\n[a](#two-words) [b](#three) [c](missing.md) `[d](#inline)`\n"
                    "```\n[e](#in-a-block)\n```\n")
    assert anchors(page) == {"title", "two-words"}
    assert links(page) == ["#two-words", "#three", "missing.md"]
    assert slug("`.env` files and `${NAME}`") == "env-files-and-name"
    assert slug("`[environments.NAME]`") == "environmentsname"


def test_docs_are_all_linked_from_the_readme():
    linked = {target.partition("#")[0] for target in links(README)}
    assert {f"docs/{p.name}" for p in DOCS.glob("*.md")} <= linked


def test_no_pointer_to_the_spec_outside_the_repository():
    """SPEC.md lives outside the repository: the docs/ page holding the contract is what to point at."""
    pointer = re.compile("SPEC" + r"\s+(section|§)\s*\d", re.IGNORECASE)
    here = Path(__file__).resolve()
    found = []
    for path in [README, *DOCS.rglob("*.md"), *(ROOT / "opsconsole").rglob("*"), *(ROOT / "tests").rglob("*.py"),
                 *(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "screenshots").glob("*.py"), ROOT / "Makefile",
                 ROOT / "pyproject.toml"]:
        if path == here or not path.is_file() or path.suffix not in (".py", ".md", ".toml", ""):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").split("\n"), start=1):
            if pointer.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}")
    assert found == []


# --- examples -----------------------------------------------------------------------------------------------------


def markdown_examples() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for n, (info, body) in enumerate(split_fences(page.read_text(encoding="utf-8"))[1]):
            if info == "markdown":
                out.append((f"{_page_id(page)}#{n}", body))
    return out


@pytest.mark.parametrize("example", markdown_examples(), ids=lambda e: e[0])
def test_every_runbook_example_is_a_valid_runbook(example: tuple[str, str]):
    name, body = example
    book, problems = runbook.parse(body, Path("example.md"))
    assert [f"{p.line}: {p.message}" for p in problems] == []
    assert book is not None and book.steps


def toml_examples() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        for n, (info, body) in enumerate(split_fences(page.read_text(encoding="utf-8"))[1]):
            if info == "toml":
                out.append((f"{_page_id(page)}#{n}", body))
    return out


@pytest.mark.parametrize("example", toml_examples(), ids=lambda e: e[0])
def test_every_config_example_loads(example: tuple[str, str], tmp_path: Path):
    """A snippet without an environment gets one, as any real config has; every key in it must be one the loader
    reads, and every keymap id one the TUI has."""
    _, body = example
    text = body if "[environments." in body else body + "\n[environments.example]\n"
    cfg = config.parse(text, tmp_path / "opsconsole.toml", tmp_path)
    if cfg.keymap:
        from opsconsole.ui.app import binding_ids

        assert set(cfg.keymap) <= binding_ids()


def test_there_are_examples_to_check():
    assert len(markdown_examples()) >= 2  # the README's and docs/runbooks.md's
    assert len(toml_examples()) >= 10


def command_cases() -> list[tuple[str, str]]:
    return [(f"{_page_id(page)}: {c}", c) for page in PAGES for c in commands(page)]


def flags_unknown_to_the_parser(command: str) -> list[str]:
    """The `--flags` of a documented command line that the parser of the (sub)command they follow does not take.
    `a | b` alternatives switch to a sibling subcommand."""
    chain = [cli.build_parser()]
    unknown = []
    for token in shlex.split(command.replace("'", ""))[1:]:
        for flag in re.findall(r"--[a-z][a-z0-9-]*", token):
            if flag not in chain[-1]._option_string_actions:
                unknown.append(f"{chain[-1].prog} {flag}")
        word = token.strip("[]|(),;")
        for depth in range(len(chain) - 1, -1, -1):
            sub = next((a for a in chain[depth]._actions if a.__class__.__name__ == "_SubParsersAction"), None)
            if sub is not None and word in sub.choices:
                chain = chain[:depth + 1] + [sub.choices[word]]
                break
    return unknown


@pytest.mark.parametrize("case", command_cases(), ids=lambda c: c[0])
def test_every_documented_flag_exists(case: tuple[str, str]):
    assert flags_unknown_to_the_parser(case[1]) == []


def test_flag_checking_can_fail():
    assert flags_unknown_to_the_parser("opsconsole check --json --watch 5") == []
    assert flags_unknown_to_the_parser("opsconsole check --follow") == ["opsconsole check --follow"]
    assert flags_unknown_to_the_parser("opsconsole deploy SERVICE | scale SERVICE --replicas N") == []
    assert flags_unknown_to_the_parser("opsconsole deploy api --replicas 2") == ["opsconsole deploy --replicas"]
    assert len(command_cases()) >= 30


def test_the_readme_exit_codes_are_the_cli_s():
    rows = {line.split("|")[1].strip(): line for line in README.read_text(encoding="utf-8").split("\n")
            if re.match(r"\| \d+ \|", line)}
    assert set(rows) == {"0", "1", "2", "3", "130"}
    assert "user error" in rows[str(cli.EXIT_ERROR)]
    assert "usage error" in rows[str(cli.EXIT_USAGE)]
    assert cli.main(["check", "--no-such-flag"]) == cli.EXIT_USAGE == 3


# --- the references name everything the code accepts -------------------------------------------------------------


def named(page: Path) -> set[str]:
    """Every `code span` of a page (and each comma- or space-separated name inside one)."""
    spans = re.findall(r"`([^`\n]+)`", page.read_text(encoding="utf-8"))
    return set(spans) | {part for span in spans for part in re.split(r"[,\s]+", span)}


def test_the_config_reference_names_every_key():
    keys = set(config._OPSCONSOLE_KEYS) | set(config._ENV_KEYS) | set(config.PROVIDERS) | set(config.PROTECTIONS)
    keys |= config_schema.MEMBER | config_schema.SECRET | config_schema.PROVIDER_OPTIONS_ANY
    for table in (config_schema.SERVICE_BY_KIND, config_schema.SERVICE_BY_PROVIDER, config_schema.QUEUE_BY_KIND,
                  config_schema.SECRET_BY_PROVIDER, config_schema.PROVIDER_OPTIONS, thresholds.METRICS):
        for values in table.values():
            keys |= set(values)
    keys |= set(thresholds.ALL_KINDS)
    assert sorted(keys - named(DOCS / "config.md")) == []


def test_the_keymap_reference_names_every_binding():
    from opsconsole.ui.app import binding_ids

    assert sorted(binding_ids() - named(DOCS / "config.md")) == []


def test_the_runbook_reference_names_every_type_attribute_verb_and_field():
    words = set(runbook.PARAM_TYPES) | set(runbook._PARAM_KEYS) | set(runbook.ROLES) | set(runbook.CONFIRMS)
    words |= set(runbook.ATTRIBUTE_KEYS) | set(runbook.SHELL_LANGUAGES) | set(expect.STATUSES)
    words |= set(actions.VERBS) | {f"previous.{key}" for key in actions.RECORDED_KEYS}
    words |= {op for op in expect.OPERATORS if op not in ("is", "is not")}
    for kind, fields in probes.FIELDS.items():
        words |= set(fields) | {kind}
    for counts in probes.COUNTS.values():
        words |= set(counts)
    assert sorted(words - named(DOCS / "runbooks.md")) == []


def test_every_shipped_runbook_is_listed():
    shipped = {p.stem for p in runbook.runbook_files(SHIPPED)}
    assert len(shipped) >= 9
    readme, reference = named(README), named(DOCS / "runbooks.md")
    assert sorted(shipped - readme) == [] and sorted(shipped - reference) == []
