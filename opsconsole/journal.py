"""The audit journal: every run and every step, written before the next instruction, secrets masked.

Two stores behind one interface:
- SQLite (default) in the user state dir, WAL with synchronous=FULL: a step is on disk when `record_step`
  returns, so a kill -9 right after loses nothing. Concurrent writers wait on busy_timeout instead of failing.
- PostgreSQL (`journal = "postgresql://..."`), shared by a team: the same tables with jsonb/timestamptz.

Where the journal lives, first hit wins: `[opsconsole] journal = "..."` in the config, `$OPSCONSOLE_JOURNAL`,
then `platformdirs.user_state_dir("opsconsole")/journal.sqlite3`.

Every text (commands, output, params, notes, the plan, recorded values) goes through `masking.mask` on its way in,
so a registered secret never reaches the file or the table. The per-environment run lock is `Journal.lock`
(see `opsconsole.lock` for how each store holds it). A run stored as "running" whose lock is no longer held reads
as "interrupted": that is what `journal list` shows and what resume offers.

Schema changes go through `_MIGRATIONS` and the `opsconsole_schema` version row.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import re
import secrets
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole import masking
from opsconsole.errors import ConfigError, UserError
from opsconsole.lock import (HEARTBEAT_S, STALE_AFTER_S, EnvironmentLock, LockHeld, LockHolder, decide, flock_held,
                             holder_alive, local_holder, lock_path, pid_alive, try_flock, unflock)

if TYPE_CHECKING:
    from opsconsole.config import Config

ENV_VAR = "OPSCONSOLE_JOURNAL"
DEFAULT_FILE = "journal.sqlite3"
SCHEMA_VERSION = 2

RUN_STATUSES = ("running", "succeeded", "failed", "aborted", "interrupted")
FINISHED = ("succeeded", "failed", "aborted")
STEP_STATUSES = ("running", "succeeded", "failed", "skipped", "rolled-back", "rollback-failed")
DONE = ("succeeded", "skipped")  # a step in one of these never runs again on resume
OUTPUT_TAIL_MAX = 64 * 1024  # characters kept per step; the runner already sends a tail


# --- records ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepRecord:
    run_id: str
    index: int
    title: str
    status: str  # "running" | "succeeded" | "failed" | "skipped" | "rolled-back" | "rollback-failed"
    started_at: datetime
    ended_at: datetime | None
    commands: tuple[str, ...]  # exact resolved commands / API calls, masked
    exit_status: int | None
    output_tail: str
    verification: str
    note: str
    attempt: int  # 1 for the first try, 2 after a retry, ...
    recorded: Mapping[str, object]  # values the step recorded (previous.*), needed for resume/rollback
    fingerprint: str  # the Step.fingerprint() it ran


@dataclass(frozen=True)
class RunEvent:
    """Something that happened to a run besides its steps: started, resumed, taken over, finished."""

    run_id: str
    at: datetime
    kind: str  # "started" | "resumed" | "finished" | "took-over" | "taken-over"
    user: str
    host: str
    pid: int
    detail: str


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    runbook_path: str
    runbook_name: str
    content_hash: str
    plan_fingerprint: str
    environment: str
    params: Mapping[str, str]  # masked
    user: str
    git_identity: str
    host: str
    pid: int
    started_at: datetime
    ended_at: datetime | None
    status: str  # "running" | "succeeded" | "failed" | "aborted" | "interrupted"
    plan: Mapping[str, object]  # the plan as JSON (masked): steps, commands, confirmations
    steps: tuple[StepRecord, ...] = ()  # every attempt, by index then attempt
    events: tuple[RunEvent, ...] = ()

    def latest_steps(self) -> dict[int, StepRecord]:
        """The last attempt of each step, by step index."""
        latest: dict[int, StepRecord] = {}
        for step in self.steps:
            if step.index not in latest or step.attempt >= latest[step.index].attempt:
                latest[step.index] = step
        return latest

    @property
    def steps_done(self) -> int:
        return sum(1 for s in self.latest_steps().values() if s.status in DONE)

    @property
    def steps_total(self) -> int:
        planned = self.plan.get("steps") if isinstance(self.plan, Mapping) else None
        if isinstance(planned, Sequence) and not isinstance(planned, str):
            return len(planned)
        return len(self.latest_steps())


def new_run_id(now: datetime | None = None) -> str:
    """Short, sortable and unique enough to type: 20261121-130211-4f2a9c."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def new_run(*, runbook_path: str | Path, runbook_name: str, content_hash: str, plan_fingerprint: str,
            environment: str, params: Mapping[str, object], plan: Mapping[str, object],
            run_id: str | None = None) -> RunRecord:
    """A RunRecord for a run starting now in this process: identity filled in, status "running"."""
    user, git, host, pid = identity()
    now = datetime.now(UTC)
    return RunRecord(run_id=run_id or new_run_id(now), runbook_path=str(runbook_path), runbook_name=runbook_name,
                     content_hash=content_hash, plan_fingerprint=plan_fingerprint, environment=environment,
                     params={k: str(v) for k, v in params.items()}, user=user, git_identity=git, host=host, pid=pid,
                     started_at=now, ended_at=None, status="running", plan=plan)


@functools.lru_cache(maxsize=1)
def _who() -> tuple[str, str]:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no $USER and no passwd entry (some containers)
        user = f"uid {os.getuid()}"

    def git(key: str) -> str:
        try:
            r = subprocess.run(["git", "config", "--get", key], capture_output=True, text=True, timeout=5,
                               stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return ""  # git missing or hanging: the OS user is still recorded
        return r.stdout.strip() if r.returncode == 0 else ""

    name, email = git("user.name"), git("user.email")
    git_identity = f"{name} <{email}>" if name and email else name or (f"<{email}>" if email else "")
    return user, git_identity


def identity() -> tuple[str, str, str, int]:
    """(OS user, git identity "Name <email>" or "", host, pid) of this process."""
    user, git_identity = _who()
    return user, git_identity, socket.gethostname(), os.getpid()


# --- opening -----------------------------------------------------------------------------------------------------

def default_path() -> Path:
    from platformdirs import user_state_dir

    return Path(user_state_dir("opsconsole")) / DEFAULT_FILE


def is_postgres(spec: str) -> bool:
    return spec.startswith(("postgresql://", "postgres://"))


def open_journal(spec: str | None = None, *, heartbeat_s: float = HEARTBEAT_S,
                 stale_after_s: float = STALE_AFTER_S) -> Journal:
    """None -> $OPSCONSOLE_JOURNAL, else SQLite in the user state dir; "postgresql://..." -> PostgreSQL;
    any other string -> an SQLite file path.

    `heartbeat_s` / `stale_after_s`: how often a held lock is refreshed and how old a heartbeat may get before
    its holder counts as dead (PostgreSQL; SQLite knows death from the kernel).
    """
    spec = spec or os.environ.get(ENV_VAR) or None
    if spec is not None and is_postgres(spec):
        masking.register_url(spec)
        return PostgresJournal(spec, heartbeat_s=heartbeat_s, stale_after_s=stale_after_s)
    path = Path(spec).expanduser() if spec else default_path()
    return SqliteJournal(path, heartbeat_s=heartbeat_s, stale_after_s=stale_after_s)


_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def spec_for(config: Config) -> str | None:
    """The journal a config selects: its `journal` value (a relative path is relative to the config file,
    `${NAME}` comes from `.env` beside it or the environment), else None (= $OPSCONSOLE_JOURNAL, else default)."""
    value = config.journal
    if not value:
        return None
    if "${" in value:
        from opsconsole.config import load_env_values

        values = load_env_values(config.base_dir, None)  # not per environment: one journal for them all

        def substitute(m: re.Match[str]) -> str:
            if values.get(m["name"]):
                return values[m["name"]]
            if m["default"] is not None:
                return m["default"]
            raise ConfigError(f"journal: ${{{m['name']}}} is not set (define it in the environment or in .env "
                              f"beside the config)", config.source, config.lines.line("opsconsole", "journal"))
        value = _VARIABLE.sub(substitute, value)
    if is_postgres(value):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else config.base_dir / path)


def open_for_config(config: Config, **kw: float) -> Journal:
    """The journal for a loaded config: config value, then $OPSCONSOLE_JOURNAL, then the default."""
    return open_journal(spec_for(config), **kw)


# --- masking on the way in ---------------------------------------------------------------------------------------

def _mask(text: str | None) -> str:
    return masking.mask(text or "")


def _mask_value(value: Any) -> Any:
    """Mask every string inside a JSON-able value (keys too), before it is serialised: masking the JSON text
    would miss a secret that json.dumps escaped."""
    if isinstance(value, str):
        return masking.mask(value)
    if isinstance(value, Mapping):
        return {masking.mask(str(k)): _mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_mask_value(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return masking.mask(str(value))


def _one_line(exc: BaseException) -> str:
    """A driver's multi-line message as one masked line (libpq reports each address it tried on its own line)."""
    return masking.mask(" ".join(str(exc).split()))


class JournalUnavailable(UserError):
    """The journal cannot be read or written right now: its server went away, the network dropped, the disk
    filled up. Unlike a mistake in input, waiting may cure it; the engine retries a while, then stops the run."""

    def __init__(self, location: str, reason: str, message: str | None = None) -> None:
        super().__init__(message or f"journal {location}: {reason}")
        self.location = location
        self.reason = reason


def _utc(dt: datetime) -> datetime:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


# --- the interface -----------------------------------------------------------------------------------------------

_RUN_COLUMNS = ("run_id, runbook_path, runbook_name, content_hash, plan_fingerprint, environment, params, user_name, "
                "git_identity, host, pid, started_at, ended_at, status, plan")
_STEP_COLUMNS = ("run_id, step_index, title, status, started_at, ended_at, commands, exit_status, output_tail, "
                 "verification, note, attempt, recorded, fingerprint")
_EVENT_COLUMNS = "run_id, at, kind, user_name, host, pid, detail"
_LOCK_COLUMNS = "run_id, user_name, host, pid, runbook, since, git_identity, step_groups"

Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


class Journal:
    """One interface over both stores. Thread-safe: the TUI reads while the engine's worker writes."""

    backend = ""

    def __init__(self, *, heartbeat_s: float, stale_after_s: float) -> None:
        if not 0 < 2 * heartbeat_s <= stale_after_s:
            raise ValueError(f"stale_after_s ({stale_after_s}) must be at least twice heartbeat_s ({heartbeat_s}): "
                             f"a live holder would look dead")
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self._mutex = threading.RLock()
        self._locks: set[EnvironmentLock] = set()

    # Store primitives.
    @property
    def location(self) -> str:
        """Where the journal lives, fit for display (no password)."""
        raise NotImplementedError

    @contextmanager
    def _transaction(self) -> Iterator[Execute]:
        raise NotImplementedError
        yield  # pragma: no cover

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._transaction() as ex:
            return ex(sql, params)

    def _ts(self, dt: datetime | None) -> Any:
        raise NotImplementedError

    def _dt(self, value: Any) -> datetime | None:
        raise NotImplementedError

    def _json(self, value: Any) -> Any:
        raise NotImplementedError

    def _load(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, (str, bytes)) else value

    def _live_holders(self, environments: set[str]) -> dict[str, str]:
        """environment -> run_id of the live holder of its lock."""
        raise NotImplementedError

    def lock(self, environment: str, holder: LockHolder, take_over: bool = False) -> EnvironmentLock:
        """Take the environment's run lock for `holder.run_id` (take it before `start_run`).

        Raises LockHeld naming the holder; `take_over=True` replaces a dead holder (never a live one) and marks
        its run interrupted. Release with `EnvironmentLock.release()` or a `with` block.
        """
        raise NotImplementedError

    def close(self) -> None:
        for held in list(self._locks):
            held.release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Writing.
    def start_run(self, run: RunRecord) -> None:
        """Record a new run; a run_id already recorded is a resume: set back to running, keeping its steps."""
        user, _git, host, pid = identity()
        with self._mutex, self._transaction() as ex:
            existing = ex("SELECT status FROM opsconsole_runs WHERE run_id = ?", (run.run_id,))
            if existing:
                was = "interrupted" if existing[0][0] == "running" else existing[0][0]
                ex("UPDATE opsconsole_runs SET status = 'running', ended_at = NULL WHERE run_id = ?", (run.run_id,))
                self._event(ex, run.run_id, "resumed", f"resumed by {user} on {host} (pid {pid}), was {was}")
                return
            ex(f"INSERT INTO opsconsole_runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                run.run_id, _mask(run.runbook_path), _mask(run.runbook_name), run.content_hash, run.plan_fingerprint,
                _mask(run.environment), self._json(_mask_value(dict(run.params))), _mask(run.user),
                _mask(run.git_identity), _mask(run.host), run.pid, self._ts(_utc(run.started_at)),
                self._ts(_utc(run.ended_at)) if run.ended_at else None, "running",
                self._json(_mask_value(dict(run.plan))),
            ))
            self._event(ex, run.run_id, "started", f"runbook {run.runbook_name} on {run.environment}")

    def record_step(self, step: StepRecord) -> None:
        """Insert or update the step's attempt (run_id, index, attempt); on disk when this returns."""
        if step.status not in STEP_STATUSES:
            raise ValueError(f"unknown step status {step.status!r} (known: {', '.join(STEP_STATUSES)})")
        tail = _mask(step.output_tail)[-OUTPUT_TAIL_MAX:]  # mask first: a cut must not split a secret
        values = (
            step.run_id, step.index, _mask(step.title), step.status, self._ts(_utc(step.started_at)),
            self._ts(_utc(step.ended_at)) if step.ended_at else None,
            self._json([_mask(c) for c in step.commands]), step.exit_status, tail, _mask(step.verification),
            _mask(step.note), step.attempt, self._json(_mask_value(dict(step.recorded))), step.fingerprint,
        )
        with self._mutex, self._transaction() as ex:
            if not ex("SELECT 1 FROM opsconsole_runs WHERE run_id = ?", (step.run_id,)):
                raise UserError(f"no run {step.run_id!r} in the journal {self.location} (start_run it first)")
            ex(f"INSERT INTO opsconsole_steps ({_STEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
               "ON CONFLICT (run_id, step_index, attempt) DO UPDATE SET title = excluded.title, "
               "status = excluded.status, started_at = excluded.started_at, ended_at = excluded.ended_at, "
               "commands = excluded.commands, exit_status = excluded.exit_status, output_tail = excluded.output_tail, "
               "verification = excluded.verification, note = excluded.note, recorded = excluded.recorded, "
               "fingerprint = excluded.fingerprint", values)

    def finish_run(self, run_id: str, status: str) -> None:
        if status not in FINISHED:
            raise ValueError(f"a run finishes as one of {', '.join(FINISHED)}, not {status!r}")
        with self._mutex, self._transaction() as ex:
            if not ex("SELECT 1 FROM opsconsole_runs WHERE run_id = ?", (run_id,)):
                raise UserError(f"no run {run_id!r} in the journal {self.location}")
            ex("UPDATE opsconsole_runs SET status = ?, ended_at = ? WHERE run_id = ?",
               (status, self._ts(datetime.now(UTC)), run_id))
            self._event(ex, run_id, "finished", status)

    def _event(self, ex: Execute, run_id: str, kind: str, detail: str) -> None:
        user, git, host, pid = identity()
        who = f"{user} ({git})" if git else user
        ex(f"INSERT INTO opsconsole_events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
           (run_id, self._ts(datetime.now(UTC)), kind, _mask(who), _mask(host), pid, _mask(detail)))

    # Reading.
    def get(self, run_id: str) -> RunRecord:
        """The run with its steps and events; a unique prefix of a run id is enough. UserError if unknown."""
        with self._mutex:
            rows = self._query(f"SELECT {_RUN_COLUMNS} FROM opsconsole_runs WHERE run_id = ?", (run_id,))
            if not rows and run_id:
                rows = self._query(f"SELECT {_RUN_COLUMNS} FROM opsconsole_runs WHERE substr(run_id, 1, ?) = ? "
                                   "ORDER BY run_id LIMIT 6", (len(run_id), run_id))
                if len(rows) > 1:
                    ids = ", ".join(r[0] for r in rows[:5])
                    raise UserError(f"run id {run_id!r} is ambiguous: {ids}{', ...' if len(rows) > 5 else ''}")
            if not rows:
                raise UserError(f"no run {run_id!r} in the journal {self.location}")
            return self._complete(rows)[0]

    def runs(self, limit: int = 50, environment: str | None = None) -> list[RunRecord]:
        """Most recent first, with steps and events; a dead "running" run reads as "interrupted"."""
        where, params = ("WHERE environment = ?", [_mask(environment)]) if environment else ("", [])
        with self._mutex:
            rows = self._query(f"SELECT {_RUN_COLUMNS} FROM opsconsole_runs {where} "
                               "ORDER BY started_at DESC, run_id DESC LIMIT ?", (*params, limit))
            return self._complete(rows)

    def _complete(self, rows: list[tuple[Any, ...]]) -> list[RunRecord]:
        if not rows:
            return []
        ids = [r[0] for r in rows]
        marks = ", ".join("?" for _ in ids)
        steps: dict[str, list[StepRecord]] = {i: [] for i in ids}
        for r in self._query(f"SELECT {_STEP_COLUMNS} FROM opsconsole_steps WHERE run_id IN ({marks}) "
                             "ORDER BY run_id, step_index, attempt", ids):
            steps[r[0]].append(StepRecord(
                run_id=r[0], index=r[1], title=r[2], status=r[3], started_at=self._dt(r[4]), ended_at=self._dt(r[5]),
                commands=tuple(self._load(r[6])), exit_status=r[7], output_tail=r[8], verification=r[9], note=r[10],
                attempt=r[11], recorded=self._load(r[12]), fingerprint=r[13]))
        events: dict[str, list[RunEvent]] = {i: [] for i in ids}
        for r in self._query(f"SELECT {_EVENT_COLUMNS} FROM opsconsole_events WHERE run_id IN ({marks}) "
                             "ORDER BY id", ids):
            events[r[0]].append(RunEvent(run_id=r[0], at=self._dt(r[1]), kind=r[2], user=r[3], host=r[4], pid=r[5],
                                         detail=r[6]))
        running_envs = {r[5] for r in rows if r[13] == "running"}
        live = self._live_holders(running_envs) if running_envs else {}
        out = []
        for r in rows:
            status = r[13]
            if status == "running" and live.get(r[5]) != r[0]:
                status = "interrupted"
            out.append(RunRecord(
                run_id=r[0], runbook_path=r[1], runbook_name=r[2], content_hash=r[3], plan_fingerprint=r[4],
                environment=r[5], params=self._load(r[6]), user=r[7], git_identity=r[8], host=r[9], pid=r[10],
                started_at=self._dt(r[11]), ended_at=self._dt(r[12]), status=status, plan=self._load(r[14]),
                steps=tuple(steps[r[0]]), events=tuple(events[r[0]])))
        return out

    def holder(self, environment: str) -> LockHolder | None:
        """Who holds the environment's lock row (alive or not), for display."""
        with self._mutex:
            rows = self._query(f"SELECT {_LOCK_COLUMNS} FROM opsconsole_locks WHERE environment = ?",
                               (_mask(environment),))
        return self._holder(rows[0]) if rows else None

    def _holder(self, row: Sequence[Any]) -> LockHolder:
        return LockHolder(run_id=row[0], user=row[1], host=row[2], pid=row[3], runbook=row[4],
                          since=self._dt(row[5]) or datetime.now(UTC), git_identity=row[6],
                          groups=tuple(int(g) for g in (row[7] or "").split(",") if g.isdigit()))

    def _record_groups(self, key: str, token: str) -> Callable[[tuple[int, ...]], None]:
        """Writes the process groups a lock holder's commands run in into its row (lock.local_holder reads it)."""
        def record(groups: tuple[int, ...]) -> None:
            with self._transaction() as ex:
                ex("UPDATE opsconsole_locks SET step_groups = ? WHERE environment = ? AND token = ?",
                   (",".join(map(str, groups)), key, token))
        return record

    # Lock helpers shared by both stores.
    def _claim(self, ex: Execute, environment: str, current: LockHolder | None, alive: bool, reason: str,
               holder: LockHolder, take_over: bool, token: str, exists: bool) -> LockHolder | None:
        """Decide about the holder found and write ours; returns the holder taken over, if any."""
        status = None
        if current is not None:
            found = ex("SELECT status FROM opsconsole_runs WHERE run_id = ?", (current.run_id,))
            status = found[0][0] if found else None
        action = decide(environment, current, alive, reason, status, holder, take_over)
        now = datetime.now(UTC)
        now_sql, now_params = self._now_sql(now)
        values = (holder.run_id, _mask(holder.user), _mask(holder.host), holder.pid, _mask(holder.runbook),
                  self._ts(_utc(holder.since)), _mask(holder.git_identity), "", token, *now_params)
        if exists:
            ex("UPDATE opsconsole_locks SET run_id = ?, user_name = ?, host = ?, pid = ?, runbook = ?, since = ?, "
               f"git_identity = ?, step_groups = ?, token = ?, heartbeat_at = {now_sql} WHERE environment = ?",
               (*values, _mask(environment)))
        else:
            ex(f"INSERT INTO opsconsole_locks (environment, {_LOCK_COLUMNS}, token, heartbeat_at) "
               f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {now_sql})", (_mask(environment), *values))
        if action != "take-over":
            return None
        assert current is not None
        ex("UPDATE opsconsole_runs SET status = 'interrupted', ended_at = ? WHERE run_id = ? AND status = 'running'",
           (self._ts(now), current.run_id))
        self._event(ex, current.run_id, "taken-over",
                    f"lock on {environment} taken over by run {holder.run_id} ({reason})")
        # Written under the new run's id even before start_run: events are keyed by run id, not tied to a row.
        self._event(ex, holder.run_id, "took-over", f"took over the lock of run {current.run_id} ({reason})")
        return current

    def _now_sql(self, now: datetime) -> tuple[str, tuple[Any, ...]]:
        """SQL for "now" in a heartbeat, with its parameters."""
        return "?", (self._ts(now),)

    def _lock_done(self, held: EnvironmentLock) -> None:
        self._locks.discard(held)


# --- SQLite ------------------------------------------------------------------------------------------------------

_SQLITE_V1 = (
    """CREATE TABLE opsconsole_runs (
        run_id TEXT PRIMARY KEY, runbook_path TEXT NOT NULL, runbook_name TEXT NOT NULL, content_hash TEXT NOT NULL,
        plan_fingerprint TEXT NOT NULL, environment TEXT NOT NULL, params TEXT NOT NULL, user_name TEXT NOT NULL,
        git_identity TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, started_at TEXT NOT NULL,
        ended_at TEXT, status TEXT NOT NULL, plan TEXT NOT NULL)""",
    "CREATE INDEX opsconsole_runs_started ON opsconsole_runs (started_at DESC)",
    "CREATE INDEX opsconsole_runs_environment ON opsconsole_runs (environment, started_at DESC)",
    """CREATE TABLE opsconsole_steps (
        run_id TEXT NOT NULL REFERENCES opsconsole_runs (run_id), step_index INTEGER NOT NULL,
        attempt INTEGER NOT NULL, title TEXT NOT NULL, status TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT,
        commands TEXT NOT NULL, exit_status INTEGER, output_tail TEXT NOT NULL, verification TEXT NOT NULL,
        note TEXT NOT NULL, recorded TEXT NOT NULL, fingerprint TEXT NOT NULL,
        PRIMARY KEY (run_id, step_index, attempt))""",
    """CREATE TABLE opsconsole_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL,
        user_name TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, detail TEXT NOT NULL)""",
    "CREATE INDEX opsconsole_events_run ON opsconsole_events (run_id)",
    """CREATE TABLE opsconsole_locks (
        environment TEXT PRIMARY KEY, run_id TEXT NOT NULL, user_name TEXT NOT NULL, host TEXT NOT NULL,
        pid INTEGER NOT NULL, runbook TEXT NOT NULL, since TEXT NOT NULL, git_identity TEXT NOT NULL,
        token TEXT NOT NULL, heartbeat_at TEXT NOT NULL)""",
)

_PG_V1 = (
    """CREATE TABLE opsconsole_runs (
        run_id text PRIMARY KEY, runbook_path text NOT NULL, runbook_name text NOT NULL, content_hash text NOT NULL,
        plan_fingerprint text NOT NULL, environment text NOT NULL, params jsonb NOT NULL, user_name text NOT NULL,
        git_identity text NOT NULL, host text NOT NULL, pid integer NOT NULL, started_at timestamptz NOT NULL,
        ended_at timestamptz, status text NOT NULL, plan jsonb NOT NULL)""",
    "CREATE INDEX opsconsole_runs_started ON opsconsole_runs (started_at DESC)",
    "CREATE INDEX opsconsole_runs_environment ON opsconsole_runs (environment, started_at DESC)",
    """CREATE TABLE opsconsole_steps (
        run_id text NOT NULL REFERENCES opsconsole_runs (run_id), step_index integer NOT NULL,
        attempt integer NOT NULL, title text NOT NULL, status text NOT NULL, started_at timestamptz NOT NULL,
        ended_at timestamptz, commands jsonb NOT NULL, exit_status integer, output_tail text NOT NULL,
        verification text NOT NULL, note text NOT NULL, recorded jsonb NOT NULL, fingerprint text NOT NULL,
        PRIMARY KEY (run_id, step_index, attempt))""",
    """CREATE TABLE opsconsole_events (
        id bigserial PRIMARY KEY, run_id text NOT NULL, at timestamptz NOT NULL, kind text NOT NULL,
        user_name text NOT NULL, host text NOT NULL, pid integer NOT NULL, detail text NOT NULL)""",
    "CREATE INDEX opsconsole_events_run ON opsconsole_events (run_id)",
    """CREATE TABLE opsconsole_locks (
        environment text PRIMARY KEY, run_id text NOT NULL, user_name text NOT NULL, host text NOT NULL,
        pid integer NOT NULL, runbook text NOT NULL, since timestamptz NOT NULL, git_identity text NOT NULL,
        token text NOT NULL, heartbeat_at timestamptz NOT NULL)""",
)

# 2: the process groups of the lock holder's commands, so a holder whose process and guard both died is not
# called dead while its step's processes still run.
_SQLITE_V2 = ("ALTER TABLE opsconsole_locks ADD COLUMN step_groups TEXT NOT NULL DEFAULT ''",)
_PG_V2 = ("ALTER TABLE opsconsole_locks ADD COLUMN step_groups text NOT NULL DEFAULT ''",)

# version -> (sqlite statements, postgresql statements) that bring the previous version to it.
_MIGRATIONS: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {1: (_SQLITE_V1, _PG_V1), 2: (_SQLITE_V2, _PG_V2)}


def _migrate(ex: Execute, backend: str, location: str) -> None:
    ex("CREATE TABLE IF NOT EXISTS opsconsole_schema (version INTEGER NOT NULL)", ())
    rows = ex("SELECT version FROM opsconsole_schema", ())
    version = rows[0][0] if rows else 0
    if version > SCHEMA_VERSION:
        raise UserError(f"the journal {location} has schema version {version}, newer than this opsconsole "
                        f"understands ({SCHEMA_VERSION}); upgrade opsconsole")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        sqlite_sql, pg_sql = _MIGRATIONS[target]
        for statement in sqlite_sql if backend == "sqlite" else pg_sql:
            ex(statement, ())
    if version != SCHEMA_VERSION:
        if rows:
            ex("UPDATE opsconsole_schema SET version = ?", (SCHEMA_VERSION,))
        else:
            ex("INSERT INTO opsconsole_schema (version) VALUES (?)", (SCHEMA_VERSION,))


class SqliteJournal(Journal):
    backend = "sqlite"

    def __init__(self, path: Path, *, heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S) -> None:
        super().__init__(heartbeat_s=heartbeat_s, stale_after_s=stale_after_s)
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Created private: the journal is masked, but it is still an audit trail of production changes.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            self._conn = self._connect()
            with self._transaction() as ex:
                _migrate(ex, "sqlite", str(path))
        except (OSError, sqlite3.Error) as exc:
            raise UserError(f"cannot open the journal: {exc}", path) from None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")  # a second writer waits instead of failing
        # Switching a new file to WAL fails at once, without the busy handler, while another process does the
        # same (two first users at once): retry it ourselves.
        deadline = time.monotonic() + 30
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        conn.execute("PRAGMA synchronous = FULL")  # fsync the WAL at every commit: durable at return
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @property
    def location(self) -> str:
        return str(self.path)

    @contextmanager
    def _transaction(self) -> Iterator[Execute]:
        with self._mutex, self._unavailable_on_io_errors():
            conn = self._conn
            # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of one
            # failing with "database is locked" when it upgrades a read transaction.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield lambda sql, params: conn.execute(sql, tuple(params)).fetchall()
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT or a full disk may have ended it already
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._mutex, self._unavailable_on_io_errors():
            return self._conn.execute(sql, tuple(params)).fetchall()

    @contextmanager
    def _unavailable_on_io_errors(self) -> Iterator[None]:
        """A full disk, an I/O error or a file gone from under us: the journal is unavailable, not a bug."""
        try:
            yield
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.DataError):
            raise  # our own mistake: a bug, not an outage
        except sqlite3.DatabaseError as exc:
            raise JournalUnavailable(self.location, str(exc)) from None

    def _ts(self, dt: datetime | None) -> str | None:
        return _utc(dt).isoformat(timespec="microseconds") if dt else None

    def _dt(self, value: Any) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    def _json(self, value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)

    def _live_holders(self, environments: set[str]) -> dict[str, str]:
        live = {}
        for environment in environments:
            rows = self._query("SELECT run_id FROM opsconsole_locks WHERE environment = ?", (environment,))
            if rows and flock_held(lock_path(self.path, environment)):
                live[environment] = rows[0][0]
        return live

    def lock(self, environment: str, holder: LockHolder, take_over: bool = False) -> EnvironmentLock:
        path = lock_path(self.path, environment)
        fd = None
        deadline = time.monotonic() + 0.5
        while fd is None:
            fd = try_flock(path)
            # A `journal list` probing the lock holds it for an instant: retry briefly before believing it.
            if fd is None and time.monotonic() > deadline:
                raise LockHeld(environment, self._live_row(_mask(environment)), stale=False)
            if fd is None:
                time.sleep(0.02)
        token = uuid.uuid4().hex
        key = _mask(environment)
        try:
            with self._transaction() as ex:
                rows = ex(f"SELECT {_LOCK_COLUMNS} FROM opsconsole_locks WHERE environment = ?", (key,))
                current = self._holder(rows[0]) if rows else None
                # We hold the flock, so the kernel released theirs. That is a death certificate only once their
                # process is gone too, and so is the guard stopping their step's commands (`local_holder`).
                alive, reason = False, ""
                if current is not None:
                    alive, reason = local_holder(current) or (
                        False, f"process {current.pid} on {current.host} no longer holds the lock")
                previous = self._claim(ex, environment, current, alive, reason, holder, take_over, token, bool(rows))
        except BaseException:
            unflock(fd)
            raise
        beat_conn: list[sqlite3.Connection] = []  # the heartbeat thread's own connection, made on its first beat

        def beat() -> bool:
            if not beat_conn:
                beat_conn.append(self._connect())
            cur = beat_conn[0].execute("UPDATE opsconsole_locks SET heartbeat_at = ? WHERE environment = ? "
                                       "AND token = ?", (self._ts(datetime.now(UTC)), key, token))
            return cur.rowcount == 1

        def drop() -> None:
            try:
                with self._transaction() as ex:
                    ex("DELETE FROM opsconsole_locks WHERE environment = ? AND token = ?", (key, token))
            finally:
                for conn in beat_conn:
                    conn.close()
                unflock(fd)  # the row goes first: a free flock with its row still there reads as a dead holder

        held = EnvironmentLock(environment, holder, token, beat=beat, drop=drop, heartbeat_s=self.heartbeat_s,
                               previous=previous, on_release=self._lock_done,
                               record_groups=self._record_groups(key, token))
        self._locks.add(held)
        return held

    def _live_row(self, key: str) -> LockHolder | None:
        """The holder row of a flock someone holds; it may lag the flock by a moment, so wait for it briefly."""
        deadline = time.monotonic() + 2.0
        while True:
            rows = self._query(f"SELECT {_LOCK_COLUMNS} FROM opsconsole_locks WHERE environment = ?", (key,))
            current = self._holder(rows[0]) if rows else None
            # A row naming a gone process of this host is the previous holder's: the new one is still writing.
            fresh = current is not None and (current.host != socket.gethostname() or pid_alive(current.pid))
            if fresh or time.monotonic() > deadline:
                return current if fresh else None
            time.sleep(0.05)

    def close(self) -> None:
        super().close()
        with self._mutex:
            self._conn.close()


# --- PostgreSQL --------------------------------------------------------------------------------------------------

class PostgresJournal(Journal):
    backend = "postgresql"

    def __init__(self, url: str, *, heartbeat_s: float = HEARTBEAT_S, stale_after_s: float = STALE_AFTER_S) -> None:
        super().__init__(heartbeat_s=heartbeat_s, stale_after_s=stale_after_s)
        self.url = url
        self._conn = self._connect()
        with self._transaction() as ex:
            # Two first users at once must not both create the tables.
            ex("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK_KEY,))
            _migrate(ex, "postgresql", self.location)

    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10, application_name="opsconsole journal")
        except psycopg.OperationalError as exc:  # down, unreachable, refusing us: it may come back
            reason = _one_line(exc)
            raise JournalUnavailable(self.location, f"cannot connect: {reason}",
                                     f"cannot open the journal {self.location}: {reason}") from None
        except psycopg.Error as exc:
            raise UserError(f"cannot open the journal {self.location}: {_one_line(exc)}") from None

    @property
    def location(self) -> str:
        return masking.redact_url(self.url)

    @contextmanager
    def _transaction(self) -> Iterator[Execute]:
        import psycopg

        with self._mutex, ExitStack() as stack:
            for attempt in range(2):
                if self._conn.closed or self._conn.broken:
                    self._conn = self._connect()
                try:
                    stack.enter_context(self._conn.transaction())  # sends BEGIN
                    break
                except psycopg.OperationalError as exc:
                    # The session died while idle (server restart, dropped network): nothing of this transaction
                    # was sent yet, so a fresh session can safely run it.
                    if attempt:
                        raise JournalUnavailable(self.location, _one_line(exc)) from None
                    self._conn.close()
            try:
                cur = stack.enter_context(self._conn.cursor())

                def ex(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
                    cur.execute(sql.replace("?", "%s"), tuple(params))
                    return cur.fetchall() if cur.description else []
                yield ex
            except psycopg.OperationalError as exc:
                raise JournalUnavailable(self.location, _one_line(exc)) from None

    def _ts(self, dt: datetime | None) -> datetime | None:
        return _utc(dt) if dt else None

    def _dt(self, value: Any) -> datetime | None:
        return value.astimezone(UTC) if value else None

    def _json(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(value)

    def _now_sql(self, now: datetime) -> tuple[str, tuple[Any, ...]]:
        return "now()", ()  # the server's clock: heartbeats from hosts with skewed clocks compare fairly

    def _live_holders(self, environments: set[str]) -> dict[str, str]:
        marks = ", ".join("?" for _ in environments)
        rows = self._query(f"SELECT environment, {_LOCK_COLUMNS}, extract(epoch FROM now() - heartbeat_at) "
                           f"FROM opsconsole_locks WHERE environment IN ({marks})", list(environments))
        live = {}
        for r in rows:
            if holder_alive(self._holder(r[1:9]), float(r[9]), self.stale_after_s)[0]:
                live[r[0]] = r[1]
        return live

    def lock(self, environment: str, holder: LockHolder, take_over: bool = False) -> EnvironmentLock:
        token = uuid.uuid4().hex
        key = _mask(environment)
        select = (f"SELECT {_LOCK_COLUMNS}, extract(epoch FROM now() - heartbeat_at) FROM opsconsole_locks "
                  "WHERE environment = ? FOR UPDATE")
        for _ in range(10):
            with self._transaction() as ex:
                rows = ex(select, (key,))
                if not rows:
                    # Free: claim it, unless another acquirer claims it first (then decide about them).
                    if ex(f"INSERT INTO opsconsole_locks (environment, {_LOCK_COLUMNS}, token, heartbeat_at) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()) ON CONFLICT (environment) DO NOTHING "
                          "RETURNING token", (key, holder.run_id, _mask(holder.user), _mask(holder.host), holder.pid,
                                              _mask(holder.runbook), _utc(holder.since), _mask(holder.git_identity),
                                              "", token)):
                        previous = None
                        break
                    rows = ex(select, (key,))
                if rows:
                    current = self._holder(rows[0][:8])
                    alive, reason = holder_alive(current, float(rows[0][8]), self.stale_after_s)
                    previous = self._claim(ex, environment, current, alive, reason, holder, take_over, token, True)
                    break
            # The row came and went between our two statements (a holder released): look again.
        else:
            raise UserError(f"could not take the lock on environment {environment!r}: it changed hands 10 times "
                            f"while we tried; try again")
        beat_conn = [self._connect()]  # its own session: a long engine write never delays a heartbeat

        def beat() -> bool:
            if beat_conn[0].closed or beat_conn[0].broken:
                beat_conn[0] = self._connect()
            cur = beat_conn[0].execute("UPDATE opsconsole_locks SET heartbeat_at = now() WHERE environment = %s "
                                       "AND token = %s", (key, token))
            return cur.rowcount == 1

        def drop() -> None:
            try:
                with self._transaction() as ex:
                    ex("DELETE FROM opsconsole_locks WHERE environment = ? AND token = ?", (key, token))
            finally:
                beat_conn[0].close()

        held = EnvironmentLock(environment, holder, token, beat=beat, drop=drop, heartbeat_s=self.heartbeat_s,
                               previous=previous, on_release=self._lock_done,
                               record_groups=self._record_groups(key, token))
        self._locks.add(held)
        return held

    def close(self) -> None:
        super().close()
        with self._mutex:
            self._conn.close()


_SCHEMA_LOCK_KEY = 0x6F7073636F6E73  # "opscons": serialises schema creation across first users


# --- showing runs (CLI `journal`, reused by the TUI) ----------------------------------------------------------

def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat() if dt else None


def _short(dt: datetime | None) -> str:
    return f"{dt.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z" if dt else "-"


def step_json(step: StepRecord) -> dict[str, Any]:
    return {"index": step.index, "attempt": step.attempt, "title": step.title, "status": step.status,
            "started_at": _iso(step.started_at), "ended_at": _iso(step.ended_at), "commands": list(step.commands),
            "exit_status": step.exit_status, "verification": step.verification, "output_tail": step.output_tail,
            "note": step.note, "recorded": dict(step.recorded), "fingerprint": step.fingerprint}


def run_json(run: RunRecord, detail: bool = False) -> dict[str, Any]:
    """Stable keys, ISO-8601 UTC times. `detail` adds the plan, every step attempt and the events."""
    out: dict[str, Any] = {
        "run_id": run.run_id, "started_at": _iso(run.started_at), "ended_at": _iso(run.ended_at),
        "environment": run.environment, "runbook": run.runbook_name, "runbook_path": run.runbook_path,
        "content_hash": run.content_hash, "plan_fingerprint": run.plan_fingerprint, "status": run.status,
        "user": run.user, "git_identity": run.git_identity, "host": run.host, "pid": run.pid,
        "params": dict(run.params), "steps_done": run.steps_done, "steps_total": run.steps_total,
    }
    if detail:
        out["plan"] = dict(run.plan)
        out["steps"] = [step_json(s) for s in run.steps]
        out["events"] = [{"at": _iso(e.at), "kind": e.kind, "user": e.user, "host": e.host, "pid": e.pid,
                          "detail": e.detail} for e in run.events]
    return out


def format_runs(runs: Sequence[RunRecord]) -> str:
    header = ("RUN ID", "STARTED", "ENVIRONMENT", "RUNBOOK", "STATUS", "USER", "STEPS")
    rows = [header] + [(r.run_id, _short(r.started_at), r.environment, r.runbook_name, r.status, r.user,
                        f"{r.steps_done}/{r.steps_total}") for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def format_run(run: RunRecord) -> str:
    who = run.user + (f" ({run.git_identity})" if run.git_identity else "")
    params = " ".join(f"{k}={v}" for k, v in sorted(run.params.items())) or "-"
    lines = [
        f"run {run.run_id}: {run.status}",
        f"  runbook      {run.runbook_name} ({run.runbook_path}, content sha256 {run.content_hash})",
        f"  environment  {run.environment}",
        f"  by           {who} on {run.host}, pid {run.pid}",
        f"  started      {_short(run.started_at)}",
        f"  ended        {_short(run.ended_at)}",
        f"  params       {params}",
        f"  plan         fingerprint {run.plan_fingerprint}",
        f"  steps        {run.steps_done}/{run.steps_total} done",
    ]
    recorded = {s.index for s in run.steps}
    planned = run.plan.get("steps") if isinstance(run.plan, Mapping) else None
    titles = {}
    if isinstance(planned, Sequence) and not isinstance(planned, str):
        for i, p in enumerate(planned, 1):
            if isinstance(p, Mapping):
                titles[int(p.get("index", i))] = str(p.get("title", f"Step {i}"))
    for step in run.steps:
        lines.append("")
        retry = f", attempt {step.attempt}" if step.attempt > 1 else ""
        lines.append(f"{step.index}. {step.title}: {step.status}{retry} "
                     f"({_short(step.started_at)} .. {_short(step.ended_at)})")
        for command in step.commands:
            lines.append(f"   $ {command}")
        lines.append(f"   exit status: {'-' if step.exit_status is None else step.exit_status}")
        if step.verification:
            lines.append(f"   verification: {step.verification}")
        if step.note:
            lines.append(f"   note: {step.note}")
        if step.recorded:
            lines.append("   recorded: " + " ".join(f"previous.{k}={v}" for k, v in sorted(step.recorded.items())))
        if step.output_tail:
            lines.append("   output (tail):")
            lines.extend(f"   | {line}" for line in step.output_tail.rstrip("\n").splitlines())
    for index, title in sorted(titles.items()):
        if index not in recorded:
            lines.append("")
            lines.append(f"{index}. {title}: not run")
    if run.events:
        lines.append("")
        lines.append("events:")
        lines.extend(f"  {_short(e.at)}  {e.kind}: {e.detail} ({e.user} on {e.host}, pid {e.pid})" for e in run.events)
    return "\n".join(lines)
