"""Theme files: where they are found and what they may hold.

A theme is a TOML file in a `themes/` folder: the one opsconsole ships, the one beside the user's
config file, and `themes/` in the user config dir (later folders win on a name clash). Turning a
theme into colours on screen is the TUI's business; this only reads and checks the files, so a
mistake is reported as `file:line: message` before the screen takes over.

    name = "night-shift"
    dark = true
    primary = "#5fafff"
    background = "#101418"
    [variables]
    status-crit = "#ff3030"
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from opsconsole.errors import ConfigError
from opsconsole.tomlpos import KeyLines

DEFAULT_THEME = "opsconsole-dark"

# The colours of textual's Theme that a file may set; `variables` holds the rest.
COLOURS = ("primary", "secondary", "accent", "warning", "error", "success",
           "foreground", "background", "surface", "panel", "boost")
# Variables opsconsole's stylesheet uses; every theme gets a default for each (see the TUI).
STATUS_VARIABLES = ("status-ok", "status-warn", "status-crit", "status-unknown",
                    "badge-production", "badge-production-text", "badge-other", "badge-other-text")
_KEYS = {"name", "dark", "variables", *COLOURS}

SHIPPED = Path(__file__).resolve().parent.parent / "themes"


@dataclass(frozen=True)
class ThemeFile:
    name: str
    path: Path
    dark: bool
    colours: Mapping[str, str]
    variables: Mapping[str, str] = field(default_factory=dict)
    lines: Mapping[tuple[str, ...], int] = field(default_factory=dict)  # key path -> line, for colour errors

    def line(self, *key: str) -> int | None:
        return self.lines.get(key)


def folders(base_dir: Path | None) -> list[Path]:
    """Theme folders, lowest precedence first."""
    from platformdirs import user_config_dir

    out = [SHIPPED]
    if base_dir is not None:
        out.append(base_dir / "themes")
    out.append(Path(user_config_dir("opsconsole")) / "themes")
    seen: list[Path] = []
    for folder in out:
        if folder.resolve() not in [s.resolve() for s in seen]:
            seen.append(folder)
    return seen


def parse(path: Path) -> ThemeFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read theme: {exc.strerror}", path) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TOML syntax error: {exc}", path) from None
    keys = KeyLines(text)

    def fail(message: str, *key: str) -> None:
        raise ConfigError(message, path, keys.line(*key) if key else None)

    for key in sorted(set(raw) - _KEYS):
        fail(f"unknown key {key!r} in theme (known: {', '.join(sorted(_KEYS))})", key)
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        fail("name must be a non-empty string", "name")
    dark = raw.get("dark", True)
    if not isinstance(dark, bool):
        fail("dark must be true or false", "dark")
    if "primary" not in raw:
        fail("a theme needs at least a primary colour: primary = \"#RRGGBB\"")
    colours: dict[str, str] = {}
    for key in COLOURS:
        if key in raw:
            if not isinstance(raw[key], str):
                fail(f"{key} must be a colour string such as \"#1e90ff\"", key)
            colours[key] = raw[key]
    variables = raw.get("variables", {})
    if not isinstance(variables, Mapping):
        fail("[variables] must be a table", "variables")
    for key, value in variables.items():
        if not isinstance(value, str):
            fail(f"variable {key!r} must be a string", "variables", key)
    lines = {k: keys.line(*k) for k in [(c,) for c in colours] + [("variables", v) for v in variables]}
    return ThemeFile(name=name, path=path, dark=dark, colours=colours, variables=dict(variables),
                     lines={k: v for k, v in lines.items() if v is not None})


def discover(dirs: Iterable[Path]) -> dict[str, ThemeFile]:
    """Every `*.toml` theme in `dirs`; a later folder's theme replaces an earlier one of the same name."""
    found: dict[str, ThemeFile] = {}
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            theme = parse(path)
            found[theme.name] = theme
    return found
