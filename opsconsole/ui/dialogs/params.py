"""A runbook's parameters as a form: typed inputs, checked by the same rules as `-p KEY=VALUE`."""

from __future__ import annotations

from collections.abc import Mapping

from textual.app import ComposeResult
from textual.binding import Binding
from textual.markup import escape
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, Switch

from opsconsole import masking
from opsconsole import runbook as runbook_mod
from opsconsole.errors import UserError
from opsconsole.config import Environment
from opsconsole.runbook import Param, Runbook


def _initial(param: Param, initial: Mapping[str, str], environment: Environment | None = None) -> str:
    if param.name in initial:
        return initial[param.name]
    if param.type == "member" and environment is not None:
        return param.member_default(environment) or ""
    if param.default is None or param.type == "secret":
        return ""
    return runbook_mod.value_text(param.default)


class ParamsDialog(ModalScreen[dict[str, str] | None]):
    """Result: the raw values `runbook.bind_params` accepted, or None on cancel."""

    DEFAULT_CSS = """
    ParamsDialog { align: center middle; }
    ParamsDialog > Vertical {
        width: 76; max-width: 96%; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    /* The fields scroll between a docked error line and docked buttons: at 80x24 Plan and Cancel stay on screen. */
    ParamsDialog VerticalScroll { height: auto; max-height: 100%; }
    ParamsDialog .param { height: auto; margin-bottom: 1; }
    ParamsDialog .param Label { text-style: bold; }
    ParamsDialog .hint { color: $text-muted; }
    ParamsDialog .error { color: $status-crit; text-style: bold; height: auto; display: none; }
    ParamsDialog .error.shown { display: block; }
    ParamsDialog #error { dock: top; }
    ParamsDialog #buttons { dock: bottom; height: auto; align-horizontal: right; }
    ParamsDialog Button { margin-left: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, runbook: Runbook, environment: str, initial: Mapping[str, str] | None = None,
                 members_of: Environment | None = None) -> None:
        """`members_of`: the environment the run is for, whose members a `member` param offers as choices
        (None: a free-text name, checked when the plan is built)."""
        super().__init__()
        self.runbook = runbook
        self.environment = environment
        self.initial = dict(initial or {})
        self.members_of = members_of

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = escape(f"{masking.printable(self.runbook.title, one_line=True)} · parameters for {self.environment}")
            with VerticalScroll():
                for param in self.runbook.params:
                    with Vertical(classes="param"):
                        yield Label(f"{param.name} ({param.describe()})", markup=False)
                        if param.description:
                            yield Static(masking.printable(param.description), classes="hint", markup=False)
                        yield self._field(param)
                        yield Static("", id=f"error-{param.name}", classes="error", markup=False)
            yield Static("", id="error", classes="error", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Plan", id="ok", variant="primary")

    def _field(self, param: Param):
        members = param.members(self.members_of) if param.type == "member" and self.members_of else None
        value = _initial(param, self.initial, self.members_of)
        field_id = f"param-{param.name}"
        if members:
            # No guess: where the environment leaves a choice (the default missing, several services), it starts blank.
            return Select([(m, m) for m in members], value=value if value in members else Select.NULL, id=field_id,
                          allow_blank=value not in members)
        if param.type == "bool":
            return Switch(value=value.lower() in ("true", "yes", "1", "on"), id=field_id)
        if param.type == "choice":
            options = [(c, c) for c in param.choices]
            return Select(options, value=value if value in param.choices else Select.NULL, id=field_id,
                          allow_blank=not param.required or not value)
        return Input(value=value, password=param.type == "secret", id=field_id,
                     type="integer" if param.type == "int" else "text",
                     placeholder="required" if param.required and param.default is None else "")

    def on_mount(self) -> None:
        fields = self.query("Input, Switch, Select")
        if fields:
            fields.first().focus()

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for param in self.runbook.params:
            widget = self.query_one(f"#param-{param.name}")
            if isinstance(widget, Switch):
                out[param.name] = "true" if widget.value else "false"
            elif isinstance(widget, Select):
                if widget.value is not Select.NULL:
                    out[param.name] = str(widget.value)
            else:
                text = widget.value
                if text != "" or param.type == "str" and param.name in self.initial:
                    out[param.name] = text
        return out

    def submit(self) -> None:
        values = self.values()
        for error in self.query(".error"):
            error.remove_class("shown")
        try:
            runbook_mod.bind_params(self.runbook, values, self.members_of)
        except UserError as exc:
            # The message names the param; show it under that field (without the file:line prefix).
            target = next((p.name for p in self.runbook.params if f"'{p.name}'" in exc.message), None)
            where = self.query_one(f"#error-{target}", Static) if target else self.query_one("#error", Static)
            where.update(exc.message)
            where.add_class("shown")
            if target:
                self.query_one(f"#param-{target}").focus()
            return
        self.dismiss(values)

    def on_input_submitted(self) -> None:
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
