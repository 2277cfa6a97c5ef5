"""Confirm one change, as strongly as the environment demands (docs/running.md#confirmation).

What is shown is frozen when the dialog opens: the environment badge, the step, the exact command
or call and the params. A y/N confirmation opens on Cancel, so Enter alone never confirms. A typed one
opens on the input, so the name can be typed at once; below it a line says whether what is typed matches,
and Enter confirms only the exact name: on anything else, or nothing, it cancels. While the dialog is open
no key of the screens behind it acts (OpsConsole.check_action).
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from opsconsole import masking
from opsconsole.config import Environment
from opsconsole.ui.widgets.header import badge_text


class ConfirmDialog(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmDialog { align: center middle; }
    ConfirmDialog > VerticalScroll {
        width: 96; max-width: 98%; height: auto; max-height: 95%;
        border: thick $status-warn; background: $surface; padding: 0 1;
    }
    ConfirmDialog.production > VerticalScroll { border: thick $badge-production; }
    ConfirmDialog #badge { width: auto; text-style: bold; padding: 0 1;
                           background: $badge-other; color: $badge-other-text; }
    ConfirmDialog.production #badge { background: $badge-production; color: $badge-production-text; }
    ConfirmDialog #what { height: auto; margin-top: 1; text-style: bold; }
    ConfirmDialog #command-box { height: auto; max-height: 40vh; border: round $secondary 60%; }
    ConfirmDialog #command { height: auto; }
    ConfirmDialog #params { height: auto; color: $text-muted; }
    ConfirmDialog #ask { height: auto; margin-top: 1; }
    ConfirmDialog #match { height: 1; color: $text-muted; }
    ConfirmDialog #match.matches { color: $status-ok; text-style: bold; }
    ConfirmDialog #match.differs { color: $status-warn; }
    /* Docked: on a short terminal what will run scrolls above; the question, the name typed, whether it matches
       and the buttons never leave the screen. */
    ConfirmDialog #answer { dock: bottom; height: auto; }
    ConfirmDialog #buttons { height: auto; align-horizontal: right; margin-top: 1; }
    ConfirmDialog Button { margin-left: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, environment: Environment, level: str, title: str, command: str,
                 params: Mapping[str, str] | None = None, destructive: bool = False) -> None:
        super().__init__()
        self.environment = environment
        self.level = level  # "yes" | "typed"
        # Frozen now: what the user confirms is what they read.
        self.title_text = masking.printable(title)
        self.command = masking.printable(command)
        self.params = {k: masking.printable(str(v), one_line=True) for k, v in (params or {}).items()}
        self.destructive = destructive

    def compose(self) -> ComposeResult:
        env = self.environment
        with VerticalScroll() as box:
            box.border_title = "Confirm a change" + (" · DESTRUCTIVE" if self.destructive else "")
            yield Static(badge_text(env, False), id="badge", markup=False)
            yield Static(self.title_text, id="what", markup=False)
            with VerticalScroll(id="command-box") as command_box:
                command_box.border_title = "exactly this will run"
                yield Static(self.command, id="command", markup=False)
            if self.params:
                yield Static("params: " + ", ".join(f"{k}={v}" for k, v in self.params.items()), id="params",
                             markup=False)
            with Vertical(id="answer"):
                if self.level == "typed":
                    yield Static(Text.assemble("Type the environment's name, ", (env.name, "bold"),
                                               ", to confirm:"), id="ask")
                    yield Input(placeholder=f"type {env.name}", id="typed")
                    yield Static("Enter with anything else cancels", id="match", markup=False)
                else:
                    yield Static(f"Run this on {env.name}? Cancel is the default.", id="ask", markup=False)
                with Horizontal(id="buttons"):
                    yield Button("Cancel", id="cancel", variant="primary")
                    yield Button("Confirm", id="confirm", variant="error" if self.destructive else "warning",
                                 disabled=self.level == "typed")

    def on_mount(self) -> None:
        self.set_class(self.environment.is_production, "production")
        # Typed: the name goes straight in (Enter on anything but the name still cancels). y/N: Cancel.
        self.query_one("#typed" if self.level == "typed" else "#cancel").focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        name = self.environment.name
        matches = event.value == name
        self.query_one("#confirm", Button).disabled = not matches
        line = self.query_one("#match", Static)
        line.set_class(matches, "matches")
        line.set_class(bool(event.value) and not matches, "differs")
        if matches:
            line.update(f"matches {name}: Enter confirms")
        elif event.value:
            line.update(f"does not match {name}: Enter cancels")
        else:
            line.update("Enter with anything else cancels")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value == self.environment.name:
            self.dismiss(True)
            return
        if event.value:
            self.notify(f"that is not {self.environment.name!r}: nothing was run", severity="warning")
        self.dismiss(False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "confirm":
            if self.level == "typed" and self.query_one("#typed", Input).value != self.environment.name:
                return
            self.dismiss(True)
        else:
            self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)
