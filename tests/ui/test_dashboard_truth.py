"""The dashboard and the details tell the truth at 80x24 (issue 18): the header names the members that are not ok,
panels keep them in view, the details screen draws its history at once with metrics in their units, a saved
snapshot says when and where in time it was taken, and one round is not drawn as a warning.

Rounds are made here and replayed through the app (no servers): each test says exactly what the probes saw."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from textual.color import Color
from textual.widgets import DataTable, Sparkline, Static

from opsconsole import config, text
from opsconsole.health import Reading, Round, Status
from opsconsole.ui.app import OpsConsole, create
from opsconsole.ui.screens.detail import MemberDetail
from opsconsole.ui.widgets.header import EnvHeader, group_text
from tests.ui.replay import Replay

START = datetime(2026, 12, 5, 10, 30, 51, tzinfo=timezone.utc)
PG_VERSION = "15.20 (Debian 15.20-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14+deb12u1) 12.2.0, 64-bit"


def reading(name: str, status: str = "ok", at: int = 0, latency: float | None = 2.0, kind: str = "http",
            **metrics: Any) -> Reading:
    return Reading(name=name, kind=kind, group="service", status=Status(status), latency_ms=latency,
                   metrics=metrics, error="connection refused" if status == "crit" else None,
                   reasons=("latency_ms 250 above warn 200",) if status == "warn" else (),
                   checked_at=START + timedelta(seconds=5 * at), consecutive_failures=1 if status == "crit" else 0)


def a_round(at: int, **statuses: str) -> Round:
    """A round over the members named, in this order (config order), each with its status."""
    return Round("local", START + timedelta(seconds=5 * at), 0.026,
                 tuple(reading(name, status, at, latency=2.0 + at % 3) for name, status in statuses.items()))


def app_for(names: list[str], rounds: list[Round], **options: Any) -> OpsConsole:
    lines = ["[opsconsole]", "refresh = 60"]
    for name in names:  # port 9 (discard): nothing is probed, the rounds are replayed
        lines += [f"[environments.local.services.{name}]", 'kind = "http"', 'url = "http://127.0.0.1:9/health"']
    cfg = config.parse("\n".join(lines) + "\n", None, Path.cwd())
    return create(cfg, cfg.environment("local"), monitor_factory=lambda env, timeout: Replay(rounds),
                  clock=lambda: 0.0, tz=options.pop("tz", timezone.utc), **options)


async def wait_until(pilot, check, seconds: float = 5.0, what: str = "condition") -> None:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if check():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


async def next_round(app: OpsConsole, pilot) -> None:
    """The first round comes by itself; each call after that shows the next recorded one."""
    shown = app.rounds_shown
    if shown:
        app.action_refresh_now()
    await wait_until(pilot, lambda: app.rounds_shown > shown, what="a round")
    await pilot.pause(0.05)


def rendered(widget: Static) -> str:
    return str(widget.render())


def header_line(app: OpsConsole) -> str:
    """The header as it reads on screen, part by part (what is not displayed is not there)."""
    header = app.screen.query_one(EnvHeader)
    return " | ".join(rendered(s) for s in header.query(Static) if s.display and rendered(s))


def visual_order(app: OpsConsole) -> list[str]:
    return [panel.member for panel in app.query_one("#panels").children]


# -- 1. the header names who is not ok -----------------------------------------------------------------------------

async def test_header_names_the_crit_and_warn_members_in_80_columns():
    names = ["api", "cache", "db", "orders", "search", "nest"]  # at 80x24, orders and nest are below the fold
    rounds = [a_round(0, api="ok", cache="warn", db="ok", orders="crit", search="ok", nest="crit")]
    app = app_for(names, rounds)
    async with app.run_test(size=(80, 24)) as pilot:
        await next_round(app, pilot)
        status = app.query_one("#env-status", Static)
        assert rendered(status) == "CRIT: orders, nest" and status.has_class("crit")
        assert rendered(app.query_one("#more-warn", Static)) == "WARN: cache"
        assert app.query_one("#more-warn").display
        # Everything fits the 80 columns, the clock included (it gave up its least useful parts first).
        header = app.query_one(EnvHeader)
        assert sum(s.outer_size.width for s in header.query(Static) if s.display) <= 80
        clock = rendered(app.query_one("#round-info", Static))
        assert clock.startswith("checked 10:30:51")


async def test_many_members_down_are_counted_to_fit_and_the_worst_come_first():
    names = [f"worker-{i}" for i in range(8)] + ["cache", "queue-broker"]
    statuses = {n: "crit" for n in names[:8]} | {"cache": "warn", "queue-broker": "unknown"}
    app = app_for(names, [a_round(0, **statuses)])
    async with app.run_test(size=(80, 24)) as pilot:
        await next_round(app, pilot)
        status = rendered(app.query_one("#env-status", Static))
        assert status.startswith("CRIT: worker-0, ") and status.endswith(" more")
        shown = status.removeprefix("CRIT: ").split(" +")[0].split(", ")
        assert status.endswith(f" +{8 - len(shown)} more")  # every crit member named or counted
        header = app.query_one(EnvHeader)
        assert sum(s.outer_size.width for s in header.query(Static) if s.display) <= 80
        # no room for the milder groups after eight crit names: they are left out, not squeezed in half
        assert "WARN" not in header_line(app)
        await pilot.resize_terminal(200, 50)
        await pilot.pause(0.1)
        line = header_line(app)
        assert "CRIT: " + ", ".join(names[:8]) in line
        assert "UNKNOWN: queue-broker" in line and "WARN: cache" in line  # worst first: unknown ranks above warn


def test_group_text_shortens_from_the_end_and_never_hides_the_word():
    crit = Status.CRIT
    assert group_text(crit, ["orders", "nest"], 40) == "CRIT: orders, nest"
    assert group_text(crit, ["orders", "nest", "billing"], 24) == "CRIT: orders +2 more"
    assert group_text(crit, ["a-very-long-member-name-indeed"], 20) == "CRIT: a-very-long-m…"
    assert group_text(crit, ["a-very-long-member-name-indeed", "b"], 12) == "CRIT ×2"
    assert group_text(crit, ["x" * 30], 3) is None
    assert group_text(crit, ["x" * 30], 3, required=True) == "CRIT"


async def test_other_screens_carry_the_names_too():
    app = app_for(["api", "db"], [a_round(0, api="crit", db="ok")])
    async with app.run_test(size=(80, 24)) as pilot:
        await next_round(app, pilot)
        app.open_detail("db")
        await pilot.pause(0.1)
        assert isinstance(app.screen, MemberDetail)
        assert rendered(app.screen.query_one("#env-status", Static)) == "CRIT: api"


# -- 2. panels: crit first, then warn, then the rest ---------------------------------------------------------------

async def test_panels_order_by_status_only_when_a_status_changes_and_focus_follows_its_member():
    names = ["a", "b", "c", "d", "e", "f"]
    rounds = [
        a_round(0, a="ok", b="ok", c="ok", d="ok", e="ok", f="ok"),
        a_round(1, a="ok", b="ok", c="warn", d="ok", e="crit", f="ok"),
        a_round(2, a="ok", b="ok", c="warn", d="ok", e="crit", f="ok"),  # the same statuses, other latencies
        a_round(3, a="ok", b="ok", c="warn", d="ok", e="ok", f="crit"),
    ]
    app = app_for(names, rounds)
    async with app.run_test(size=(80, 24)) as pilot:
        await next_round(app, pilot)
        assert visual_order(app) == names
        await pilot.press("right")  # the user chooses b
        assert app.focused is app.panels["b"]
        await next_round(app, pilot)
        assert visual_order(app) == ["e", "c", "a", "b", "d", "f"]
        assert app.focused is app.panels["b"]  # focus stays with the member, not the place
        moved = []
        grid = app.query_one("#panels")
        original = grid.move_child
        grid.move_child = lambda *a, **kw: (moved.append(a), original(*a, **kw))  # type: ignore[method-assign]
        await next_round(app, pilot)
        assert moved == [] and visual_order(app) == ["e", "c", "a", "b", "d", "f"]  # no jumping every round
        await next_round(app, pilot)
        assert visual_order(app) == ["f", "c", "a", "b", "d", "e"]
        # Arrow keys walk the panels as they are shown: b is fourth, so right goes to d.
        await pilot.press("right")
        assert app.focused is app.panels["d"]


async def test_the_first_round_puts_the_focus_on_the_first_member_in_trouble():
    app = app_for(["a", "b", "c"], [a_round(0, a="ok", b="ok", c="crit")])
    async with app.run_test(size=(80, 24)) as pilot:
        await next_round(app, pilot)
        assert visual_order(app) == ["c", "a", "b"]
        assert app.focused is app.panels["c"]  # the app placed the focus; Enter opens the crit member
        await pilot.press("enter")
        assert isinstance(app.screen, MemberDetail) and app.screen.member == "c"


# -- 3. the details screen -----------------------------------------------------------------------------------------

def db_rounds(count: int) -> list[Round]:
    out = []
    for i in range(count):
        db = reading("db", "ok", i, latency=1.0 + i, kind="postgres", connections=7, max_connections=100,
                     connections_pct=7.0, longest_query_s=272.0, size_bytes=7_759_663, connect_ms=4.86,
                     version=PG_VERSION, role="primary")
        cache = reading("cache", "ok", i, latency=0.4, kind="redis", used_memory=1_153_456, maxmemory=0,
                        memory_pct=81.25, ops_per_sec=25, evicted_keys=0)
        out.append(Round("local", db.checked_at, 0.02, (db, cache)))
    return out


@pytest.mark.parametrize("size", [(80, 24), (200, 50)], ids=["80x24", "200x50"])
async def test_details_draw_the_history_at_once_with_units_and_wrapped_values(size):
    app = app_for(["db", "cache"], db_rounds(12))
    async with app.run_test(size=size) as pilot:
        for _ in range(12):
            await next_round(app, pilot)
        shown = app.rounds_shown
        app.open_detail("db")
        await pilot.pause(0.2)
        assert app.rounds_shown == shown  # no round since: what is drawn came from the history
        spark = app.screen.query_one("#spark", Sparkline)
        assert list(spark.data or ()) == [1.0 + i for i in range(12)]
        assert spark.size.width == 12  # one column per round, not one full-height column
        box = app.screen.query_one("#spark-box")
        title = str(box.border_title)
        assert "min 1 ms · max 12 ms" in title and cell_len(title) <= box.outer_size.width - 4  # fits, never "min …"
        assert ("last 12 rounds" in title) == (size[0] == 200)  # the round count when there is room for it

        table = app.screen.query_one("#metrics", DataTable)
        value = {row.value: str(table.get_cell(row, "value")) for row in table.rows}
        assert value["size_bytes"] == "7.4 MiB"
        assert value["longest_query_s"] == "4 min 32 s"
        assert value["connections_pct"] == "7%"
        assert value["connect_ms"] == "4.86 ms"
        assert value["latency_ms"] == "12 ms"
        # The version wraps over as many lines as it needs in the value column; not a character is lost.
        assert value["version"].replace("\n", " ") == PG_VERSION  # broken at spaces, every character kept
        column = table.columns[next(k for k in table.columns if k.value == "value")].width
        assert all(cell_len(line) <= column for line in value["version"].split("\n"))
        assert table.get_row_height("version") == len(value["version"].split("\n")) > 1
        # the two columns fill the table's width, no more: nothing scrolls off to the right
        key_column = table.columns[next(k for k in table.columns if k.value == "metric")].width
        assert key_column + column + 4 * table.cell_padding <= table.content_region.width

        await pilot.press("escape")
        app.open_detail("cache")
        await pilot.pause(0.2)
        table = app.screen.query_one("#metrics", DataTable)
        value = {row.value: str(table.get_cell(row, "value")) for row in table.rows}
        assert value["used_memory"] == "1.1 MiB" and value["maxmemory"] == "no limit"
        assert value["memory_pct"] == "81.2%" and value["ops_per_sec"] == "25/s" and value["evicted_keys"] == "0"


def test_one_formatter_for_metric_units():
    assert text.metric("size_bytes", 7_759_663) == "7.4 MiB"
    assert text.metric("used_memory", 512) == "512 B"
    assert text.metric("maxmemory", 2 * 1024**3) == "2.0 GiB"
    assert text.metric("disk.size", 300 * 1024**3) == "300 GiB"
    assert text.metric("latency_ms", 0.37) == "0.37 ms" and text.metric("latency_ms", 129.4) == "129 ms"
    assert text.metric("replication_lag_s", 1.25) == "1.2 s" and text.metric("eta_s", 7260) == "121 min"
    assert text.metric("hit_ratio", 0.953) == "95.3%" and text.metric("memory_pct", 100.0) == "100%"
    assert text.metric("publish_rate", 1.5) == "1.5/s"
    assert text.metric("counts.waiting", 1200) == "1200" and text.metric("paused", False) == "no"
    assert text.metric("version", "7.2.4") == "7.2.4" and text.metric("eta_s", None) == "-"


# -- 4. a saved snapshot says when, in which zone, and nothing about the next round -------------------------------

@pytest.mark.parametrize(("tz", "expected"), [
    (timezone.utc, "checked 2026-12-05 10:30:51 UTC"),
    (timezone(timedelta(hours=5, minutes=30)), "checked 2026-12-05 16:00:51 UTC+05:30"),
])
async def test_a_saved_snapshot_carries_the_date_and_zone_and_no_countdown(tmp_path, tz, expected):
    out = tmp_path / "incident.svg"
    app = app_for(["api", "db"], [a_round(0, api="crit", db="ok")], tz=tz, snapshot=out)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, out.exists, what="the snapshot")
    svg = out.read_text().replace("&#160;", " ")
    assert expected in svg and "CRIT: api" in svg
    assert "next in" not in svg and "probing" not in svg


async def test_the_live_header_keeps_its_countdown():
    app = app_for(["api"], [a_round(0, api="ok")])
    async with app.run_test(size=(80, 24)) as pilot:
        await next_round(app, pilot)
        assert "next in 60s" in rendered(app.query_one("#round-info", Static))


# -- 5. one round is not a warning ---------------------------------------------------------------------------------

async def test_a_single_round_sparkline_is_neutral_then_takes_the_status_colour():
    app = app_for(["api"], [a_round(0, api="ok"), a_round(1, api="ok")])
    async with app.run_test(size=(80, 24)) as pilot:
        await next_round(app, pilot)
        spark = app.panels["api"].query_one("#spark", Sparkline)
        variables = app.theme_variables

        def colour(part: str) -> Color:
            return spark.get_component_styles(f"sparkline--{part}-color").color

        muted = Color.parse(app.get_css_variables()["foreground-muted"])
        assert spark.has_class("-single") and colour("max") == muted and colour("min") == muted
        assert colour("max") != Color.parse(variables["status-warn"]) and colour("max") != Color.parse(variables["accent"])
        await next_round(app, pilot)
        assert not spark.has_class("-single")
        assert colour("max") == Color.parse(variables["status-ok"])
