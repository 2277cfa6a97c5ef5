"""Every key of the screen you are on, `?` away: the footer shows what matters, this lists the rest.

Textual's own key panel lists the list widgets' cursor and scroll keys first, and cannot be scrolled from the
keyboard: at 80x24 the keys of the screen itself fall below its edge. This one lists the screen's keys first,
then the ones that work everywhere, and scrolls with the arrows.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class KeysDialog(ModalScreen[None]):
    """`sections`: (title, [(keys, description)]) in the order shown."""

    DEFAULT_CSS = """
    KeysDialog { align: center middle; }
    KeysDialog > VerticalScroll {
        width: 72; max-width: 96%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    KeysDialog #keys { height: auto; }
    """
    BINDINGS = [Binding("escape,question_mark", "close", "Close", id="keys-close")]

    def __init__(self, title: str, sections: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> None:
        super().__init__()
        self.title_text = title
        self.sections = sections

    def compose(self) -> ComposeResult:
        width = max((len(keys) for _, rows in self.sections for keys, _ in rows), default=0)
        text = Text()
        for title, rows in self.sections:
            if not rows:
                continue
            text.append(("\n" if text else "") + f"{title}\n", style="bold underline")
            for keys, description in rows:
                text.append(f"{keys:>{width}}  ", style="bold")
                text.append(f"{description}\n")
        text.rstrip()
        with VerticalScroll() as box:
            box.border_title = self.title_text
            box.border_subtitle = "esc or ? closes"
            yield Static(text if text else Text("no keys here"), id="keys")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()  # the arrows scroll a long list

    def action_close(self) -> None:
        self.dismiss(None)
