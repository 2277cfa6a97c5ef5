"""The guard of opsconsole's commands (see opsconsole.runner): run as `python -I -S _guard.py opsconsole-guard
PID GRACE_S`, in a session of its own, by the process PID it guards.

Reads on stdin `?TOKEN` (a command is about to start with OPSCONSOLE_STEP=TOKEN in its environment), `+PGID TOKEN`
(it started, in process group PGID) and `-PGID` (it ended). At EOF, PID is gone, however it went: every group
still running gets SIGTERM, then SIGKILL after GRACE_S seconds, and so do the groups of commands that started but
were never told (found by their token in /proc/*/environ). Standard library only: it must start fast and alone.
"""

import os
import signal
import sys
import time


def main() -> None:
    for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(s, signal.SIG_IGN)
    grace = float(sys.argv[3])
    groups: set[int] = set()
    armed: set[bytes] = set()
    for line in sys.stdin.buffer:  # EOF: whoever started us is gone, however it went
        op, _, rest = line.strip().partition(b" ")
        try:
            if op[:1] == b"?":  # a command is about to start, with this token in its environment
                armed.add(op[1:])
            elif op[:1] == b"+":  # it started: its group, and its token is no longer needed
                groups.add(int(op[1:]))
                armed.discard(rest)
            elif op[:1] == b"-":
                groups.discard(int(op[1:]))
        except ValueError:
            pass
    def stat(entry):
        try:
            with open("/proc/" + entry + "/stat", "rb") as f:
                data = f.read()
        except OSError:
            return None
        return data[data.rfind(b")") + 2:].split()
    if armed and os.path.isdir("/proc"):  # killed between starting a command and telling us its group
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/" + entry + "/environ", "rb") as f:
                        found = set(f.read().split(b"\0"))
                except OSError:
                    continue
                fields = stat(entry)
                if fields and any(b"OPSCONSOLE_STEP=" + token in found for token in armed):
                    groups.add(int(fields[2]))
    def alive(pgid):
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
            if entry.isdigit():
                fields = stat(entry)
                if fields and len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] not in (b"Z", b"X"):
                    return True
        if not os.path.isdir("/proc"):
            try:
                os.killpg(pgid, 0)
                return True
            except OSError:
                return False
        return False
    def signal_all(sig):
        for pgid in groups:
            try:
                os.killpg(pgid, sig)
            except OSError:
                pass
    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        groups = {g for g in groups if alive(g)}
        time.sleep(0.02)
    signal_all(signal.SIGKILL)
    deadline = time.monotonic() + 2
    while groups and time.monotonic() < deadline:
        groups = {g for g in groups if alive(g)}
        time.sleep(0.02)


if __name__ == "__main__":
    main()
