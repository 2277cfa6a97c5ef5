"""One run per environment: the lock every run takes before it changes anything.

The journal's store decides who holds an environment; this module holds what both stores share: who a holder
is, how a dead holder is told from a live one, what the loser is told, and the heartbeat thread.

How each store does it (`opsconsole.journal` owns the SQL):

- SQLite (one host): an exclusive `fcntl.flock` on `<journal>.<env>.lock` beside the journal is the lock itself.
  The kernel drops it the moment the holding process dies, kill -9 included, so "flock free" is an exact death
  certificate. A holder row (run, user, host, pid, runbook, since, heartbeat) in the journal says *who* holds it.
  A row whose flock is free belongs to a dead holder.
- PostgreSQL (a team, many hosts): a lock row per environment, claimed with `INSERT ... ON CONFLICT DO NOTHING`
  and `SELECT ... FOR UPDATE` in one transaction, kept alive by a heartbeat thread that stamps the row with the
  server's clock every `heartbeat_s` seconds. We chose a row over `pg_try_advisory_lock`: a session advisory lock
  is silently shared or lost behind a transaction-mode pooler (pgbouncer), and a session on a host that vanished
  from the network keeps its advisory lock until TCP keepalive gives up (hours by default), so a heartbeat would be
  needed anyway. A holder is dead when its heartbeat is older than `stale_after_s` (server clock against server
  clock, so host clock skew does not matter), or at once when it ran on this host and its process is gone.

A dead holder is never replaced silently while its run was in progress: the next run gets `LockHeld(stale=True)`
and must ask for `take_over=True` (`opsconsole run --take-over`); the old run is then marked interrupted and the
takeover is written to both runs' events. Two cases need no flag because nothing is in flight: the dead holder is
the very run being resumed, or its run had already finished (or never started). A live holder is never taken over.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from opsconsole import masking, runner
from opsconsole.errors import UserError

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
STALE_AFTER_S = 30.0
GROUPS_BATCH_S = 0.2  # a command's process group reaches the journal this long after it starts, at most


@dataclass(frozen=True)
class LockHolder:
    run_id: str
    user: str
    host: str
    pid: int
    runbook: str
    since: datetime
    git_identity: str = ""
    groups: tuple[int, ...] = ()  # the process groups of the commands its run started (the journal records them)

    @classmethod
    def for_run(cls, run_id: str, runbook: str) -> LockHolder:
        """This process, now, holding the lock for `run_id`."""
        from opsconsole.journal import identity

        user, git, host, pid = identity()
        return cls(run_id=run_id, user=user, host=host, pid=pid, runbook=runbook, since=datetime.now(UTC),
                   git_identity=git)

    def describe(self) -> str:
        who = self.user + (f" ({self.git_identity})" if self.git_identity else "")
        return (f"run {self.run_id} of runbook {self.runbook} by {who} on {self.host} (pid {self.pid}) "
                f"since {self.since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")


class LockHeld(UserError):
    """Another run holds the environment. `stale`: its holder is gone and it may be taken over."""

    def __init__(self, environment: str, holder: LockHolder | None, stale: bool, reason: str = "") -> None:
        self.environment = environment
        self.holder = holder
        self.stale = stale
        self.reason = reason
        who = holder.describe() if holder else "another run (its holder has not written its name yet)"
        if stale:
            message = (f"environment {environment!r} is locked by {who}, but its holder is gone ({reason}); "
                       f"take it over with --take-over (that run is marked interrupted and can be resumed later)")
        else:
            alive = f"it is still alive ({reason})" if reason else "it is still alive"
            message = (f"environment {environment!r} is locked by {who}; {alive}: wait for it or ask "
                       f"{holder.user if holder else 'its owner'} (only a dead holder can be taken over, with --take-over)")
        super().__init__(masking.mask(message))


class LockLost(UserError):
    """The lock was taken from us (our heartbeat stalled longer than the stale timeout and someone took over)."""


class EnvironmentLock:
    """A held environment lock. Context manager; `release()` is idempotent; a daemon thread keeps it alive.

    `beat()` refreshes the holder's heartbeat and returns False when the lock is no longer ours; `drop()`
    gives the lock back. Both come from the journal's store.
    """

    def __init__(self, environment: str, holder: LockHolder, token: str, *, beat: Callable[[], bool],
                 drop: Callable[[], None], heartbeat_s: float = HEARTBEAT_S,
                 previous: LockHolder | None = None, on_release: Callable[[EnvironmentLock], None] | None = None,
                 record_groups: Callable[[tuple[int, ...]], None] | None = None) -> None:
        self.environment = environment
        self.holder = holder
        self.token = token
        self.previous = previous  # the dead holder we took over, if any
        self.heartbeat_s = heartbeat_s
        self._beat = beat
        self._drop = drop
        self._on_release = on_release
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._released = False
        self._release_lock = threading.Lock()
        self._wake = threading.Event()  # a stop, or process groups to write
        self._groups: list[int] = []
        self._groups_lock = threading.Lock()
        self._groups_dirty = False
        self._record_groups = record_groups
        self._thread = threading.Thread(target=self._heartbeat, name=f"opsconsole-lock-{environment}", daemon=True)
        self._thread.start()
        self._unsubscribe = runner.on_group_started(self._group_started) if record_groups is not None else None

    def _group_started(self, pgid: int) -> None:
        """Record in the lock's row the process group of a command this process starts while it holds the lock:
        should opsconsole and its guard both die, the next acquirer sees the step's processes still run."""
        if self._released or self._record_groups is None:
            return
        with self._groups_lock:
            if len(self._groups) >= 8:  # the finished ones go; a run keeps few commands running at once
                self._groups = [g for g in self._groups if _group_exists(g)][-7:]
            self._groups.append(pgid)
            self._groups_dirty = True
        self._wake.set()  # the heartbeat thread writes it: the command does not wait for the journal

    def _heartbeat(self) -> None:
        """Beat every `heartbeat_s`; in between, write the process groups a command just started in (woken by
        `_group_started`, so the command never waits for the journal)."""
        next_beat = time.monotonic() + self.heartbeat_s
        while True:
            self._wake.wait(max(0.0, next_beat - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._groups_dirty and self._stop.wait(GROUPS_BATCH_S):  # one write for a burst of commands
                return
            self._write_groups()
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + self.heartbeat_s
            try:
                still_ours = self._beat()
            except Exception as exc:  # a network blip: try again next beat; staleness covers a long outage
                log.warning("lock heartbeat for %s failed: %s", self.environment, masking.mask(str(exc)))
                continue
            if not still_ours:
                self._lost.set()
                return

    def _write_groups(self) -> None:
        with self._groups_lock:
            if not self._groups_dirty or self._record_groups is None:
                return
            self._groups_dirty = False
            groups = tuple(self._groups)
        try:
            self._record_groups(groups)
        except Exception as exc:  # the guard still stops them; the next start writes them again. Not a warning on
            # screen: a journal that cannot be written stops the run with its own one message (engine.JournalLost).
            log.debug("could not record the process groups of %s: %s", self.environment, masking.mask(str(exc)))

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    @property
    def held(self) -> bool:
        return not self._released and not self.lost

    def ensure_held(self) -> None:
        """Raise LockLost if another run took the environment over; the engine calls this before each change."""
        if self.lost:
            raise LockLost(f"the lock on environment {self.environment!r} was taken over by another run "
                           f"(this process stalled longer than the stale timeout); stopping before the next change")

    def release(self) -> None:
        with self._release_lock:
            if self._released:
                return
            self._released = True
        self._stop.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not threading.current_thread():
            self._thread.join()
        try:
            self._drop()  # removes only our own row (by token), and always lets go of what we hold locally
        finally:
            if self._on_release is not None:
                self._on_release(self)

    def __enter__(self) -> EnvironmentLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --- deciding about a holder found in the store -------------------------------------------------------------

def pid_alive(pid: int) -> bool:
    """Whether a process of this host exists (a zombie counts as gone: it has closed every file and lock)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def process_state(pid: int, since: datetime) -> str | None:
    """The state letter of a process of this host ("R", "S", "T" for stopped...) if it exists and is the one that
    was running at `since`; None if it is gone, a zombie, or its pid now names a younger process."""
    if not pid_alive(pid):
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return "?"  # no /proc to ask: it exists, which is all we know
    if started > since.timestamp() + 2:  # btime and ticks are coarse: allow for it
        return None  # the pid was reused by a process born after the lock was taken
    return fields[0].decode(errors="replace")


def local_holder(holder: LockHolder, wait_s: float = runner.GRACE_S + 3) -> tuple[bool, str] | None:
    """(alive, why) for a holder of this host, judged by its processes; None for another host's.

    Alive while its process exists (stopped included: it may be continued) and, once it is gone, while the guard
    that stops its commands still runs: we wait up to `wait_s` for that guard, so a resume right after a kill -9
    starts once the old step's processes are gone, never beside them."""
    if holder.host != socket.gethostname():
        return None
    state = process_state(holder.pid, holder.since)
    if state == "T" or state == "t":
        return True, (f"its process {holder.pid} is stopped, not gone: `kill -CONT {holder.pid}` lets it go on, "
                      f"`kill {holder.pid}` ends it")
    if state is not None:
        return True, f"its process {holder.pid} still runs on {holder.host}"
    deadline = time.monotonic() + wait_s
    guards = runner.guards_of(holder.pid)
    while guards and time.monotonic() < deadline:
        time.sleep(0.05)
        guards = runner.guards_of(holder.pid)
    if guards:
        return True, (f"its process {holder.pid} is gone, but the commands of its step are still being stopped "
                      f"(guard pid {guards[0]})")
    running = [g for g in holder.groups if runner.group_alive(g)]
    if running:  # its guard was killed too: the journal's record is the last line
        return True, (f"its process {holder.pid} is gone, but processes of its step still run (process group "
                      f"{running[0]}): let them finish, or stop them with `kill -- -{running[0]}`")
    return False, f"process {holder.pid} no longer exists on {holder.host}"


def _group_exists(pgid: int) -> bool:
    """Cheap: whether any process (zombies too) is in the group; runner.group_alive reads /proc for the truth."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_alive(holder: LockHolder, heartbeat_age_s: float | None, stale_after_s: float) -> tuple[bool, str]:
    """(alive, why) for a heartbeat-kept lock: on this host, its processes decide (`local_holder`); elsewhere a
    fresh heartbeat."""
    local = local_holder(holder)
    if local is not None:
        return local
    if heartbeat_age_s is not None and heartbeat_age_s > stale_after_s:
        return False, f"no heartbeat for {_duration(heartbeat_age_s)}, more than the {_duration(stale_after_s)} allowed"
    return True, ""


def decide(environment: str, current: LockHolder | None, alive: bool, reason: str, current_run_status: str | None,
           wanted: LockHolder, take_over: bool) -> str:
    """What to do with the holder found: "acquire" (free), "replace" (dead, nothing in flight) or "take-over".

    Raises LockHeld for a live holder, and for a dead one whose run was in progress unless `take_over`.
    """
    if current is None:
        return "acquire"
    if alive:
        raise LockHeld(environment, current, stale=False, reason=reason)
    if current.run_id == wanted.run_id:
        return "replace"  # resuming that very run
    if current_run_status != "running":
        return "replace"  # its run had finished (or never started): the holder only missed its release
    if take_over:
        return "take-over"
    raise LockHeld(environment, current, stale=True, reason=reason)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# --- the file lock of the SQLite store --------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def lock_path(journal_path: Path, environment: str) -> Path:
    """`<journal>.<env>.lock` beside the journal file itself, whatever path spelling reached it (symlinks, `..`):
    two engineers reaching one journal by two spellings must take one lock. An environment name that is not
    filename-safe gets a hash so names cannot collide."""
    journal_path = journal_path.resolve()
    safe = _UNSAFE.sub("_", environment).lstrip(".") or "_"
    if safe != environment:
        safe += "-" + hashlib.sha256(environment.encode()).hexdigest()[:8]
    return journal_path.with_name(f"{journal_path.name}.{safe}.lock")


def try_flock(path: Path) -> int | None:
    """An fd holding an exclusive flock on `path`, or None if another open file holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def unflock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def flock_held(path: Path) -> bool:
    """Whether some open file (any process, this one included) holds the flock on `path`.

    Probing takes the lock for an instant; an acquirer that loses to a probe retries briefly (see journal).
    """
    if not path.exists():
        return False
    fd = try_flock(path)
    if fd is None:
        return True
    unflock(fd)
    return False
