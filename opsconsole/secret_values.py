"""Generated secret values: how they are made, how they are shown, where the previous one waits.

A value is never printed; `fingerprint` is what users see ("sha256:1a2b3c4d"), enough to tell two
values apart and to match a value they hold, never enough to recover it. During a rotation the
previous value is kept in the OS keyring (service "opsconsole", account "previous/<env>/<name>") so
`rotate-secret --rollback` can put it back; it is forgotten once the rotation is confirmed good.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opsconsole import credentials, masking, runner
from opsconsole.errors import UserError

# Characters each alphabet draws from; "urlsafe" matches secrets.token_urlsafe's base64url set.
ALPHABETS = {
    "hex": "0123456789abcdef",
    "urlsafe": string.ascii_letters + string.digits + "-_",
    "alnum": string.ascii_letters + string.digits,
}
# Default length per alphabet: 256 random bits each; for hex that is exactly secrets.token_hex(32).
DEFAULT_LENGTH = {"hex": 64, "urlsafe": 43, "alnum": 43}
MIN_BITS = 128
MAX_LENGTH = 4096


def generate(length: int | None = None, alphabet: str = "hex") -> str:
    """A new random value of `length` characters (None: the alphabet's 256-bit default), registered for masking.

    `length` counts characters, so a configured `length = 40` yields a 40-character value. Fewer than
    128 random bits is refused: a rotation should never weaken a secret.
    """
    if alphabet not in ALPHABETS:
        raise UserError(f"unknown secret alphabet {alphabet!r} (expected one of: {', '.join(ALPHABETS)})")
    chars = ALPHABETS[alphabet]
    if length is None:
        length = DEFAULT_LENGTH[alphabet]
    if isinstance(length, bool) or not isinstance(length, int):
        raise UserError(f"secret length must be a whole number, not {length!r}")
    minimum = math.ceil(MIN_BITS / math.log2(len(chars)))
    if not minimum <= length <= MAX_LENGTH:
        raise UserError(f"secret length {length} out of range for alphabet {alphabet!r}: "
                        f"{minimum}..{MAX_LENGTH} characters ({MIN_BITS} random bits at least)")
    if alphabet == "hex" and length % 2 == 0:
        value = secrets.token_hex(length // 2)
    else:
        value = "".join(secrets.choice(chars) for _ in range(length))
    masking.register(value)
    return value


def fingerprint(value: str) -> str:
    """A short, stable, one-way name for `value`: "sha256:" and the first 8 hex digits of its SHA-256."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:8]


def _account(environment: str, name: str) -> str:
    return f"previous/{environment}/{name}"


def keep_previous(environment: str, name: str, value: str) -> None:
    """Keep the value being replaced, for `--rollback`; UserError when there is no usable keyring."""
    credentials.put(_account(environment, name), value)


def previous(environment: str, name: str) -> str | None:
    """The kept previous value (registered for masking), or None when none is kept (or no keyring)."""
    return credentials.get(_account(environment, name))


def forget_previous(environment: str, name: str) -> bool:
    """Drop the kept previous value; False when none was kept. Without a keyring there is nothing to forget."""
    if credentials.backend() is None:
        return False
    return credentials.remove(_account(environment, name))


@dataclass(frozen=True)
class ForgetPrevious:
    """A planned call: drop the kept previous value once it is no longer needed (a rollback used it)."""

    environment: str
    name: str
    display: str = ""
    fingerprint_text: str = ""
    records: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shown = (f"forget the previous {self.name} kept in the OS keyring "
                 f"(opsconsole previous/{self.environment}/{self.name})")
        object.__setattr__(self, "display", self.display or shown)
        object.__setattr__(self, "fingerprint_text", self.fingerprint_text or self.display)

    def perform(self, on_output: Callable[[str], None]) -> runner.Result:
        started = time.monotonic()
        try:
            forgotten = forget_previous(self.environment, self.name)
        except UserError as exc:
            return runner.Result(1, "", time.monotonic() - started, error=masking.mask(exc.message))
        message = (f"previous {self.name} forgotten from the OS keyring" if forgotten
                   else f"no previous {self.name} was kept in the OS keyring")
        on_output(message)
        return runner.Result(0, message, time.monotonic() - started)
