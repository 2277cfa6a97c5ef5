"""The terminal driver: Textual's Linux driver, made to survive a terminal that goes away.

Closing a terminal (an SSH session drops, a window is shut) hangs it up: the kernel sends SIGHUP and then SIGCONT,
and every later write to it fails with EIO. Textual's driver was not made for that, and a third of the dashboards
hung up in their first 3 s (50 members) stayed for ever at 0 % CPU, deaf to SIGTERM:

- its SIGCONT handler starts application mode again on any SIGCONT, hang-up included: a second writer thread, which
  dies on its first write (EIO), and a second input thread beside the first;
- a writer thread that died leaves its bounded queue (30 writes) without a reader, and the 31st write — in
  `App._shutdown` — waits for ever.

Here only a SIGCONT that ends a suspension resumes application mode, and a failed write marks the output gone: every
later write is dropped, so the writer thread lives to drain its queue and no shutdown waits on the terminal.
"""

from __future__ import annotations

import os
import threading
from typing import IO, Any

from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver


class TerminalOutput:
    """The stream the driver's writer thread writes to. Once a write or flush fails (EIO after a hang-up) the output
    is gone and every later write is dropped: the writer thread never raises, so it lives to drain its queue."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._gone = threading.Event()

    @property
    def gone(self) -> bool:
        return self._gone.is_set()

    def write(self, text: str) -> int:
        if not self._gone.is_set():
            try:
                self._stream.write(text)
            except (OSError, ValueError):  # ValueError: the stream was closed
                self._gone.set()
        return len(text)

    def flush(self) -> None:
        if not self._gone.is_set():
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._gone.set()

    def fileno(self) -> int:
        return self._stream.fileno()


class TerminalDriver(LinuxDriver):
    """Textual's Linux driver writing through a `TerminalOutput`, resuming only what a suspension stopped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assert self._file is not None, "Textual's Linux driver writes to sys.__stderr__"
        self.output = TerminalOutput(self._file)
        self._file = self.output  # type: ignore[assignment]  # what the writer thread writes to
        self._suspended = False

    def suspend_application_mode(self) -> None:
        super().suspend_application_mode()
        self._suspended = True

    def resume_application_mode(self) -> None:
        """Resume after a suspension only, and only onto a terminal that is still there: the kernel sends SIGCONT
        with every hang-up, and Textual's handler resumes on any SIGCONT."""
        if not self._suspended or self.output.gone or not os.isatty(self.fileno):
            return
        self._suspended = False
        super().resume_application_mode()


def terminal_driver(chosen: type[Driver]) -> type[Driver]:
    """The driver to run with: ours where Textual chose its own Linux driver; any other (headless, web, one named
    by TEXTUAL_DRIVER) as it is."""
    return TerminalDriver if chosen is LinuxDriver else chosen
