"""The one subprocess runner, with real processes: streaming, masking, tails, timeouts, process groups."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from opsconsole import masking, runner
from opsconsole.runner import Command


def bash(script: str, **kw) -> Command:
    return Command(("bash", "-c", script), **kw)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_streams_stdout_and_stderr_line_by_line_as_they_come():
    seen: list[tuple[float, str]] = []
    t0 = time.monotonic()
    result = runner.run(bash("echo first; sleep 0.4; echo second >&2; printf 'no newline'"), None,
                        lambda line: seen.append((time.monotonic() - t0, line)))
    assert [line for _, line in seen] == ["first", "second", "no newline"]
    assert seen[0][0] < 0.3 <= seen[1][0]  # the first line arrived before the command went on
    assert result.ok and result.exit_status == 0 and result.output_tail == "first\nsecond\nno newline"


def test_output_is_masked_before_the_callback_and_the_tail():
    masking.register("runner-s3cret-value")
    lines: list[str] = []
    result = runner.run(Command(("bash", "-c", 'echo "got $X"; cat'), stdin="runner-s3cret-value\n",
                                env={"X": "runner-s3cret-value"}), None, lines.append)
    assert lines == ["got ***", "***"]
    assert "runner-s3cret-value" not in result.output_tail


def test_a_secret_in_argv_is_refused():
    masking.register("argv-s3cret-value")
    with pytest.raises(ValueError, match="secret in argv"):
        Command(("curl", "-H", "Authorization: argv-s3cret-value"))
    with pytest.raises(ValueError):
        Command(("psql", "postgresql://u:any-password@h/db"))


def test_the_tail_keeps_the_last_4_kb():
    result = runner.run(bash("for i in $(seq 1 3000); do echo line-$i; done"), None, lambda line: None)
    assert len(result.output_tail) <= runner.TAIL_CHARS
    assert result.output_tail.endswith("line-2999\nline-3000")
    assert "line-1\n" not in result.output_tail


def test_exit_status_and_command_not_found_read_clearly():
    failed = runner.run(bash("exit 7"), None, lambda line: None)
    assert (failed.exit_status, failed.ok, failed.describe()) == (7, False, "exit 7")
    missing = runner.run(Command(("opsconsole-no-such-program",)), None, lambda line: None)
    assert missing.exit_status == 127 and missing.error == "command not found: opsconsole-no-such-program"
    in_shell = runner.run(bash("opsconsole-no-such-program"), None, lambda line: None)
    assert in_shell.exit_status == 127 and in_shell.error == "command not found (exit 127)"
    assert "command not found" in in_shell.output_tail


def test_a_timeout_kills_the_whole_process_group(tmp_path):
    pids = tmp_path / "pids"
    t0 = time.monotonic()
    result = runner.run(bash(f"sleep 30 & echo $! >> {pids}; (sleep 30; echo never) & echo $! >> {pids}; wait"),
                        0.5, lambda line: None, grace_s=1.0)
    assert result.timed_out and result.error == "timed out after 0.5 s" and not result.ok
    assert time.monotonic() - t0 < 3
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2
    assert not any(alive(pid) for pid in children)


def test_sigterm_is_followed_by_sigkill_after_the_grace_period(tmp_path):
    t0 = time.monotonic()
    result = runner.run(bash("trap '' TERM; sleep 30 & wait; sleep 30"), 0.3, lambda line: None, grace_s=0.5)
    elapsed = time.monotonic() - t0
    assert result.timed_out and 0.75 <= elapsed < 3


def test_cancel_stops_the_tree_and_raises(tmp_path):
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    pid_file = tmp_path / "pid"
    with pytest.raises(runner.Aborted):
        runner.run(bash(f"sleep 30 & echo $! > {pid_file}; wait"), None, lambda line: None, cancel=cancel, grace_s=1)
    assert not alive(int(pid_file.read_text()))


def test_a_background_child_holding_the_pipe_does_not_hang_the_run(tmp_path):
    t0 = time.monotonic()
    result = runner.run(bash(f"(sleep 5; touch {tmp_path / 'late'}) & echo $! > {tmp_path / 'pid'}; echo done"),
                        None, lambda line: None)
    assert result.ok and result.output_tail == "done" and time.monotonic() - t0 < 2
    os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)


def test_cwd_and_env_reach_the_command(tmp_path):
    lines: list[str] = []
    result = runner.run(Command(("bash", "-c", 'pwd; echo "$OPS_TEST_VALUE"'), cwd=tmp_path,
                                env={"OPS_TEST_VALUE": "from-env"}), None, lines.append)
    assert result.ok and lines == [str(tmp_path), "from-env"]
