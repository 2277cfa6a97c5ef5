"""Where keys stand in a TOML file, so config errors can name the line.

`tomllib` gives values but no positions. This scans the text for table headers, `key =` lines and
keys inside inline tables, which covers how people write opsconsole.toml. A key it cannot place is
reported at its nearest placed parent.
"""

from __future__ import annotations

import re

# No two parts of it can take the same characters, so a line that is no header fails in linear time
# (`\s*(?P<name>[^\]]+?)\s*` took 12 s on `[` and 3 000 spaces in a multi-line array). _split_key drops the blanks.
_HEADER = re.compile(r"^\s*\[\[?(?P<name>[^\]]+)\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*(?P<key>(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*=""")
_INLINE_KEY = re.compile(r"""(?P<key>[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')\s*=\s*""")

Path_ = tuple[str, ...]
_DEEPEST = 64


def _split_key(key: str) -> Path_:
    parts = re.findall(r"""[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'""", key)
    return tuple(p[1:-1] if p[:1] in "\"'" else p for p in parts)


def _inline_keys(value: str, prefix: Path_, line: int, out: dict[Path_, int]) -> None:
    """Record keys of inline tables in `value` (e.g. `{ depth = { warn = 1 } }`)."""
    stack: list[Path_] = []
    current = prefix
    last_key: Path_ | None = None
    i = 0
    in_string: str | None = None
    while i < len(value):
        ch = value[i]
        if in_string:
            if ch == in_string:
                in_string = None
            i += 1
            continue
        if ch in "\"'":
            m = _INLINE_KEY.match(value, i)
            if m and stack:
                last_key = current + _split_key(m["key"])
                out.setdefault(last_key, line)
                i = m.end()
                continue
            in_string = ch
        elif ch == "{":
            stack.append(current)
            current = last_key if last_key is not None else current
        elif ch == "}":
            current = stack.pop() if stack else prefix
        elif ch == "#":
            break
        elif stack and (ch.isalnum() or ch in "_-"):
            m = _INLINE_KEY.match(value, i)
            if m:
                last_key = current + _split_key(m["key"])
                out.setdefault(last_key, line)
                i = m.end()
                continue
            while i < len(value) and (value[i].isalnum() or value[i] in "_-."):
                i += 1
            continue
        i += 1


class KeyLines:
    """Line numbers (1-based) of the tables and keys in one TOML text."""

    def __init__(self, text: str) -> None:
        self._lines: dict[Path_, int] = {}
        table: Path_ = ()
        in_multiline: str | None = None
        # TOML lines end at \n only: splitlines() would also split at \x85 or \u2028 in a comment or a string.
        for number, raw in enumerate(text.split("\n"), start=1):
            if in_multiline:
                if in_multiline in raw:
                    in_multiline = None
                continue
            header = _HEADER.match(raw)
            if header:
                table = _split_key(header["name"])
                # [a.b.c] also places a and a.b; a header deeper than _DEEPEST (config refuses it) places its top
                # only: every prefix of a 20 000-part header would be 200 million tuple items.
                for end in range(1, min(len(table), _DEEPEST) + 1):
                    self._lines.setdefault(table[:end], number)
                continue
            key = _KEY.match(raw)
            if not key:
                continue
            path = table + _split_key(key["key"])
            self._lines.setdefault(path, number)
            rest = raw[key.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) == 1:
                    in_multiline = quote
            _inline_keys(rest, path, number, self._lines)

    def line(self, *path: str) -> int | None:
        """The line of `path`, or of its nearest parent that could be placed."""
        key = tuple(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return None
