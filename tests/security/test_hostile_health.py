"""A hostile HTTP health endpoint: bodies holding ANSI escapes, Rich/Textual markup (`[bold red]`, `[link=...]`,
`[@click=app.quit]`, an unbalanced `[/]`), OSC 8 links and OSC 52 clipboard writes, C1 controls (U+009B), sub-service
names with line breaks, NaN and infinite latencies, 100 000 levels of nesting, a 20 MB body, bytes that are not
UTF-8, and the same in the reason phrase and the Location header. `check` (text and `--json`) prints nothing raw,
forges no row and stays valid JSON with a sane status; `snapshot` draws the markup as the text it is, in bounded
time; the TUI neither crashes on it nor lets it style a notification or the detail view."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.security.conftest import assert_clean

MARKUP = {"healthy": True, "services": {
    "[bold red]x[/]": {"status": "ok", "latency": 1},
    "[link=https://evil.example]click[/link]": {"status": "down", "error": "[@click=app.quit]quit[/] [/]"},
    "[/]": {"status": "[blink]degraded[/blink]"},
}}
ANSI = {"healthy": True, "services": {
    "db\x1b[2J\x1b[H\x1b]0;owned\x07": {"status": "ok", "latency": 3},
    "cache": {"status": "down", "error": "\x1b[31mred\x1b[0m \x1b[6n \x1bc"},
}}
OSC = {"healthy": True, "services": {
    "osc8\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\": {"status": "ok"},
    "clip": {"status": "down", "message": "\x1b]52;c;dG91Y2ggUFdORUQ=\x07 copied"},
}}
C1 = {"healthy": True, "services": {"csi\x9b2J": {"status": "down", "error": "\x9b31m\x9d0;title\x9c\x85nel"}}}
NEWLINES = {"healthy": True, "services": {
    "db\nok      api/forged  http  1.0 ms": {"status": "down", "error": "first\nok      api/also-forged\r\nthird\t!"},
}}
NUMBERS = ('{"healthy": true, "services": {"nan": {"status": "ok", "latency": NaN}, '
           '"inf": {"status": "ok", "latency": 1e400}, "neg": {"status": "ok", "latency_ms": -Infinity}}}')


@dataclass
class Route:
    body: bytes
    code: int = 200
    content_type: str = "application/json"
    reason: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


ROUTES = {
    "/markup": Route(json.dumps(MARKUP).encode()),
    "/ansi": Route(json.dumps(ANSI).encode()),
    "/osc": Route(json.dumps(OSC).encode()),
    "/c1": Route(json.dumps(C1).encode()),
    "/newlines": Route(json.dumps(NEWLINES).encode()),
    "/numbers": Route(NUMBERS.encode()),
    "/deep-object": Route(b'{"services": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}"),
    "/deep-array": Route(b'{"services": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "/huge": Route(b'{"healthy": true, "pad": "' + b"A" * 20_000_000 + b'"}'),
    "/not-utf8": Route(b'{"healthy": true, "services": {"\xff\xfe\xc0\x9b": {"status": "ok\xff"}}}'),
    "/plain-ansi": Route(b"\x1b[2J\x1b]0;owned\x07OK\x9b", content_type="text/plain"),
    "/reason": Route(b"down", 503, "text/plain", reason="[bold red]boom[/] \x1b[2J\x1b]0;owned\x07"),
    "/location": Route(b"", 302, "text/plain", headers={"Location": "[bold red]/login[/]\x1b[2J?x=\x1b]8;;http://e\x07"}),
    "/many": Route(json.dumps({"healthy": True, "services": {f"s{i}[/]": {"status": "ok" if i else "down"}
                                                              for i in range(20_000)}}).encode()),
}
# path -> the member's status as `check` must judge it (the environment's: the worst of it and its sub-services)
STATUS = {
    "/markup": "crit", "/ansi": "crit", "/osc": "crit", "/c1": "crit", "/newlines": "crit", "/numbers": "ok",
    "/deep-object": "warn", "/deep-array": "warn", "/huge": "warn", "/not-utf8": "unknown", "/plain-ansi": "ok",
    "/reason": "crit", "/location": "warn", "/many": "crit",
}
EXIT = {"ok": 0, "warn": 1, "crit": 2, "unknown": 3}


class HostileServer:
    """A threaded http.server answering ROUTES; `/flip` answers `flip_body`, which a test may change between rounds."""

    def __init__(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                route = Route(server.flip_body) if path == "/flip" else ROUTES.get(path, Route(b"nope", 404, "text/plain"))
                self.send_response(route.code, route.reason)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                for key, value in route.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(route.body)
                except OSError:
                    pass  # the probe reads at most 1 MiB of the 20 MB body and hangs up

        class Quiet(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass

        self.flip_body = json.dumps({"healthy": True, "services": {"[/]": {"status": "ok"}}}).encode()
        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.close()


def config_text(hostile: HostileServer, paths, refresh: float = 5, timeout: float = 2.0) -> str:
    lines = [f"[opsconsole]\nrefresh = {refresh}\ntimeout = {timeout}\n", '[environments.local]\nprovider = "local"\n']
    for path in paths:
        lines.append(f'[environments.local.services.{member(path)}]\nkind = "http"\nurl = "{hostile.base}{path}"\n')
    return "\n".join(lines)


def member(path: str) -> str:
    return path.strip("/").replace("-", "_") or "flip"


def strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_every_route_is_judged():
    assert set(STATUS) == set(ROUTES)


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_check_prints_nothing_raw_forges_no_row_and_judges_sanely(hostile, write_config, run_cli, path):
    cfg = write_config(config_text(hostile, [path]))
    started = time.monotonic()
    text = run_cli("check", "--config", str(cfg), stdin=subprocess.DEVNULL, timeout=30)
    as_json = run_cli("check", "--json", "--config", str(cfg), stdin=subprocess.DEVNULL, timeout=30)
    assert time.monotonic() - started < 20
    for proc in (text, as_json):
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
        assert proc.stderr == ""
        assert_clean(proc.stdout)
        assert proc.returncode == EXIT[STATUS[path]], proc.stdout[-2000:]
    report = strict_json(as_json.stdout)
    assert report["status"] == STATUS[path]
    children = [s for s in report["services"] if s.get("parent") == member(path)]
    # One line per member: the header, the column titles, the member, one per sub-service; nothing forged.
    lines = text.stdout.rstrip("\n").split("\n")
    assert len(lines) == 3 + len(children), text.stdout[-3000:]
    own = next(s for s in report["services"] if s["name"] == member(path))
    assert lines[2].split()[:3] == [own["status"], member(path), "http"], lines[2]
    assert all(line.split()[1].startswith(member(path) + "/") for line in lines[3:])
    for s in report["services"]:
        assert s["status"] in ("ok", "warn", "crit", "unknown")
        assert s["latency_ms"] is None or isinstance(s["latency_ms"], float)


def test_what_the_server_wrote_is_shown_as_visible_text(hostile, write_config, run_cli):
    cfg = write_config(config_text(hostile, ["/markup", "/ansi", "/c1", "/reason", "/location", "/newlines"]))
    out = run_cli("check", "--config", str(cfg), stdin=subprocess.DEVNULL, timeout=30).stdout
    for shown in ("markup/[bold red]x[/]", "markup/[link=https://evil.example]click[/link]",
                  "[@click=app.quit]quit[/] [/]", "status '[blink]degraded[/blink]'",
                  "ansi/db\\x1b[2J\\x1b[H\\x1b]0;owned\\x07", "\\x1b[31mred\\x1b[0m \\x1b[6n \\x1bc",
                  "c1/csi\\x9b2J", "\\x9b31m\\x9d0;title\\x9c\\x85nel",
                  "HTTP 503 [bold red]boom[/] \\x1b[2J\\x1b]0;owned\\x07", "redirect to [bold red]/login[/]\\x1b[2J",
                  "newlines/db\\x0aok      api/forged", "first\\x0aok      api/also-forged\\x0d\\x0athird\\x09!"):
        assert shown in out, (shown, out)


def test_snapshot_draws_markup_as_text_in_bounded_time(hostile, write_config, run_cli, tmp_path):
    paths = ["/markup", "/ansi", "/osc", "/c1", "/reason", "/huge", "/deep-object"]
    cfg = write_config(config_text(hostile, paths, timeout=1.0))
    out = tmp_path / "incident.svg"
    started = time.monotonic()
    proc = run_cli("snapshot", "--config", str(cfg), "--output", str(out), "--size", "200x70",
                   stdin=subprocess.DEVNULL, timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert took < 15, took  # a start (~2 s) and one round: every probe is bounded by the 1 s timeout
    svg = out.read_text()
    assert_clean(svg, "the SVG")
    text = svg.replace("&#160;", " ")
    # The literal markup, drawn as characters; interpreted, it would vanish into styles (or raise on `[/]`).
    assert "[bold red]x[/]" in text and "[/] unknown" in text
    assert "\\x1b[2J" in text  # the escape, as visible text


async def test_the_tui_survives_hostile_bodies_and_never_reads_them_as_markup(hostile):
    from pathlib import Path

    from textual.widgets import DataTable
    from textual.widgets._toast import Toast

    from opsconsole import config
    from opsconsole.ui.app import create
    from opsconsole.ui.screens.detail import MemberDetail
    from tests.ui.test_app import wait_for_rounds, wait_until

    paths = ["/flip", "/markup", "/ansi", "/osc", "/c1", "/newlines", "/reason", "/location", "/huge", "/deep-object",
             "/many"]
    # failures = 0: alert at the first crit check, so the member's change is announced at once
    text = config_text(hostile, paths, refresh=0.3, timeout=1.5) + "\n[thresholds]\nfailures = 0\n"
    cfg = config.parse(text, None, Path.cwd())
    app = create(cfg, cfg.environment("local"))
    try:
        async with app.run_test(size=(200, 60), notifications=True) as pilot:
            await wait_for_rounds(app, pilot, 1)
            # An alert is announced: the names and the error are the server's, `[/]` and `[@click=...]`.
            hostile.flip_body = json.dumps({"healthy": True, "services": {
                "[/]": {"status": "down", "error": "[@click=app.quit]quit[/] [link=https://evil.example]x[/link]"}},
            }).encode()
            await wait_until(pilot, lambda: any("flip: crit" in str(t.render()) for t in app.screen.query(Toast)),
                             what="the alert toast")
            toasts = " ".join(str(t.render()) for t in app.screen.query(Toast))
            assert ("flip: crit, failed 1× in a row: sub-service [/] crit: [@click=app.quit]quit[/] "
                    "[link=https://evil.example]x[/link]") in toasts
            assert_clean(app.export_screenshot(), "the dashboard")
            for name in ("markup", "newlines", "many"):
                app.panels[name].focus()
                await pilot.press("enter")
                assert isinstance(app.screen, MemberDetail)
                # it follows a live round too; a round reads a 20 MB body and 20,000 checks, slow on a loaded machine
                await wait_for_rounds(app, pilot, 1, since=app.rounds_shown, seconds=40)
                assert_clean(app.export_screenshot(), f"the detail view of {name}")
                cells = [str(c) for row in app.screen.query_one("#metrics", DataTable).rows
                         for c in app.screen.query_one("#metrics", DataTable).get_row(row)]
                if name == "markup":
                    assert "[bold red]x[/]" in cells and "status" in cells
                    table = app.screen.query_one("#metrics", DataTable)
                    # the member's own status row: crit, the worst of its sub-services, whatever they are called
                    assert str(table.get_cell("status", "value")) == "crit"
                await pilot.press("escape")
                assert not isinstance(app.screen, MemberDetail)
            assert app.is_running
    finally:
        hostile.flip_body = json.dumps({"healthy": True, "services": {"[/]": {"status": "ok"}}}).encode()
    assert app._exception is None and app.return_code in (None, 0)


async def test_a_sub_service_named_status_cannot_overwrite_the_members_own_row(hostile):
    from pathlib import Path

    from textual.widgets import DataTable

    from opsconsole import config
    from opsconsole.ui.app import create
    from tests.ui.test_app import wait_for_rounds

    hostile.flip_body = json.dumps({"healthy": False, "services": {"status": {"status": "ok"},
                                                                   "latency_ms": {"status": "ok"}}}).encode()
    try:
        cfg = config.parse(config_text(hostile, ["/flip"], refresh=0.3), None, Path.cwd())
        app = create(cfg, cfg.environment("local"))
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_for_rounds(app, pilot, 1)
            await pilot.press("enter")
            await wait_for_rounds(app, pilot, 1, since=app.rounds_shown)
            table = app.screen.query_one("#metrics", DataTable)
            assert str(table.get_cell("status", "value")) == "crit"  # healthy: false
            assert str(table.get_cell("flip/status", "value")) == "ok"
    finally:
        hostile.flip_body = json.dumps({"healthy": True, "services": {"[/]": {"status": "ok"}}}).encode()
