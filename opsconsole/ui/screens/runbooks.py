"""The runbooks: a filterable list beside a preview of the selected one, rendered from its Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Markdown, OptionList, Static
from textual.widgets.option_list import Option

from opsconsole import masking
from opsconsole.ui.widgets.header import EnvHeader


def _body(path: Path) -> str:
    """The Markdown without its YAML front matter (shown as a summary instead)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            text = text[text.find("\n", end + 1) + 1:]
    return text


def _source(entry: dict[str, Any]) -> str:
    """Where a listed runbook came from: the user's folder or `built-in`, and the built-in one it hides."""
    source = masking.printable(entry["source"], one_line=True)
    return source + (f" (over {entry['overrides']})" if entry.get("overrides") else "")


class RunbooksScreen(Screen[None]):
    DEFAULT_CSS = """
    RunbooksScreen #filter { margin: 0 1; }
    RunbooksScreen #body { height: 1fr; }
    RunbooksScreen #list { width: 44; height: 1fr; border: round $secondary 60%; }
    RunbooksScreen #preview-box { width: 1fr; height: 1fr; border: round $secondary 60%; }
    RunbooksScreen #meta { height: auto; padding: 0 1; color: $text-muted; }
    RunbooksScreen #preview { margin: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "leave", "Back", id="back"),
        Binding("slash", "focus_filter", "Filter", id="filter"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield EnvHeader()
        yield Input(placeholder="filter: name, title, summary (/)", id="filter")
        with Horizontal(id="body"):
            yield OptionList(id="list")
            with VerticalScroll(id="preview-box"):
                yield Static("", id="meta", markup=False)
                yield Markdown("", id="preview")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        from opsconsole import runbook, runbook_report
        from opsconsole.errors import UserError

        self.query_one("#list", OptionList).border_title = "runbooks · enter to plan"
        self.query_one("#preview-box").border_title = "preview"
        self.app.fill_header(self)  # type: ignore[attr-defined]
        try:
            self.entries = runbook_report.listing(runbook.shelves(self.app.config))  # type: ignore[attr-defined]
        except UserError as exc:
            self.query_one("#meta", Static).update(masking.printable(str(exc)))
        self._fill("")
        self.query_one("#list", OptionList).focus()

    def _allowed(self, entry: dict[str, Any]) -> bool:
        envs = entry.get("environments")
        return envs is None or self.app.environment.name in envs  # type: ignore[attr-defined]

    def _fill(self, query: str) -> None:
        words = query.lower().split()
        options = self.query_one("#list", OptionList)
        options.clear_options()
        for entry in self.entries:
            haystack = f"{entry['name']} {entry['title']} {entry['summary']}".lower()
            if not all(w in haystack for w in words):
                continue
            # Titles and names are the runbooks' own text: escaped, no control character reaches the screen.
            label = Text(masking.printable(entry["title"], one_line=True),
                         style="bold" if entry["valid"] and self._allowed(entry) else "dim")
            label.append(f"\n{masking.printable(entry['name'], one_line=True)} · {_source(entry)}", style="dim")
            if not entry["valid"]:
                label.append("  INVALID", style="bold red")
            elif not self._allowed(entry):
                label.append(f"  not for {self.app.environment.name}", style="yellow")  # type: ignore[attr-defined]
            options.add_option(Option(label, id=entry["name"]))
        if options.option_count:
            options.highlighted = 0
        else:
            self.query_one("#meta", Static).update("no runbook matches" if self.entries else "no runbooks")
            self.query_one("#preview", Markdown).update("")

    @on(Input.Changed, "#filter")
    def _filter(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#filter")
    def _to_list(self) -> None:
        self.query_one("#list", OptionList).focus()

    def _entry(self, name: str | None) -> dict[str, Any] | None:
        return next((e for e in self.entries if e["name"] == name), None)

    @on(OptionList.OptionHighlighted, "#list")
    def _preview(self, event: OptionList.OptionHighlighted) -> None:
        entry = self._entry(event.option.id)
        if entry is None:
            return
        envs = entry["environments"]
        meta = [entry["summary"] or entry["title"],
                f"{entry['steps']} steps · environments: {', '.join(envs) if envs else 'any'} · from {_source(entry)}"
                + (f" · params: {', '.join(entry['params'])}" if entry["params"] else "")]
        meta += entry["problems"]
        self.query_one("#meta", Static).update(masking.printable("\n".join(meta)))
        # The file's own text: a zero-width space or a bidi override shows escaped, as in `plan`.
        self.query_one("#preview", Markdown).update(masking.printable(_body(Path(entry["path"]))))

    @on(OptionList.OptionSelected, "#list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        entry = self._entry(event.option.id)
        if entry is None:
            return
        if not entry["valid"]:
            # markup=False: the problem quotes the runbook ("got 'x[/]'" would raise MarkupError).
            # One toast per kind: Enter pressed again replaces it rather than stacking another.
            self.app.notify_once("runbook-refused",  # type: ignore[attr-defined]
                                 masking.printable(entry["problems"][0]), title="invalid runbook", severity="error",
                                 timeout=15, markup=False)
            return
        if not self._allowed(entry):
            self.app.notify_once("runbook-refused",  # type: ignore[attr-defined]
                                 masking.printable(f"{entry['name']} is for {', '.join(entry['environments'])}, not "
                                                   f"{self.app.environment.name}"),  # type: ignore[attr-defined]
                                 severity="warning", markup=False)
            return
        self.app.start_runbook(Path(entry["path"]))  # type: ignore[attr-defined]

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_leave(self) -> None:
        self.app.action_back()  # type: ignore[attr-defined]
