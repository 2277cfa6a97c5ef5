"""Secret rotation as its own guided flow: pick a secret, read what will happen, run it, roll it back.

The list comes from `[environments.X.secrets.NAME]`: where each secret lives, the services that use it
(its `restart` list) and whether a previous value is kept to roll back to. Rotating plans
`rotate-secret NAME` in a thread (a provider may read the secret's current state first), shows a
summary of what will happen, then hands the plan to the run screen, which confirms the change as the
environment demands. A value is never shown: only a fingerprint, once it exists.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from opsconsole import config_schema, masking
from opsconsole.config import Config, Environment
from opsconsole.errors import UserError
from opsconsole.ui.widgets.header import EnvHeader, badge_text

if TYPE_CHECKING:
    from opsconsole.engine import Plan
    from opsconsole.journal import RunRecord
    from opsconsole.ui.app import OpsConsole
    from opsconsole.ui.screens.run import RunScreen

# Keys of a secret's table that say how it is rotated, not where it lives.
_HOW_KEYS = config_schema.SECRET | config_schema.SECRET_BY_PROVIDER["local"]
# Providers whose secret store keeps the previous version itself (AWS Secrets Manager's AWSPREVIOUS).
_VERSIONED = {"aws"}


@dataclass(frozen=True)
class SecretInfo:
    """One configured secret as the screen shows it. Never holds a value: fingerprints only."""

    name: str
    lives_in: str
    restart: tuple[str, ...]  # the services that use it: restarted after a rotation
    previous_kept: bool | None  # a value to roll back to is kept; None: cannot tell here
    previous_fingerprint: str | None  # of that kept value ("" when it puts back an unset variable)
    fingerprint: str | None  # of the current value, where opsconsole reads it itself (file-based providers)


def restart_list(options: Mapping[str, Any]) -> tuple[str, ...]:
    restart = options.get("restart", [])
    if isinstance(restart, str):
        return (restart,)
    return tuple(s for s in restart if isinstance(s, str)) if isinstance(restart, list) else ()


def _shown_path(path: Path, base_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(base_dir.resolve()))
    except ValueError:
        return str(path)


def _fingerprint(value: str | None) -> str | None:
    from opsconsole import secret_values

    if value is None:
        return None
    masking.register(value)
    return secret_values.fingerprint(value) if value else ""


def describe(config: Config, environment: Environment) -> tuple[list[SecretInfo], str | None]:
    """Every configured secret of `environment`, and why some facts are unknown (the provider cannot be
    used here), if so. Reads files and the OS keyring: call it from a thread."""
    from opsconsole import credentials, secret_values
    from opsconsole.providers import for_environment

    problem = None
    try:
        provider: Any = for_environment(config, environment)
    except UserError as exc:
        provider, problem = None, masking.mask(str(exc))
    env_file: Path | None = getattr(provider, "env_file", None)
    previous_file: Path | None = getattr(provider, "previous_file", None)
    file_based = env_file is not None and previous_file is not None
    current: dict[str, str] = {}
    previous_lines: list[str] = []
    if file_based:
        # File-based providers (local, compose) rewrite an .env file and keep the replaced line beside it;
        # their own line reader says what is kept, so a rollback and this screen agree.
        from dotenv import dotenv_values

        from opsconsole.providers.local import _read_lines

        if env_file.is_file():
            current = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        previous_lines = _read_lines(previous_file)
    keyring = credentials.backend() is not None
    out = []
    for name, options in environment.secrets.items():
        where_keys = {k: v for k, v in options.items() if k not in _HOW_KEYS}
        if file_based:
            lives_in = _shown_path(env_file, config.base_dir)
        elif where_keys:
            lives_in = f"{environment.provider}: " + ", ".join(f"{k} {v}" for k, v in where_keys.items())
        else:
            lives_in = f"{environment.provider}: {name}"
        kept: str | None = None
        known = provider is not None
        if file_based:
            from opsconsole.providers.local import _entry, _value_of

            line = _entry(previous_lines, name)
            kept = None if line is None else _value_of(line)
        elif known and keyring:
            kept = secret_values.previous(environment.name, name)
            # A provider that versions secrets itself can roll back without the keyring: cannot tell here.
            known = kept is not None or environment.provider not in _VERSIONED
        else:
            known = False  # no provider, or no keyring to look in
        out.append(SecretInfo(name=name, lives_in=masking.printable(lives_in, one_line=True),
                              restart=restart_list(options),
                              previous_kept=(kept is not None) if known else None,
                              previous_fingerprint=_fingerprint(kept),
                              fingerprint=_fingerprint(current.get(name)) if file_based else None))
    return out, problem


def action_line(name: str, restart: Sequence[str], rollback: bool = False) -> str:
    """The action a rotation plans. The restart list is spelled out so the run screen shows those services'
    health beside the run (the provider restarts each once, configured or named)."""
    words = ["rotate-secret", name, *[w for s in restart for w in ("--restart", s)]]
    if rollback:
        words.append("--rollback")
    return " ".join(shlex.quote(w) for w in words)


def fingerprints(record: RunRecord) -> list[str]:
    """The fingerprints a rotation run recorded ("previous_fingerprint sha256:…"), never a value."""
    found = []
    for step in record.steps:
        for key, value in sorted(step.recorded.items()):
            if "fingerprint" in key:
                found.append(f"{key.replace('_', ' ')} {value}")
    return found


# --- the summary before anything is planned to run ------------------------------------------------------------

class RotationSummary(ModalScreen[bool]):
    """What a rotation (or a rollback) will do, in words and exact calls; Cancel has the focus."""

    DEFAULT_CSS = """
    RotationSummary { align: center middle; }
    RotationSummary > Vertical {
        width: 96; max-width: 98%; height: auto; max-height: 95%;
        border: thick $status-warn; background: $surface; padding: 0 1;
    }
    RotationSummary.production > Vertical { border: thick $badge-production; }
    RotationSummary #summary-badge { width: auto; text-style: bold; padding: 0 1;
                                     background: $badge-other; color: $badge-other-text; }
    RotationSummary.production #summary-badge { background: $badge-production; color: $badge-production-text; }
    RotationSummary #summary-steps { height: auto; margin-top: 1; }
    RotationSummary #summary-calls-box { height: auto; max-height: 10; border: round $secondary 60%; }
    RotationSummary #summary-calls { height: auto; }
    RotationSummary #summary-buttons { height: auto; align-horizontal: right; margin-top: 1; }
    RotationSummary Button { margin-left: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="cancel")]

    def __init__(self, environment: Environment, secret: SecretInfo, plan: Plan, rollback: bool = False) -> None:
        super().__init__()
        self.environment = environment
        self.secret = secret
        self.rollback = rollback
        # Frozen now, from the plan that will run.
        change = [b for s in plan.steps for b in s.of_role("run")]
        self.calls = masking.mask("\n".join(c.display for b in change for c in b.calls))
        self.verified = list(dict.fromkeys(e.member.split("/", 1)[0] for s in plan.steps for b in s.of_role("verify")
                                           for e in b.expectations))
        self.undo = any(s.of_role("rollback") for s in plan.steps)
        self.confirmation = max((b.confirmation for b in change), key=("none", "yes", "typed").index, default="none")

    def lines(self) -> list[str]:
        name, env = self.secret.name, self.environment.name
        users = ", ".join(self.secret.restart)
        if self.rollback:
            steps = [f"Put back the previous value of {name} kept for rollback; the current one is kept in its "
                     f"place (rolling back again redoes the rotation)."]
        else:
            steps = [f"Generate a new random value for {name}. It is never shown: once it exists you see only "
                     f"its fingerprint.",
                     f"Keep the value it replaces, so the rotation can be rolled back."]
        steps.append(f"Set it in {self.secret.lives_in} through the {self.environment.provider} provider.")
        if users:
            steps.append(f"Restart the services that use it: {users}.")
            unprobed = [u for u in self.secret.restart if u not in self.verified]
            if self.verified:
                check = (f"Verify their health: the run waits until {', '.join(self.verified)} "
                         f"{'is' if len(self.verified) == 1 else 'are'} ok; if not, it stops and offers the rollback.")
                if unprobed:
                    check += f" {', '.join(unprobed)} {'has' if len(unprobed) == 1 else 'have'} no health probe: check by hand."
            else:
                check = (f"Verify their health: {users} {'has' if len(self.secret.restart) == 1 else 'have'} no "
                         f"health probe, so check by hand before you leave the run screen.")
            steps.append(check)
        else:
            steps.append(f"Restart nothing: no service lists {name} (add restart = [...] to its config).")
        ask = {"none": "runs without asking", "yes": "asks you y/N first",
               "typed": f"asks you to type {env} first"}[self.confirmation]
        steps.append(f"Nothing runs until you start it on the run screen, which {ask}.")
        if not self.rollback and self.undo:
            steps.append("Afterwards this screen offers to roll back (u) while a previous value is kept.")
        return [f"{i}. {s}" for i, s in enumerate(steps, 1)]

    def compose(self) -> ComposeResult:
        verb = "Roll back" if self.rollback else "Rotate"
        with Vertical() as box:
            box.border_title = f"{verb} {self.secret.name} on {self.environment.name}"
            yield Static(badge_text(self.environment, False), id="summary-badge", markup=False)
            yield Static(masking.mask("\n".join(self.lines())), id="summary-steps", markup=False)
            with VerticalScroll(id="summary-calls-box") as calls:
                calls.border_title = "exactly these calls (values masked)"
                yield Static(self.calls or "(none)", id="summary-calls", markup=False)
            with Horizontal(id="summary-buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button("Continue to the run", id="continue", variant="warning")

    def on_mount(self) -> None:
        self.set_class(self.environment.is_production, "production")
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "continue")

    def action_cancel(self) -> None:
        self.dismiss(False)


# --- the screen ----------------------------------------------------------------------------------------------

class SecretTable(DataTable):
    """The secrets; Enter starts a rotation of the highlighted one (hidden when read-only)."""

    BINDINGS = [Binding("enter", "select_cursor", "Rotate…", id="secrets-rotate")]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor" and (self.app.read_only or not self.row_count):  # type: ignore[attr-defined]
            return False  # read-only changes nothing; no secret, nothing to rotate
        return True


@dataclass
class _Flow:
    """A rotation or rollback handed to the run screen, to report on when the user comes back."""

    name: str
    rollback: bool
    screen: RunScreen


class SecretsScreen(Screen[None]):
    DEFAULT_CSS = """
    SecretsScreen #secrets-title { height: 1; padding: 0 1; text-style: bold; background: $panel; }
    SecretsScreen #secrets { height: 1fr; border: round $secondary 60%; }
    SecretsScreen #secret-about { height: auto; max-height: 4; padding: 0 1; }
    SecretsScreen #secrets-outcome { height: auto; padding: 0 1; display: none; }
    SecretsScreen #secrets-outcome.shown { display: block; }
    SecretsScreen #secrets-outcome.good { background: $status-ok 25%; }
    SecretsScreen #secrets-outcome.bad { background: $status-crit 30%; }
    SecretsScreen #secrets-status { height: auto; max-height: 3; padding: 0 1; color: $text-muted; }
    SecretsScreen #secrets-status.error { background: $status-crit 30%; color: $foreground; }
    """
    BINDINGS = [
        Binding("escape", "app.back", "Back", id="back"),  # twice within a second: home
        Binding("u", "rollback", "Roll back…", id="secrets-rollback"),
        # Off the footer for room at 80 columns (the list reloads after every run); `?` lists it.
        Binding("r", "reload", "Refresh", show=False, id="secrets-refresh"),
    ]

    class Loaded(Message):
        def __init__(self, secrets: Sequence[SecretInfo], problem: str | None) -> None:
            super().__init__()
            self.secrets = secrets
            self.problem = problem

    class Planned(Message):
        def __init__(self, secret: SecretInfo, rollback: bool, plan: Plan) -> None:
            super().__init__()
            self.secret = secret
            self.rollback = rollback
            self.plan = plan

    def __init__(self, select: str | None = None) -> None:
        """`select`: the secret to highlight once the list is read (a palette entry names one)."""
        super().__init__()
        self.select = select
        self.secrets: dict[str, SecretInfo] = {}
        self.loads = 0  # finished loads (tests wait on it)
        self.flow: _Flow | None = None
        self.outcome: tuple[str, str, bool, str] | None = None  # secret, what happened, good, what may follow
        self.planning = False
        self._hint_due = True  # the next load says what can be done here (the first, or a refresh key)

    def compose(self) -> ComposeResult:
        yield EnvHeader()
        yield Static("Secrets · loading…", id="secrets-title", markup=False)
        yield SecretTable(id="secrets", cursor_type="row", zebra_stripes=True)
        yield Static("", id="secret-about", markup=False)
        yield Static("", id="secrets-outcome", markup=False)
        yield Static("", id="secrets-status", markup=False)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.app.fill_header(self)  # type: ignore[attr-defined]
        table = self.query_one("#secrets", DataTable)
        table.border_title = "rotatable secrets (values are never shown)"
        for key, label in (("name", "SECRET"), ("lives", "LIVES IN"), ("restart", "USED BY"),
                           ("previous", "ROLLBACK TO"), ("fingerprint", "NOW")):
            table.add_column(label, key=key)
        self.load()

    def on_screen_resume(self) -> None:
        if self.flow is not None and self.flow.screen.finished is not None:
            self.load()  # back from a run: what is kept, and the fingerprints, have moved
            self._report(self.flow)

    @property
    def _app(self) -> OpsConsole:
        return self.app  # type: ignore[return-value]

    # -- loading -----------------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="secrets")
    def load(self) -> None:
        secrets, problem = describe(self._app.config, self._app.environment)
        self.post_message(self.Loaded(secrets, problem))

    def on_secrets_screen_loaded(self, event: Loaded) -> None:
        self.loads += 1
        self.secrets = {s.name: s for s in event.secrets}
        env = self._app.environment
        table = self.query_one("#secrets", DataTable)
        for secret in event.secrets:
            cells = self._cells(secret)
            if secret.name in table.rows:
                for column, value in cells.items():
                    table.update_cell(secret.name, column, value, update_width=True)
            else:
                table.add_row(*cells.values(), key=secret.name)
        for row_key in list(table.rows):
            if row_key.value not in self.secrets:
                table.remove_row(row_key)
        if self.select in self.secrets:
            table.move_cursor(row=list(self.secrets).index(self.select))
            self.select = None
        count = f"{len(event.secrets)} secret{'s' if len(event.secrets) != 1 else ''}"
        self.query_one("#secrets-title", Static).update(f"Secrets · {env.name} · {count} · provider {env.provider}")
        if event.problem:
            self._status(event.problem, error=True)
        elif not self._hint_due:
            pass  # a reload after a run: the outcome line speaks, the status keeps its message
        elif not event.secrets:
            self._status(self._no_secrets())
        elif self._app.read_only:
            self._status(f"{env.name} is read-only here: secrets are listed, never changed.")
        else:
            self._status("enter: rotate the highlighted secret · u: roll it back to its previous value")
        self._hint_due = False
        self._about()
        self._show_outcome()
        self.refresh_bindings()

    def _cells(self, secret: SecretInfo) -> dict[str, Any]:
        if secret.previous_kept is None:
            previous = Text("unknown", style="dim")
        elif not secret.previous_kept:
            previous = Text("nothing kept", style="dim")
        else:
            previous = Text(secret.previous_fingerprint or "(unset)", style="bold")
        # Text, not str: a DataTable reads a str cell as markup, and where a secret lives is the config's text.
        return {"name": Text(secret.name, style="bold"), "lives": Text(secret.lives_in),
                "restart": Text(", ".join(secret.restart)) if secret.restart else Text("none", style="dim"),
                "previous": previous,
                "fingerprint": secret.fingerprint or Text("—", style="dim")}

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.planning = False
            error = event.worker.error
            self._status(masking.mask(f"{event.worker.name}: {type(error).__name__}: {error}"), error=True)

    # -- showing -----------------------------------------------------------------------------------------------

    @property
    def selected(self) -> SecretInfo | None:
        table = self.query_one("#secrets", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # the cursor sits outside the rows while they change
            return None
        return self.secrets.get(key.value or "")

    def _no_secrets(self) -> str:
        """What to do when the environment has no secret to rotate: where to declare one."""
        env, config = self._app.environment, self._app.config
        table = f"[environments.{env.name}.secrets.NAME]"
        if config.path is None:  # the built-in config: there is no file to add the table to yet
            return (f"{env.name} has no rotatable secrets, and opsconsole runs on its built-in config: to add one, "
                    f"create {config.base_dir / 'opsconsole.toml'} as shown above, a {table} table per secret.")
        return f"{env.name} has no rotatable secrets: add {table} with restart = [\"service\", ...] to {config.source}"

    def _example(self) -> str:
        """The opsconsole.toml to start from when there is none: the SPEC's secrets table, for this environment."""
        env = self._app.environment
        secret = f"[environments.{env.name}.secrets.JWT_SECRET]"
        lines = ((f"[environments.{env.name}]", "your services go here too"),
                 (f"provider = \"{env.provider}\"", ""),
                 (secret, f"its value lives in .env.{env.name}"),
                 ("restart = [\"api\"]", "the services that use it"))
        return "\n".join(f"{code:<{len(secret)}}  # {note}" if note else code for code, note in lines)

    def _about(self) -> None:
        secret = self.selected
        about = self.query_one("#secret-about", Static)
        if secret is None:
            about.update(self._example() if not self.secrets and self._app.config.path is None else "")
            return
        text = Text()
        text.append(f"{secret.name} ", style="bold")
        text.append(f"lives in {secret.lives_in}. ")
        if secret.fingerprint:
            text.append(f"Its value now: {secret.fingerprint}. ")
        if secret.restart:
            text.append("Used by ")
            rnd = self._app.last_round
            for i, service in enumerate(secret.restart):
                text.append(", " if i else "")
                text.append(service, style="bold")
                reading = rnd.reading(service) if rnd is not None else None
                if reading is not None:
                    text.append(f" ({reading.status.value})")
            text.append(", restarted after a rotation. ")
        else:
            text.append("No service lists it under restart. ")
        if secret.previous_kept:
            kept = f" ({secret.previous_fingerprint})" if secret.previous_fingerprint else ""
            text.append(f"A previous value{kept} is kept: u rolls back to it.")
        elif secret.previous_kept is False:
            text.append("No previous value is kept: nothing to roll back to.")
        else:
            text.append("Whether a previous value is kept cannot be told here: a rollback (u) finds out.")
        about.update(text)  # names and places only: lives_in was masked when read

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._about()
        self.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_rotate()

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#secrets-status", Static)
        status.set_class(error, "error")
        status.update(masking.mask(text))

    def _report(self, flow: _Flow) -> None:
        """How the rotation handed to the run screen ended, and what can follow."""
        self.flow = None
        record = flow.screen.record
        verb = "roll back of" if flow.rollback else "rotation of"
        if record is None:
            self.outcome = (flow.name, f"The {verb} {flow.name} did not run ({flow.screen.finished}).", False, "")
        else:
            good = record.status == "succeeded"
            text = f"The {verb} {flow.name}: run {record.run_id} {record.status}."
            prints = fingerprints(record)
            if prints:
                text += " Recorded: " + "; ".join(prints) + "."
            after = ""
            if good and not flow.rollback:
                after = " If what uses it misbehaves, press u to roll back to the previous value."
            elif not good:
                after = " The journal keeps its steps and output: see where it stopped."
            self.outcome = (flow.name, text, good, after)
        self._show_outcome()

    def _show_outcome(self) -> None:
        """The last outcome, with the fingerprints as they are now (refreshed with every load)."""
        if self.outcome is None:
            return
        name, text, good, after = self.outcome
        secret = self.secrets.get(name)
        if secret is not None and secret.fingerprint:
            text += f" {name} is now {secret.fingerprint}."
        if secret is not None and secret.previous_kept and secret.previous_fingerprint:
            text += f" Kept for rollback: {secret.previous_fingerprint}."
        outcome = self.query_one("#secrets-outcome", Static)
        outcome.set_class(True, "shown")
        outcome.set_class(good, "good")
        outcome.set_class(not good, "bad")
        outcome.update(masking.mask(text + after))

    # -- rotating ----------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("rotate", "rollback"):
            if self._app.read_only or not self.secrets:
                return False  # read-only offers no change; with no secret there is nothing to change
            secret = self.selected
            if action == "rollback" and (secret is None or secret.previous_kept is False):
                return None  # shown, but nothing to roll back to
        return True

    def action_rotate(self) -> None:
        self._start(rollback=False)

    def action_rollback(self) -> None:
        self._start(rollback=True)

    def _start(self, rollback: bool) -> None:
        secret = self.selected
        env = self._app.environment
        if self._app.read_only:
            self._status(f"{env.name} is read-only here: secrets cannot be changed", error=True)
            return
        if secret is None:
            return
        if rollback and secret.previous_kept is False:
            self._status(f"no previous value of {secret.name} is kept: nothing to roll back to", error=True)
            return
        if self.planning:
            self._status("already planning a change: a moment")
            return
        self.planning = True
        self._status(f"planning the {'rollback' if rollback else 'rotation'} of {secret.name}…")
        self.plan_change(secret, rollback)

    @work(thread=True, exclusive=True, exit_on_error=False, group="secrets-plan")
    def plan_change(self, secret: SecretInfo, rollback: bool) -> None:
        from opsconsole import actions, engine

        app = self._app
        try:
            action = actions.parse(action_line(secret.name, secret.restart, rollback))
            # Given the environment, the runbook verifies the health of the services the rotation restarts.
            plan = engine.build_plan(app.config, app.environment, engine.action_runbook(action, app.environment),
                                     {}, read_only=app.read_only)
        except UserError as exc:
            app.call_from_thread(self._planning_failed, masking.mask(str(exc)))
            return
        self.post_message(self.Planned(secret, rollback, plan))

    def _planning_failed(self, message: str) -> None:
        self.planning = False
        self._status(message, error=True)

    def on_secrets_screen_planned(self, event: Planned) -> None:
        from opsconsole.ui.screens.run import RunScreen

        self.planning = False
        self._status("")

        def chosen(go: bool | None) -> None:
            if not go:
                self._status(f"nothing changed: {event.secret.name} is as it was")
                return
            screen = RunScreen(event.plan)
            self.flow = _Flow(event.secret.name, event.rollback, screen)
            self.app.push_screen(screen)

        self.app.push_screen(RotationSummary(self._app.environment, event.secret, event.plan, event.rollback), chosen)

    def action_reload(self) -> None:
        self._status("reading the secrets' state…")
        self._hint_due = True
        self.load()
