"""`masking.printable`: what reaches a terminal shows every character for what it is. Control characters as \\xNN;
characters that print as nothing or as a plain space though they are not one (Unicode format characters, the line
and paragraph separators, spaces but U+0020, fillers) as \\uNNNN, each kind checked, and the whole of category Cf
checked against the running Python's Unicode table."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from opsconsole import masking

KINDS = {  # character -> how it must show
    "\u200b": "\\u200b",  # zero-width space
    "\u200c": "\\u200c",  # zero-width non-joiner
    "\u200d": "\\u200d",  # zero-width joiner
    "\u2060": "\\u2060",  # word joiner
    "\ufeff": "\\ufeff",  # byte order mark / zero-width no-break space
    "\u00ad": "\\xad",  # soft hyphen
    "\u200e": "\\u200e",  # left-to-right mark
    "\u200f": "\\u200f",  # right-to-left mark
    "\u061c": "\\u061c",  # Arabic letter mark
    "\u202a": "\\u202a",  # left-to-right embedding
    "\u202b": "\\u202b",  # right-to-left embedding
    "\u202c": "\\u202c",  # pop directional formatting
    "\u202d": "\\u202d",  # left-to-right override
    "\u202e": "\\u202e",  # right-to-left override
    "\u2066": "\\u2066",  # left-to-right isolate
    "\u2067": "\\u2067",  # right-to-left isolate
    "\u2068": "\\u2068",  # first strong isolate
    "\u2069": "\\u2069",  # pop directional isolate
    "\U000e0041": "\\U000e0041",  # tag latin capital A (hidden text in a "flag")
    "\u2028": "\\u2028",  # line separator
    "\u2029": "\\u2029",  # paragraph separator
    "\u00a0": "\\xa0",  # no-break space: bash reads it as part of a word
    "\u3000": "\\u3000",  # ideographic space
    "\u3164": "\\u3164",  # Hangul filler: prints as a blank
    "\x1b": "\\x1b",  # and the control characters as before
    "\x9b": "\\x9b",
}


@pytest.mark.parametrize("char", sorted(KINDS), ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("one_line", [False, True])
def test_each_kind_is_shown_escaped(char, one_line):
    assert masking.printable(f"rm -rf ./cache {char}# never ./data", one_line=one_line) == \
        f"rm -rf ./cache {KINDS[char]}# never ./data"


def test_every_format_character_of_this_python_is_escaped():
    table = [chr(c) for c in range(sys.maxunicode + 1)
             if unicodedata.category(chr(c)) in ("Cf", "Zl", "Zp") or
             (unicodedata.category(chr(c)) == "Zs" and c != 0x20)]
    missed = [f"U+{ord(c):04X}" for c in table if masking.printable(c) == c]
    assert not missed, f"shown raw: {missed} (Unicode {unicodedata.unidata_version})"


def test_plain_text_and_what_it_may_hold_stay_as_they_are():
    text = "déploiement — 東京 · ✔ naïve café\ttab\nnext line 🙂"
    assert masking.printable(text) == text
    assert masking.printable("a\tb\nc", one_line=True) == "a\\x09b\\x0ac"


def test_escaping_comes_after_masking():
    secret = "s3cr\u200bet-printable"
    masking.register(secret)
    assert masking.printable(f"token {secret}") == f"token {masking.MASK}"
