"""A step failed: retry, roll back this step, roll back all finished steps, skip with a note, or abort."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.markup import escape
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from opsconsole import masking
from opsconsole.engine import Decision

CHOICES = (
    ("abort", "Abort", "stop here; the run stays resumable"),
    ("retry", "Retry", "run this step again"),
    ("rollback", "Roll back step", "run this step's rollback blocks"),
    ("rollback-all", "Roll back all", "undo every finished step, newest first"),
    ("skip", "Skip…", "go on without this step (a note is required)"),
)


class FailureDialog(ModalScreen[Decision]):
    DEFAULT_CSS = """
    FailureDialog { align: center middle; }
    FailureDialog > VerticalScroll {
        width: 96; max-width: 98%; height: auto; max-height: 95%;
        border: thick $status-crit; background: $surface; padding: 0 1;
    }
    FailureDialog #message { height: auto; color: $status-crit; text-style: bold; margin: 1 0; }
    FailureDialog #tail { height: auto; max-height: 8; color: $text-muted; }
    /* Docked: a long message or tail scrolls above; the five choices and the note never leave the screen. */
    FailureDialog #choices { dock: bottom; height: auto; margin-top: 1; }
    FailureDialog #buttons { height: auto; }
    /* As wide as their labels: all five fit in one row at 80 columns. */
    FailureDialog Button { min-width: 0; margin-right: 1; }
    FailureDialog #note { display: none; }
    FailureDialog.skipping #note { display: block; }
    """
    BINDINGS = [Binding("escape", "abort", "Abort", id="cancel")]

    def __init__(self, title: str, message: str, tail: str = "", rollback_available: bool = True) -> None:
        super().__init__()
        self.title_text = masking.printable(title, one_line=True)
        self.message = masking.printable(message)
        self.tail = masking.printable(tail)
        self.rollback_available = rollback_available

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = escape(f"Step failed: {self.title_text}")
            yield Static(self.message, id="message", markup=False)
            if self.tail.strip():
                yield Static("\n".join(self.tail.strip().splitlines()[-6:]), id="tail", markup=False)
            with Vertical(id="choices"):
                with Horizontal(id="buttons"):
                    for key, label, tooltip in CHOICES:
                        button = Button(label, id=key, variant="primary" if key == "abort" else "default")
                        button.tooltip = tooltip
                        if key == "rollback" and not self.rollback_available:
                            button.disabled = True
                        yield button
                yield Input(placeholder="why skipping is fine (kept in the journal); enter to skip", id="note")

    def on_mount(self) -> None:
        self.query_one("#abort", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        choice = event.button.id or "abort"
        if choice == "skip":
            self.add_class("skipping")
            self.query_one("#note", Input).focus()
            return
        self.dismiss(Decision(choice))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(Decision("skip", event.value.strip()))
        else:
            self.notify("a skip needs a note", severity="warning")

    def action_abort(self) -> None:
        self.dismiss(Decision("abort"))
