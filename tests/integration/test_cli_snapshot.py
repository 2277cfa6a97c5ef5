"""`opsconsole snapshot`: the real dashboard rendered once to SVG, as a real process."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_snapshot_renders_the_dashboard_after_the_first_round(run_cli, write_config, tmp_path, pg_running, redis_running):
    cfg = write_config(f"""
        [environments.production]
        protection = "typed"
        [environments.production.services.db]
        url = "{pg_running.url()}"
        [environments.production.services.cache]
        url = "{redis_running.url}"
    """)
    out = tmp_path / "incident.svg"
    r = run_cli("--config", str(cfg), "snapshot", "--env", "production", "--output", str(out), "--size", "100x30")
    assert r.returncode == 0, r.stderr
    svg = out.read_text()
    assert svg.startswith("<svg")
    text = svg.replace("&#160;", " ")
    for expected in ("PRODUCTION", "db", "cache", "conns", "clients", "checked"):
        assert expected in text
    assert "not probed yet" not in text  # drawn after the first round, not before
    assert pg_running.password not in svg


def test_snapshot_usage_errors_are_one_line(run_cli, write_config, tmp_path):
    cfg = write_config('[opsconsole]\ntheme = "nope"\n[environments.local]\n')
    r = run_cli("--config", str(cfg), "snapshot", "--output", str(tmp_path / "x.svg"))
    assert r.returncode == 2 and r.stderr.strip() == f"{cfg}:2: unknown theme 'nope' (known: " + r.stderr.split("(known: ")[1].strip()
    assert "Traceback" not in r.stderr
    r = run_cli("--config", str(cfg), "snapshot", "--output", str(tmp_path / "x.png"))
    assert r.returncode == 3 and "must name an .svg file" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_cli("snapshot", "--output", "x.svg", "--size", "huge")
    assert r.returncode == 3 and "COLUMNSxROWS" in r.stderr
