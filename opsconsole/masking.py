"""The one place secrets are hidden.

Every path out (terminal, TUI, logs, journal) passes text through `mask`. Secret values are
registered as they become known: passwords inside URLs, tokens, generated secrets, `secret` params.
"""

from __future__ import annotations

import codecs
import itertools
import os
import re
import threading
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# A shorter value is no secret, and masking it would hide every `x` of every output (and trip the argv guard on
# any literal holding it): the one minimum, for every kind of secret.
MIN_LENGTH = 4

_lock = threading.Lock()
_secrets: set[str] = set()
_generation = 0  # how many times a secret was registered: text masked before may need masking again
# The registered secrets as one pattern, built when first needed after a registration: one pass over the text
# finds every secret (longest first where two start together), instead of one pass per secret.
_index: tuple[int, re.Pattern[str] | None, tuple[str, ...], tuple[str, ...], int] | None = None

# user:password@ inside any URL-ish text, whatever the scheme.
# The lookbehind starts a scheme only where a word starts: without it a long run of letters is rescanned from
# each of its positions (quadratic: a 50 KB line took 20 s).
_URL_PASSWORD = re.compile(r"(?<![a-zA-Z0-9+.\-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s/]*)@")
# password=... in libpq keyword strings and URL query strings.
_KEYWORD_PASSWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<value>'[^']*'|[^\s&]+)", re.IGNORECASE)


def register(value: str | None) -> None:
    """Remember a secret value so `mask` hides it wherever it appears, in the spellings it takes there too."""
    global _generation
    if value and len(value) >= MIN_LENGTH:
        if value in _secrets:
            return  # known, with its spellings: the index stays as it is
        forms = _spellings(value) | _lines_of(value)
        with _lock:
            _secrets.add(value)
            _secrets.update(forms)
            _generation += 1


def generation() -> int:
    """Changes whenever a secret is registered: a cache of masked text is valid only while it stays the same."""
    return _generation


def _spellings(value: str) -> set[str]:
    """How `value` is written once quoted into a command (a `{{ secret }}` in a block) or a JSON string, where
    that does not contain the value itself: `a'b` becomes `'a'"'"'b'`, a line break `$'a\\nb'`, so hiding only
    the raw value would show the pieces around the quotes."""
    import json
    import shlex

    from opsconsole.templating import shell_word

    return {form for form in (shlex.quote(value), shell_word(value), json.dumps(value)[1:-1]) if value not in form}


def _lines_of(value: str) -> set[str]:
    """The lines of a multi-line secret (a PEM key's body), each a secret too: a step printing part of it (`head`)
    shows no line of it. Short lines and PEM armour (`-----BEGIN PRIVATE KEY-----`) say nothing secret."""
    if "\n" not in value:
        return set()
    return {line for line in (part.strip() for part in value.splitlines())
            if len(line) >= 12 and not line.startswith("-----")}


def register_url(url: str | None) -> None:
    """Remember the password inside a URL, if it has one."""
    if not url:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    register(password)


def _alternation(words: list[str]) -> str:
    """A regex matching any of `words` (sorted, distinct, not empty), shaped as their prefix tree: at each
    position the engine follows one branch per character instead of trying every word, and takes the longest."""
    parts = []
    for _, grouped in itertools.groupby(words, key=lambda w: w[0]):
        group = list(grouped)
        if len(group) == 1:
            parts.append(re.escape(group[0]))
            continue
        prefix = os.path.commonprefix(group)
        rest = [w[len(prefix):] for w in group]
        inner = _alternation([r for r in rest if r])
        parts.append(f"{re.escape(prefix)}(?:{inner}){'?' if '' in rest else ''}")
    return "|".join(parts)


def _current_index() -> tuple[re.Pattern[str] | None, tuple[str, ...], tuple[str, ...], int]:
    """(pattern, the secrets longest first when no pattern could be built, the multi-line ones, longest length)."""
    global _index
    index = _index
    if index is not None and index[0] == _generation:
        return index[1:]
    with _lock:
        generation, secrets = _generation, sorted(_secrets)
    pattern = None
    try:
        pattern = re.compile(_alternation(secrets)) if secrets else None
    except (RecursionError, re.error, OverflowError):  # a pathological set (deeply nested prefixes): scan each
        pass
    ordered = tuple(sorted(secrets, key=len, reverse=True)) if pattern is None else ()
    multi_line = tuple(s for s in secrets if "\n" in s)
    _index = (generation, pattern, ordered, multi_line, max(map(len, secrets), default=0))
    return _index[1:]


def mask(text: str) -> str:
    """Hide every registered secret and every URL or keyword password in `text`."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _KEYWORD_PASSWORD.sub(lambda m: f"{m['key']}{MASK}", text)
    pattern, ordered, _, _ = _current_index()
    if pattern is not None:
        return pattern.sub(MASK, text)
    for secret in ordered:  # longest first, so a secret that contains another is hidden whole
        text = text.replace(secret, MASK)
    return text


class StreamMasker:
    """Masks output that arrives in chunks and leaves as lines: a secret is hidden even where it spans line
    breaks (a PEM key echoed) or the cut of a line longer than `max_line`, which per-line masking would show
    in pieces.

    Lines that could be the start of a multi-line secret are held until it is clear whether they are (at most
    that secret's length); any other line leaves as soon as it is complete. A line longer than `max_line` is cut
    there, or just after a secret that crosses that point.
    """

    def __init__(self, emit: Callable[[str], None], max_line: int = 65536) -> None:
        self._emit = emit
        self._max_line = max_line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""  # the line being received, raw
        self._held: list[str] = []  # complete lines, raw, that may begin a multi-line secret

    def feed_bytes(self, data: bytes) -> None:
        self.feed(self._decoder.decode(data))

    def feed(self, text: str) -> None:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._line(line.rstrip("\r"))
        self._cut_long()

    def close(self) -> None:
        """The stream ended: everything held or partial leaves, masked."""
        rest = self._decoder.decode(b"", final=True)
        if rest:
            self.feed(rest)
        if self._partial:
            self._line(self._partial.rstrip("\r"))
            self._partial = ""
        self._release(len(self._held))

    def _line(self, line: str) -> None:
        self._held.append(line)
        _, _, multi_line, _ = _current_index()
        if not multi_line:
            self._release(len(self._held))
            return
        text = "\n".join(self._held) + "\n"
        start = _open_start(text, multi_line)
        if start is None:
            self._release(len(self._held))
            return
        # Lines wholly before the secret's possible start can go; the one it starts in stays.
        keep_from = text.count("\n", 0, start)
        self._release(keep_from)

    def _release(self, count: int) -> None:
        if count <= 0:
            return
        lines, self._held = self._held[:count], self._held[count:]
        for line in mask("\n".join(lines)).split("\n"):
            self._emit(line)

    def _cut_long(self) -> None:
        while len(self._partial) > self._max_line:
            pattern, ordered, _, longest = _current_index()
            window = self._max_line + max(longest - 1, 0)
            if len(self._partial) < window and longest > 1:
                return  # a secret might cross the cut: wait until the rest of it could be here
            cut = self._max_line
            found = (pattern.finditer(self._partial, 0, window) if pattern is not None else
                     (m for s in ordered for m in re.finditer(re.escape(s), self._partial[:window])))
            for m in found:
                if m.start() < cut < m.end():
                    cut = m.end()
            self._release(len(self._held))
            piece, self._partial = self._partial[:cut], self._partial[cut:]
            self._emit(mask(piece))


def _open_start(text: str, secrets: tuple[str, ...]) -> int | None:
    """The first position from which the end of `text` is the beginning (not the whole) of one of `secrets`."""
    best = None
    for secret in secrets:
        first = secret[0]
        k = text.find(first, max(0, len(text) - len(secret) + 1))
        while k != -1:
            if best is not None and k >= best:
                break
            if secret.startswith(text[k:]):
                best = k
                break
            k = text.find(first, k + 1)
    return best


def redact_url(url: str) -> str:
    """A URL fit for display: the password replaced, everything else kept."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask(url)
    if parts.password is None:
        return mask(url)
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return mask(urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{netloc}")))


# C0 controls but tab and newline, DEL and the C1 controls (U+009B is a CSI on its own): text from servers,
# commands and params that would move the cursor, clear or retitle the terminal if printed raw.
_CONTROL = r"\x00-\x08\x0b-\x1f\x7f-\x9f"
# The same and tab and newline too: for a name or a message that must stay on its own line (a sub-service name
# holding a line break would forge a row of `check`'s table).
_CONTROL_ONE_LINE = r"\x00-\x1f\x7f-\x9f"
# Characters a terminal shows as nothing, or as a plain space, that are neither: every format character (Unicode
# category Cf: zero-width space, joiners, word joiner, BOM, soft hyphen, bidi marks, embeddings, overrides and
# isolates, Arabic letter mark, tags), the line and paragraph separators, every space but U+0020 (bash reads
# U+00A0 as part of a word), and the fillers and blank Braille that print as blanks. `rm -rf ./cache\u200b# x`
# would otherwise read as a comment on screen while bash runs all of it; a right-to-left override reorders what
# is read. Cf as of Unicode 15 (tests/unit/test_printable.py checks it against the running Python's table).
_INVISIBLE = ("\u00a0\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u1680\u180e"
              "\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u2800\u3000\u3164\ufeff\uffa0"
              "\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
              "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f")
INVISIBLE = re.compile(f"[{_INVISIBLE}]")
# One class each, not an alternation: printable runs on every line of output.
_UNSAFE = re.compile(f"[{_CONTROL}{_INVISIBLE}]")
_UNSAFE_ONE_LINE = re.compile(f"[{_CONTROL_ONE_LINE}{_INVISIBLE}]")


def escaped(char: str) -> str:
    """How `printable` shows one unsafe character: `\\x1b`, `\\u200b`, `\\U000e0041`."""
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str, one_line: bool = False) -> str:
    """`mask(text)` fit for a terminal: control characters shown as \\xNN escapes, never sent raw, and characters
    that print as nothing or as a plain space though they are not one (zero-width, bidi, U+00A0...) as \\uNNNN;
    with `one_line`, tabs and line breaks as well."""
    text = mask(text)
    unsafe = _UNSAFE_ONE_LINE if one_line else _UNSAFE
    if not text or not unsafe.search(text):
        return text
    return unsafe.sub(lambda m: escaped(m.group()), text)
