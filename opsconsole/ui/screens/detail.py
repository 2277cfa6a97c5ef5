"""Everything about one service or queue: every metric, what is wrong, and its recent history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Sparkline, Static

from opsconsole import masking, report, text
from opsconsole.health import Reading, Round, Status
from opsconsole.ui.widgets.header import EnvHeader
from opsconsole.ui.widgets.panel import status_text, trend_series

HISTORY_ROWS = 30


def _child(reading: Reading) -> str:
    """A sub-service's row: its status, latency, its own message and figures (`crit · connect ECONNREFUSED`)."""
    parts = [reading.status.value]
    if reading.latency_ms is not None:
        parts[0] += f" {text.metric('latency_ms', reading.latency_ms)}"
    parts += list(reading.reasons) + report.figures(reading)
    return " · ".join(parts)


def _cell(value: str) -> Text:
    """A table cell that is exactly `value`: never read as markup, control characters and line breaks escaped."""
    return Text(masking.printable(value, one_line=True))


def _flatten(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every metric as (name, value with its unit); a table of figures (a queue's counts) as name.figure rows."""
    rows = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows.extend((f"{key}.{k}", text.metric(f"{key}.{k}", v)) for k, v in value.items())
        else:
            rows.append((key, text.metric(key, value)))
    return rows


class MemberDetail(Screen[None]):
    DEFAULT_CSS = """
    MemberDetail #title { height: 1; padding: 0 1; text-style: bold; }
    MemberDetail #problem { height: auto; padding: 0 1; color: $status-crit; }
    MemberDetail #body { height: 1fr; }
    MemberDetail #metrics { width: 40%; min-width: 44; max-width: 90; height: 1fr; border: round $secondary 60%; }
    MemberDetail #right { width: 1fr; }
    MemberDetail #spark-box { height: 6; border: round $secondary 60%; padding: 0 1; }
    MemberDetail #spark-box Sparkline { height: 1fr; }
    MemberDetail #spark-box Sparkline > .sparkline--max-color { color: $foreground-muted; }
    MemberDetail #spark-box Sparkline > .sparkline--min-color { color: $foreground-muted; }
    MemberDetail #spark-box.-ok Sparkline > .sparkline--max-color { color: $status-ok; }
    MemberDetail #spark-box.-ok Sparkline > .sparkline--min-color { color: $status-ok 40%; }
    MemberDetail #spark-box.-warn Sparkline > .sparkline--max-color { color: $status-warn; }
    MemberDetail #spark-box.-warn Sparkline > .sparkline--min-color { color: $status-warn 40%; }
    MemberDetail #spark-box.-crit Sparkline > .sparkline--max-color { color: $status-crit; }
    MemberDetail #spark-box.-crit Sparkline > .sparkline--min-color { color: $status-crit 40%; }
    MemberDetail #spark-box Sparkline.-single > .sparkline--max-color { color: $foreground-muted; }
    MemberDetail #spark-box Sparkline.-single > .sparkline--min-color { color: $foreground-muted; }
    MemberDetail #history { height: 1fr; border: round $secondary 60%; }
    """
    BINDINGS = [Binding("escape", "app.back", "Back", id="back")]  # twice within a second: home

    def __init__(self, member: str) -> None:
        super().__init__()
        self.member = member
        self._reading: Reading | None = None
        self._series: tuple[str, list[float]] = ("latency", [])
        self._rows: list[tuple[str, str, str]] = []  # (row key, label, value) as the metrics table should show
        self._layout: tuple[Any, ...] | None = None  # column widths and row heights the metrics table was built with
        self._shown: dict[str, str] = {}  # row key -> the value it shows

    def compose(self) -> ComposeResult:
        yield EnvHeader()
        yield Static(self.member, id="title")
        yield Static("", id="problem", markup=False)
        with Horizontal(id="body"):
            yield DataTable(id="metrics", cursor_type="none", show_header=False)
            with Vertical(id="right"):
                with Vertical(id="spark-box"):
                    yield Sparkline([], id="spark")
                yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#metrics", DataTable).border_title = "metrics"
        history = self.query_one("#history", DataTable)
        history.border_title = "recent rounds (newest first)"
        for column in ("time", "status", "latency", "detail"):
            history.add_column(column.upper(), key=column)
        self.app.fill_header(self)  # type: ignore[attr-defined]
        # The first show() ran before layout: nothing had a width yet. Draw again once the screen has one, so the
        # chart holds the member's history from the start, not one full-height column until the next round.
        self.call_after_refresh(self._redraw)

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self._redraw)

    def _redraw(self) -> None:
        if self.is_mounted:
            self._fill_metrics()
            self._draw_trend()

    def show_round(self, rnd: Round, children: Mapping[str, Sequence[Reading]],
                   history: Mapping[str, Sequence[Reading]]) -> None:
        self.show(rnd.reading(self.member), children.get(self.member, ()), list(history.get(self.member, ())))

    def _time(self, reading: Reading) -> str:
        return reading.checked_at.astimezone(getattr(self.app, "tz", None)).strftime("%H:%M:%S")

    def show(self, reading: Reading | None, children: Sequence[Reading], history: Sequence[Reading]) -> None:
        title = self.query_one("#title", Static)
        if reading is None:
            title.update(Text(f"{self.member}: no longer in this environment's config", style="bold"))
            return
        self._reading = reading
        line = Text.assemble(status_text(reading.status), f"  {reading.name} · {reading.kind} · {reading.group}")
        if reading.latency_ms is not None:
            line.append(f" · {text.metric('latency_ms', reading.latency_ms)}")
        title.update(line)
        problem = reading.error or "\n".join(reading.reasons)
        failing = report.failures_text(reading)
        if failing:
            problem += f"  ({failing})"
        self.query_one("#problem", Static).update(masking.printable(problem))

        rows = [("status", reading.status.value), ("checked", self._time(reading))]
        if reading.latency_ms is not None:
            rows.append(("latency_ms", text.metric("latency_ms", reading.latency_ms)))
        rows += _flatten(reading.metrics)
        # A sub-service's row is keyed by its full name (api/db): the server names it, and a sub-service called
        # `status` must not overwrite the member's own status row.
        self._rows = [(key, key, value) for key, value in rows]
        self._rows += [(c.name, c.name.split("/", 1)[1], _child(c)) for c in children]
        self._fill_metrics()

        self._series = trend_series(reading, history)
        self._draw_trend()

        table = self.query_one("#history", DataTable)
        recent = list(history)[-HISTORY_ROWS:][::-1]
        table.clear()  # a bounded log, not live cells: newest first, at most HISTORY_ROWS rows
        for r in recent:
            table.add_row(self._time(r), r.status.value,
                          "-" if r.latency_ms is None else text.metric("latency_ms", r.latency_ms),
                          _cell(report.summary(r)))

    def _fill_metrics(self) -> None:
        """The metrics table, long values wrapped to the column (PostgreSQL's version string, a sub-service's
        message), never cut. Rows are updated in place; the table is rebuilt only when its shape changes: a row
        added or gone, a value needing another line, a new width."""
        table = self.query_one("#metrics", DataTable)
        width = table.content_region.width
        if width <= 0 or not self._rows:
            return  # not laid out yet: on_mount draws again after the first refresh
        console = self.app.console

        def lines(value: str, room: int) -> Text:
            cell = _cell(value)
            if cell_len(cell.plain) <= room:
                return cell
            wrapped = cell.wrap(console, room)
            for line in wrapped:
                line.rstrip()  # the space a line broke at
            return Text("\n").join(wrapped)

        def shape(room: int) -> tuple[int, int, list[tuple[str, Text, Text, int]]]:
            padding = 2 * table.cell_padding * 2
            key_w = max(1, min(max(cell_len(label) for _, label, _ in self._rows), max(12, (room - padding) // 2)))
            value_w = max(8, room - padding - key_w)
            cells = []
            for key, label, value in self._rows:
                label_text, value_text = lines(label, key_w), lines(value, value_w)
                height = max(len(label_text.plain.split("\n")), len(value_text.plain.split("\n")))
                cells.append((key, label_text, value_text, height))
            return key_w, value_w, cells

        key_w, value_w, cells = shape(width)
        if sum(h for *_, h in cells) > table.content_region.height:  # rows overflow: leave room for the scrollbar
            key_w, value_w, cells = shape(width - table.styles.scrollbar_size_vertical)
        layout = (key_w, value_w, tuple((key, height) for key, _, _, height in cells))
        if layout != self._layout:
            self._layout = layout
            self._shown = {}
            table.clear(columns=True)
            table.add_column("metric", key="metric", width=key_w)
            table.add_column("value", key="value", width=value_w)
            for key, label_text, value_text, height in cells:
                table.add_row(label_text, value_text, key=key, height=height)
                self._shown[key] = value_text.plain
            return
        for key, _, value_text, _ in cells:
            if self._shown.get(key) != value_text.plain:  # only what changed
                self._shown[key] = value_text.plain
                table.update_cell(key, "value", value_text)

    def _draw_trend(self) -> None:
        label, series = self._series
        box = self.query_one("#spark-box", Vertical)
        values = [v for v in series if v]
        unit = "latency_ms" if label == "latency" else label
        rounds = f"{label}, last {len(series)} round{'s' if len(series) != 1 else ''}"
        titles = [rounds]
        if values:
            span = f"min {text.metric(unit, min(values))} · max {text.metric(unit, max(values))}"
            titles = [f"{rounds} · {span}", f"{label} · {span}", span, rounds]
        # The longest that fits the border at 80 columns too: "min 0.37 ms · max 0.8 ms" rather than "min …".
        room = box.outer_size.width - 6
        box.border_title = next((t for t in titles if cell_len(t) <= room), titles[-1]) if room > 0 else titles[0]
        status = self._reading.status if self._reading is not None else Status.UNKNOWN
        for each in Status:
            box.set_class(status is each, f"-{each.value}")
        spark = self.query_one("#spark", Sparkline)
        # One round is a dot, not a trend: drawn neutral, as no status colour can be read into a single value.
        spark.set_class(len(series) < 2, "-single")
        columns = box.content_size.width
        if columns <= 0:
            return  # not laid out yet: on_mount draws again after the first refresh
        spark.data = series[-columns:]
        spark.styles.width = len(spark.data)  # one column per round, newest on the right
