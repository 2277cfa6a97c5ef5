"""The one place opsconsole starts a subprocess.

Every command runs in a process group of its own, so a timeout or an abort ends the whole tree
(SIGTERM, then SIGKILL after a grace period). A guard process outlives us to do the same should we die
without a chance to (kill -9, the OOM killer): a step's command never runs on, orphaned, beside its resume. Output is read line by line, masked before anything
sees it, streamed to a callback and kept as a short tail for the journal. Secrets travel through
stdin or the environment, never argv: a `Command` whose argv holds a known secret is refused.
"""

from __future__ import annotations

import itertools
import logging
import os
import selectors
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from opsconsole import masking

TAIL_CHARS = 4096
GRACE_S = 5.0  # between SIGTERM and SIGKILL
_MAX_LINE = 65536  # a line longer than this is cut and streamed in pieces
_ORPHAN_DRAIN_S = 0.5  # output a background child keeps writing after the command exited


# The argv of a script that holds a secret (providers.local.bash): the script comes on stdin, never in argv. A
# literal of ours, so the argv check below skips it: a one-letter secret param would otherwise "appear" in it.
SECRET_SCRIPT_ARGV = ("bash", "-e", "-c", '__opsconsole_script=$(cat); exec </dev/null; eval "$__opsconsole_script"')


@dataclass(frozen=True)
class Command:
    """One subprocess, exactly as planned. `display` is what the plan shows (masked)."""

    argv: tuple[str, ...]
    display: str = ""
    stdin: str | None = field(default=None, repr=False)  # secrets travel here ...
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # ... or here; never displayed
    cwd: Path | None = None
    # What the plan fingerprint covers, when part of `display` is chosen at run time
    # (a backup's timestamped file name). Defaults to `display`.
    fingerprint_text: str = ""
    # Values the command records for later blocks (`{{ previous.KEY }}`) when it succeeds, known when it is
    # planned: e.g. the file a backup writes.
    records: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("a command needs at least a program")
        for arg in self.argv:
            if arg != SECRET_SCRIPT_ARGV[-1] and masking.mask(arg) != arg:  # (wrapped by railway run too)
                # A programming error, never a user one: a secret would show in `ps`.
                raise ValueError(f"refusing a secret in argv of {self.argv[0]!r}: pass it via stdin or env")
        if not self.display:
            object.__setattr__(self, "display", masking.mask(shlex.join(self.argv)))
        if not self.fingerprint_text:
            object.__setattr__(self, "fingerprint_text", self.display)


@dataclass(frozen=True)
class Result:
    exit_status: int  # the process's exit code; a negative number is the signal that ended it
    output_tail: str  # the last TAIL_CHARS of output, masked
    duration_s: float
    timed_out: bool = False
    error: str | None = None  # why it failed in words: "command not found: pg_dump", "timed out after 30 s"
    recorded: Mapping[str, object] = field(default_factory=dict)  # values an in-process call recorded

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out and self.error is None

    def describe(self) -> str:
        """One line for the terminal and the journal."""
        if self.ok:
            return f"exit 0 in {self.duration_s:.1f} s"
        if self.error:
            return self.error
        if self.exit_status < 0:
            try:
                name = signal.Signals(-self.exit_status).name
            except ValueError:
                name = f"signal {-self.exit_status}"
            return f"killed by {name}"
        return f"exit {self.exit_status}"


class Aborted(Exception):
    """The command was stopped because the caller asked (the `cancel` event)."""


# The guard: a tiny Python process in a session of its own (so a terminal's signals and a kill of our process
# group miss it), started with the first command. We tell it on a pipe which process groups are running; when
# the pipe reads EOF, we are gone, however we went, and it stops those groups as `_kill_group` would. It is the
# record of a dying run too: the lock counts a holder whose guard still lives as alive (`guards_of`).
GUARD_MARK = "opsconsole-guard"
_GUARD_FILE = Path(__file__).with_name("_guard.py")  # run by path, isolated (-I -S): it imports nothing of ours


class _Guard:
    """Our one guard process and the write end of its pipe (close-on-exec: no command of ours inherits it, or
    the guard would wait for that command instead of us)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._owner = 0  # the pid that started it: a forked child must start its own

    def tell(self, line: str) -> None:
        with self._mutex:
            for _ in range(2):  # a guard that died (killed by hand) is started again, once
                if self._fd is None or self._owner != os.getpid():
                    self._start()
                if self._fd is None:
                    return  # no guard could start: the command still runs; the lock check has no record of it
                try:
                    os.write(self._fd, line.encode())
                    return
                except OSError:
                    os.close(self._fd)
                    self._fd = None

    def _start(self) -> None:
        read, write = os.pipe()
        try:
            subprocess.Popen([sys.executable, "-I", "-S", str(_GUARD_FILE), GUARD_MARK, str(os.getpid()),
                              str(GRACE_S)], stdin=read, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, close_fds=True)
        except OSError:
            os.close(write)
            return
        finally:
            os.close(read)
        self._fd, self._owner = write, os.getpid()


_guard = _Guard()
_tokens = itertools.count(1)
_group_listeners: list[Callable[[int], None]] = []  # told each command's process group as it starts


def on_group_started(listener: Callable[[int], None]) -> Callable[[], None]:
    """Call `listener(pgid)` as each command starts (on the thread that starts it); returns the unsubscribe.
    The environment lock records the groups in the journal: a second line after the guard (lock.local_holder)."""
    _group_listeners.append(listener)
    return lambda: _group_listeners.remove(listener) if listener in _group_listeners else None


def guards_of(pid: int) -> list[int]:
    """The pids of live guards that `pid` started: while one lives, the commands of a `pid` that died are being
    stopped."""
    wanted = f"{GUARD_MARK}\0{pid}\0".encode()
    found = []
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if wanted in cmdline and state not in (b"Z", b"X"):
            found.append(int(entry.name))
    return found


class _Tail:
    def __init__(self, limit: int = TAIL_CHARS) -> None:
        self.lines: deque[str] = deque()
        self.size = 0
        self.limit = limit

    def add(self, line: str) -> None:
        self.lines.append(line)
        self.size += len(line) + 1
        while self.size > self.limit and len(self.lines) > 1:
            self.size -= len(self.lines.popleft()) + 1

    def text(self) -> str:
        return "\n".join(self.lines)[-self.limit:]


def run(cmd: Command, timeout_s: float | None, on_output: Callable[[str], None],
        cancel: threading.Event | None = None, grace_s: float = GRACE_S) -> Result:
    """Run `cmd`, streaming masked lines to `on_output`; kill its process group on timeout or abort.

    KeyboardInterrupt and `cancel` both stop the whole tree; KeyboardInterrupt is re-raised,
    `cancel` raises `Aborted`.
    """
    started = time.monotonic()
    tail = _Tail()

    def emit(line: str) -> None:
        tail.add(line)
        on_output(line)

    # Told before it starts, so a kill between its start and the next line still leaves the guard a way to it.
    token = f"{os.getpid()}-{next(_tokens)}"
    _guard.tell(f"?{token}\n")
    try:
        proc = subprocess.Popen(
            list(cmd.argv),
            stdin=subprocess.PIPE if cmd.stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cmd.cwd,
            env={**os.environ, **cmd.env, "OPSCONSOLE_STEP": token},
            start_new_session=True,  # its own process group: one signal reaches the whole tree
        )
    except FileNotFoundError:
        return Result(127, "", time.monotonic() - started, error=f"command not found: {cmd.argv[0]}")
    except PermissionError:
        return Result(126, "", time.monotonic() - started, error=f"not executable: {cmd.argv[0]}")
    except OSError as exc:  # e.g. a cwd that does not exist
        return Result(126, "", time.monotonic() - started, error=masking.mask(f"cannot start {cmd.argv[0]}: {exc}"))

    _guard.tell(f"+{proc.pid} {token}\n")  # start_new_session: the group id is the leader's pid
    for listener in list(_group_listeners):
        try:
            listener(proc.pid)
        except Exception as exc:  # a journal that cannot record it: the guard still stops the group
            logging.getLogger(__name__).debug("could not record process group %s: %s", proc.pid,
                                                masking.mask(str(exc)))
    try:
        return _follow(cmd, proc, started, tail, emit, timeout_s, cancel, grace_s)
    finally:
        _guard.tell(f"-{proc.pid}\n")


def _follow(cmd: Command, proc: subprocess.Popen[bytes], started: float, tail: _Tail,
            emit: Callable[[str], None], timeout_s: float | None, cancel: threading.Event | None,
            grace_s: float) -> Result:
    if cmd.stdin is not None:
        # A thread, so a child that writes a lot before reading its stdin cannot deadlock us.
        threading.Thread(target=_feed, args=(proc, cmd.stdin), daemon=True).start()

    deadline = None if timeout_s is None else started + timeout_s
    timed_out = False
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    # Masked as a stream, not line by line: a multi-line secret, or one across a long line's cut, never shows.
    masker = masking.StreamMasker(emit, max_line=_MAX_LINE)
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    exited_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                timed_out = True
                break
            if cancel is not None and cancel.is_set():
                _kill_group(proc, grace_s)
                raise Aborted(f"stopped: {cmd.display}")
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > _ORPHAN_DRAIN_S:
                break  # a background child holds the pipe open: stop listening, leave it be
            wait = 0.1  # also how soon we notice an exit while a background child holds the pipe
            if deadline is not None:
                wait = min(wait, deadline - now)
            if not sel.select(max(wait, 0.0)):
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                break  # EOF: every writer is gone
            masker.feed_bytes(chunk)
    except BaseException:
        _kill_group(proc, grace_s)
        raise
    finally:
        sel.close()
        masker.close()
        proc.stdout.close()

    if timed_out:
        _kill_group(proc, grace_s)
        return Result(proc.returncode, tail.text(), time.monotonic() - started, timed_out=True,
                      error=f"timed out after {format_seconds(timeout_s)} s")
    if deadline is None:
        code = proc.wait()
    else:
        try:
            code = proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:  # closed its output but kept running
            _kill_group(proc, grace_s)
            return Result(proc.returncode, tail.text(), time.monotonic() - started, timed_out=True,
                          error=f"timed out after {format_seconds(timeout_s)} s")
    error = None
    if code == 127 and cmd.argv[0] in ("bash", "sh"):
        error = "command not found (exit 127)"
    elif code == 126 and cmd.argv[0] in ("bash", "sh"):
        error = "command not executable (exit 126)"
    return Result(code, tail.text(), time.monotonic() - started, error=error)


def format_seconds(value: float | None) -> str:
    return f"{value or 0:.1f}".rstrip("0").rstrip(".")


def _feed(proc: subprocess.Popen[bytes], text: str) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(text.encode())
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass  # the child did not want its stdin; its exit status says the rest


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the whole group, SIGKILL whatever is left after the grace period."""
    pgid = proc.pid  # start_new_session: the group id is the leader's pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace_s
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    # Children that ignore SIGTERM may outlive the leader; the group exists while any is alive.
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.02)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in the group. Zombies count as gone: an init
    that does not reap would otherwise make every kill wait out the grace period."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False
