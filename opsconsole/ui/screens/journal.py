"""The journal: past and interrupted runs with who ran them, a run's steps and outputs, and resume from there.

The journal may be a SQLite file or a team's PostgreSQL: every read happens in a thread worker that
posts its result back, so the screen answers keys whatever the store does. Resuming goes through the
same rules as `opsconsole run --resume` (`opsconsole.resume`): the run's own runbook, unchanged, on the
environment it ran on, with its params; only `secret` params are typed again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from opsconsole import masking
from opsconsole import resume as resume_mod
from opsconsole.errors import UserError
from opsconsole.journal import RunRecord, StepRecord
from opsconsole.ui.widgets.header import EnvHeader

if TYPE_CHECKING:
    from opsconsole.runbook import Runbook
    from opsconsole.ui.app import OpsConsole

LIMIT = 200  # runs listed; `opsconsole journal list` reaches further back
STEP_MARK = {
    "running": ("▶", "bold yellow"),
    "succeeded": ("✔", "bold green"),
    "failed": ("✖", "bold red"),
    "skipped": ("↷", "magenta"),
    "rolled-back": ("↺", "cyan"),
    "rollback-failed": ("✖", "bold red"),
    "not run": ("·", "dim"),
}


# --- how a run reads -----------------------------------------------------------------------------------------

def local_time(dt: datetime | None, tz: Any = None) -> str:
    """A journal time (UTC) in the viewer's time zone (`tz` None: the machine's)."""
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if dt else "—"


def who(record: RunRecord, short: bool = False) -> str:
    """The OS user and the git identity; `short` keeps only the git name."""
    if not record.git_identity:
        return record.user
    git = record.git_identity.split(" <", 1)[0] if short else record.git_identity
    return f"{record.user} / {git}" if git and git != record.user else record.user


def shown_location(location: str) -> str:
    """Where the journal lives, with the home directory as ~ (PostgreSQL URLs come without a password)."""
    home = str(Path.home())
    return "~" + location[len(home):] if location.startswith(home + os.sep) else location


def _cell(text: str) -> Text:
    """A table cell that is exactly `text`. Text, not str: a DataTable reads a str cell as markup, and a runbook's
    file name, a git user.name ("[/]ann" raised MarkupError and took the app down) or a host name are anyone's."""
    return Text(masking.printable(text, one_line=True))


def status_text(status: str, variables: dict[str, str]) -> Text:
    """A run status, coloured from the theme; an interrupted run stands out (it waits to be resumed)."""
    ok, warn, crit = (variables.get(k, "") for k in ("status-ok", "status-warn", "status-crit"))
    if status == "interrupted":
        return Text(f" {status} ", style=f"bold #000000 on {warn or 'yellow'}")
    style = {"succeeded": ok or "green", "failed": f"bold {crit or 'red'}", "aborted": crit or "red",
             "running": "bold cyan"}.get(status, "")
    return Text(status, style=style)


def step_titles(record: RunRecord) -> dict[int, str]:
    """Every planned step by index, titles from the plan the journal kept."""
    titles: dict[int, str] = {}
    planned = record.plan.get("steps") if isinstance(record.plan, dict) else None
    for i, step in enumerate(planned or [], 1):
        if isinstance(step, dict):
            titles[int(step.get("index", i))] = str(step.get("title", f"Step {i}"))
    return titles


def planned_blocks(record: RunRecord, index: int) -> str:
    """What the plan the journal kept says step `index` runs, block by block (masked when journaled)."""
    planned = record.plan.get("steps") if isinstance(record.plan, dict) else None
    for i, step in enumerate(planned or [], 1):
        if isinstance(step, dict) and int(step.get("index", i)) == index:
            parts = []
            for block in step.get("blocks") or []:
                if not isinstance(block, dict):
                    continue
                calls = [str(c) for c in block.get("calls") or []] or [str(block.get("text", ""))]
                parts.append(f"[{block.get('role', 'run')}]\n" + "\n".join(f"$ {c}" for c in calls))
            return "\n".join(parts)
    return ""


def step_detail(step: StepRecord, tz: Any = None, planned: str = "") -> Text:
    """One attempt of a step: status, times, exact commands, exit status, verification, note, output tail.
    `planned` (the step's blocks from the plan) is shown when the attempt journaled no command yet."""
    mark, style = STEP_MARK.get(step.status, ("?", ""))
    out = Text()
    out.append(masking.printable(f"{mark} {step.index}. {step.title}  ", one_line=True), style="bold")
    out.append(step.status, style=style)
    out.append(f" · attempt {step.attempt}\n")
    out.append(f"started {local_time(step.started_at, tz)} · ended {local_time(step.ended_at, tz)}\n", style="dim")

    def section(title: str, body: str) -> None:
        out.append(f"\n{title}\n", style="bold underline")
        out.append(masking.printable(body).rstrip("\n") + "\n")

    if step.commands:
        section("commands", "\n".join(f"$ {c}" for c in step.commands))
    elif planned:
        # Checks and expectations run no command; a step that never got to one has none either.
        section("planned (no command was run)" if step.ended_at else "planned (no command journaled yet)", planned)
    out.append("\nexit status ", style="bold")
    out.append("—" if step.exit_status is None else str(step.exit_status))
    out.append("\n")
    if step.verification:
        section("verification", step.verification)
    if step.note:
        section("note", step.note)
    if step.recorded:
        section("recorded", " ".join(f"previous.{k}={v}" for k, v in sorted(step.recorded.items())))
    section("output (tail)", step.output_tail or "(no output)")
    return out


def run_summary(record: RunRecord, tz: Any = None) -> str:
    """Who, where, when and with what, for the line under the list and the top of a run's detail."""
    params = " ".join(f"{k}={v}" for k, v in sorted(record.params.items())) or "none"
    lines = [
        f"run {record.run_id}: {record.runbook_name} ({record.runbook_path}) on {record.environment} · by "
        f"{who(record)} on {record.host}, pid {record.pid}",
        f"started {local_time(record.started_at, tz)} · ended {local_time(record.ended_at, tz)} · "
        f"{record.steps_done}/{record.steps_total} steps done · params {params}",
    ]
    return masking.printable("\n".join(lines))


# --- resuming --------------------------------------------------------------------------------------------------

def resume_run(screen: Screen[Any], record: RunRecord, report: Any = None) -> None:
    """Resume `record` from `screen`: refused on a read-only screen or where it cannot continue; otherwise its
    runbook is loaded and planned in a thread (secret params asked for again) and the run screen opens.

    `report(text, error)` shows progress and refusals on the screen (refusals are notified too)."""
    app: OpsConsole = screen.app  # type: ignore[assignment]
    say = report or (lambda text, error=False: None)

    def refuse(text: str) -> None:
        text = masking.printable(text)
        say(text, True)
        app.notify(text, title="cannot resume", severity="error", timeout=20, markup=False)

    if app.read_only:
        refuse(f"{app.environment.name} is read-only here: runs cannot be resumed")
        return
    why = resume_mod.refusal(record, app.environment.name)
    if why:
        refuse(why)
        return
    say(f"preparing to resume run {record.run_id}…")

    def plan(book: Runbook, fresh: RunRecord, given: dict[str, str]) -> None:
        from opsconsole.ui.screens.run import RunScreen

        try:
            built = resume_mod.plan(app.config, app.environment, fresh, book, given, read_only=app.read_only)
        except UserError as exc:
            app.call_from_thread(refuse, str(exc))
            return
        app.call_from_thread(say, f"run {fresh.run_id}: continuing at its first unfinished step")
        app.call_from_thread(app.push_screen, RunScreen(built, resume=fresh))

    def prepare() -> None:
        from opsconsole import journal as journal_mod

        try:
            with journal_mod.open_for_config(app.config) as store:
                fresh = store.get(record.run_id)  # it may have been resumed elsewhere meanwhile
            why = resume_mod.refusal(fresh, app.environment.name)
            if why:
                raise UserError(why)
            book = resume_mod.runbook_for(fresh, app.config)
        except UserError as exc:
            app.call_from_thread(refuse, str(exc))
            return
        if not resume_mod.secret_params(book, fresh):
            plan(book, fresh, {})
            return

        def ask() -> None:
            from opsconsole.ui.dialogs.params import ParamsDialog

            def answered(values: dict[str, str] | None) -> None:
                if values is None:
                    say(f"resume of run {fresh.run_id} cancelled")
                    return
                screen.run_worker(lambda: plan(book, fresh, values), thread=True, exclusive=True,
                                  exit_on_error=False, group="resume", name="plan the resumed run")

            app.push_screen(ParamsDialog(book, fresh.environment, resume_mod.known_params(book, fresh),
                                        app.environment if app.environment.name == fresh.environment else None),
                            answered)

        app.call_from_thread(ask)

    screen.run_worker(prepare, thread=True, exclusive=True, exit_on_error=False, group="resume",
                      name="load the run's runbook")


def announce_interrupted(app: OpsConsole) -> None:
    """At start: a warning when this environment has interrupted runs (the journal is read in a thread)."""
    from opsconsole import journal as journal_mod

    environment = app.environment.name

    def look() -> None:
        try:
            with journal_mod.open_for_config(app.config) as store:
                runs = resume_mod.interrupted_runs(store, environment)
        except UserError as exc:
            app.call_from_thread(app.notify, masking.printable(str(exc)), title="journal unavailable",
                                 severity="warning", timeout=15, markup=False)
            return
        text = resume_mod.banner(runs, environment)
        if text:
            # markup=False: the banner names the runbook and the user, anyone's text ("[/]ann" would raise).
            app.call_from_thread(app.notify, masking.printable(text), title="interrupted run", severity="warning",
                                 timeout=30, markup=False)

    app.run_worker(look, thread=True, exit_on_error=False, group="journal-banner", name="look for interrupted runs")


# --- the list -----------------------------------------------------------------------------------------------------

class RunTable(DataTable):
    """The runs; Enter opens the highlighted one, and the footer says so."""

    BINDINGS = [Binding("enter", "select_cursor", "Steps", id="journal-open")]


class JournalScreen(Screen[None]):
    DEFAULT_CSS = """
    JournalScreen #journal-title { height: 1; padding: 0 1; text-style: bold; background: $panel; }
    JournalScreen #runs { height: 1fr; border: round $secondary 60%; }
    JournalScreen #run-summary { height: auto; max-height: 4; padding: 0 1; color: $text-muted; }
    JournalScreen #journal-status { height: auto; max-height: 3; padding: 0 1; }
    JournalScreen #journal-status.error { background: $status-crit 30%; }
    """
    BINDINGS = [
        Binding("escape", "app.back", "Back", id="back"),  # twice within a second: home
        Binding("u", "resume", "Resume", id="journal-resume"),
        Binding("a", "toggle_all", "All environments", id="journal-all"),
        # Off the footer for room at 80 columns (the list reloads on its own when you come back); `?` lists it.
        Binding("r", "reload", "Refresh", show=False, id="journal-refresh"),
    ]

    class Loaded(Message):
        """Runs read by the worker (posted from its thread)."""

        def __init__(self, runs: Sequence[RunRecord], location: str, environment: str | None) -> None:
            super().__init__()
            self.runs = runs
            self.location = location
            self.environment = environment

    class LoadFailed(Message):
        def __init__(self, message: str) -> None:
            super().__init__()
            self.message = message

    def __init__(self, all_environments: bool = False, select: str | None = None) -> None:
        """`select`: the run id to highlight once the list is read (the interrupted-run banner names one)."""
        super().__init__()
        self.all_environments = all_environments
        self.select = select
        self.runs: dict[str, RunRecord] = {}
        self.location = ""
        self.loads = 0  # finished loads (tests wait on it)
        self._columns_for: bool | None = None
        self._sticky = False  # the status line holds a refusal or an error: a reload leaves it
        self._shown = False

    def compose(self) -> ComposeResult:
        yield EnvHeader()
        yield Static("Journal · loading…", id="journal-title", markup=False)
        yield RunTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static("", id="run-summary", markup=False)
        yield Static("", id="journal-status", markup=False)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.app.fill_header(self)  # type: ignore[attr-defined]
        self.query_one("#runs", DataTable).border_title = "runs, newest first"
        self.load()

    def on_screen_resume(self) -> None:
        if self._shown:
            self.load()  # back from a run or a detail: statuses may have moved
        self._shown = True

    # -- loading -----------------------------------------------------------------------------------------------

    @property
    def _scope(self) -> str | None:
        """The environment listed, None for all of them."""
        return None if self.all_environments else self.app.environment.name  # type: ignore[attr-defined]

    @work(thread=True, exclusive=True, exit_on_error=False, group="journal")
    def load(self) -> None:
        from opsconsole import journal as journal_mod

        environment = self._scope
        try:
            with journal_mod.open_for_config(self.app.config) as store:  # type: ignore[attr-defined]
                runs = store.runs(limit=LIMIT, environment=environment)
                location = store.location
        except UserError as exc:
            self.post_message(self.LoadFailed(masking.printable(str(exc))))
            return
        self.post_message(self.Loaded(runs, location, environment))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            self._status(masking.printable(f"{event.worker.name}: {type(error).__name__}: {error}"), error=True)

    def on_journal_screen_load_failed(self, event: LoadFailed) -> None:
        self.loads += 1
        self.query_one("#journal-title", Static).update("Journal · unavailable")
        self._status(event.message, error=True)

    def on_journal_screen_loaded(self, event: Loaded) -> None:
        if event.environment != self._scope:
            return  # read before the toggle: a newer read is on its way
        self.loads += 1
        self.location = event.location
        self.runs = {r.run_id: r for r in event.runs}
        self._fill(event.runs)
        scope = "all environments" if event.environment is None else event.environment
        interrupted = sum(1 for r in event.runs if r.status == "interrupted")
        count = f"{len(event.runs)} run{'s' if len(event.runs) != 1 else ''}"
        if interrupted:
            count += f", {interrupted} interrupted"
        self.query_one("#journal-title", Static).update(
            masking.printable(f"Journal · {scope} · {count} · {shown_location(event.location)}"))
        if self._sticky:
            pass  # a refusal stays until the user acts again
        elif not event.runs:
            self._status(f"No runs of {scope} in the journal yet: a runbook or action you run appears here.")
        elif interrupted and not self.app.read_only:  # type: ignore[attr-defined]
            self._status("An interrupted run continues at its first unfinished step: select it, press u.")
        else:
            self._status("")
        self._show_summary()
        self.refresh_bindings()

    def _fill(self, runs: Sequence[RunRecord]) -> None:
        """Rows keyed by run id: cells updated in place while the runs are the same, else rebuilt in order."""
        table = self.query_one("#runs", DataTable)
        variables = self.app.theme_variables
        tz = self.app.tz  # type: ignore[attr-defined]
        rows = {r.run_id: self._cells(r, variables, tz) for r in runs}
        keys = [k.value for k in table.rows]
        if self._columns_for is self.all_environments and keys == list(rows):
            for run_id, cells in rows.items():
                for column, value in cells.items():
                    table.update_cell(run_id, column, value, update_width=True)
            return
        selected = self.select or (self.selected.run_id if self.selected else None)
        self.select = None
        if self._columns_for is not self.all_environments:
            table.clear(columns=True)
            for key, label in self._column_labels():
                table.add_column(label, key=key)
            self._columns_for = self.all_environments
        else:
            table.clear()
        for run_id, cells in rows.items():
            table.add_row(*cells.values(), key=run_id)
        if selected in rows:
            table.move_cursor(row=list(rows).index(selected))

    def _column_labels(self) -> list[tuple[str, str]]:
        # What matters under pressure first (narrow terminals scroll the rest; the line below has it all).
        columns = [("started", "STARTED")]
        if self.all_environments:
            columns.append(("env", "ENV"))
        return columns + [("runbook", "RUNBOOK"), ("status", "STATUS"), ("steps", "STEPS"), ("who", "WHO"),
                          ("host", "HOST"), ("run", "RUN ID")]

    def _cells(self, record: RunRecord, variables: dict[str, str], tz: Any) -> dict[str, Any]:
        cells: dict[str, Any] = {"started": local_time(record.started_at, tz)}
        if self.all_environments:
            cells["env"] = self._environment_text(record.environment, variables)
        cells.update(runbook=_cell(record.runbook_name), status=status_text(record.status, variables),
                     steps=f"{record.steps_done}/{record.steps_total}", who=_cell(who(record, short=True)),
                     host=_cell(record.host), run=record.run_id)
        return cells

    def _environment_text(self, name: str, variables: dict[str, str]) -> Text:
        """Production named in its colour here too, so its runs are never mistaken for another's."""
        from opsconsole.ui.dialogs.environments import is_production

        config = self.app.config  # type: ignore[attr-defined]
        table = config.summary(name) if name in config.environment_names else {}
        if is_production(name, table):
            return Text(name, style=f"bold {variables.get('badge-production', 'red')}")
        return Text(name)

    # -- selection ---------------------------------------------------------------------------------------------

    @property
    def selected(self) -> RunRecord | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # the cursor sits outside the rows while they are rebuilt
            return None
        return self.runs.get(key.value or "")

    def _show_summary(self) -> None:
        record = self.selected
        text = run_summary(record, self.app.tz) if record else ""  # type: ignore[attr-defined]
        self.query_one("#run-summary", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_summary()
        self.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def _status(self, text: str, error: bool = False) -> None:
        self._sticky = error
        status = self.query_one("#journal-status", Static)
        status.set_class(error, "error")
        status.update(text)

    # -- actions -----------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "resume":
            if self.app.read_only:  # type: ignore[attr-defined]
                return False  # hidden: read-only offers no change
            record = self.selected
            return None if record is None or record.status not in resume_mod.RESUMABLE else True
        return True

    def action_reload(self) -> None:
        self._status("reading the journal…")  # and forget a refusal shown before
        self.load()

    def action_toggle_all(self) -> None:
        self.all_environments = not self.all_environments
        self.action_reload()

    def action_open(self) -> None:
        record = self.selected
        if record is not None:
            self.app.push_screen(RunDetailScreen(record))

    def action_resume(self) -> None:
        record = self.selected
        if record is not None:
            resume_run(self, record, self._status)


# --- one run --------------------------------------------------------------------------------------------------

class RunDetailScreen(Screen[None]):
    """One run: who, where and with what; each step attempt with its commands, verification and output."""

    DEFAULT_CSS = """
    RunDetailScreen #detail-title { height: 1; padding: 0 1; text-style: bold; background: $panel; }
    RunDetailScreen #detail-info { height: auto; max-height: 4; padding: 0 1; color: $text-muted; }
    RunDetailScreen #detail-body { height: 1fr; }
    RunDetailScreen #detail-steps { width: 36; height: 1fr; border: round $secondary 60%; }
    RunDetailScreen #step-box { width: 1fr; height: 1fr; border: round $secondary 60%; padding: 0 1; }
    RunDetailScreen #detail-status { height: auto; max-height: 3; padding: 0 1; }
    RunDetailScreen #detail-status.error { background: $status-crit 30%; }
    """
    BINDINGS = [
        Binding("escape", "app.back", "Back", id="back"),  # twice within a second: home
        Binding("u", "resume", "Resume", id="journal-resume"),
        Binding("r", "reload", "Refresh", id="journal-refresh"),
    ]
    EVENTS = "events"

    class Loaded(Message):
        def __init__(self, record: RunRecord) -> None:
            super().__init__()
            self.record = record

    def __init__(self, record: RunRecord) -> None:
        super().__init__()
        self.record = record
        self._shown = False

    def compose(self) -> ComposeResult:
        yield EnvHeader()
        yield Static("", id="detail-title")
        yield Static("", id="detail-info", markup=False)
        with Horizontal(id="detail-body"):
            yield OptionList(id="detail-steps")
            with VerticalScroll(id="step-box"):
                yield Static("", id="step-detail", markup=False)
        yield Static("", id="detail-status", markup=False)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.app.fill_header(self)  # type: ignore[attr-defined]
        self.query_one("#detail-steps", OptionList).border_title = "steps (every attempt)"
        self.query_one("#step-box", VerticalScroll).border_title = "step"
        self.show(self.record)

    def on_screen_resume(self) -> None:
        if self._shown:
            self.action_reload()  # back from a resumed run: its steps have moved
        self._shown = True

    def show(self, record: RunRecord) -> None:
        self.record = record
        tz = self.app.tz  # type: ignore[attr-defined]
        title = Text.assemble(f"run {record.run_id} · ", status_text(record.status, self.app.theme_variables),
                              masking.printable(f" · {record.runbook_name} on {record.environment}"))
        self.query_one("#detail-title", Static).update(title)
        self.query_one("#detail-info", Static).update(run_summary(record, tz))
        steps = self.query_one("#detail-steps", OptionList)
        keep = steps.highlighted_option.id if steps.highlighted_option is not None else None
        steps.clear_options()
        options = []
        recorded = set()
        for step in record.steps:
            recorded.add(step.index)
            mark, style = STEP_MARK.get(step.status, ("?", ""))
            label = Text.assemble((f"{mark} ", style), masking.printable(f"{step.index}. {step.title}"))
            if step.attempt > 1 or sum(1 for s in record.steps if s.index == step.index) > 1:
                label.append(" ")
                label.append(f"#{step.attempt}", style="dim")
            options.append(Option(label, id=f"{step.index}:{step.attempt}"))
        for index, title in sorted(step_titles(record).items()):
            if index not in recorded:
                mark, style = STEP_MARK["not run"]
                options.append(Option(Text.assemble((f"{mark} ", style), masking.printable(f"{index}. {title} "),
                                                    ("not run", "dim")), id=f"{index}:0"))
        options.append(Option(Text(f"events ({len(record.events)})", style="italic"), id=self.EVENTS))
        steps.add_options(options)
        ids = [o.id for o in options]
        steps.highlighted = ids.index(keep) if keep in ids else 0
        self._show_option(ids[steps.highlighted or 0])
        self.refresh_bindings()

    def _show_option(self, option_id: str | None) -> None:
        tz = self.app.tz  # type: ignore[attr-defined]
        box = self.query_one("#step-detail", Static)
        if option_id == self.EVENTS:
            text = Text()
            for event in self.record.events:
                text.append(f"{local_time(event.at, tz)}  ", style="dim")
                text.append(event.kind, style="bold")
                text.append(masking.printable(f": {event.detail} ({event.user} on {event.host}, pid {event.pid})\n"))
            box.update(text or Text("no events", style="dim"))
            return
        index, _, attempt = (option_id or "0:0").partition(":")
        found = next((s for s in self.record.steps if s.index == int(index) and s.attempt == int(attempt)), None)
        planned = planned_blocks(self.record, int(index))
        if found is not None:
            box.update(step_detail(found, tz, planned))
        else:
            title = step_titles(self.record).get(int(index), "")
            text = Text.assemble((masking.printable(f"{index}. {title}"), "bold"),
                                 ("\nnot run yet: a resumed run starts here or before\n", "dim"))
            if planned:
                text.append("\nplanned\n", style="bold underline")
                text.append(masking.printable(planned))
            box.update(text)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_option(event.option.id)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "resume":
            if self.app.read_only:  # type: ignore[attr-defined]
                return False
            return True if self.record.status in resume_mod.RESUMABLE else None
        return True

    @work(thread=True, exclusive=True, exit_on_error=False, group="journal")
    def action_reload(self) -> None:
        from opsconsole import journal as journal_mod

        try:
            with journal_mod.open_for_config(self.app.config) as store:  # type: ignore[attr-defined]
                record = store.get(self.record.run_id)
        except UserError as exc:
            self.app.call_from_thread(self._status, masking.printable(str(exc)), True)
            return
        self.post_message(self.Loaded(record))

    def on_run_detail_screen_loaded(self, event: Loaded) -> None:
        self.show(event.record)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            error = event.worker.error
            self._status(masking.printable(f"{event.worker.name}: {type(error).__name__}: {error}"), error=True)

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#detail-status", Static)
        status.set_class(error, "error")
        status.update(text)

    def action_resume(self) -> None:
        resume_run(self, self.record, self._status)
