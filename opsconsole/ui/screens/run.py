"""Run a plan: the step list with statuses, the step's prose and exact commands, streamed output,
and the live health of what the runbook touches.

The engine is synchronous and runs in a thread worker; it asks and tells through `TuiPrompter`,
which shows dialogs on the UI thread and waits for the answer. Output and progress travel through
a queue the screen drains a few times a second, so a chatty command never floods the UI.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Markdown, OptionList, RichLog, Static
from textual.widgets.option_list import Option

from opsconsole import masking
from opsconsole.engine import (Decision, Event, Failure, Plan, PlannedBlock, PlannedStep, confirmed_together,
                               shown_commands)
from opsconsole.errors import UserError
from opsconsole.health import Reading, Round
from opsconsole.ui.dialogs.confirm import ConfirmDialog
from opsconsole.ui.dialogs.failure import FailureDialog
from opsconsole.ui.widgets.header import EnvHeader
from opsconsole.ui.widgets.panel import MemberPanel

if TYPE_CHECKING:
    from opsconsole.journal import RunRecord

FAILURE_TAIL_LINES = 6  # of output, in the failure dialog
STEP_MARK = {
    "pending": ("·", "dim"),
    "running": ("▶", "bold yellow"),
    "succeeded": ("✔", "bold green"),
    "failed": ("✖", "bold red"),
    "skipped": ("↷", "magenta"),
    "rolled-back": ("↺", "cyan"),
    "rollback-failed": ("✖", "bold red"),
}


def touched_members(plan: Plan) -> list[str]:
    """The services and queues a plan reads or changes: `expect` members and the verbs' services."""
    names: list[str] = []
    for step in plan.steps:
        for block in step.blocks:
            for exp in block.expectations:
                names.append(exp.member.split("/", 1)[0])
            for action in block.actions:
                names.extend(n for n in (action.service, *action.restart) if n)
    return list(dict.fromkeys(names))


class TuiPrompter:
    """The engine's Prompter for the TUI. Called on the engine's thread; dialogs live on the UI thread."""

    def __init__(self, screen: RunScreen) -> None:
        self.screen = screen
        self.app = screen.app
        self.recent: deque[str] = deque(maxlen=FAILURE_TAIL_LINES)  # the running block's last lines of output

    def _ask(self, dialog: Any) -> Any:
        answer: list[Any] = []
        done = threading.Event()

        def show() -> None:
            def got(result: Any) -> None:
                answer.append(result)
                done.set()

            self.app.push_screen(dialog, got)

        self.app.call_from_thread(show)
        while not done.wait(0.2):
            if self.screen.cancel.is_set():
                return None
        return answer[0]

    def confirm(self, step: PlannedStep, block: PlannedBlock, level: str) -> bool:
        if level == "none":
            return True
        # Escaped before the dialog freezes them: a zero-width space or a bidi override shows, as in `plan`.
        # One answer for the step's checks, runs and verifies: the dialog shows them all.
        command = masking.printable(shown_commands(confirmed_together(step, block)))
        params = {k: masking.printable(v, one_line=True) for k, v in self.screen.plan.params.items()}
        dialog = ConfirmDialog(self.screen.environment, level, masking.printable(f"Step {step.index}: {step.title}"),
                               command, params, destructive=block.destructive)
        return bool(self._ask(dialog))

    def on_failure(self, step: PlannedStep, error: Failure) -> Decision:
        # The engine's failure may carry no result: the block's own last lines of output say why, then.
        tail = error.result.output_tail if error.result is not None else "\n".join(self.recent)
        dialog = FailureDialog(masking.printable(f"{step.index}. {step.title}"), masking.printable(error.message),
                               masking.printable(tail), rollback_available=bool(step.of_role("rollback")))
        decision = self._ask(dialog)
        return decision if isinstance(decision, Decision) else Decision("abort")

    def follow(self, step: PlannedStep, block: PlannedBlock, stop: threading.Event) -> Any:
        """A follow command (`logs -f`) streams until the engineer presses `g` (go on); `a` still aborts."""
        self.app.call_from_thread(self.screen.following_started, stop)
        return lambda: self.app.call_from_thread(self.screen.following_ended)

    def output(self, line: str) -> None:
        line = masking.printable(line)
        self.recent.append(line)
        self.screen.inbox.append(("output", line))

    def event(self, event: Event) -> None:
        if event.kind in ("step-started", "block-started"):
            self.recent.clear()  # a failure shows the output of the block that failed, not of the one before
        self.screen.inbox.append(("event", event))


class RunScreen(Screen[None]):
    DEFAULT_CSS = """
    RunScreen #run-title { height: 1; padding: 0 1; text-style: bold; background: $panel; }
    RunScreen #run-body { height: 1fr; }
    RunScreen #steps { width: 34; height: 1fr; border: round $secondary 60%; }
    RunScreen #steps.narrow { width: 26; }
    RunScreen #middle { width: 1fr; }
    /* Shares of the height, so the output keeps room on a 24-row terminal; both scroll when longer. */
    RunScreen #prose { height: auto; max-height: 25vh; border: round $secondary 60%; padding: 0 1; }
    RunScreen #prose Markdown { margin: 0; padding: 0; }
    RunScreen #command-box { height: auto; max-height: 30vh; border: round $accent 60%; padding: 0 1; }
    RunScreen #command { height: auto; }
    RunScreen #output { height: 1fr; border: round $secondary 60%; scrollbar-gutter: stable; overflow-x: hidden; }
    RunScreen #health { width: 38; height: 1fr; }
    RunScreen #state { height: 1; padding: 0 1; }
    RunScreen #state.failed, RunScreen #state.aborted { background: $status-crit; color: $badge-production-text; }
    RunScreen #state.succeeded { background: $status-ok 40%; }
    """
    BINDINGS = [
        Binding("s", "start", "Start", id="run-start"),
        Binding("a", "abort", "Abort", id="run-abort"),
        Binding("g", "go_on", "Go on", id="run-go-on"),  # ends a follow command (logs -f) as a success
        Binding("escape", "leave", "Back", id="back"),
    ]

    def __init__(self, plan: Plan, *, resume: RunRecord | None = None, take_over: bool = False) -> None:
        super().__init__()
        self.plan = plan
        self.resume = resume
        self.take_over = take_over
        self.cancel = threading.Event()
        self.interrupted = threading.Event()  # set with cancel when opsconsole itself goes (OpsConsole.interrupt)
        self.inbox: deque[tuple[str, Any]] = deque()
        self.statuses: dict[int, str] = {s.index: "pending" for s in plan.steps}
        self.running = False
        self.following: threading.Event | None = None  # set to end the follow command that runs now
        self.finished: str | None = None
        self.record: RunRecord | None = None
        self.members = touched_members(plan)
        self.panels: dict[str, MemberPanel] = {}

    @property
    def environment(self):
        return self.app.config.environment(self.plan.environment) if self.app.environment.name != self.plan.environment \
            else self.app.environment

    def compose(self) -> ComposeResult:
        yield EnvHeader()
        yield Static("", id="run-title", markup=False)
        with Horizontal(id="run-body"):
            yield OptionList(id="steps")
            with Vertical(id="middle"):
                with VerticalScroll(id="prose"):
                    yield Markdown("", id="prose-md")
                with VerticalScroll(id="command-box"):
                    yield Static("", id="command", markup=False)
                yield RichLog(id="output", wrap=True, markup=False, max_lines=5000, min_width=20)  # wrap at the real width
            with VerticalScroll(id="health"):
                targets = {t.name: t for t in self.environment.targets}
                for name in self.members:
                    if name in targets:
                        panel = MemberPanel(name, targets[name].kind or "", id=f"run-panel-{name}")
                        self.panels[name] = panel
                        yield panel
        yield Static("", id="state", markup=False)
        yield Footer(show_command_palette=False)

    def on_unmount(self) -> None:
        # The app is closing (or the screen is gone): a pending dialog will never be answered and the running
        # command must not outlive us. Cancelling ends both; the engine records the run as aborted (resumable).
        self.cancel.set()

    def on_mount(self) -> None:
        steps = self.query_one("#steps", OptionList)
        steps.border_title = "steps"
        self.query_one("#prose", VerticalScroll).border_title = "what this step does"
        self.query_one("#command-box", VerticalScroll).border_title = "exactly this will run"
        self.query_one("#output", RichLog).border_title = "output"
        self._fit()
        plan = self.plan
        title = f"{plan.runbook.title} · {plan.environment} · {len(plan.steps)} steps"
        if plan.params:
            title += " · " + ", ".join(f"{k}={v}" for k, v in plan.params.items())
        self.query_one("#run-title", Static).update(masking.printable(title))
        for step in plan.steps:
            steps.add_option(Option(self._step_label(step), id=str(step.index)))
        steps.highlighted = 0
        self._show_step(plan.steps[0] if plan.steps else None)
        verb = "resume" if self.resume else "start"
        self._state(f"press s to {verb} · every change is confirmed as {plan.protection} demands", "")
        self.set_interval(0.1, self._drain)
        self.app.fill_header(self)  # type: ignore[attr-defined]

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        # Below 110 columns the health panels give way to the step's text (the dashboard still has them).
        width = self.app.size.width
        self.query_one("#health").display = bool(self.panels) and width >= 110
        self.query_one("#steps").set_class(width < 100, "narrow")

    # -- showing ---------------------------------------------------------------------------------------------

    def _step_label(self, step: PlannedStep) -> Text:
        status = self.statuses.get(step.index, "pending")
        mark, style = STEP_MARK.get(status, ("?", ""))
        return Text.assemble((f"{mark} ", style), masking.printable(f"{step.index}. {step.title}", one_line=True))

    def _refresh_step(self, step: PlannedStep) -> None:
        steps = self.query_one("#steps", OptionList)
        steps.replace_option_prompt(str(step.index), self._step_label(step))

    def _show_step(self, step: PlannedStep | None) -> None:
        if step is None:
            return
        prose = step.step.prose.strip() or "_No guidance written for this step._"
        self.query_one("#prose-md", Markdown).update(masking.printable(prose))
        lines = []
        for block in step.blocks:
            head = f"[{block.role}]"
            if block.confirmation != "none" and block.is_change:
                head += f" asks: {'type ' + self.plan.environment if block.confirmation == 'typed' else 'y/N'}"
            if block.refused:
                head += f" REFUSED: {block.refused}"
            if block.deferred:
                head += f" (filled in at run time from step {block.deferred_from})"
            body = "\n".join(c.display for c in block.calls) or block.text
            lines.append(f"{head}\n{body}")
        self.query_one("#command", Static).update(masking.printable("\n\n".join(lines)))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            index = int(event.option.id)
            self._show_step(next((s for s in self.plan.steps if s.index == index), None))

    def _state(self, text: str, status: str) -> None:
        state = self.query_one("#state", Static)
        for s in ("failed", "aborted", "succeeded"):
            state.set_class(status == s, s)
        state.update(text)

    def show_round(self, rnd: Round, children: dict[str, list[Reading]], history: dict[str, Sequence[Reading]]) -> None:
        for name, panel in self.panels.items():
            reading = rnd.reading(name)
            if reading is not None and panel.is_mounted:
                panel.show(reading, children.get(name, ()), list(history.get(name, ())))

    def _drain(self) -> None:
        log = self.query_one("#output", RichLog)
        while self.inbox:
            kind, item = self.inbox.popleft()
            if kind == "output":
                log.write(item)
            else:
                self._on_event(item, log)

    def _on_event(self, event: Event, log: RichLog) -> None:
        style = {"step-started": "bold", "step-finished": "bold", "run-finished": "bold reverse",
                 "rollback-started": "cyan", "rollback-finished": "cyan"}.get(event.kind, "dim")
        log.write(Text(masking.printable(event.message), style=style))
        if event.step is not None:
            if event.kind == "step-started":
                self.statuses[event.step.index] = "running"
                self.query_one("#steps", OptionList).highlighted = self.plan.steps.index(event.step)
            elif event.kind in ("step-finished", "step-done-before") and event.status:
                self.statuses[event.step.index] = event.status
            elif event.kind == "rollback-finished" and event.status:
                self.statuses[event.step.index] = event.status
            self._refresh_step(event.step)
        if event.kind == "run-finished":
            self.finished = event.status or "finished"

    # -- running ---------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers what can be done now: s before the run only, a while it runs (dimmed once asked)."""
        if action == "start":
            return not self.running and self.finished is None and not self.app.read_only  # type: ignore[attr-defined]
        if action == "abort":
            return (not self.cancel.is_set() or None) if self.running else False
        if action == "go_on":
            return self.running and self.following is not None
        return True

    def following_started(self, stop: threading.Event) -> None:
        self.following = stop
        self._state("following the output… g · go on (the step succeeds) · a · abort", "")
        self.refresh_bindings()

    def following_ended(self) -> None:
        self.following = None
        if self.running and not self.cancel.is_set():
            self._state("running… a · abort (the run stays resumable)", "")
        self.refresh_bindings()

    def action_go_on(self) -> None:
        if self.following is not None:
            self.following.set()

    def action_start(self) -> None:
        notify_once = self.app.notify_once  # type: ignore[attr-defined]
        if self.running:
            notify_once("run-in-progress", "the run is in progress")
            return
        if self.finished is not None:
            notify_once("run-state", f"this run has {self.finished}; open the journal to see it")
            return
        if self.app.read_only:  # type: ignore[attr-defined]
            notify_once("run-state", "read-only: runbooks cannot run here", severity="error")
            return
        self.running = True
        self._state("running… a · abort (the run stays resumable)", "")
        self.refresh_bindings()
        self._engine()

    @work(thread=True, exclusive=True, exit_on_error=False, group="engine")
    def _engine(self) -> None:
        from opsconsole import journal as journal_mod
        from opsconsole.engine import Engine, JournalLost

        app = self.app
        try:
            journal = journal_mod.open_for_config(app.config)  # type: ignore[attr-defined]
        except UserError as exc:
            app.call_from_thread(self._ended, None, str(exc))
            return
        try:
            engine = Engine(self.plan, journal, app.config, self.environment, TuiPrompter(self),  # type: ignore[attr-defined]
                            take_over=self.take_over, cancel=self.cancel, interrupted=self.interrupted)
            record = engine.run(resume=self.resume)
            app.call_from_thread(self._ended, record, None)
        except JournalLost as exc:  # steps may have run: say where it stopped, not "not run"
            hint = "; once the journal is back, resume it from the journal (j)" if exc.resumable else ""
            app.call_from_thread(self._ended, None, masking.mask(str(exc)) + hint, True)
        except UserError as exc:  # the lock is held, the plan moved, read-only ...
            app.call_from_thread(self._ended, None, masking.mask(str(exc)))
        except Exception as exc:  # a bug must not leave the screen thinking it still runs
            app.call_from_thread(self._ended, None, masking.mask(f"{type(exc).__name__}: {exc}"))
        finally:
            journal.close()

    def _ended(self, record: RunRecord | None, error: str | None, stopped: bool = False) -> None:
        error = masking.printable(error) if error else error
        self._drain()
        self.running = False
        self.record = record
        self.refresh_bindings()  # s and a go from the footer: nothing to start or abort any more
        if stopped:
            self.finished = "stopped"
            self._state(f"stopped: {error}", "failed")
            self.notify(error or "the run stopped", title="journal lost", severity="error", timeout=30, markup=False)
            return
        if record is None:
            self.finished = "failed to start"
            self._state(f"not run: {error}", "failed")
            self.notify(error or "the run could not start", title="run refused", severity="error", timeout=20,
                        markup=False)
            return
        self.finished = record.status
        self._state(f"run {record.run_id} {record.status} · esc back · the journal (j) keeps every step",
                    "succeeded" if record.status == "succeeded" else "failed")
        self.notify(f"run {record.run_id} {record.status}",
                    severity="information" if record.status == "succeeded" else "error")

    def action_abort(self) -> None:
        if not self.running:
            return
        self.cancel.set()
        self._state("aborting: stopping the running command…", "aborted")
        self.refresh_bindings()

    def action_leave(self) -> None:
        if self.running:
            self.app.notify_once("run-in-progress",  # type: ignore[attr-defined]
                                 "a run is in progress: abort it first (a); it stays resumable", severity="warning")
            return
        self.app.action_back()  # type: ignore[attr-defined]
