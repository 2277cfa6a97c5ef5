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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from opsconsole import masking
from opsconsole.errors import UserError

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
STALE_AFTER_S = 30.0


@dataclass(frozen=True)
class LockHolder:
    run_id: str
    user: str
    host: str
    pid: int
    runbook: str
    since: datetime
    git_identity: str = ""

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
            message = (f"environment {environment!r} is locked by {who}; it is still alive: wait for it or ask "
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
                 previous: LockHolder | None = None, on_release: Callable[[EnvironmentLock], None] | None = None) -> None:
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
        self._thread = threading.Thread(target=self._heartbeat, name=f"opsconsole-lock-{environment}", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                still_ours = self._beat()
            except Exception as exc:  # a network blip: try again next beat; staleness covers a long outage
                log.warning("lock heartbeat for %s failed: %s", self.environment, masking.mask(str(exc)))
                continue
            if not still_ours:
                self._lost.set()
                return

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


def holder_alive(holder: LockHolder, heartbeat_age_s: float | None, stale_after_s: float) -> tuple[bool, str]:
    """(alive, why not) for a heartbeat-kept lock: a fresh heartbeat, and on this host a process that exists."""
    if holder.host == socket.gethostname() and not pid_alive(holder.pid):
        return False, f"process {holder.pid} no longer exists on {holder.host}"
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
        raise LockHeld(environment, current, stale=False)
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
    """`<journal>.<env>.lock`; an environment name that is not filename-safe gets a hash so names cannot collide."""
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
