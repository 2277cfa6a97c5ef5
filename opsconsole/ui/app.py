"""The Textual app. Probing happens in the core's Monitor; this only shows rounds as they arrive."""

from __future__ import annotations

import time

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Static

from opsconsole import masking, report
from opsconsole.config import Config, Environment
from opsconsole.health import Monitor, Round, Status

STATUS_STYLE = {
    Status.OK: "bold green",
    Status.WARN: "bold yellow",
    Status.CRIT: "bold white on red",
    Status.UNKNOWN: "bold magenta",
}

COLUMNS = ("status", "name", "kind", "latency", "detail")


class OpsConsole(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "opsconsole"
    BINDINGS = [
        Binding("r", "refresh_now", "Refresh", id="refresh"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, config: Config, environment: Environment, read_only: bool = False) -> None:
        super().__init__()
        self.config = config
        self.environment = environment
        self.read_only = read_only or environment.read_only
        self.monitor: Monitor | None = None
        self.last_round: Round | None = None
        self._next_at: float | None = None
        self._round_timer = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="header"):
            yield Static(self._badge_text(), id="badge")
            yield Static("", id="env-status")
            yield Static("waiting for the first probe round…", id="round-info")
        yield DataTable(id="members", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def _badge_text(self) -> str:
        env = self.environment
        text = f" {env.name.upper()} " if env.is_production else f" {env.name} "
        if self.read_only:
            text += "(read-only) "
        return text

    def on_mount(self) -> None:
        badge = self.query_one("#badge", Static)
        badge.add_class("production" if self.environment.is_production else "nonproduction")
        self.sub_title = f"{self.environment.name} · {self.environment.provider} · {self.config.source}"
        table = self.query_one("#members", DataTable)
        for column in COLUMNS:
            table.add_column(column.upper(), key=column)
        for target in self.environment.targets:
            table.add_row("…", target.name, target.kind or "", "", "not probed yet", key=target.name)
        if not self.environment.targets:
            self.query_one("#round-info", Static).update("nothing to probe: add services or queues with a kind and url")
            return
        self.monitor = Monitor(self.environment, self.config.timeout)
        self.set_interval(1.0, self._tick)
        self._start_round()

    async def on_unmount(self) -> None:
        if self.monitor is not None:
            await self.monitor.aclose()

    def _start_round(self) -> None:
        if self.monitor is None or self.monitor.running:
            return  # rounds never overlap
        if self._round_timer is not None:
            self._round_timer.stop()
            self._round_timer = None
        self._next_at = None
        self.run_worker(self._run_round(), group="probe", exit_on_error=False)

    async def _run_round(self) -> None:
        assert self.monitor is not None
        try:
            rnd = await self.monitor.round()
            self._show(rnd)
        finally:
            # The next round is armed only when this one has finished.
            self._next_at = time.monotonic() + self.config.refresh
            self._round_timer = self.set_timer(self.config.refresh, self._start_round)
            self._tick()

    def _show(self, rnd: Round) -> None:
        previous = self.last_round
        self.last_round = rnd
        table = self.query_one("#members", DataTable)
        seen = set()
        for r in rnd.readings:
            seen.add(r.name)
            name = f"  └ {r.name.split('/', 1)[1]}" if r.parent else r.name
            cells = {
                "status": f"[{STATUS_STYLE[r.status]}] {r.status.value.upper()} [/]",
                "name": name,
                "kind": r.kind,
                "latency": "-" if r.latency_ms is None else f"{r.latency_ms:.1f} ms",
                "detail": masking.mask(report.summary(r))
                + (f"  (failed {r.consecutive_failures}× in a row)" if r.consecutive_failures > 1 else ""),
            }
            if r.name in table.rows:
                for column, value in cells.items():
                    table.update_cell(r.name, column, value, update_width=True)
            else:
                table.add_row(*(cells[c] for c in COLUMNS), key=r.name)
            if previous is not None:
                before = previous.reading(r.name)
                if before is not None and before.status is not r.status:
                    severity = {"crit": "error", "warn": "warning"}.get(r.status.value, "information")
                    self.notify(f"{r.name}: {before.status.value} → {r.status.value}", severity=severity)
        for key in list(table.rows):
            if key.value not in seen:
                table.remove_row(key)
        status = self.query_one("#env-status", Static)
        status.update(f"[{STATUS_STYLE[rnd.status]}] {rnd.status.value.upper()} [/]")

    def _tick(self) -> None:
        info = self.query_one("#round-info", Static)
        if self.last_round is None:
            return
        rnd = self.last_round
        when = rnd.started_at.astimezone().strftime("%H:%M:%S")
        if self._next_at is None:
            nxt = "probing…"
        else:
            nxt = f"next in {max(0, self._next_at - time.monotonic()):.0f}s"
        info.update(f"checked {when} · round {rnd.duration_s * 1000:.0f} ms · {nxt}")

    def action_refresh_now(self) -> None:
        if self.monitor is not None and self.monitor.running:
            self.notify("a probe round is already running")
            return
        self._start_round()
