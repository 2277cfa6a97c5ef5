"""One service or queue on the dashboard: status colour, key figures, a sparkline, what is wrong."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Sparkline, Static

from opsconsole import masking, report
from opsconsole.health import SUB_SERVICE, Reading, Status

STATUS_MARK = {Status.OK: "●", Status.WARN: "▲", Status.CRIT: "✖", Status.UNKNOWN: "?"}
ALERT_MARK = "⚑"
SUB_LINES = 8  # sub-services listed on a panel; the detail view lists them all


def trend_series(reading: Reading, history: Sequence[Reading]) -> tuple[str, list[float]]:
    """What the sparkline draws: depth for a queue, latency otherwise (a failed probe draws 0)."""
    if reading.group == "queue":
        return "depth", [float(r.metrics.get("depth") or 0) for r in history]
    return "latency", [float(r.latency_ms or 0) for r in history]


def status_text(status: Status) -> Text:
    return Text(f"{STATUS_MARK[status]} {status.value.upper()}", style="bold")


class MemberPanel(Vertical, can_focus=True):
    """A panel keyed by member name; updated in place every round, never rebuilt."""

    DEFAULT_CSS = """
    MemberPanel {
        height: auto;
        min-height: 7;
        border: round $status-unknown;
        border-title-color: $foreground;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
        padding: 0 1;
    }
    MemberPanel:focus { background: $boost; border: heavy $status-unknown; }
    MemberPanel.-ok { border: round $status-ok; }
    MemberPanel.-warn { border: round $status-warn; }
    MemberPanel.-crit { border: heavy $status-crit; }
    MemberPanel.-ok:focus { border: heavy $status-ok; }
    MemberPanel.-warn:focus { border: heavy $status-warn; }
    MemberPanel.-crit:focus { border: double $status-crit; }
    MemberPanel.-alert { border: thick $status-crit; }
    MemberPanel.-alert:focus { border: double $status-crit; }
    MemberPanel #state { height: 1; text-style: bold; color: $status-unknown; }
    MemberPanel.-ok #state { color: $status-ok; }
    MemberPanel.-warn #state { color: $status-warn; }
    MemberPanel.-crit #state { color: $status-crit; }
    MemberPanel #figures { height: auto; color: $foreground; }
    MemberPanel #trend { height: 1; }
    MemberPanel #trend-label { width: 8; color: $text-muted; }
    /* The trend in the member's status colour (amber means WARN, nowhere else); neutral until it is a series. */
    MemberPanel Sparkline > .sparkline--max-color { color: $foreground-muted; }
    MemberPanel Sparkline > .sparkline--min-color { color: $foreground-muted; }
    MemberPanel.-ok Sparkline > .sparkline--max-color { color: $status-ok; }
    MemberPanel.-ok Sparkline > .sparkline--min-color { color: $status-ok 40%; }
    MemberPanel.-warn Sparkline > .sparkline--max-color { color: $status-warn; }
    MemberPanel.-warn Sparkline > .sparkline--min-color { color: $status-warn 40%; }
    MemberPanel.-crit Sparkline > .sparkline--max-color { color: $status-crit; }
    MemberPanel.-crit Sparkline > .sparkline--min-color { color: $status-crit 40%; }
    MemberPanel Sparkline.-single > .sparkline--max-color { color: $foreground-muted; }
    MemberPanel Sparkline.-single > .sparkline--min-color { color: $foreground-muted; }
    MemberPanel #problem { height: auto; }
    MemberPanel.-crit #problem { color: $status-crit; text-style: bold; }
    MemberPanel.-warn #problem { color: $status-warn; }
    MemberPanel.-unknown #problem { color: $status-unknown; }
    """

    BINDINGS = [Binding("enter", "details", "Details", id="details")]

    class Selected(Message):
        """Enter or a click on a panel: open its detail view."""

        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, name: str, kind: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.member = name
        self.kind = kind
        self.border_title = name
        self.border_subtitle = kind
        self._shown: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static("… not probed yet", id="state", markup=False)
        yield Static("", id="figures", markup=False)
        with Horizontal(id="trend"):
            yield Static("", id="trend-label", markup=False)
            yield Sparkline([], id="spark")
        yield Static("", id="problem", markup=False)

    def _set(self, selector: str, text: str | Text, layout: bool) -> None:
        """Update one line only when it changed; a one-line field never asks for a layout."""
        if isinstance(text, str):
            text = masking.printable(text)  # figures and errors from servers: no control character reaches the screen
        key = str(text) if not isinstance(text, Text) else text.markup
        if self._shown.get(selector) == key:
            return
        self._shown[selector] = key
        widget = self.query_one(selector, Static)
        widget.update(text, layout=layout)
        if layout:
            widget.display = bool(key)

    def show(self, reading: Reading, children: Sequence[Reading], history: Sequence[Reading]) -> None:
        """Called every round for every panel: touch only what changed, so 50 panels stay cheap."""
        # The member's status is already the worst of its own and its sub-services' (health.worst_of): the word
        # and the colour are one status, so a 200 from an API whose search is down reads CRIT, in red.
        status = reading.status
        if not self.has_class(f"-{status.value}"):
            for each in Status:
                self.set_class(status is each, f"-{each.value}")
        self.set_class(reading.alerting, "-alert")
        state = status_text(status)
        if reading.latency_ms is not None:
            state.append(f"  {reading.latency_ms:.1f} ms", style="not bold")
        if reading.alerting:
            state.append(f"  {ALERT_MARK} ALERT", style="bold reverse")
        self._set("#state", state, layout=False)

        figures = Text(masking.printable(" · ".join(report.figures(reading))) if not reading.error else "")
        colours = self._status_colours()
        # The failing ones first, then as many as fit: a body of 50 checks must not make a panel 50 lines tall.
        shown = sorted(children, key=lambda c: -c.status.rank)[:SUB_LINES] if len(children) > SUB_LINES else children
        for child in shown:
            sub = child.name.split("/", 1)[1]
            if child.latency_ms is not None:
                extra = f" {child.latency_ms:.0f} ms"
            elif child.status is not Status.OK and child.reasons:
                extra = f": {child.reasons[0]}"  # what is wrong with it, on its own line
            else:  # one figure fits a panel line; the detail view has them all
                extra = next((f" · {f}" for f in report.figures(child)), "")
            line = Text(f"{STATUS_MARK[child.status]} ", style=colours.get(child.status, ""))
            line.append(masking.printable(f"{sub} {child.status.value}{extra}"))
            if figures:
                figures.append("\n")
            figures.append_text(line)
        if len(children) > len(shown):
            def failing(readings: Sequence[Reading]) -> int:
                return sum(c.status is not Status.OK for c in readings)

            bad = failing(children) - failing(shown)
            figures.append(f"\n+ {len(children) - len(shown)} more sub-services"
                           + (f", {bad} not ok" if bad else ", all ok"))
        self._set("#figures", figures, layout=True)

        label, series = trend_series(reading, history)
        self._set("#trend-label", label, layout=False)
        # One cell per round, newest on the right: a sparkline stretched over a few rounds would lie about time.
        room = max(1, self.content_size.width - 8)
        spark = self.query_one("#spark", Sparkline)
        spark.set_class(len(series) < 2, "-single")  # one round is a dot, not a trend: no status to read into it
        spark.data = series[-room:]
        if spark.styles.width is None or spark.styles.width.value != len(spark.data):
            spark.styles.width = len(spark.data)  # grows until the history fills the panel, then stays

        # The failing sub-services are on their own lines above, with their messages: not said twice here.
        problem = reading.error or "\n".join(r for r in reading.reasons
                                             if not (children and r.startswith(SUB_SERVICE)))
        failing = report.failures_text(reading)
        if failing:
            problem = "\n".join(p for p in (problem, failing) if p)
        self._set("#problem", problem, layout=True)

    def _status_colours(self) -> dict[Status, str]:
        """The theme's status colours, for the sub-service bullets (a Text style cannot name a CSS variable)."""
        variables = self.app.theme_variables
        return {status: variables[f"status-{status.value}"] for status in Status
                if f"status-{status.value}" in variables}

    def on_click(self) -> None:
        self.post_message(self.Selected(self.member))

    def action_details(self) -> None:
        self.post_message(self.Selected(self.member))
