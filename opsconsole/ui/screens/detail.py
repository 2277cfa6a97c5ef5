"""Everything about one service or queue: every metric, what is wrong, and its recent history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Sparkline, Static

from opsconsole import masking, report
from opsconsole.health import Reading, Round
from opsconsole.ui.widgets.header import EnvHeader
from opsconsole.ui.widgets.panel import status_text, trend_series

HISTORY_ROWS = 30


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def _child(reading: Reading) -> str:
    """A sub-service's row: its status, latency, its own message and figures (`crit · connect ECONNREFUSED`)."""
    parts = [reading.status.value + ("" if reading.latency_ms is None else f" {reading.latency_ms:.0f} ms")]
    parts += list(reading.reasons) + report.figures(reading)
    return " · ".join(parts)


def _cell(text: str) -> Text:
    """A table cell that is exactly `text`: never read as markup, control characters and line breaks escaped."""
    return Text(masking.printable(text, one_line=True))


def _flatten(metrics: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            rows.extend((f"{key}.{k}", _value(v)) for k, v in value.items())
        else:
            rows.append((key, _value(value)))
    return rows


class MemberDetail(Screen[None]):
    DEFAULT_CSS = """
    MemberDetail #title { height: 1; padding: 0 1; text-style: bold; }
    MemberDetail #problem { height: auto; padding: 0 1; color: $status-crit; }
    MemberDetail #body { height: 1fr; }
    MemberDetail #metrics { width: 44; height: 1fr; border: round $secondary 60%; }
    MemberDetail #right { width: 1fr; }
    MemberDetail #spark-box { height: 6; border: round $secondary 60%; padding: 0 1; }
    MemberDetail #spark-box Sparkline { height: 1fr; }
    MemberDetail #spark-box Sparkline > .sparkline--max-color { color: $accent; }
    MemberDetail #spark-box Sparkline > .sparkline--min-color { color: $primary 50%; }
    MemberDetail #history { height: 1fr; border: round $secondary 60%; }
    """
    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="back")]

    def __init__(self, member: str) -> None:
        super().__init__()
        self.member = member

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
        metrics = self.query_one("#metrics", DataTable)
        metrics.border_title = "metrics"
        metrics.add_column("metric", key="metric")
        metrics.add_column("value", key="value")
        history = self.query_one("#history", DataTable)
        history.border_title = "recent rounds (newest first)"
        for column in ("time", "status", "latency", "detail"):
            history.add_column(column.upper(), key=column)
        self.app.fill_header(self)  # type: ignore[attr-defined]

    def show_round(self, rnd: Round, children: Mapping[str, Sequence[Reading]],
                   history: Mapping[str, Sequence[Reading]]) -> None:
        self.show(rnd.reading(self.member), children.get(self.member, ()), list(history.get(self.member, ())))

    def show(self, reading: Reading | None, children: Sequence[Reading], history: Sequence[Reading]) -> None:
        title = self.query_one("#title", Static)
        if reading is None:
            title.update(Text(f"{self.member}: no longer in this environment's config", style="bold"))
            return
        line = Text.assemble(status_text(reading.status), f"  {reading.name} · {reading.kind} · {reading.group}")
        if reading.latency_ms is not None:
            line.append(f" · {reading.latency_ms:.1f} ms")
        title.update(line)
        problem = reading.error or "\n".join(reading.reasons)
        failing = report.failures_text(reading)
        if failing:
            problem += f"  ({failing})"
        self.query_one("#problem", Static).update(masking.printable(problem))

        rows = [("status", reading.status.value), ("checked", reading.checked_at.astimezone().strftime("%H:%M:%S"))]
        if reading.latency_ms is not None:
            rows.append(("latency_ms", f"{reading.latency_ms:.2f}"))
        rows += _flatten(dict(reading.metrics))
        cells = [(key, key, value) for key, value in rows]
        # A sub-service's row is keyed by its full name (api/db): the server names it, and a sub-service called
        # `status` must not overwrite the member's own status row.
        cells += [(c.name, c.name.split("/", 1)[1], _child(c)) for c in children]
        table = self.query_one("#metrics", DataTable)
        keep = set()
        for key, label, value in cells:
            keep.add(key)
            # Text, not str: a DataTable reads a str cell as markup, and these come from servers (escaped too).
            if key in table.rows:
                table.update_cell(key, "value", _cell(value))
            else:
                table.add_row(_cell(label), _cell(value), key=key)
        for row_key in list(table.rows):
            if row_key.value not in keep:
                table.remove_row(row_key)

        label, series = trend_series(reading, history)
        box = self.query_one("#spark-box", Vertical)
        values = [v for v in series if v]
        box.border_title = f"{label}, last {len(series)} rounds" + (
            f" · min {min(values):.1f} · max {max(values):.1f}" if values else "")
        spark = self.query_one("#spark", Sparkline)
        spark.data = series[-max(1, box.content_size.width):]
        spark.styles.width = len(spark.data)  # one column per round, newest on the right

        table = self.query_one("#history", DataTable)
        recent = list(history)[-HISTORY_ROWS:][::-1]
        table.clear()  # a bounded log, not live cells: newest first, at most HISTORY_ROWS rows
        for r in recent:
            table.add_row(r.checked_at.astimezone().strftime("%H:%M:%S"), r.status.value,
                          "-" if r.latency_ms is None else f"{r.latency_ms:.1f} ms", _cell(report.summary(r)))
