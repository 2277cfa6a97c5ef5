"""Theme files (read and checked by the core) turned into Textual themes."""

from __future__ import annotations

from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from opsconsole import themes
from opsconsole.errors import ConfigError

# Used when a theme leaves one of opsconsole's variables out.
VARIABLE_DEFAULTS = {
    "status-ok": "#3fb950",
    "status-warn": "#e6b422",
    "status-crit": "#ff4d4f",
    "status-unknown": "#b48ead",
    "badge-production": "#d0021b",
    "badge-production-text": "#ffffff",
    "badge-other": "#2f6fb0",
    "badge-other-text": "#ffffff",
}


def _check(theme: themes.ThemeFile) -> None:
    for key, value in list(theme.colours.items()) + [(f"variables.{k}", v) for k, v in theme.variables.items()]:
        if key.startswith("variables.") and key.split(".", 1)[1] not in VARIABLE_DEFAULTS:
            continue  # a variable for the user's own CSS; Textual checks it where used
        try:
            Color.parse(value)
        except ColorParseError:
            raise ConfigError(f"{key}: {value!r} is not a colour (try \"#1e90ff\" or \"red\")",
                              theme.path, theme.line(*key.split(".", 1))) from None


def load(base_dir: Path | None) -> list[Theme]:
    """Every theme file from the theme folders, as Textual themes; ConfigError names a bad file and line."""
    out = []
    for theme in themes.discover(themes.folders(base_dir)).values():
        _check(theme)
        out.append(Theme(name=theme.name, dark=theme.dark, variables=dict(theme.variables), **theme.colours))
    return out
