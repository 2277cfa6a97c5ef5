"""A hypothesis strategy that damages valid files the way editors, merges and hostile hands do.

Each example is one of the given files with a few byte-level edits: tokens of the file's own syntax (and
bytes that are not UTF-8, line separators other than \\n, control characters) inserted anywhere, spans
deleted, duplicated or repeated many times over (to show up anything slower than linear), lines swapped.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

# Shared by every format: line ends of all kinds, quotes, brackets, and what is not valid UTF-8 at all.
COMMON_TOKENS = (b"\n", b"\r\n", b"\r", b"\t", b" ", b'"', b"'", b"\\", b"[", b"]", b"{", b"}", b"#", b"=", b":",
                 b",", b"\x00", b"\x1b[2J", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x80\xa8", b"\xc2\x85",
                 b"\xef\xbb\xbf", b"${", b"${OPSFUZZ_UNSET}", b"${OPSFUZZ_SET:-x}", b"{{ ", b" }}")


@st.composite
def mutated(draw: st.DrawFn, bases: Sequence[bytes], tokens: Sequence[bytes] = ()) -> bytes:
    """One of `bases` with 1 to 6 random edits."""
    data = bytearray(draw(st.sampled_from(bases)))
    token = st.sampled_from(tuple(tokens) + COMMON_TOKENS) | st.binary(min_size=1, max_size=4)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        span = draw(st.integers(1, 24))
        edit = draw(st.sampled_from(["insert", "insert", "delete", "duplicate", "repeat", "swap", "byte"]))
        if edit == "insert":
            data[at:at] = draw(token)
        elif edit == "delete":
            del data[at:at + span]
        elif edit == "duplicate":
            data[at:at] = data[at:at + span]
        elif edit == "repeat":  # a short piece many times over: a quadratic scan shows as a hang
            piece = bytes(data[at:at + draw(st.integers(1, 3))]) or draw(token)
            data[at:at] = piece * draw(st.integers(2, 3000))
        elif edit == "swap":
            lines = bytes(data).split(b"\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
        elif at < len(data):
            data[at] = draw(st.integers(0, 255))
    return bytes(data)
