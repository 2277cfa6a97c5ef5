"""The one place secrets are hidden.

Every path out (terminal, TUI, logs, journal) passes text through `mask`. Secret values are
registered as they become known: passwords inside URLs, tokens, generated secrets, `secret` params.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

_lock = threading.Lock()
_secrets: set[str] = set()
_generation = 0  # how many times a secret was registered: text masked before may need masking again

# user:password@ inside any URL-ish text, whatever the scheme.
# The lookbehind starts a scheme only where a word starts: without it a long run of letters is rescanned from
# each of its positions (quadratic: a 50 KB line took 20 s).
_URL_PASSWORD = re.compile(r"(?<![a-zA-Z0-9+.\-])(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s/]*)@")
# password=... in libpq keyword strings and URL query strings.
_KEYWORD_PASSWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<value>'[^']*'|[^\s&]+)", re.IGNORECASE)


def register(value: str | None) -> None:
    """Remember a secret value so `mask` hides it wherever it appears, in the spellings it takes there too."""
    global _generation
    if value:
        forms = _spellings(value)
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


def register_url(url: str | None) -> None:
    """Remember the password inside a URL, if it has one."""
    if not url:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    register(password)


def mask(text: str) -> str:
    """Hide every registered secret and every URL or keyword password in `text`."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _KEYWORD_PASSWORD.sub(lambda m: f"{m['key']}{MASK}", text)
    with _lock:
        # Longest first, so a secret that contains another is hidden whole.
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


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
