"""The header on every screen: the environment badge, its status and the probe round clock.

Production is a red header with the name in capitals, on the dashboard, in every detail view and
under every dialog, so nobody mistakes where they are.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from opsconsole.config import Environment
from opsconsole.health import Status


def badge_text(environment: Environment, read_only: bool) -> str:
    if environment.is_production:
        text = f"▲ {environment.name.upper()} ▲"
    else:
        text = environment.name
    return text + (" · READ-ONLY" if read_only else "")


class EnvHeader(Horizontal):
    DEFAULT_CSS = """
    EnvHeader {
        height: 1;
        background: $panel;
    }
    EnvHeader.production {
        background: $badge-production 35%;
    }
    EnvHeader #badge {
        width: auto;
        text-style: bold;
        padding: 0 1;
        background: $badge-other;
        color: $badge-other-text;
    }
    EnvHeader.production #badge {
        background: $badge-production;
        color: $badge-production-text;
    }
    EnvHeader #env-status {
        width: auto;
        padding: 0 1;
        text-style: bold;
    }
    EnvHeader #env-status.ok { color: $status-ok; }
    EnvHeader #env-status.warn { color: $status-warn; }
    EnvHeader #env-status.crit { background: $status-crit; color: $badge-production-text; }
    EnvHeader #env-status.unknown { color: $status-unknown; }
    EnvHeader #round-info {
        width: 1fr;
        content-align: right middle;
        color: $text-muted;
        padding: 0 1;
    }
    """

    _status: str | None = None
    _round_info: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="badge")
        yield Static("…", id="env-status")
        yield Static("waiting for the first probe round…", id="round-info")

    def show_environment(self, environment: Environment, read_only: bool) -> None:
        self.set_class(environment.is_production, "production")
        for badge in self._part("#badge"):
            badge.update(badge_text(environment, read_only))

    def show_status(self, status: Status | None) -> None:
        text = "…" if status is None else status.value.upper()
        if text == self._status:
            return  # unchanged: no restyle, no layout
        self._status = text
        for widget in self._part("#env-status"):
            for s in Status:
                widget.set_class(status is s, s.value)
            widget.update(text)

    def show_round_info(self, text: str) -> None:
        # Every second: a repaint of one fixed-height line, never a layout of the screen.
        if text != self._round_info:
            self._round_info = text
            for widget in self._part("#round-info"):
                widget.update(text, layout=False)

    def _part(self, selector: str) -> list[Static]:
        # Empty only while the app shuts down: its children go first, and a timer may still tick then.
        return list(self.query_children(selector).results(Static))
