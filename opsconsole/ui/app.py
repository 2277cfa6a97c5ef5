"""The Textual app: the live dashboard. Probing happens in the core's Monitor; this only shows rounds.

Rounds never overlap: the next one is armed by a one-shot timer when the last has finished, and a
round that falls due while a dialog is open waits until it closes. Probing runs in a worker on the
event loop (the probes are async), so keys keep answering whatever the network does.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterable
from datetime import tzinfo
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import ItemGrid, VerticalScroll
from textual.driver import Driver
from textual.notifications import Notification, Notify, SeverityLevel
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

from opsconsole import config as config_module
from opsconsole.config import Config, Environment
from opsconsole.errors import ConfigError, UserError
from opsconsole.health import Monitor, Reading, Round, Status
from opsconsole.themes import DEFAULT_THEME
from opsconsole.ui import theming
from opsconsole.ui.dialogs.environments import EnvironmentPicker
from opsconsole.ui.driver import terminal_driver
from opsconsole.ui.screens.detail import MemberDetail
from opsconsole.ui.widgets.header import EnvHeader
from opsconsole.ui.widgets.panel import MemberPanel

INTERVALS = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0)
INTERVAL_KEYS = Binding.Group("Interval", compact=True)  # + and - as one footer entry
# Keys of the dashboard itself: elsewhere they would stack screens on screens (the palette still reaches them).
DASHBOARD_ONLY = frozenset({"switch_environment", "runbooks", "secrets", "slower", "faster"})
BACK_TWICE_S = 1.0  # esc again within this goes home


class RoundSource(Protocol):
    """What the app needs from a Monitor (tests replay recorded rounds through the same shape)."""

    history: dict[str, Any]

    @property
    def running(self) -> bool: ...

    async def round(self) -> Round: ...

    async def aclose(self) -> None: ...


MonitorFactory = Callable[[Environment, float], RoundSource]


class OpsConsole(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "opsconsole"
    # The footer offers what matters on each screen and fits 80 columns: the dashboard's own keys there only
    # (check_action), the rest (r, ^p, the arrows) in the key panel `?` opens, which lists every key.
    BINDINGS = [
        # priority: lists and logs take home for their first line; this one always goes to the dashboard.
        Binding("home", "home", "Dashboard", id="home", priority=True, tooltip="from any depth (or esc twice)"),
        Binding("r", "refresh_now", "Refresh", show=False, id="refresh", tooltip="probe everything now"),
        Binding("e", "switch_environment", "Env", id="environments", tooltip="switch the environment watched"),
        Binding("b", "runbooks", "Runbooks", id="runbooks"),
        Binding("j", "journal", "Journal", id="journal", tooltip="past and interrupted runs"),
        Binding("x", "secrets", "Secrets", id="secrets", tooltip="rotate or roll back a secret"),
        Binding("plus", "slower", "Probe less often", id="interval-longer", group=INTERVAL_KEYS),
        Binding("minus", "faster", "Probe more often", id="interval-shorter", group=INTERVAL_KEYS),
        # Arrows only: j is the journal; a keymap can add vim keys back (focus-down = "down,ctrl+j").
        Binding("right", "move(1, 0)", "Next", show=False, id="focus-right"),
        Binding("left", "move(-1, 0)", "Previous", show=False, id="focus-left"),
        Binding("down", "move(0, 1)", "Down", show=False, id="focus-down"),
        Binding("up", "move(0, -1)", "Up", show=False, id="focus-up"),
        Binding("ctrl+p", "command_palette", "Palette", show=False, id="palette", tooltip="every action by name"),
        Binding("question_mark", "keys", "Keys", id="keys", tooltip="every key of this screen"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(
        self,
        config: Config,
        environment: Environment,
        read_only: bool = False,
        *,
        monitor_factory: MonitorFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        tz: tzinfo | None = None,
        snapshot: Path | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.environment = environment
        self.forced_read_only = read_only
        self.monitor_factory: MonitorFactory = monitor_factory or (lambda env, timeout: Monitor(env, timeout))
        self.clock = clock
        self.tz = tz
        self.snapshot = snapshot
        self.refresh_s = config.refresh
        self.monitor: RoundSource | None = None
        self.last_round: Round | None = None
        self.rounds_shown = 0
        self._generation = 0  # bumped on environment switch; a round of an old environment is dropped
        self._next_at: float | None = None
        self._round_due = False
        self._round_timer: Any = None
        self.panels: dict[str, MemberPanel] = {}
        self._quit_asked_at = float("-inf")
        for theme in theming.load(config.base_dir if config.path else None):
            self.register_theme(theme)
        wanted = config.theme or DEFAULT_THEME
        self.theme = wanted if wanted in self.available_themes else "textual-dark"  # create() reports a bad name
        self.set_keymap(dict(config.keymap))

    # -- setup -------------------------------------------------------------------------------

    @property
    def read_only(self) -> bool:
        return self.forced_read_only or self.environment.read_only

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While a dialog is open, only its own keys act: a letter typed beside a confirmation's input must not
        refresh, switch the environment, open a screen or quit behind it.

        Otherwise the footer offers what matters where you are: the dashboard's own keys (environment,
        runbooks, secrets, interval) act and show on the dashboard only, home everywhere else, j everywhere
        but on the journal itself. False hides a key from the footer and stops it acting."""
        if self._dialog_open():
            # Only opsconsole's own keys: Tab and shift+Tab still move between a dialog's buttons.
            return False if action in _OWN_ACTIONS else super().check_action(action, parameters)
        on_dashboard = len(self.screen_stack) <= 1
        if action in DASHBOARD_ONLY and not on_dashboard:
            return False
        if action == "home" and on_dashboard:
            return False
        if action == "journal":
            from opsconsole.ui.screens.journal import JournalScreen

            if isinstance(self.screen, JournalScreen):
                return False
        return super().check_action(action, parameters)

    def get_driver_class(self) -> type[Driver]:
        return terminal_driver(super().get_driver_class())  # one that survives a closed terminal: ui/driver.py

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return {**super().get_theme_variable_defaults(), **theming.VARIABLE_DEFAULTS}

    def compose(self) -> ComposeResult:
        yield EnvHeader()
        with VerticalScroll(id="dashboard"):
            yield Static("", id="empty")
            yield ItemGrid(id="panels", min_column_width=36, stretch_height=True)
        yield Footer(show_command_palette=False)  # the palette is a remappable binding of its own

    def on_mount(self) -> None:
        self.set_interval(1.0, self._tick)
        self._watch(self.environment)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._hang_up)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests), no such signal
                pass

    def _hang_up(self) -> None:
        """The terminal closed (SIGHUP) or a supervisor stops us (SIGTERM): without this the process dies on the
        spot and a running step's command lives on, orphaned, while the journal calls the run interrupted. Stop
        every run the way `a` does (its command tree killed, the run journaled resumable), then quit; the
        process waits for the engine to finish recording before it exits."""
        self.interrupt()

    def interrupt(self) -> None:
        """Leave with a run in flight: its step's command stopped as `a` stops it, the run journaled
        `interrupted` (resumable; the next start says so), then exit 130, once the engine has recorded it."""
        from opsconsole.ui.screens.run import RunScreen

        for screen in self.screen_stack:
            if isinstance(screen, RunScreen):
                screen.interrupted.set()
                screen.cancel.set()
        self.exit(return_code=130)

    async def on_unmount(self) -> None:
        if self.monitor is not None:
            await self.monitor.aclose()

    def _watch(self, environment: Environment) -> None:
        """Show `environment`: new panels, a new monitor, a round at once."""
        self._generation += 1
        self.environment = environment
        self.last_round = None
        self._next_at = None
        self._round_due = False
        if self._round_timer is not None:
            self._round_timer.stop()
            self._round_timer = None
        old = self.monitor
        self.workers.cancel_group(self, "probe")
        if old is not None:
            self.run_worker(old.aclose(), group="close", exit_on_error=False)
        self.title = f"opsconsole · {environment.name}"
        self.sub_title = f"{environment.provider} · {self.config.source}"
        self._headers(lambda h: (h.show_environment(environment, self.read_only), h.show_status(None),
                                 h.show_round_info("waiting for the first probe round…")))
        grid = self.query_one("#panels", ItemGrid)
        grid.remove_children()
        # Panels are keyed by member name; the generation keeps ids unique while old panels are removed.
        self.panels = {t.name: MemberPanel(t.name, t.kind or "", id=f"panel-{self._generation}-{t.name}")
                       for t in environment.targets}
        panels = list(self.panels.values())
        mounted = grid.mount_all(panels)
        empty = self.query_one("#empty", Static)
        empty.display = not panels
        empty.update(f"{environment.name} has nothing to probe: add services or queues with a kind and url "
                     f"to {self.config.source}")
        if panels:
            self.monitor = self.monitor_factory(environment, self.config.timeout)
            generation = self._generation

            async def first_round() -> None:
                await mounted  # a round that beat the panels to the screen would be lost
                if generation != self._generation:
                    return
                panels[0].focus()
                # The first frame goes out first; then client libraries load in a thread, not on the loop.
                painted = asyncio.Event()
                self.call_after_refresh(painted.set)
                await painted.wait()
                from opsconsole.probes import preload

                await asyncio.to_thread(preload, environment.targets)
                if generation == self._generation:
                    self._start_round()

            self.run_worker(first_round(), group="mount", exit_on_error=False)
        else:
            self.monitor = None
            if self.snapshot is not None:
                self.call_after_refresh(self._save_snapshot)
        if self.snapshot is None:  # a one-frame snapshot has no one to warn
            from opsconsole.ui.screens.journal import announce_interrupted

            announce_interrupted(self)

    def _headers(self, apply: Callable[[EnvHeader], Any]) -> None:
        for screen in self.screen_stack:
            for header in screen.query(EnvHeader):
                apply(header)

    # -- rounds ------------------------------------------------------------------------------

    def _dialog_open(self) -> bool:
        # An empty stack happens while the app shuts down; a timer may still tick then.
        return bool(self.screen_stack) and isinstance(self.screen_stack[-1], ModalScreen)

    def _start_round(self) -> None:
        if self.monitor is None or self.monitor.running:
            return  # rounds never overlap
        if self._round_timer is not None:
            self._round_timer.stop()
            self._round_timer = None
        if self._dialog_open():
            self._round_due = True  # a dialog is open: probe when it closes
            self._tick()
            return
        self._round_due = False
        self._next_at = None
        self.run_worker(self._run_round(self._generation), group="probe", exit_on_error=False)
        self._tick()

    async def _run_round(self, generation: int) -> None:
        monitor = self.monitor
        assert monitor is not None
        try:
            rnd = await monitor.round()
            if generation == self._generation:
                self._show(rnd)
        finally:
            if generation == self._generation:
                # The next round is armed only when this one has finished.
                self._next_at = self.clock() + self.refresh_s
                self._round_timer = self.set_timer(self.refresh_s, self._start_round)
                self._tick()

    def _show(self, rnd: Round) -> None:
        previous, self.last_round = self.last_round, rnd
        self.rounds_shown += 1
        history = self.monitor.history if self.monitor is not None else {}
        children: dict[str, list[Reading]] = {}
        for r in rnd.readings:
            if r.parent:
                children.setdefault(r.parent, []).append(r)
        for r in rnd.readings:
            if r.parent:
                continue
            panel = self.panels.get(r.name)
            if panel is None or not panel.is_mounted:
                continue
            panel.show(r, children.get(r.name, ()), list(history.get(r.name, ())))
        self._order_panels(rnd, first=previous is None)
        for screen in self.screen_stack:
            show_round = getattr(screen, "show_round", None)
            if show_round is not None:  # detail and run screens follow live rounds too
                show_round(rnd, children, history)
        members = self._member_statuses(rnd)
        self._headers(lambda h: h.show_status(rnd.status, members))
        self._announce(previous, rnd)
        if self.snapshot is not None and self.rounds_shown == 1:
            self.call_after_refresh(self._save_snapshot)

    @staticmethod
    def _member_statuses(rnd: Round) -> list[tuple[str, Status]]:
        """Each member's (name, status) in config order, for the header to name those that are not ok."""
        return [(r.name, r.status) for r in rnd.readings if r.parent is None]

    def _order_panels(self, rnd: Round, first: bool) -> None:
        """Keep the members that are not ok in view: crit panels first, then unknown, warn, the rest, each group in
        config order. The order follows from the statuses alone, so panels move only when a member changes group,
        never from one round to the next; the focused member keeps the focus wherever its panel goes."""
        grid = self.query_one("#panels", ItemGrid)
        if not self.panels or any(p.parent is not grid for p in self.panels.values()):
            return  # not mounted yet (or being replaced by an environment switch)
        group = {Status.CRIT: 0, Status.UNKNOWN: 1, Status.WARN: 2}  # the worst first, as the header names them

        def place(name: str) -> int:
            reading = rnd.reading(name)
            return group.get(reading.status, 3) if reading is not None else 3

        in_config = [t.name for t in self.environment.targets if t.name in self.panels]
        wanted = sorted(in_config, key=place)  # stable: config order within each group
        current = list(self.panels)
        if wanted == current:
            return
        auto_focus = first and self.focused is self.panels[in_config[0]]  # the focus the app gave, not the user
        self.panels = {name: self.panels[name] for name in wanted}  # arrow keys walk the panels in this order
        for index, name in enumerate(wanted):
            panel = self.panels[name]
            if grid.children[index] is not panel:
                grid.move_child(panel, before=grid.children[index])
        if auto_focus:
            self.panels[wanted[0]].focus(scroll_visible=False)

    def _announce(self, previous: Round | None, rnd: Round) -> None:
        """Notifications as Nagios separates soft from hard states: a member turning warn, or back to ok, is told at
        once; one turning crit is alerted (an error notification and the bell) only once it has failed more checks
        in a row than its `failures` threshold. Its panel says crit from the first failed check either way."""
        ring = False
        for r in rnd.readings:
            before = previous.reading(r.name) if previous is not None else None
            # The first round has no before: only an alert is told (`failures = 0` alerts at the first check).
            detail = f": {r.error}" if r.error else (f": {r.reasons[0]}" if r.reasons else "")
            # markup=False: names and errors come from servers ("api/[/]" would raise, "[@click=...]" would act).
            if r.alerting and (before is None or not before.alerting):
                self.notify(f"{r.name}: {r.status.value}, failed {r.consecutive_failures}× in a row{detail}",
                            title="ALERT", severity="error", timeout=10, markup=False)
                ring = True
            elif before is not None and before.status is not r.status and r.status is not Status.CRIT:
                recovered = " (alert over)" if before.alerting else ""
                severity = {"warn": "warning"}.get(r.status.value, "information")
                self.notify(f"{r.name}: {before.status.value} → {r.status.value}{recovered}{detail}",
                            severity=severity, timeout=5, markup=False)
        if ring and self.config.bell:
            self.bell()

    def _tick(self) -> None:
        if self.last_round is None and not self._round_due:
            return
        if self._round_due and not self._dialog_open():
            self._start_round()
            return
        self._headers(lambda h: h.show_round_info(self._round_info()))

    def _round_info(self) -> list[str]:
        """The round clock, longest first, for the header to take the longest that fits beside the names.

        A saved snapshot carries the round's date and time zone, and no countdown: it is read later, elsewhere."""
        rnd = self.last_round
        if self.snapshot is not None and rnd is not None:
            stamp = self._stamp(rnd)
            return [f"checked {stamp} · round {rnd.duration_s * 1000:.0f} ms", f"checked {stamp}", stamp]
        if self._round_due:
            state, short = "paused while a dialog is open", "paused"
        elif self._next_at is None:
            state = short = "probing…"
        else:
            left = f"next in {max(0.0, self._next_at - self.clock()):.0f}s"
            state, short = f"{left} of {self.refresh_s:g}s", left
        if rnd is None:
            return [state, short]
        at = rnd.started_at.astimezone(self.tz).strftime("%H:%M:%S")
        return [f"checked {at} · round {rnd.duration_s * 1000:.0f} ms · {state}", f"checked {at} · {state}",
                f"checked {at} · {short}", f"checked {at}", at]

    def _stamp(self, rnd: Round) -> str:
        """The round's date and time with its zone, for a snapshot read later elsewhere: "2026-12-05 10:30:51 UTC",
        "2026-12-05 11:30:51 CET +01:00" (an abbreviation alone can name two zones), "2026-12-05 16:00:51 UTC+05:30"."""
        when = rnd.started_at.astimezone(self.tz)
        name = when.tzname() or ""
        offset = when.strftime("%z")
        offset = f"{offset[:3]}:{offset[3:]}" if len(offset) == 5 else offset
        if not name:
            zone = offset
        elif name == "UTC" or any(c.isdigit() for c in name):
            zone = name
        else:
            zone = f"{name} {offset}"
        return f"{when:%Y-%m-%d %H:%M:%S} {zone}".rstrip()

    def _save_snapshot(self) -> None:
        assert self.snapshot is not None
        self._tick()  # the header as of this round (its date and zone, no countdown), painted before it is saved

        def save() -> None:
            assert self.snapshot is not None
            self.save_screenshot(filename=self.snapshot.name, path=str(self.snapshot.parent or "."))
            self.exit()

        self.call_after_refresh(save)

    # -- actions -----------------------------------------------------------------------------

    def action_refresh_now(self) -> None:
        if self.monitor is not None and self.monitor.running:
            self.notify_once("refresh", "a probe round is already running")
            return
        self._start_round()

    def _set_interval(self, seconds: float) -> None:
        self.refresh_s = seconds
        if self._next_at is not None:
            # Re-arm from now with the new interval (the running round, if any, re-arms itself).
            if self._round_timer is not None:
                self._round_timer.stop()
            self._next_at = self.clock() + seconds
            self._round_timer = self.set_timer(seconds, self._start_round)
        self.notify_once("interval", f"refresh every {seconds:g}s")
        self._tick()

    def action_slower(self) -> None:
        longer = [s for s in INTERVALS if s > self.refresh_s]
        if longer:
            self._set_interval(longer[0])

    def action_faster(self) -> None:
        shorter = [s for s in INTERVALS if s < self.refresh_s]
        if shorter:
            self._set_interval(shorter[-1])

    def action_move(self, dx: int, dy: int) -> None:
        panels = [p for p in self.panels.values() if p.is_mounted]
        if not panels or not isinstance(self.screen, Screen) or self.screen is not self.screen_stack[0]:
            return
        focused = self.focused
        index = panels.index(focused) if focused in panels else 0
        columns = sum(1 for p in panels if p.region.y == panels[0].region.y) or 1
        target = index + dx + dy * columns
        if 0 <= target < len(panels):
            panels[target].focus()
            panels[target].scroll_visible()

    def on_member_panel_selected(self, event: MemberPanel.Selected) -> None:
        self.open_detail(event.name)

    def open_detail(self, member: str) -> None:
        self.push_screen(MemberDetail(member))

    def fill_header(self, screen: Screen) -> None:
        """A new screen's header and live panels, from what is known now (screens call this on mount)."""
        header = screen.query_one(EnvHeader)
        header.show_environment(self.environment, self.read_only)
        if self.last_round is not None:
            header.show_status(self.last_round.status, self._member_statuses(self.last_round))
        else:
            header.show_status(None)
        self._tick()
        show_round = getattr(screen, "show_round", None)
        if self.last_round is not None and show_round is not None:
            history = self.monitor.history if self.monitor is not None else {}
            children: dict[str, list[Reading]] = {}
            for r in self.last_round.readings:
                if r.parent:
                    children.setdefault(r.parent, []).append(r)
            show_round(self.last_round, children, history)

    # -- runbooks ----------------------------------------------------------------------------------------------

    def action_runbooks(self) -> None:
        from opsconsole.ui.screens.runbooks import RunbooksScreen

        if self._back_to(RunbooksScreen) is None:
            self.push_screen(RunbooksScreen())

    def start_runbook(self, path: Path, initial: dict[str, str] | None = None) -> None:
        """Plan a runbook for this environment: its params first (a form), then the run screen."""
        from opsconsole import runbook as runbook_mod

        if self.read_only:
            self.notify(f"{self.environment.name} is read-only here: runbooks cannot run", severity="error")
            return
        try:
            book = runbook_mod.load(path)
        except UserError as exc:
            self.notify(str(exc), title="invalid runbook", severity="error", timeout=15, markup=False)
            return
        if not book.params:
            self.plan_runbook(book, {})
            return
        from opsconsole.ui.dialogs.params import ParamsDialog

        def chosen(values: dict[str, str] | None) -> None:
            if values is not None:
                self.plan_runbook(book, values)

        self.push_screen(ParamsDialog(book, self.environment.name, initial or {}, self.environment), chosen)

    def action_journal(self, select: str | None = None) -> None:
        from opsconsole.ui.screens.journal import JournalScreen

        journal = self._back_to(JournalScreen)
        if journal is None:
            self.push_screen(JournalScreen(select=select))
        elif select is not None:
            journal.select = select  # highlighted by the reload its resume starts
            if journal is self.screen:
                journal.load()

    def action_secrets(self, select: str | None = None) -> None:
        from opsconsole.ui.screens.secrets import SecretsScreen

        secrets = self._back_to(SecretsScreen)
        if secrets is None:
            self.push_screen(SecretsScreen(select=select))
        elif select is not None:
            secrets.select = select
            secrets.load()

    def _back_to(self, kind: type[Screen[Any]]) -> Screen[Any] | None:
        """The screen of `kind` already open, brought back to the top (the screens above it closed) rather than a
        second one stacked on the first; None when there is none, or a running run sits above it (closing its
        screen would stop it)."""
        from opsconsole.ui.screens.run import RunScreen

        stack = self.screen_stack
        found = next((i for i in range(len(stack) - 1, 0, -1) if isinstance(stack[i], kind)), None)
        if found is None or any(isinstance(s, RunScreen) and s.running for s in stack[found + 1:]):
            return None
        while len(self.screen_stack) > found + 1:
            self.pop_screen()
        return stack[found]

    def action_home(self) -> None:
        """Back to the dashboard from any depth, in one key. A running run is never left: its screen going would
        stop it, so home stops at that screen and says so; the run goes on, and home works once it has ended."""
        from opsconsole.ui.screens.run import RunScreen

        stack = self.screen_stack
        running = [i for i, s in enumerate(stack) if isinstance(s, RunScreen) and s.running]
        keep = running[-1] + 1 if running else 1
        while len(self.screen_stack) > keep:
            self.pop_screen()
        if running:
            self.notify_once("run-in-progress", "a run is in progress: home stops at its screen. Abort it (a) or "
                             "let it end, then press home again", severity="warning")

    _back_at = float("-inf")  # when esc last went back a screen (action_back)

    def action_back(self) -> None:
        """esc on a screen: back one screen; esc again within a second goes home from any depth."""
        now = time.monotonic()
        if now - self._back_at <= BACK_TWICE_S:
            self._back_at = float("-inf")
            self.action_home()
            return
        self._back_at = now
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def action_keys(self) -> None:
        """`?`: every key of this screen, its own first, then those that work everywhere (ui/dialogs/keys.py)."""
        from opsconsole.ui.dialogs.keys import KeysDialog

        here: dict[str, tuple[list[str], str]] = {}
        everywhere: dict[str, tuple[list[str], str]] = {}
        textual_own = {b.action for b in Screen.BINDINGS if isinstance(b, Binding)}  # focus and copy keys
        # Read before the dialog opens: while it is open no key of the screens behind it acts (check_action).
        for node, binding, enabled, tooltip in self.screen.active_bindings.values():
            if binding.system or (node is not self and node is not self.screen and not binding.show) or \
                    (node is self.screen and binding.action in textual_own):
                continue  # Textual's own, and the lists' cursor keys
            described = binding.description + (f" — {tooltip}" if tooltip else "") + ("" if enabled else " (not now)")
            keys, _ = (everywhere if node is self else here).setdefault(binding.action, ([], described))
            keys.append(self.get_key_display(binding))
        self.push_screen(KeysDialog("Keys", [("On this screen", [(" ".join(k), d) for k, d in here.values()]),
                                             ("Everywhere", [(" ".join(k), d) for k, d in everywhere.values()])]))

    @cached_property
    def _toasts(self) -> dict[str, Notification]:
        """The last toast of each kind (notify_once)."""
        return {}

    def notify_once(self, kind: str, message: str, *, title: str = "", severity: SeverityLevel = "information",
                    timeout: float | None = None, markup: bool = True) -> None:
        """A toast that replaces the last one of its `kind` rather than stacking on it: `+` pressed five times shows
        one "refresh every 60s", not five over the header and the panels. On the UI thread."""
        old = self._toasts.pop(kind, None)
        if old is not None:
            self._unnotify(old, refresh=False)  # the new one's arrival refreshes the toasts
        notification = Notification(message, title, severity,
                                    self.NOTIFICATION_TIMEOUT if timeout is None else timeout, markup=markup)
        self._toasts[kind] = notification
        self.post_message(Notify(notification))

    def _actions(self) -> list[tuple[str, str]]:
        """The action verbs that make sense here, as the command palette offers them."""
        env = self.environment
        out: list[tuple[str, str]] = []
        for service in env.services:
            if env.provider != "local" or service.options.get("deploy"):
                out.append((f"deploy {service.name}", f"Deploy {service.name} through {env.provider}"))
            if service.options.get("migrate"):
                out.append((f"migrate {service.name}", f"Run {service.name}'s migrations"))
            if service.kind == "postgres":
                out.append((f"backup {service.name}", f"Back up the {service.name} database"))
                out.append((f"restore-backup {service.name} --from latest",
                            f"Replace {service.name}'s contents with its latest backup (asks first)"))
        return out  # rotate-secret has its own guided flow: the Secrets screen

    def start_action(self, text: str) -> None:
        """An action verb as a one-step plan: the same engine, confirmation, journal and lock as a runbook."""
        from opsconsole import actions
        from opsconsole.engine import action_runbook

        if self.read_only:
            self.notify(f"{self.environment.name} is read-only here: no changes", severity="error")
            return
        try:
            book = action_runbook(actions.parse(text), self.environment)
        except UserError as exc:
            self.notify(str(exc), title="cannot plan", severity="error", timeout=15, markup=False)
            return
        self.plan_runbook(book, {})

    @work(thread=True, exclusive=True, exit_on_error=False, group="plan")
    def plan_runbook(self, book: Any, values: dict[str, str], resume: Any = None) -> None:
        """Build the plan in a thread (a provider may read live state), then open the run screen."""
        from opsconsole.engine import build_plan
        from opsconsole.ui.screens.run import RunScreen

        try:
            plan = build_plan(self.config, self.environment, book, values, read_only=self.read_only)
        except UserError as exc:
            self.call_from_thread(self.notify, str(exc), title="cannot plan", severity="error", timeout=20, markup=False)
            return
        self.call_from_thread(self.push_screen, RunScreen(plan, resume=resume))

    def run_in_progress(self) -> bool:
        """A run screen on the stack is running its engine (its thread owns the lock and a child process)."""
        from opsconsole.ui.screens.run import RunScreen

        return any(isinstance(s, RunScreen) and s.running for s in self.screen_stack)

    async def action_quit(self) -> None:
        # Quitting mid-step would orphan the step's process and leave the run to be resumed: ask for it twice.
        if self.run_in_progress() and time.monotonic() - self._quit_asked_at > 3:
            self._quit_asked_at = time.monotonic()
            self.notify_once("run-in-progress", "a run is in progress: abort it first (a), or press q again within "
                             "3 s to quit anyway (that stops the running step; the run stays resumable from the "
                             "journal)", severity="warning", timeout=6)
            return
        if self.run_in_progress():
            self.interrupt()
            return
        self.exit()

    def action_switch_environment(self) -> None:
        if self.run_in_progress():
            self.notify_once("run-in-progress", "a run is in progress: finish or abort it (a) before switching "
                             "environments", severity="warning")
            return
        names = self.config.environment_names
        self.push_screen(EnvironmentPicker([(n, self.config.summary(n)) for n in names], self.environment.name),
                         self.switch_environment)

    def switch_environment(self, name: str | None) -> None:
        if name is None or name == self.environment.name:
            return
        if self.run_in_progress():  # the palette reaches here without the key's check
            self.notify_once("run-in-progress", f"a run is in progress: finish or abort it (a) before switching "
                             f"to {name}", severity="warning")
            return
        try:
            environment = self.config.environment(name)
        except UserError as exc:
            self.notify(str(exc), title=f"cannot switch to {name}", severity="error", timeout=15, markup=False)
            return
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self._watch(environment)
        self.notify(f"now watching {name}" + (" — PRODUCTION" if environment.is_production else ""),
                    severity="warning" if environment.is_production else "information")

    def _runbook_entries(self) -> list[dict[str, Any]]:
        return _runbook_entries_of(self.config, self.environment.name)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette's entries. Among equally good matches it keeps this order (its sort is stable), so for the
        same words what only reads or moves comes first, then what changes something, and last what destroys
        data, marked ⚠: typing "backup" selects "Action: backup db", not "⚠ Action: restore-backup …"."""
        yield from super().get_system_commands(screen)
        if screen is not self.screen_stack[0]:  # `screen`: the one the palette opened over
            yield SystemCommand("Home", "Back to the dashboard (home, or esc twice)", self.action_home)
        yield SystemCommand("Refresh now", "Probe every service and queue now", self.action_refresh_now)
        for name in self.config.environment_names:
            if name != self.environment.name:
                yield SystemCommand(f"Switch environment: {name}", f"Watch {name} instead of {self.environment.name}",
                                    lambda name=name: self.switch_environment(name))
        for seconds in INTERVALS:
            yield SystemCommand(f"Refresh every {seconds:g}s", "Change the probe interval",
                                lambda seconds=seconds: self._set_interval(seconds))
        yield SystemCommand("Runbooks", "Browse, preview and run this environment's runbooks", self.action_runbooks)
        yield SystemCommand("Journal", f"Past and interrupted runs on {self.environment.name}; resume from there",
                            self.action_journal)
        yield SystemCommand("Secrets", f"The rotatable secrets of {self.environment.name}: where they live, who "
                                       f"uses them" + ("" if self.read_only else ", rotate or roll back"),
                            self.action_secrets)
        for target in self.environment.targets:
            yield SystemCommand(f"Details: {target.name}", f"Every metric and the recent history of {target.name}",
                                lambda name=target.name: self.open_detail(name))
        if self.read_only:
            return  # read-only hides every change
        from opsconsole import actions
        from opsconsole.ui.screens.secrets import restart_list

        changes: list[SystemCommand] = []
        destroys: list[SystemCommand] = []
        for entry in self._runbook_entries():
            title = f"Run runbook: {entry['title']}"
            run = (lambda path=entry["path"]: self.start_runbook(Path(path)))
            if _runbook_destroys(entry["path"]):
                destroys.append(SystemCommand(_destructive(title), f"{entry['name']}: {entry['summary']}", run))
            else:
                changes.append(SystemCommand(title, f"{entry['name']}: {entry['summary']}", run))
        for text, help_text in self._actions():
            act = (lambda text=text: self.start_action(text))
            if text.split()[0] in actions.DESTRUCTIVE:
                destroys.append(SystemCommand(_destructive(f"Action: {text}"), help_text, act))
            else:
                changes.append(SystemCommand(f"Action: {text}", help_text, act))
        for name, secret in self.environment.secrets.items():
            # Opens the guided flow (a summary, Cancel first), which is why the title stays the secret's own.
            users = ", ".join(restart_list(secret)) or "no service restarts"
            destroys.append(SystemCommand(f"Rotate secret: {name}",
                                          f"⚠ replaces its value: generate, set and roll out a new {name} ({users})",
                                          lambda name=name: self.action_secrets(select=name)))
        yield from changes
        yield from destroys


# The actions of the app's own keys (for "move(1, 0)", "move"), and Textual's ctrl+q.
_OWN_ACTIONS = frozenset(b.action.split("(", 1)[0] for b in OpsConsole.BINDINGS
                         if isinstance(b, Binding)) | {"quit"}


def _destructive(title: str) -> str:
    """A palette title for an entry that destroys data (docs/running.md: restore-backup, rotate-secret, typed)."""
    return f"⚠ {title} — changes data"


def _runbook_destroys(path: str) -> bool:
    """Whether a runbook destroys data, as the engine will confirm it: a block asks for the typed confirmation, or
    runs a destructive verb (restore-backup, rotate-secret; not a scratch-only restore drill). Read from the parse
    the listing keeps per version of the file (the palette asks on every key typed)."""
    from opsconsole import actions, runbook_report
    from opsconsole.engine import is_change

    book, _ = runbook_report.inspected(Path(path))
    for step in book.steps if book is not None else ():
        for block in step.blocks:
            if not is_change(block):
                continue
            if block.confirm == "typed":
                return True
            if block.lang == "ops" and any(words[0] in actions.DESTRUCTIVE and "--scratch-only" not in words
                                           for words in map(str.split, block.source.splitlines()) if words):
                return True
    return False


def _runbook_entries_of(config: Config, environment: str) -> list[dict[str, Any]]:
    from opsconsole import runbook, runbook_report

    try:
        entries = runbook_report.listing(runbook.shelves(config))
    except UserError:
        return []
    return [e for e in entries if e["valid"] and (e["environments"] is None or environment in e["environments"])]


def binding_ids() -> set[str]:
    """Every binding id a keymap may name."""
    ids: set[str] = set()
    from opsconsole.ui.dialogs.confirm import ConfirmDialog
    from opsconsole.ui.dialogs.failure import FailureDialog
    from opsconsole.ui.dialogs.keys import KeysDialog
    from opsconsole.ui.dialogs.params import ParamsDialog
    from opsconsole.ui.screens.journal import JournalScreen, RunDetailScreen, RunTable
    from opsconsole.ui.screens.run import RunScreen
    from opsconsole.ui.screens.runbooks import RunbooksScreen
    from opsconsole.ui.screens.secrets import RotationSummary, SecretsScreen, SecretTable

    for owner in (OpsConsole, MemberPanel, MemberDetail, EnvironmentPicker, RunbooksScreen, RunScreen,
                  ParamsDialog, ConfirmDialog, FailureDialog, KeysDialog, JournalScreen, RunTable, RunDetailScreen,
                  SecretsScreen, SecretTable, RotationSummary):
        for binding in owner.BINDINGS:
            if isinstance(binding, Binding) and binding.id:
                ids.add(binding.id)
    return ids


def create(config: Config, environment: Environment, read_only: bool = False, **options: Any) -> OpsConsole:
    """The one app factory (CLI, snapshot, tests): checks theme and keymap, raising ConfigError with the line."""
    where = config.source
    known = binding_ids()
    for binding_id in config.keymap:
        if binding_id not in known:
            raise ConfigError(f"keymap: unknown binding id {binding_id!r} (known: {', '.join(sorted(known))})",
                              where, config.lines.line("keymap", binding_id))
    app = OpsConsole(config, environment, read_only, **options)
    if config.theme and config.theme not in app.available_themes:
        raise ConfigError(f"unknown theme {config.theme!r} (known: {', '.join(sorted(app.available_themes))})",
                          where, config.lines.line("opsconsole", "theme"))
    return app


def load_and_create(config_path: str | None, env: str | None, read_only: bool = False, **options: Any) -> OpsConsole:
    cfg = config_module.load(config_path)
    return create(cfg, cfg.environment(env), read_only, **options)
