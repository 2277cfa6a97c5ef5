"""Runbooks (docs/runbooks.md): Markdown files that read well on a code host and run as steps.

`load` reads the YAML front matter and the Markdown body (markdown-it-py) into a Runbook of
Steps of Blocks; every problem is a ConfigError carrying the file line, and `inspect` collects
all of them for `opsconsole runbooks validate`. `bind_params` turns `-p KEY=VALUE` text into
typed, checked values. `render` fills `{{ name }}` placeholders, quoting each value for the
shell (or ops) context it lands in (templating.py), so no value can ever become syntax.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole import actions, masking, sessions, templating
from opsconsole.errors import ConfigError, UserError
from opsconsole.thresholds import ALL_KINDS

if TYPE_CHECKING:
    from opsconsole.config import Config, Environment

PARAM_TYPES = ("str", "int", "bool", "choice", "secret", "member")
# What a `member` param's `kind` may say: a probe kind, or any service / any queue.
MEMBER_KINDS = ALL_KINDS + ("service", "queue")
ROLES = ("run", "check", "verify", "rollback")
CONFIRMS = ("none", "yes", "typed")
SHELL_LANGUAGES = ("sh", "bash", "shell", "zsh")
ATTRIBUTE_KEYS = ("role", "confirm", "timeout", "retries", "secret")  # ours; others (Runme's) are kept, ignored

_PARAM_KEYS = ("type", "default", "required", "min", "max", "choices", "pattern", "description", "kind")
_MEMBER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]*\Z")  # as config names members
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")


# --- the model -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    name: str
    type: str  # one of PARAM_TYPES
    default: object | None  # None: required unless `required: false`
    required: bool
    minimum: int | None
    maximum: int | None
    choices: tuple[str, ...]
    pattern: str | None  # a regex the whole value must match (str, secret)
    description: str
    line: int  # line of the param's key in the front matter
    kind: str | None = None  # member params: the kind of member (postgres, queue...); None: any member

    def describe(self) -> str:
        """The type as a person reads it: `int 1..20`, `choice of api|worker`, `postgres member`."""
        if self.type == "int" and (self.minimum is not None or self.maximum is not None):
            low = "" if self.minimum is None else str(self.minimum)
            high = "" if self.maximum is None else str(self.maximum)
            return f"int {low}..{high}"
        if self.type == "choice":
            return "choice of " + "|".join(self.choices)
        if self.pattern and self.type in ("str", "secret"):
            return f"{self.type} matching {self.pattern}"
        if self.type == "member":
            return f"{self.kind} member" if self.kind else "member"
        return self.type

    def members(self, environment: Environment) -> list[str]:
        """The members of `environment` a member param may name, in config order."""
        wanted = self.kind
        return [t.name for t in environment.services + environment.queues
                if wanted is None or t.kind == wanted or wanted == t.group]

    def member_default(self, environment: Environment) -> str | None:
        """A member param's value when none is given: its front-matter default when the environment has that member;
        with no default, the environment's only member of the kind. None when that leaves a choice to make:
        restoring into the first of two databases, or scaling the first service because `worker` is missing, would
        change the wrong thing."""
        members = self.members(environment)
        if isinstance(self.default, str):
            return self.default if self.default in members else None
        return members[0] if len(members) == 1 else None


@dataclass(frozen=True)
class Block:
    lang: str  # "sh" (sh/bash/shell/zsh) or "ops"
    role: str  # one of ROLES
    confirm: str | None  # None (the environment decides) or one of CONFIRMS
    timeout_s: float | None
    retries: int  # verify blocks: attempts after the first; otherwise 0
    name: str | None
    source: str  # the body as written: a template
    line: int  # line of the opening fence
    attrs: Mapping[str, object] = field(default_factory=dict)  # every attribute as parsed
    expected: str = ""  # a terminal session's output as the doc shows it (console blocks, `$ ` prompts)

    @property
    def generates_secret(self) -> bool:
        """A block that prints a new secret (`openssl rand -hex 32`, `pwgen`, `uuidgen`, `head -c 32 /dev/urandom`,
        Python's `secrets`), or says `{"secret": true}`: its output is a value nobody may see. It never reaches the
        screen or the journal, and every line of it is masked for the rest of the run."""
        return self.attrs.get("secret") in (True, "true") or (self.lang == "sh" and generates_secret(self.source))

    @property
    def follows(self) -> bool:
        """A block that streams until stopped (`tail -f`, `kubectl logs -f`, `watch`, role `watch`): it ends when
        the engineer goes on, or headless after a bounded time, as a success with its output kept."""
        if self.role != "run":  # a check or a verify must finish to say anything: never cut short as a success
            return False
        return self.attrs.get("role") == "watch" or (self.lang == "sh" and follows(self.source))

    def line_of(self, offset: int) -> int:
        """The file line of character `offset` in `source`."""
        return self.line + 1 + self.source.count("\n", 0, offset)


@dataclass(frozen=True)
class Step:
    index: int  # 1-based
    title: str
    prose: str  # Markdown guidance shown beside the step
    blocks: tuple[Block, ...]
    line: int
    context: tuple[str, ...] = ()  # the headings above the step's own, outermost first (a breadcrumb)

    @property
    def breadcrumb(self) -> str:
        """`Common operations › Deploy New Version`: where the step sits in the document."""
        return " › ".join((*self.context, self.title))

    def fingerprint(self) -> str:
        """Changes when the step's title or any block (language, role, attributes, body) changes."""
        data = {
            "title": self.title,
            "blocks": [[b.lang, b.role, dict(b.attrs), b.source] for b in self.blocks],
        }
        text = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Runbook:
    path: Path
    name: str  # the file stem: `opsconsole run scale-workers`
    title: str
    summary: str
    environments: tuple[str, ...] | None  # None: any environment
    params: tuple[Param, ...]
    steps: tuple[Step, ...]
    content_hash: str  # sha256 hex of the file bytes
    intro: str = ""  # Markdown between the title and the first step

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


class InvalidRunbook(ConfigError):
    """A runbook with problems; reads as the first, `problems` holds all of them."""

    def __init__(self, problems: list[ConfigError] | tuple[ConfigError, ...]) -> None:
        first = problems[0]
        more = len(problems) - 1
        message = first.message + (f" (and {more} more: opsconsole runbooks validate)" if more else "")
        super().__init__(message, first.path, first.line)
        self.problems = tuple(problems)


# --- loading ---------------------------------------------------------------------------------

def load(path: Path | str) -> Runbook:
    """Parse a runbook; InvalidRunbook (a ConfigError with path and line) on the first problem."""
    runbook, problems = inspect(path)
    if problems:
        raise InvalidRunbook(problems)
    assert runbook is not None
    return runbook


def inspect(path: Path | str) -> tuple[Runbook | None, tuple[ConfigError, ...]]:
    """Parse a runbook and collect every problem (for `validate`). The runbook is returned even
    when it has problems, as far as it could be read; None only when the file cannot be read."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, (ConfigError(f"cannot read runbook: {exc.strerror or exc}", path),)
    return parse(data, path)


def parse(data: bytes | str, path: Path) -> tuple[Runbook | None, tuple[ConfigError, ...]]:
    """Parse runbook text (bytes as read, or str) that lives at `path` (used in messages and names)."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    content_hash = hashlib.sha256(raw).hexdigest()
    problems = _Problems(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return None, (ConfigError("not UTF-8 text (a runbook is a Markdown file)", path, line),)
    return _Reader(text, path, content_hash, problems).read(), problems.sorted()


class _Problems:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: list[ConfigError] = []

    def add(self, message: str, line: int | None) -> None:
        self.items.append(ConfigError(message, self.path, line))

    def sorted(self) -> tuple[ConfigError, ...]:
        return tuple(sorted(self.items, key=lambda e: e.line or 0))


class _AliasFound(Exception):
    """A `*name` in front matter, raised where the composer meets it (mark: where it is written)."""

    def __init__(self, anchor: str, mark: Any) -> None:
        super().__init__(anchor)
        self.anchor = anchor
        self.mark = mark


_loader: Any = None


def _loader_class() -> Any:
    """PyYAML's SafeLoader refusing every alias. Front matter is a title, a summary and a few params: an alias
    saves a line there, while nine lines of them expand to 9^9 strings once anything walks or quotes the value
    (`runbooks list` took 43 s and 3 GB). Refusing them is simpler and surer than a bound on the expansion."""
    global _loader
    if _loader is None:
        import yaml

        class NoAliasLoader(yaml.SafeLoader):
            def compose_node(self, parent: Any, index: Any) -> Any:
                if self.check_event(yaml.AliasEvent):
                    event = self.peek_event()
                    raise _AliasFound(str(event.anchor), event.start_mark)
                return super().compose_node(parent, index)

        _loader = NoAliasLoader
    return _loader


def _structure(value: object) -> str | None:
    """'a list' or 'a mapping' for YAML that holds many values where one belongs; None for one value. Checked
    before any message quotes the value."""
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (set, frozenset)):
        return "a set"
    return None


def _brief(value: object, limit: int = 60) -> str:
    """A value quoted in a message, cut at `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass
class _Fence:
    info: str
    content: str
    start: int  # 0-based line of the opening fence
    end: int  # 0-based, exclusive
    closed: bool
    quoted: bool  # inside a blockquote: an example, not a step


@dataclass
class _Heading:
    level: int
    line0: int
    title: str
    top: bool  # not nested in a list or blockquote


class _Reader:
    def __init__(self, text: str, path: Path, content_hash: str, problems: _Problems) -> None:
        self.text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.lines = self.text.split("\n")
        self.path = path
        self.content_hash = content_hash
        self.problems = problems
        self.declared_params = False

    def read(self) -> Runbook:
        meta, body_start = self._front_matter()
        params = self._params(meta.get("params"), meta.get("_lines", {}))
        names = {p.name for p in params}
        # markdown-it sees the front matter as blank lines, so its line numbers are the file's.
        body = "\n".join([""] * body_start + self.lines[body_start:])
        headings, fences, paragraphs = self._markdown(body)
        blocks = [b for b in (self._block(f) for f in fences) if b is not None]
        self.declared_params = "params" in meta
        if "params" not in meta:  # a plain doc: its `<new_secret>` and YOUR_KEY_HERE are what it asks for
            blocks, params = self._human_placeholders(blocks)
            names = {p.name for p in params}
        for block in blocks:
            self._check_block(block, params, names)
        tops = [h for h in headings if h.top]
        h1 = tops[0] if tops and tops[0].level == 1 else None  # a leading `#` heading is the title
        if h1 is None and tops:
            h1 = _only_top(tops, blocks)
        steps, intro_lines = self._steps(headings, fences, blocks, body_start, h1.line0 if h1 else None)

        title = _text_field(meta, "title", self.problems) or (h1.title if h1 else "") or self.path.stem
        intro = _clean([self.lines[i] for i in intro_lines])
        summary = _text_field(meta, "summary", self.problems)
        if not summary:
            in_intro = set(intro_lines)
            first = next((p for line0, p in paragraphs if line0 in in_intro), "")
            summary = first if len(first) <= 160 else first[:157].rstrip() + "..."
        if not steps and body_start < len(self.lines):  # (an unclosed front matter already said why)
            self.problems.add("no steps: a step is a `##` section (or a lone block) holding a sh/bash/shell or ops "
                              "code block", body_start + 1)
        return Runbook(
            path=self.path,
            name=self.path.stem,
            title=title,
            summary=summary,
            environments=self._environments(meta),
            params=params,
            steps=steps,
            content_hash=self.content_hash,
            intro=intro,
        )

    # front matter

    def _front_matter(self) -> tuple[dict[str, Any], int]:
        """(front matter as a dict with `_lines`: key -> file line, index of the first body line)."""
        if not self.lines or self.lines[0].rstrip() != "---":
            return {}, 0
        end = next((i for i in range(1, len(self.lines)) if self.lines[i].rstrip() in ("---", "...")), None)
        if end is None:
            self.problems.add("front matter opened here is never closed by a `---` line", 1)
            return {}, len(self.lines)
        import yaml

        source = "\n".join(self.lines[1:end])

        def line_of(mark: Any) -> int:
            # The file's line: PyYAML's mark.line also counts \x85, \u2028 and \u2029 as line breaks.
            return 2 + source.count("\n", 0, mark.index)

        from opsconsole.config import nesting_line

        deep = nesting_line(source, 32)
        if deep is not None:  # PyYAML would spend seconds of CPU on a few thousand `[` before its RecursionError
            self.problems.add("front matter is nested too deeply", deep + 1)
            return {}, end + 1
        loader = None
        try:
            loader = _loader_class()(source)  # checks the characters already
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        except _AliasFound as found:
            self.problems.add(f"YAML alias *{found.anchor[:40]}: runbook front matter takes no aliases (a few "
                              "lines of them expand to gigabytes); write the value out", line_of(found.mark))
            return {}, end + 1
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            if mark is not None:
                line = line_of(mark)
            else:
                line = 2 + source.count("\n", 0, getattr(exc, "position", 0) or 0)
            problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or type(exc).__name__
            context = getattr(exc, "context", None)
            self.problems.add(f"front matter is not valid YAML: {problem}" + (f" ({context})" if context else ""), line)
            return {}, end + 1
        except RecursionError:  # where the reader had got to: inside the nesting
            self.problems.add("front matter is nested too deeply", line_of(loader.get_mark()) if loader else 2)
            return {}, end + 1
        finally:
            if loader is not None:
                loader.dispose()
        if data is None:
            return {}, end + 1
        if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
            self.problems.add("front matter must be a mapping (title: ..., params: ...)", line_of(node.start_mark))
            return {}, end + 1
        meta = dict(data)
        meta["_lines"] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                continue
            meta["_lines"][key] = line_of(key_node.start_mark)
            if key == "params" and isinstance(value_node, yaml.MappingNode):
                meta["_lines"]["params."] = {
                    str(k.value): line_of(k.start_mark) for k, _ in value_node.value if isinstance(k, yaml.ScalarNode)
                }
        return meta, end + 1

    def _environments(self, meta: Mapping[str, Any]) -> tuple[str, ...] | None:
        value = meta.get("environments")
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.problems.add("environments must be a list of environment names", meta["_lines"].get("environments"))
            return None
        return tuple(value)

    def _params(self, raw: Any, lines: Mapping[str, Any]) -> tuple[Param, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.problems.add("params must be a mapping of name: {type: ..., ...}", lines.get("params"))
            return ()
        param_lines = lines.get("params.", {})
        out: list[Param] = []
        for name, spec in raw.items():
            line = param_lines.get(str(name), lines.get("params"))
            param = self._param(name, spec, line)
            if param is not None:
                out.append(param)
        return tuple(out)

    def _param(self, name: Any, spec: Any, line: int | None) -> Param | None:
        def bad(message: str) -> None:
            self.problems.add(f"param {_brief(name)}: {message}", line)

        if not isinstance(name, str) or not _IDENT.match(name) or name == "previous":
            self.problems.add(f"param name {_brief(name)} must be letters, digits and _ (not `previous`), "
                              "so `{{ name }}` can use it", line)
            return None
        if isinstance(spec, str):
            spec = {"type": spec}  # shorthand: `service: str`
        elif spec is None:
            spec = {}
        if not isinstance(spec, dict):
            bad("must be a type name or a mapping like {type: int, min: 1, default: 4}")
            return None
        unknown = [k for k in spec if k not in _PARAM_KEYS]
        if unknown:
            bad(f"unknown key {_brief(unknown[0])} (known: {', '.join(_PARAM_KEYS)})")
        # Many values where one belongs: said by what they are, before any message quotes them.
        many = {key: what for key in _PARAM_KEYS if key != "choices" and (what := _structure(spec.get(key)))}
        for key, what in many.items():
            wanted = {"type": "one value (a type name)", "description": "text"}.get(key, "one value")
            bad(f"{key} must be {wanted}, not {what}")
        if "type" in many:
            return None
        spec = {k: v for k, v in spec.items() if k not in many}
        ok = not many
        kind = spec.get("type", "choice" if "choices" in spec else "str")
        if kind not in PARAM_TYPES:
            bad(f"unknown type {_brief(kind)} (types: {', '.join(PARAM_TYPES)})")
            return None
        minimum, maximum = spec.get("min"), spec.get("max")
        for key, value in (("min", minimum), ("max", maximum)):
            if value is None:
                continue
            if kind != "int":
                bad(f"{key} applies to int params only")
                ok = False
            elif isinstance(value, bool) or not isinstance(value, int):
                bad(f"{key} must be a whole number, got {_brief(value)}")
                ok = False
        if ok and isinstance(minimum, int) and isinstance(maximum, int) and minimum > maximum:
            bad(f"min {minimum} is above max {maximum}")
            ok = False
        choices: tuple[str, ...] = ()
        if kind == "choice":
            raw_choices = spec.get("choices")
            if not isinstance(raw_choices, list) or not raw_choices or not all(
                    isinstance(c, (str, int)) and not isinstance(c, bool) and str(c) for c in raw_choices):
                bad("a choice param needs `choices: [a, b, ...]` (a list of names)")
                ok = False
            else:
                choices = tuple(str(c) for c in raw_choices)
        elif "choices" in spec:
            bad("choices applies to choice params only")
            ok = False
        pattern = spec.get("pattern")
        if pattern is not None:
            if kind not in ("str", "secret"):
                bad("pattern applies to str and secret params only")
                ok = False
            elif not isinstance(pattern, str):
                bad("pattern must be a regular expression in a string")
                ok = False
            else:
                try:
                    re.compile(pattern)
                except (re.error, RecursionError, OverflowError) as exc:
                    bad(f"pattern is not a valid regular expression: {exc}")
                    ok = False
        member_kind = spec.get("kind")
        if member_kind is not None:
            if kind != "member":
                bad("kind applies to member params only")
                ok = False
            elif member_kind not in MEMBER_KINDS:
                bad(f"unknown member kind {_brief(member_kind)} (kinds: {', '.join(MEMBER_KINDS)})")
                ok = False
                member_kind = None
        description = spec.get("description", "")
        if not isinstance(description, str):
            bad("description must be text")
            description = str(description)
        required_raw = spec.get("required")
        if required_raw is not None and not isinstance(required_raw, bool):
            bad("required must be true or false")
            ok = False
            required_raw = None
        default = spec.get("default")
        param = Param(name=name, type=kind, default=None, required=True,
                      minimum=minimum if ok and isinstance(minimum, int) else None,
                      maximum=maximum if ok and isinstance(maximum, int) else None,
                      choices=choices, pattern=pattern if ok else None, description=description.strip(),
                      line=line or 1, kind=member_kind if kind == "member" else None)
        if default is not None:
            if kind == "secret":
                bad("a secret cannot have a default: it would sit in the file in clear text")
                ok = False
            elif kind in ("str", "member") and not isinstance(default, str):
                bad(f"default must be text (quote it in YAML), got {_brief(default)}")
                ok = False
            elif kind == "bool" and not isinstance(default, bool):
                bad(f"default must be true or false, got {_brief(default)}")
                ok = False
            elif kind == "int" and (isinstance(default, bool) or not isinstance(default, int)):
                bad(f"default must be a whole number, got {_brief(default)}")
                ok = False
            elif ok:
                try:
                    default = _coerce(param, default if isinstance(default, str) else value_text(default))
                except ValueError as exc:
                    bad(f"default {_brief(default)} is not allowed: {exc}")
                    ok = False
        required = required_raw if required_raw is not None else default is None
        return Param(name=name, type=kind, default=default if ok else None, required=required,
                     minimum=param.minimum, maximum=param.maximum, choices=choices, pattern=param.pattern,
                     description=param.description, line=line or 1, kind=param.kind)

    # markdown

    def _markdown(self, body: str) -> tuple[list[_Heading], list[_Fence], list[tuple[int, str]]]:
        tokens = _markdown().parse(body)
        headings: list[_Heading] = []
        fences: list[_Fence] = []
        paragraphs: list[tuple[int, str]] = []
        quote_depth = 0
        for i, token in enumerate(tokens):
            if token.type == "blockquote_open":
                quote_depth += 1
            elif token.type == "blockquote_close":
                quote_depth -= 1
            elif token.type == "heading_open" and token.map:
                inline = tokens[i + 1] if i + 1 < len(tokens) else None
                headings.append(_Heading(int(token.tag[1]), token.map[0], _inline_text(inline) if inline else "",
                                         token.level == 0))
            elif token.type == "paragraph_open" and token.level == 0 and token.map:
                inline = tokens[i + 1] if i + 1 < len(tokens) else None
                words = " ".join(_inline_text(inline, images=False).split()) if inline is not None else ""
                if words:  # a row of badges is not a summary
                    paragraphs.append((token.map[0], words))
            elif token.type == "fence" and token.map:
                start, end = token.map
                last = self.lines[end - 1].strip() if end - 1 < len(self.lines) else ""
                marker = token.markup[0]
                closed = end - start >= 2 and last.lstrip("> ").startswith(token.markup) and \
                    set(last.lstrip("> ").rstrip()) <= {marker}
                fences.append(_Fence(token.info, token.content, start, end, closed, quote_depth > 0))
        return headings, fences, paragraphs

    def _block(self, fence: _Fence) -> Block | None:
        lang, rest = _split_info(fence.info)
        line = fence.start + 1
        if not fence.closed:
            self.problems.add("code block opened here is never closed: it swallows the rest of the file", line)
        if fence.quoted:
            return None
        content, expected = fence.content, ""
        if lang in sessions.SESSION_LANGUAGES or (lang in SHELL_LANGUAGES and sessions.prompted(content)):
            # A copied terminal session: the commands after the prompts run; the rest is the output it expects.
            content, expected = sessions.read(content, root_prompts=lang not in SHELL_LANGUAGES)
            if not content.strip():
                return None  # output only: guidance, shown as written
            lang = "sh"
        elif lang in SHELL_LANGUAGES:
            lang = "sh"
        elif lang != "ops":
            return None
        attrs = _attributes(rest, line, self.problems)
        role = attrs.get("role", "run")
        if role == "watch":  # streams until the engineer goes on: run as a run block that `follows`
            role = "run"
        if role not in ROLES:
            self.problems.add(f"role must be one of {', '.join(ROLES)}, watch, got {role!r}", line)
            role = "run"
        if lang == "ops" and "role" not in attrs and _only_expects(content):
            role = "check"  # a block that only asserts changes nothing: it is a check
        confirm = attrs.get("confirm")
        if confirm is not None:
            confirm = {True: "yes", False: "none", "true": "yes", "false": "none"}.get(confirm, confirm)
            if confirm not in CONFIRMS:
                self.problems.add(f"confirm must be one of {', '.join(CONFIRMS)}, got {attrs['confirm']!r}", line)
                confirm = None
        timeout_s = None
        if "timeout" in attrs:
            try:
                timeout_s = parse_duration(attrs["timeout"])
            except ValueError as exc:
                self.problems.add(f"timeout: {exc}", line)
        retries = 0
        if "retries" in attrs:
            value = attrs["retries"]
            if isinstance(value, str) and re.fullmatch(r"\d{1,4}", value.strip()):
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
                self.problems.add(f"retries must be a whole number from 0 to 1000, got {attrs['retries']!r}", line)
            elif value and role != "verify":
                self.problems.add("retries applies to verify blocks only (a change is never repeated on its own)",
                                  line)
            else:
                retries = value
        if "secret" in attrs and attrs["secret"] not in (True, False, "true", "false"):
            self.problems.add(f"secret must be true or false, got {attrs['secret']!r}", line)
        name = attrs.get("name")
        return Block(lang=lang, role=role, confirm=confirm, timeout_s=timeout_s, retries=retries,
                     name=None if name is None else str(name), source=content, line=line, attrs=attrs,
                     expected=expected)

    def _human_placeholders(self, blocks: list[Block]) -> tuple[list[Block], tuple[Param, ...]]:
        """Shell blocks with each human placeholder as a `{{ param }}`, and those params in order of appearance
        (`secret` when the name says so)."""
        from dataclasses import replace

        from opsconsole import placeholders

        out: list[Block] = []
        params: dict[str, Param] = {}
        for block in blocks:
            if block.lang != "sh":
                out.append(block)
                continue
            source, found, problems = placeholders.template(block.source)
            for offset, message in problems:
                self.problems.add(message, block.line_of(offset))
            out.append(replace(block, source=source) if found else block)
            for p in found:
                if p.name not in params:
                    line = block.line_of(p.offset)
                    params[p.name] = Param(name=p.name, type="secret" if p.secret else "str", default=None,
                                           required=True, minimum=None, maximum=None, choices=(), pattern=None,
                                           description=f"{p.text} in the doc, line {line}", line=line)
        return out, tuple(params.values())

    def _check_block(self, block: Block, params: tuple[Param, ...], names: set[str]) -> None:
        errors: list[templating.TemplateError] = []
        parts = templating.split(block.source, errors)
        for ref in (p for p in parts if isinstance(p, templating.Ref)):
            problem = _unknown(ref.name, names)
            if problem:
                errors.append(templating.TemplateError(problem, ref.offset))
        if block.lang == "sh":
            types = {p.name: p.type for p in params}
            refs = [p for p in parts if isinstance(p, templating.Ref)]
            for ref, context in zip(refs, templating.sh_contexts(parts, errors)):
                if context == "arith" and types.get(ref.name, "int") != "int":
                    errors.append(templating.TemplateError(
                        f"{{{{ {ref.name} }}}} is used in arithmetic ($(( )), (( )), [[ -eq ]], let, a[...]), where "
                        f"bash runs commands hidden in a value: only int params may go there", ref.offset))
        for error in errors:
            self.problems.add(error.message, block.line_of(error.offset))
        if errors:
            return
        if block.lang == "sh":
            # The shell must parse it: found now, not at 3 a.m. in the middle of a run.
            if len(parts) == 1:
                problem = templating.shell_syntax_error(str(parts[0]))
                if problem is not None:
                    from opsconsole import placeholders

                    self.problems.add(placeholders.hint(str(parts[0]), self.declared_params) or problem[1],
                                      block.line + problem[0])
            else:
                try:
                    render(block, _samples(params), {k: "1" for k in actions.RECORDED_KEYS})
                except UserError as exc:
                    self.problems.add(exc.message, exc.line or block.line)
            return
        # ops: parse every line with typical values, so grammar mistakes show before any run.
        try:
            rendered = render(block, _samples(params), {k: "1" for k in actions.RECORDED_KEYS})
        except UserError as exc:
            self.problems.add(exc.message, block.line)
            return
        for problem in ops_problems(block, rendered):
            self.problems.add(problem.message, problem.line)

    # steps

    def _steps(self, headings: list[_Heading], fences: list[_Fence], blocks: list[Block],
               body_start: int, title_line: int | None) -> tuple[tuple[Step, ...], list[int]]:
        """Steps, and the line indexes of the intro (the Markdown before the first step).

        Each heading that directly holds blocks is one step, at whatever level (`##`, `###`, `####`): its blocks
        are confirmed together. The headings above it are its context (a breadcrumb), and the text of a heading
        that holds no block leads into the first step below it. Blocks before any heading (or under the title)
        are a step each, verify and rollback blocks joining the block before them."""
        fence_at = {f.start + 1: f for f in fences}
        hidden = {title_line} if title_line is not None else set()  # the title is shown as the title
        for block in blocks:
            f = fence_at[block.line]
            hidden.update(range(f.start, f.end))  # blocks are shown as blocks, not in the prose
        end_of = {b.line: fence_at[b.line].end for b in blocks}
        n = len(self.lines)
        bounds = [h for h in headings if h.top and h.line0 != title_line]
        starts = [body_start] + [h.line0 for h in bounds]
        heads: list[_Heading | None] = [None, *bounds]
        regions = [(start, starts[k + 1] if k + 1 < len(starts) else n, heads[k]) for k, start in enumerate(starts)]

        steps: list[Step] = []
        intro: list[int] = []
        lead: list[tuple[int, str]] = []  # (level, text) of headings without blocks, for the first step below them
        trail: list[_Heading] = []  # the headings enclosing the current one

        def prose(start: int, end: int) -> str:
            return _clean([self.lines[i] for i in range(start, end) if i not in hidden])

        def add(title: str, text: str, group: list[Block], line: int, context: tuple[str, ...] = ()) -> None:
            if all(b.role == "rollback" for b in group):
                self.problems.add("a step of only rollback blocks: a rollback belongs in the step whose change it "
                                  "undoes", line)
            if lead:
                text = "\n\n".join([*(t for _, t in lead if t), text]).strip()
                lead.clear()
            steps.append(Step(index=len(steps) + 1, title=title, prose=text, blocks=tuple(group), line=line,
                              context=context))

        for k, (start, end, head) in enumerate(regions):
            if head is not None:
                trail = [h for h in trail if h.level < head.level]
                lead[:] = [(level, t) for level, t in lead if level < head.level]  # only a section's own text leads
                context = tuple(h.title for h in trail if h.title)
                trail.append(head)
            else:
                context = ()
            inside = [b for b in blocks if start <= b.line - 1 < end]
            if not inside:
                following = regions[k + 1][2] if k + 1 < len(regions) else None
                if head is not None and following is not None and following.level > head.level:
                    # A section heading over sub-sections: its text leads into the first step below it.
                    lead.append((head.level, prose(start + 1, end)))
                elif not steps:  # guidance without a block: the intro before the first step...
                    intro.extend(i for i in range(start, end) if i not in hidden)
                elif prose(start, end):  # ...else more of the step before
                    last = steps[-1]
                    steps[-1] = Step(last.index, last.title, (last.prose + "\n\n" + prose(start, end)).strip(),
                                     last.blocks, last.line, last.context)
                continue
            if head is not None:
                add(head.title or f"Step {len(steps) + 1}", prose(start + 1, end), inside, head.line0 + 1, context)
                continue
            # No heading here: each run/check block starts a step; verify/rollback blocks join it.
            groups: list[list[Block]] = []
            for block in inside:
                if not groups or block.role in ("run", "check"):
                    groups.append([block])
                else:
                    groups[-1].append(block)
            cursor = start
            if not steps:  # the lead paragraphs, up to the first heading or block, are the intro
                lead_end = min([inside[0].line - 1] + [h.line0 for h in headings
                                                      if start < h.line0 < end and h.line0 != title_line])
                intro.extend(i for i in range(start, lead_end) if i not in hidden)
                cursor = lead_end
            for g, group in enumerate(groups):
                if g + 1 == len(groups):
                    last_line = end
                else:
                    # Text after a block belongs to it (its output, a remark) up to the next heading;
                    # without a heading in between, it leads in to the next block.
                    after, before = end_of[group[-1].line], groups[g + 1][0].line - 1
                    between = [h.line0 for h in headings if after <= h.line0 < before]
                    last_line = between[-1] if between else after
                nearest = [h for h in headings if h.line0 < group[0].line - 1 and h.title]
                title = nearest[-1].title if nearest else f"Step {len(steps) + 1}"
                same = sum(1 for st in steps if st.title == title or st.title.startswith(title + " ("))
                add(title if not same else f"{title} ({same + 1})", prose(cursor, last_line), group, group[0].line)
                cursor = last_line
        return tuple(steps), intro


# A follow command at the start of a command: `tail -f`, `journalctl -f`, `… logs -f`, `watch …`, `kubectl get -w`.
_FOLLOW = re.compile(
    r"^(?:sudo\s+)?(?:"
    r"(?:tail|journalctl)\b[^;&|#]*\s(?:-f|-F|--follow)(?=\s|$)"
    r"|(?:kubectl|docker|docker-compose|railway|heroku|fly|flyctl|stern|aws)\b[^;&|#]*\blogs?\b[^;&|#]*"
    r"\s(?:-f|--follow)(?=\s|$)"
    r"|watch\s"
    r"|kubectl\s+get\b[^;&|#]*\s(?:-w|--watch)(?=\s|$)"
    r")")


_GENERATOR = re.compile(
    r"(?:^|[;&|(`<]|\$\(|\s)(?:"
    r"openssl\s+rand\b|pwgen\b|uuidgen\b|apg\b|mkpasswd\b|gpg\s+--gen-random\b"
    r"|(?:head|dd)\b[^;&|#\n]*/dev/u?random|/dev/u?random\b"
    r"|python3?\s+-c\s+.*\bsecrets\.token_|node\s+-e\s+.*\brandomBytes\b"
    r")")


def generates_secret(source: str) -> bool:
    """Whether a shell script prints a freshly generated secret (a line that is not a comment calls a generator)."""
    return any(_GENERATOR.search(line) for line in source.split("\n") if not line.lstrip().startswith("#"))


def follows(source: str) -> bool:
    """Whether a shell script ends with a command that streams until stopped (`logs -f`, `tail -f`, `watch`): its
    last command, so stopping it cuts nothing after it short. A follow command piped into a filter that ends on its
    own (`tail -f log | grep -m1 ready`) is a wait, not a follow: it keeps its timeout."""
    lines = [line.split(" #", 1)[0].strip() for line in source.split("\n")]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        return False
    last = lines[-1]
    commands = [c.strip() for c in re.split(r"&&|\|\||;", last) if c.strip()]
    if not commands:
        return False
    pipeline = [p.strip() for p in commands[-1].split("|")]
    if len(pipeline) > 1 and re.search(r"\bgrep\b[^|]*(?:-m\s*\d|--max-count|-q\b)|\bhead\b", pipeline[-1]):
        return False
    return bool(_FOLLOW.match(pipeline[0]))


def _only_top(tops: list[_Heading], blocks: list[Block]) -> _Heading | None:
    """The title of a doc without a `#`: its one outermost heading (a `## Common operations` over `###` sections),
    when that heading holds no block of its own. None when there is no such heading."""
    level = min(h.level for h in tops)
    outer = [h for h in tops if h.level == level]
    if len(outer) != 1 or outer[0] is not tops[0] or len(tops) < 2:
        return None
    below = tops[1].line0
    if any(outer[0].line0 < b.line - 1 < below for b in blocks):
        return None
    return outer[0]


def _text_field(meta: Mapping[str, Any], key: str, problems: _Problems) -> str:
    value = meta.get(key)
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        problems.add(f"{key} must be text", meta["_lines"].get(key))
        return ""
    return " ".join(str(value).split())


_md: Any = None


def _markdown() -> Any:
    global _md
    if _md is None:
        from markdown_it import MarkdownIt  # lazy: only runbook commands pay for it

        _md = MarkdownIt("commonmark")
    return _md


def _inline_text(token: Any, images: bool = True) -> str:
    """The plain text of an inline token: `Scale the **worker**` -> `Scale the worker`."""
    parts = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image" and images:
            parts.append(child.content)
    return " ".join("".join(parts).split())


def _clean(lines: list[str]) -> str:
    """Lines as Markdown, trimmed, at most one blank line in a row."""
    out: list[str] = []
    for line in lines:
        line = line.rstrip()
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _split_info(info: str) -> tuple[str, str]:
    m = re.match(r"\s*([^\s{]*)\s*(.*?)\s*\Z", info, re.DOTALL)
    assert m is not None  # the pattern matches any string
    return m[1].lower(), m[2]


def _attributes(text: str, line: int, problems: _Problems) -> dict[str, object]:
    """Runme fence attributes: JSON `{"name": "x"}` or `{ name=x role=verify }`."""
    if not text:
        return {}
    if not text.startswith("{"):
        if re.match(r"[A-Za-z_][\w-]*\s*=", text):
            problems.add(f"fence attributes go inside braces: {{ {text} }}", line)
        return {}  # other info text (a file name, say) is not ours
    if not text.endswith("}"):
        problems.add("fence attributes start with { but do not end with }", line)
        return {}
    if re.match(r"\{\s*(\"|\}\s*\Z)", text):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            problems.add(f"fence attributes are not valid JSON: {exc}", line)
            return {}
        if not isinstance(value, dict):
            problems.add("fence attributes must be a JSON object", line)
            return {}
        return value
    try:
        words = shlex.split(text[1:-1])
    except ValueError as exc:
        problems.add(f"cannot read fence attributes: {str(exc).lower()}", line)
        return {}
    attrs: dict[str, object] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not key:
            problems.add(f"fence attribute {word!r} has no name", line)
            continue
        attrs[key] = value if sep else True
    return attrs


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(value: object) -> float:
    """`30s`, `5m`, `1h30m`, `250ms` or a number of seconds; ValueError when not above zero."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} (write 30s, 5m or 1h)")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif text and _DURATION.sub("", text) == "":
            unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
            seconds = sum(float(n) * unit[u] for n, u in _DURATION.findall(text))
        else:
            raise ValueError(f"not a duration: {value!r} (write 30s, 5m or 1h)")
    else:
        raise ValueError(f"not a duration: {value!r} (write 30s, 5m or 1h)")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"must be above zero, got {value!r}")
    return seconds


def _only_expects(source: str) -> bool:
    lines = [ln.strip() for ln in source.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return bool(lines) and all(re.match(r"expect\b", ln) for ln in lines)


SHIPPED = Path(__file__).resolve().parent / "shipped_runbooks"  # the runbooks opsconsole ships with
BUILT_IN = "built-in"


@dataclass(frozen=True)
class Shelf:
    """A folder on the runbook search path and what it is called where runbooks are listed."""

    path: Path
    label: str  # the folder as the user wrote or sees it, or BUILT_IN

    @property
    def built_in(self) -> bool:
        return self.label == BUILT_IN


def search_path(user_dir: Path, *, configured: bool = False) -> tuple[Shelf, ...]:
    """Where runbooks are found, first match wins: the user's folder (`runbooks` beside opsconsole.toml, or
    [opsconsole] runbooks), then the shipped ones. A folder that is not there is left out, unless the config
    names it: a typo there must not silently leave only the built-in runbooks (UserError)."""
    shelves: list[Shelf] = []
    if user_dir.is_dir():
        if user_dir.resolve() != SHIPPED:
            shelves.append(Shelf(user_dir, shown_path(user_dir)))
    elif configured:
        raise UserError(f"no runbooks directory at {shown_path(user_dir)} "
                        "(set `runbooks` under [opsconsole] in the config)")
    if SHIPPED.is_dir():
        shelves.append(Shelf(SHIPPED, BUILT_IN))
    return tuple(shelves)


def shelves(config: Config) -> tuple[Shelf, ...]:
    """The runbook search path of a config: its runbooks folder, then the built-in runbooks."""
    return search_path(config.runbooks, configured=config.runbooks_configured)


def shown_path(path: Path | str) -> str:
    """A path as the user can click it: relative to the working directory when inside it."""
    import os

    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def find(name_or_path: str, shelves: Path | tuple[Shelf, ...]) -> Path:
    """`scale-workers`, `scale-workers.md` (on the search path, first shelf first) or a path to a Markdown file."""
    if isinstance(shelves, Path):
        shelves = (Shelf(shelves, shown_path(shelves)),)
    candidate = Path(name_or_path)
    if candidate.suffix.lower() in (".md", ".markdown") and candidate.is_file():
        return candidate
    if candidate.suffix.lower() in (".md", ".markdown") and "/" in name_or_path and not candidate.exists():
        raise UserError(f"file not found: {name_or_path}")  # a path to a Markdown file, not a name: say so
    if "/" not in name_or_path and name_or_path not in ("", ".", ".."):
        for shelf in shelves:
            for name in (name_or_path, f"{name_or_path}.md"):
                if (shelf.path / name).is_file():
                    return shelf.path / name
    known = sorted({p.stem for shelf in shelves if shelf.path.is_dir() for p in runbook_files(shelf.path)})
    where = " or ".join("the built-in runbooks" if s.built_in else f"in {s.label}" for s in shelves) or "anywhere"
    raise UserError(f"no runbook {name_or_path!r} {where}" + (f" (runbooks: {', '.join(known)})" if known else ""))


def catalog(shelves: tuple[Shelf, ...]) -> list[tuple[Path, Shelf, Shelf | None]]:
    """Every runbook on the search path once: (file, its shelf, the built-in shelf it overrides or None). A user's
    runbook named like a shipped one hides the shipped one, as `find` does."""
    out: list[tuple[Path, Shelf, Shelf | None]] = []
    seen: dict[str, int] = {}
    for shelf in shelves:
        for path in runbook_files(shelf.path):
            if path.stem in seen:
                first = out[seen[path.stem]]
                out[seen[path.stem]] = (first[0], first[1], shelf)
                continue
            seen[path.stem] = len(out)
            out.append((path, shelf, None))
    return out


def runbook_files(directory: Path) -> list[Path]:
    """The runbooks in a directory: its Markdown files, except the README that describes them."""
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix.lower() in (".md", ".markdown") and p.stem.lower() != "readme")


# --- invisible characters --------------------------------------------------------------------

def invisible_characters(book: Runbook) -> list[UserError]:
    """One problem per block line holding a character that shows as nothing or as a plain space though the shell
    reads it (masking.INVISIBLE: zero-width, bidi, U+00A0...): `rm -rf ./cache \\u200b# never ./data` reads as a
    comment in an editor or on a code host while bash runs all of it. Every screen shows them escaped; `validate`
    names them and a run where the environment's name is typed to confirm is refused (`refuse_invisible`)."""
    return [UserError(f"{_characters(found)} in a {block.lang} block: shows as nothing or a space, yet is part of "
                      f"the command (plan shows {masking.escaped(found[0])}); runs on `typed` environments are "
                      "refused", book.path, line)
            for block, line, found in _invisible(book)]


def refuse_invisible(book: Runbook, environment: str, protection: str) -> None:
    """UserError when `book` holds an invisible character in a block and `environment` is confirmed by typing its
    name: whoever types it would vouch for a command nobody can see whole."""
    if protection != "typed":
        return
    for _block, line, found in _invisible(book):
        raise UserError(f"{_characters(found)} in a block: a command holding a character nobody can see does not "
                        f"run on {environment!r} (protection typed); remove it (opsconsole runbooks validate lists "
                        "every one)", book.path, line)


def _invisible(book: Runbook) -> list[tuple[Block, int, list[str]]]:
    """(block, file line, the distinct invisible characters of that line) for every block line holding one."""
    out = []
    for step in book.steps:
        for block in step.blocks:
            for line, text in enumerate(block.source.split("\n"), start=block.line + 1):
                found = list(dict.fromkeys(m.group() for m in masking.INVISIBLE.finditer(text)))
                if found:
                    out.append((block, line, found))
    return out


def _characters(found: list[str]) -> str:
    """`U+200B ZERO WIDTH SPACE, U+202E RIGHT-TO-LEFT OVERRIDE`, at most three named."""
    import unicodedata

    names = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'unnamed')}" for c in found[:3])
    return names + (f" and {len(found) - 3} more" if len(found) > 3 else "")


# --- params ----------------------------------------------------------------------------------

def bind_params(runbook: Runbook, given: Mapping[str, object],
                environment: Environment | None = None) -> dict[str, object]:
    """Typed, checked values for every param (defaults applied). UserError names the param and
    points at its front-matter line; secret values are registered for masking first. With an environment, a
    `member` param must name one of its members of the param's kind, and defaults to its front-matter default
    when the environment has that member, else to the first member of the kind."""
    unknown = [k for k in given if runbook.param(k) is None]
    if unknown:
        known = ", ".join(p.name for p in runbook.params) or "none"
        raise UserError(f"unknown param {unknown[0]!r} for runbook {runbook.name} (it takes: {known})")
    values: dict[str, object] = {}
    for param in runbook.params:
        if param.name in given:
            raw = given[param.name]
            text = raw if isinstance(raw, str) else value_text(raw)
            if param.type == "secret":
                masking.register(text)
            try:
                values[param.name] = _coerce(param, text)
                if param.type == "member" and environment is not None:
                    _member_of(param, text, environment)
            except ValueError as exc:
                raise UserError(f"param {param.name!r}: {exc}", runbook.path, param.line) from None
        elif param.type == "member" and environment is not None:
            chosen = param.member_default(environment)
            members = param.members(environment)
            if chosen is not None:
                values[param.name] = chosen
            elif not members and (param.required or param.default is not None):
                raise UserError(f"param {param.name!r}: environment {environment.name!r} has no "
                                f"{_member_words(param)} to name", runbook.path, param.line)
            elif param.required or param.default is not None:
                missing = f"has no {param.default!r}: " if param.default is not None else "has several: "
                raise UserError(f"param {param.name!r}: environment {environment.name!r} {missing}name the "
                                f"{_member_words(param)} with -p {param.name}=NAME (it has: {', '.join(members)})",
                                runbook.path, param.line)
            else:
                values[param.name] = None
        elif param.default is not None:
            values[param.name] = param.default
        elif param.required:
            raise UserError(f"param {param.name!r} is required: -p {param.name}=VALUE ({param.describe()})",
                            runbook.path, param.line)
        else:
            values[param.name] = None
    return values


def _member_words(param: Param) -> str:
    return {None: "member", "service": "service", "queue": "queue"}.get(param.kind, f"{param.kind} member")


def _member_of(param: Param, name: str, environment: Environment) -> None:
    """ValueError unless `name` is a member of `environment` of the param's kind, saying which ones are."""
    members = param.members(environment)
    if name in members:
        return
    what = _member_words(param)
    if not members:
        raise ValueError(f"{name!r}: environment {environment.name!r} has no {what}")
    other = next((t for t in environment.services + environment.queues if t.name == name), None)
    why = f"is a {other.kind or other.group}, not a {what}" if other is not None else \
        f"is not a {what} of environment {environment.name!r}"
    raise ValueError(f"{name!r} {why} (it has: {', '.join(members)})")


def value_text(value: object) -> str:
    """A value as text: booleans as true/false, like the params that produced them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _coerce(param: Param, text: str) -> object:
    """The typed value of `text` for `param`, or ValueError saying why not (never echoing a secret)."""
    if "\x00" in text:
        raise ValueError("holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid UTF-8 text") from None
    shown = "the value" if param.type == "secret" else repr(text)
    if param.type == "int":
        if not re.fullmatch(r"\s*[+-]?\d{1,18}\s*", text):
            raise ValueError(f"{shown} is not a whole number")
        value = int(text)
        if param.minimum is not None and value < param.minimum:
            raise ValueError(f"{value} is below the minimum {param.minimum}")
        if param.maximum is not None and value > param.maximum:
            raise ValueError(f"{value} is above the maximum {param.maximum}")
        return value
    if param.type == "bool":
        lower = text.strip().lower()
        if lower in _TRUE:
            return True
        if lower in _FALSE:
            return False
        raise ValueError(f"{shown} is not true/false (yes/no, 1/0)")
    if param.type == "choice":
        if text not in param.choices:
            raise ValueError(f"{shown} is not one of {', '.join(param.choices)}")
        return text
    if param.type == "member":
        if not _MEMBER_NAME.match(text):
            raise ValueError(f"{shown} is not a member name (letters, digits, _ and -, as in the config)")
        return text
    if not text and param.required:
        raise ValueError("is empty")
    if param.pattern is not None and not re.fullmatch(param.pattern, text):
        raise ValueError(f"{shown} does not match {param.pattern}")
    return text


def _samples(params: tuple[Param, ...]) -> dict[str, object]:
    """Typical values, to check `ops` lines before anyone gives real ones."""
    out: dict[str, object] = {}
    for p in params:
        if p.default is not None:
            out[p.name] = p.default
        elif p.type == "int":
            out[p.name] = p.minimum if p.minimum is not None else (p.maximum if p.maximum is not None else 1)
        elif p.type == "bool":
            out[p.name] = True
        elif p.type == "choice":
            out[p.name] = p.choices[0] if p.choices else "x"
        else:
            out[p.name] = "sample"
    return out


# --- templates (the quoting itself is in templating.py) ------------------------------------

def _unknown(name: str, names: set[str]) -> str | None:
    if name.startswith("previous."):
        key = name.split(".", 1)[1]
        if key in actions.RECORDED_KEYS:
            return None
        recorded = ", ".join(f"previous.{k}" for k in sorted(actions.RECORDED_KEYS))
        return f"unknown placeholder {{{{ {name} }}}} (actions record: {recorded})"
    if name in names:
        return None
    known = ", ".join(sorted(names)) or "none declared"
    return f"unknown placeholder {{{{ {name} }}}} (params: {known}; \\{{{{ for a literal {{{{)"


def placeholders(block: Block) -> set[str]:
    """The names a block uses, e.g. {"replicas", "previous.replicas"}."""
    names = set()
    for m in templating.TOKEN.finditer(block.source):
        inner = (m["inner"] or "").strip()
        if inner and templating.REF.match(inner):
            names.add(inner)
    return names


def render(block: Block, values: Mapping[str, object], recorded: Mapping[str, object],
           path: Path | str | None = None) -> str:
    """The block's text with every placeholder filled. Shell blocks get each value as exactly
    one inert word, whatever quotes surround the placeholder; ops blocks as one shlex word."""
    try:
        parts = templating.split(block.source)
        contexts = templating.sh_contexts(parts) if block.lang == "sh" else templating.ops_contexts(parts)
    except templating.TemplateError as exc:
        raise UserError(exc.message, path, block.line_of(exc.offset)) from None
    out: list[str] = []
    refs = iter(contexts)
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        context = next(refs)
        line = block.line_of(part.offset)
        if part.name.startswith("previous."):
            key = part.name.split(".", 1)[1]
            if key not in recorded:
                raise UserError(f"{{{{ {part.name} }}}}: nothing recorded {key} yet (an earlier "
                                f"{' or '.join(v for v, ks in actions.RECORDS.items() if key in ks) or 'action'} "
                                "records it when it runs)", path, line)
            value = recorded[key]
        elif part.name in values:
            value = values[part.name]
        else:
            raise UserError(f"unknown placeholder {{{{ {part.name} }}}}", path, line)
        text = "" if value is None else value_text(value)
        if "\x00" in text:
            raise UserError(f"{{{{ {part.name} }}}} holds a NUL character", path, line)
        if block.lang == "ops" and ("\n" in text or "\r" in text):
            raise UserError(f"{{{{ {part.name} }}}} holds a line break; an ops line takes one-line values", path, line)
        try:
            out.append(templating.quote(text, context, block.lang))
        except ValueError as exc:
            raise UserError(f"{{{{ {part.name} }}}} {exc}", path, line) from None
    command = "".join(out)
    if block.lang == "sh" and len(parts) > 1:
        problem = templating.shell_syntax_error(command)
        if problem is not None:
            raise UserError(problem[1], path, block.line + problem[0])
    return command


# --- ops blocks ------------------------------------------------------------------------------

def parse_ops(block: Block, rendered: str, path: Path | str | None = None) -> list[Any]:
    """The rendered ops block as Actions or Expectations (never both), one per line.
    UserError with the line for the first problem."""
    problems = ops_problems(block, rendered, path)
    if problems:
        raise problems[0]
    return _ops_items(block, rendered, path)


def _ops_items(block: Block, rendered: str, path: Path | str | None) -> list[Any]:
    from opsconsole import expect

    items: list[Any] = []
    for offset, line in enumerate(rendered.split("\n")):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lineno = block.line + 1 + offset
        if re.match(r"expect\b", stripped):
            items.append(expect.parse(stripped, path, lineno))
        else:
            items.append(actions.parse(stripped, path, lineno))
    return items


def ops_problems(block: Block, rendered: str, path: Path | str | None = None) -> list[UserError]:
    """Every problem of a rendered ops block, each with its line."""
    problems: list[UserError] = []
    items: list[Any] = []
    from opsconsole import expect

    for offset, line in enumerate(rendered.split("\n")):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lineno = block.line + 1 + offset
        try:
            if re.match(r"expect\b", stripped):
                items.append(expect.parse(stripped, path, lineno))
            else:
                items.append(actions.parse(stripped, path, lineno))
        except UserError as exc:
            problems.append(exc)
    kinds = {type(item).__name__ for item in items}
    if not items and not problems:
        problems.append(UserError("empty ops block: write an action (e.g. `deploy api`) or `expect ...`",
                                  path, block.line))
    if len(kinds) > 1:
        problems.append(UserError("an ops block holds either actions or expects, not both: split it in two",
                                  path, block.line))
    has_actions = "Action" in kinds
    if has_actions and block.role in ("check", "verify"):
        problems.append(UserError(f"a {block.role} block may only hold `expect` lines, not actions",
                                  path, block.line))
    if "Expectation" in kinds and block.role == "rollback":
        problems.append(UserError("a rollback block undoes a change; put `expect` lines in a verify block",
                                  path, block.line))
    return problems
