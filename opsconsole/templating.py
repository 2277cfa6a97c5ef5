"""Placeholders (`{{ name }}`, `{{ previous.key }}`) and quoting each value for where it lands.

`split` cuts a block into literal text and placeholders. `sh_contexts` follows bash's quoting
rules through the literal text (quotes, $'...', $( ), ${ }, backticks, comments, here-documents,
arithmetic) to tell each placeholder's context, and `quote` turns a value into text that is
exactly that value and nothing else there: one inert word. Where no quoting can make a value
inert (a here-document, backticks, ${...}, after >&), the placeholder is refused. The ops
grammar is read with shlex, so `ops_contexts` follows shlex's simpler rules.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

TOKEN = re.compile(r"\\\{\{|\{\{(?P<inner>[^\n]*?)\}\}")
REF = re.compile(r"(?:previous\.)?[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Ref:
    name: str
    offset: int


class TemplateError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def split(source: str, errors: list[TemplateError] | None = None) -> list[str | Ref]:
    """Literal text and placeholders. `\\{{` is a literal `{{`; `{{` not followed by a name
    (Go templates: `{{.State}}`, `{{"\\n"}}`) is literal too. Mistakes raise TemplateError,
    or are appended to `errors` (and kept as literal text) when it is given."""
    parts: list[str | Ref] = []
    pos = 0
    literal: list[str] = []
    for m in TOKEN.finditer(source):
        if m.group(0) == "\\{{":
            literal.append(source[pos:m.start()] + "{{")
            pos = m.end()
            continue
        inner = m["inner"].strip()
        if not inner or not (inner[0].isalpha() or inner[0] == "_"):
            continue
        if not REF.match(inner):
            error = TemplateError(f"not a placeholder: {m.group(0)} (write {{{{ name }}}} or {{{{ previous.key }}}}; "
                                   "\\{{ for a literal {{)", m.start())
            if errors is None:
                raise error
            errors.append(error)
            continue
        literal.append(source[pos:m.start()])
        parts.append("".join(literal))
        literal = []
        parts.append(Ref(inner, m.start()))
        pos = m.end()
    literal.append(source[pos:])
    parts.append("".join(literal))
    return parts


def shell_syntax_error(command: str) -> tuple[int, str] | None:
    """(line within `command`, message) of bash's first syntax complaint, or None when it parses
    (or when bash is not installed). A script with a syntax error is never run with values in it:
    bash recovers from the error by skipping to the next line, which can be inside a value."""
    import shutil
    import subprocess

    bash = shutil.which("bash")
    if bash is None:
        return None
    try:
        # The script goes in on stdin: as an argument, one starting with "-" would read as an option.
        result = subprocess.run([bash, "-n"], input=command.encode("utf-8", "surrogateescape"), capture_output=True,
                                timeout=10, env={"PATH": "/nonexistent", "LC_ALL": "C"})
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return (1, "bash could not check this block")
    if result.returncode == 0:
        return None
    first = result.stderr.decode("utf-8", "replace").strip().splitlines()[:1] or ["syntax error"]
    m = re.match(r".*?line (\d+): (.*)", first[0])
    line, message = (int(m[1]), m[2]) if m else (1, first[0])
    if not message.startswith("syntax error"):
        message = "syntax error: " + message
    return min(line, command.count("\n") + 1), "shell " + message


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ANSI_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", "'": "\\'"}


def shell_word(text: str) -> str:
    """`text` as one shell word, always on one line: shlex quoting, or $'...' when the text holds
    a line break or another control character. A raw line break inside a quoted value could let
    bash, recovering from a syntax error earlier on the line, resume parsing inside the value."""
    if not _CONTROL.search(text):
        return shlex.quote(text)
    return "$'" + "".join(_ANSI_NAMED.get(c) or (f"\\x{ord(c):02x}" if _CONTROL.match(c) else c) for c in text) + "'"


def quote(text: str, context: str, lang: str) -> str:
    if context == "comment":  # quoted anyway, on one line: inert even if this were not a comment
        return shell_word(text)
    if context == "arith":  # bash evaluates `a[$(cmd)]` here whatever the quotes: numbers only
        if not re.fullmatch(r"[+-]?\d{1,18}", text):
            raise ValueError("is used in arithmetic ($(( )), (( )), [[ -eq ]], let, a[...]) and must be a whole number")
        return text
    quoted = shell_word(text) if lang == "sh" else shlex.quote(text)  # ops lines are read by shlex
    # Close the surrounding quote, add the value as its own quoted word, reopen: `"a "'v'" b"`.
    return {"code": quoted, "sq": f"'{quoted}'", "dq": f'"{quoted}"', "ansi": f"'{quoted}$'"}[context]


def ops_contexts(parts: list[str | Ref]) -> list[str]:
    """Quote context of each placeholder in an ops block (shlex rules, line by line)."""
    contexts = []
    state = "code"
    for part in parts:
        if isinstance(part, Ref):
            contexts.append(state)
            continue
        i = 0
        while i < len(part):
            c = part[i]
            if c == "\n":
                state = "code"
            elif state == "code":
                if c == "\\":
                    i += 1
                elif c == "'":
                    state = "sq"
                elif c == '"':
                    state = "dq"
            elif state == "sq":
                if c == "'":
                    state = "code"
            elif state == "dq":
                if c == "\\" and part[i + 1:i + 2] in ('"', "\\"):
                    i += 1
                elif c == '"':
                    state = "code"
            i += 1
    return contexts


class _Frame:
    __slots__ = ("kind", "depth", "cases", "text", "refs", "dup")

    def __init__(self, kind: str, depth: int = 0) -> None:
        self.kind = kind
        self.depth = depth  # open parentheses (sub, arith) or braces (param)
        self.cases = 0  # open `case` words: their patterns' `)` do not close $( )
        self.text: list[str] = []  # [[ ... ]] and let: what they hold, to spot arithmetic
        self.refs: list[int] = []  # placeholders inside [[ ... ]] / let
        self.dup = 0  # after `>&`: 1 until its word starts, 2 inside it (bash expands that word twice)


_CODE = ("code", "sub", "bq", "dbrack", "let")  # where words, quotes and substitutions start
_WORD_START = " \t\n;&|()<>"
_ARITH_TEST = re.compile(r"(?:^|\s)-(?:eq|ne|lt|le|gt|ge)(?:\s|$)")


def _expansion(text: str, i: int) -> tuple[_Frame, int] | None:
    """The frame a `$` at `i` opens (`$((`, `$[`, `$(`, `${`) and how many characters after it belong to the
    opener; None for a `$` that opens nothing. Quoted and unquoted text open these alike."""
    if text[i + 1:i + 3] == "((":
        return _Frame("arith", 2), 2
    opener = text[i + 1:i + 2]
    if opener == "[":
        return _Frame("arith", 1), 1
    if opener == "(":
        return _Frame("sub", 1), 1
    if opener == "{":
        return _Frame("param", 1), 1
    return None


def sh_contexts(parts: list[str | Ref], errors: list[TemplateError] | None = None) -> list[str]:
    """The shell quoting context at each placeholder, following bash's rules closely enough to
    quote safely: quotes, $'...', $(...), ${...}, backticks, comments, here-documents and the
    arithmetic contexts ($(( )), (( )), [[ -eq ]], let, subscripts) where bash evaluates `a[$(cmd)]`
    inside a value, so only whole numbers may go there. Contexts where a value cannot be made
    inert raise TemplateError (or go to `errors`)."""

    def refuse(message: str, offset: int) -> None:
        if errors is None:
            raise TemplateError(message, offset)
        errors.append(TemplateError(message, offset))

    if not any(isinstance(part, Ref) for part in parts):
        return []  # contexts and refusals exist only at placeholders: a long literal block need not be walked
    stack = [_Frame("code")]
    heredocs: list[tuple[str, bool]] = []  # pending (delimiter, strip tabs) until the line ends
    heredoc_line: list[str] = []
    contexts: list[str] = []
    prev = "\n"
    last_ref: Ref | None = None

    def pop() -> None:
        frame = stack.pop()
        if frame.kind in ("dbrack", "let") and (frame.kind == "let" or _ARITH_TEST.search("".join(frame.text))):
            for index in frame.refs:
                if contexts[index] not in ("comment",):
                    contexts[index] = "arith"

    for part in parts:
        if isinstance(part, Ref):
            kinds = [f.kind for f in stack]
            kind = kinds[-1]
            name = f"{{{{ {part.name} }}}}"
            if "bq" in kinds:
                refuse(f"{name} inside backticks cannot be quoted safely; use $( ... )", part.offset)
            elif kind == "heredoc":
                refuse(f"{name} inside a here-document cannot be quoted safely; "
                       f"set a variable before it (NAME={name}) and use \"$NAME\"", part.offset)
            elif kind == "param":
                refuse(f"{name} inside ${{...}} cannot be quoted safely; set a variable first", part.offset)
            elif any(f.dup for f in stack):
                refuse(f"{name} right after >& is expanded twice by bash (it can run a command hidden in the value); "
                       f"write > {name} 2>&1 instead", part.offset)
            elif prev == "$" and kind not in ("sq", "ansi", "comment"):
                refuse(f"{name} right after $ would be read as $'...' or a variable; add a space or quote the $",
                       part.offset)
            if kind == "comment":
                context = "comment"
            elif "arith" in kinds or (prev == "[" and kind in _CODE):
                context = "arith"
            else:
                context = {"sq": "sq", "dq": "dq", "ansi": "ansi"}.get(kind, "code")
            for frame in stack:
                if frame.kind in ("dbrack", "let"):
                    frame.refs.append(len(contexts))
                    frame.text.append("x")
            contexts.append(context)
            if kind == "heredoc":
                heredoc_line.append("x")
            prev = "x"
            last_ref = part
            continue
        text = part
        i = 0
        n = len(text)
        while i < n:
            c = text[i]
            top = stack[-1]
            kind = top.kind
            escaped = False
            for frame in stack:
                if frame.kind in ("dbrack", "let"):
                    frame.text.append(c)
            if kind == "heredoc":
                if c == "\n":
                    delimiter, strip = heredocs[0]
                    line = "".join(heredoc_line)
                    if (line.lstrip("\t") if strip else line) == delimiter:
                        heredocs.pop(0)
                        if not heredocs:
                            pop()
                    heredoc_line = []
                else:
                    heredoc_line.append(c)
                prev = c
                i += 1
                continue
            if kind == "comment":
                if c == "\n":
                    pop()
                    continue  # the newline also ends the command (here-documents start, let ends)
                prev = c
                i += 1
                continue
            if kind == "sq":
                if c == "'":
                    pop()
            elif kind == "ansi":
                if c == "\\":
                    i, escaped = i + 1, True
                elif c == "'":
                    pop()
            elif kind in ("dq", "param", "arith"):
                if c == "\\":
                    i, escaped = i + 1, True
                elif c == '"':
                    if kind == "dq":
                        pop()
                    else:
                        stack.append(_Frame("dq"))
                elif c == "'" and kind == "param" and stack[-2].kind != "dq":
                    stack.append(_Frame("sq"))
                elif c == "`":
                    stack.append(_Frame("bq"))
                elif c == "$" and (opened := _expansion(text, i)):
                    stack.append(opened[0])
                    i += opened[1]
                elif kind == "param" and c in "{}":
                    top.depth += 1 if c == "{" else -1
                    if top.depth == 0:
                        pop()
                elif kind == "arith" and c in "()[]":
                    top.depth += 1 if c in "([" else -1
                    if top.depth == 0:
                        pop()
            else:  # code-like: code, sub, bq, dbrack, let
                if c == "\\" and text[i + 1:i + 2] == "\n":
                    i += 2  # a line continuation vanishes: what follows continues the same word or space
                    continue
                word_start = prev in _WORD_START
                if top.dup == 1 and c not in " \t":
                    top.dup = 2
                elif top.dup == 2 and c in " \t\n;&|<>()":
                    top.dup = 0
                if c == "&" and prev in "<>" and prev:
                    top.dup = 1
                elif c == "\\":
                    i, escaped = i + 1, True
                elif c == "\n" or (kind == "let" and c in ";&|)"):
                    if kind == "let":
                        pop()
                        continue  # the character also means something to the frame below
                    if heredocs:
                        stack.append(_Frame("heredoc"))
                        heredoc_line = []
                elif c == "#" and word_start:
                    stack.append(_Frame("comment"))
                elif c == "'":
                    stack.append(_Frame("sq"))
                elif c == '"':
                    stack.append(_Frame("dq"))
                elif c == "`":
                    if kind == "bq":
                        pop()
                    else:
                        stack.append(_Frame("bq"))
                elif c == "$" and text[i + 1:i + 2] == "'":
                    stack.append(_Frame("ansi"))
                    i += 1
                elif c == "$" and (opened := _expansion(text, i)):
                    stack.append(opened[0])
                    i += opened[1]
                elif c == "(" and word_start and text[i + 1:i + 2] == "(":
                    stack.append(_Frame("arith", 2))
                    i += 1
                elif c == "(" and kind == "sub":
                    top.depth += 1
                elif c == ")" and kind == "sub":
                    if not (top.cases and top.depth == 1):  # else a case pattern's `)`
                        top.depth -= 1
                        if top.depth == 0:
                            pop()
                elif c == "<" and text[i:i + 3] == "<<<":
                    i += 2  # a here-string: an ordinary word follows
                elif c == "<" and text[i:i + 2] == "<<":  # (inside [[ ]] too: when unsure, assume the riskier)
                    i = _heredoc_start(text, i + 2, heredocs)
                    prev = "x"
                    continue
                elif word_start and kind != "dbrack" and re.match(r"\[\[\s", text[i:i + 3]):
                    stack.append(_Frame("dbrack"))
                    i += 1
                elif word_start and kind == "dbrack" and re.match(r"\]\](?:[\s;&|)]|\Z)", text[i:i + 3]):
                    pop()
                    i += 1
                elif word_start and kind not in ("dbrack", "let") and re.match(r"let\s", text[i:i + 4]):
                    stack.append(_Frame("let"))
                    i += 2
                elif word_start and re.match(r"case\s", text[i:i + 5]):
                    top.cases += 1
                elif word_start and re.match(r"esac(?![\w])", text[i:i + 5]) and top.cases:
                    top.cases -= 1
            if escaped:
                # An escaped character is part of a word (no comment can start after it);
                # an escaped newline vanishes, leaving the character before it.
                prev = prev if text[i:i + 1] in ("\n", "") else "x"
            elif i < n:
                prev = text[i]
            i += 1
    while stack[-1].kind in ("let", "dbrack"):
        pop()  # let and an unclosed [[ end with the block
    closing = [f.kind for f in stack[1:] if f.kind not in ("comment", "heredoc")]
    if closing and last_ref is not None:
        where = _NAMES.get(closing[-1], closing[-1])
        refuse(f"cannot tell how to quote {{{{ {last_ref.name} }}}}: the block ends inside {where}",
               last_ref.offset)
    return contexts


_NAMES = {"sq": "single quotes", "dq": "double quotes", "ansi": "$'...'", "sub": "$( ... )", "param": "${...}",
          "bq": "backticks", "arith": "arithmetic", "dbrack": "[[ ... ]]"}


def _heredoc_start(text: str, i: int, heredocs: list[tuple[str, bool]]) -> int:
    """Read `<<[-] WORD` from text[i:] (after `<<`); queue the delimiter; return where it ends."""
    strip = text[i:i + 1] == "-"
    if strip:
        i += 1
    while i < len(text) and text[i] in " \t":
        i += 1
    m = re.match(r"""(?:'([^'\n]*)'|"([^"\n]*)"|\\?([^\s;&|<>()]+))""", text[i:])
    if m is None:
        return i
    delimiter = next(g for g in m.groups() if g is not None)
    heredocs.append((delimiter.replace("'", "").replace('"', ""), strip))
    return i + m.end()
