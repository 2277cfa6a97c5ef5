"""Human placeholders in plain Markdown docs: `<new_secret>`, `<SERVICE>`, `YOUR_API_KEY_HERE`.

Teams' operations docs mark what the reader must fill in with such words. bash reads `<new_secret>` as a
redirection (and fails), so a doc that holds one would be unusable as a runbook. In a runbook without front-matter
params, each one becomes a param of the runbook: `template` rewrites the block to `{{ new_secret }}` (quoted as one
inert word wherever it lands, like any param) and `params` says which params the doc asks for, typed `secret` when
the name says so. What is not a placeholder stays as it is: a redirection (`< file`, `<<EOF`, `<(cmd)`), markup that
closes (`<b>…</b>`), words in a comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opsconsole import templating

# `<name>` with no space or dot inside (`<dump.sql>` is a file), not `<<`, `<(`, `<&`, `<=`; glued to a word is
# fine (`worker-<pod_id>-x`, `db_<name>`).
_ANGLE = re.compile(r"(?<![<$\\])<(?P<name>[A-Za-z][A-Za-z0-9_-]{0,62})>(?![>=])")
# YOUR_API_KEY_HERE, YOUR_DOMAIN: capitals after YOUR_, as docs write them.
_YOUR = re.compile(r"(?<![A-Za-z0-9_$])YOUR_(?P<name>[A-Z][A-Z0-9_]{0,62}?)(?:_HERE)?(?![A-Za-z0-9_])")
# A name that says it holds a secret: typed `secret`, masked everywhere, asked at a hidden prompt.
_SECRET_WORDS = re.compile(r"(?:^|_)(?:secret|token|password|passwd|pass|key|apikey|credential|credentials|pwd|"
                           r"private|auth)(?:_|$)")
RESERVED = frozenset({"previous"})


@dataclass(frozen=True)
class Placeholder:
    name: str  # the param it becomes: new_secret
    text: str  # as the doc writes it: <new_secret>
    offset: int  # where the doc writes it, in the block's source

    @property
    def secret(self) -> bool:
        return bool(_SECRET_WORDS.search(self.name))


def param_name(word: str) -> str:
    """`new-secret` / `NEW_SECRET` / `service.name` -> `new_secret`, `service_name`: a `{{ name }}` a param can have."""
    name = re.sub(r"[^a-z0-9_]+", "_", word.lower()).strip("_")
    if not name or name[0].isdigit():
        name = "p_" + name
    return name + "_" if name in RESERVED else name


def find(source: str) -> list[Placeholder]:
    """Every human placeholder of a shell block, in order. Markup that closes (`<config>…</config>`, as in a
    here-document of XML) is markup, not a placeholder."""
    closing = {m.group(1).lower() for m in re.finditer(r"</([A-Za-z][A-Za-z0-9_.-]*)>", source)}
    found = [Placeholder(param_name(m["name"]), m.group(0), m.start()) for m in _ANGLE.finditer(source)
             if m["name"].lower() not in closing]
    found += [Placeholder(param_name(m["name"]), m.group(0), m.start()) for m in _YOUR.finditer(source)]
    found.sort(key=lambda p: p.offset)
    return found


def _rewrite(source: str, chosen: list[Placeholder]) -> tuple[str, dict[int, Placeholder]]:
    """`source` with `chosen` written as `{{ name }}`, and where each one now starts."""
    out: list[str] = []
    where: dict[int, Placeholder] = {}
    pos = 0
    length = 0
    for p in chosen:
        out.append(source[pos:p.offset])
        length += p.offset - pos
        where[length] = p
        ref = "{{ " + p.name + " }}"
        out.append(ref)
        length += len(ref)
        pos = p.offset + len(p.text)
    out.append(source[pos:])
    return "".join(out), where


def template(source: str) -> tuple[str, list[Placeholder], list[tuple[int, str]]]:
    """`source` with each human placeholder written as `{{ name }}`; the placeholders that were; and problems as
    (offset in `source`, message) for those that cannot be filled in safely where they stand (a here-document,
    backticks, `${…}`): said with their line, not passed on as bash's syntax error. A word in a comment stays as the
    doc wrote it: it is guidance, not input."""
    found = find(source)
    if not found:
        return source, [], []
    problems: dict[int, str] = {}
    while True:
        chosen = [p for p in found if p.offset not in problems]
        rewritten, where = _rewrite(source, chosen)
        try:
            parts = templating.split(rewritten)
            contexts = templating.sh_contexts(parts)
        except templating.TemplateError as exc:
            culprit = where.get(exc.offset)
            if culprit is None:
                return source, [], []  # the block has its own problem; it is reported as it is
            problems[culprit.offset] = (f"{culprit.text} cannot be filled in safely here (" +
                                        exc.message.split(" cannot be quoted safely", 1)[0].split("}} ", 1)[-1] +
                                        f"): set a variable first (NAME={culprit.text}) and use \"$NAME\" here")
            continue
        break
    refs = [part for part in parts if isinstance(part, templating.Ref)]
    in_comments = {where[ref.offset].offset for ref, context in zip(refs, contexts)
                   if context == "comment" and ref.offset in where}
    kept = [p for p in chosen if p.offset not in in_comments]
    if in_comments:
        rewritten, _ = _rewrite(source, kept)
    return rewritten, kept, sorted(problems.items())


def hint(source: str, declared: bool) -> str | None:
    """For a shell block bash cannot parse: a word in angle brackets the reader must fill in, said as such.
    `declared`: the runbook declares its params (so its `<…>` are not turned into params)."""
    m = re.search(r"<[^<>\n]{1,64}>", source)
    if m is None or m.group(0).startswith(("<<", "<(")):
        return None
    if declared:
        return (f"{m.group(0)} is a placeholder for the reader, which bash reads as a redirection: declare a param "
                f"in the front matter and write {{{{ name }}}}, or drop the front matter params to have opsconsole "
                f"ask for it")
    return (f"{m.group(0)} is a placeholder for the reader, which bash reads as a redirection: write it as one word "
            f"(<new_secret>) so opsconsole asks for it, or as {{{{ name }}}} with a param")
