"""Pick the environment to watch. Production is marked so it cannot be picked by accident unnoticed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


def is_production(name: str, table: Mapping[str, Any]) -> bool:
    return table.get("protection") == "typed" or name.lower() in ("production", "prod")


class EnvironmentPicker(ModalScreen[str | None]):
    DEFAULT_CSS = """
    EnvironmentPicker { align: center middle; }
    EnvironmentPicker > Vertical {
        width: 64; max-width: 95%; height: auto; max-height: 80%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    /* The hint docked, the list at most what is left of the box: on a short terminal the list scrolls inside
       the box and the highlighted environment stays in sight. */
    EnvironmentPicker #hint { dock: top; color: $text-muted; height: 1; }
    EnvironmentPicker OptionList { height: auto; max-height: 100%; border: none; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, environments: Sequence[tuple[str, Mapping[str, Any]]], current: str) -> None:
        super().__init__()
        self.environments = environments
        self.current = current

    def compose(self) -> ComposeResult:
        options = []
        for name, table in self.environments:
            line = Text()
            if is_production(name, table):
                line.append(f" {name.upper()} ", style="bold white on red")
            else:
                line.append(name, style="bold")
            line.append(f"  {table.get('provider', 'local')} · {table.get('protection', 'open')}", style="dim")
            if table.get("read_only"):
                line.append(" · read-only", style="dim")
            if name == self.current:
                line.append("  (current)", style="italic")
            options.append(Option(line, id=name))
        with Vertical() as box:
            box.border_title = "Switch environment"
            yield Static("enter: switch · esc: stay", id="hint")
            yield OptionList(*options, id="environments")

    def on_mount(self) -> None:
        option_list = self.query_one(OptionList)
        names = [name for name, _ in self.environments]
        option_list.highlighted = names.index(self.current) if self.current in names else 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
