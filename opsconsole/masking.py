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

# user:password@ inside any URL-ish text, whatever the scheme.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<password>[^@\s/]*)@")
# password=... in libpq keyword strings and URL query strings.
_KEYWORD_PASSWORD = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<value>'[^']*'|[^\s&]+)", re.IGNORECASE)


def register(value: str | None) -> None:
    """Remember a secret value so `mask` hides it wherever it appears."""
    if value:
        with _lock:
            _secrets.add(value)


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
