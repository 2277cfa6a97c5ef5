"""The header on every screen: the environment badge, its status with the members that are not ok, and the probe
round clock.

Production is a red header with the name in capitals, on the dashboard, in every detail view and
under every dialog, so nobody mistakes where they are. The status names its members ("CRIT: orders, nest"): a
crit member below the fold of the dashboard must not hide behind a bare CRIT. Names come before the clock when
80 columns are not enough for both; what does not fit is counted ("+2 more").
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from opsconsole.config import Environment
from opsconsole.health import Status

# The worst first: the first group is the environment's own status word, the others follow when there is room.
_GROUP_ORDER = (Status.CRIT, Status.UNKNOWN, Status.WARN)


def badge_text(environment: Environment, read_only: bool) -> str:
    if environment.is_production:
        text = f"▲ {environment.name.upper()} ▲"
    else:
        text = environment.name
    return text + (" · READ-ONLY" if read_only else "")


def problem_groups(members: Sequence[tuple[str, Status]]) -> list[tuple[Status, list[str]]]:
    """The members that are not ok, by status, worst first, each group in the order given (config order)."""
    groups = [(status, [name for name, s in members if s is status]) for status in _GROUP_ORDER]
    return [(status, names) for status, names in groups if names]


def group_text(status: Status, names: Sequence[str], room: int, *, required: bool = False) -> str | None:
    """`CRIT: orders, nest`, or as many names as fit `room` cells with the rest counted (`CRIT: orders +3 more`),
    a long first name cut (`CRIT: payments-repl… +1 more`), then a count (`CRIT ×12`). None when nothing fits,
    unless `required` (the environment's own status word is always shown, cropped if it must be)."""
    word = status.value.upper()
    count = len(names)
    for shown in range(count, 0, -1):
        more = f" +{count - shown} more" if shown < count else ""
        candidate = f"{word}: {', '.join(names[:shown])}{more}"
        if cell_len(candidate) <= room:
            return candidate
    more = f" +{count - 1} more" if count > 1 else ""
    first = names[0]
    keep = room - cell_len(f"{word}: …{more}")
    if keep >= 4:  # enough of the name to recognise it
        while cell_len(first) > keep:
            first = first[:-1]
        return f"{word}: {first}…{more}"
    counted = f"{word} ×{count}"
    if cell_len(counted) <= room:
        return counted
    return word if required or cell_len(word) <= room else None


class EnvHeader(Horizontal):
    DEFAULT_CSS = """
    EnvHeader {
        height: 1;
        background: $panel;
    }
    EnvHeader.production {
        background: $badge-production 35%;
    }
    EnvHeader #badge {
        width: auto;
        text-style: bold;
        padding: 0 1;
        background: $badge-other;
        color: $badge-other-text;
    }
    EnvHeader.production #badge {
        background: $badge-production;
        color: $badge-production-text;
    }
    EnvHeader #env-status, EnvHeader .more {
        width: auto;
        padding: 0 1;
        text-style: bold;
    }
    EnvHeader .more { display: none; }
    EnvHeader .more.-shown { display: block; }
    EnvHeader #env-status.ok { color: $status-ok; }
    EnvHeader #env-status.warn, EnvHeader #more-warn { color: $status-warn; }
    EnvHeader #env-status.crit { background: $status-crit; color: $badge-production-text; }
    EnvHeader #env-status.unknown, EnvHeader #more-unknown { color: $status-unknown; }
    EnvHeader #round-info {
        width: 1fr;
        content-align: right middle;
        color: $text-muted;
        padding: 0 1;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._badge = ""
        self._status: Status | None = None
        self._groups: list[tuple[Status, list[str]]] = []
        self._round_variants: tuple[str, ...] = ("waiting for the first probe round…",)
        self._shown: dict[str, str] = {}  # part id -> the text it shows

    def compose(self) -> ComposeResult:
        yield Static(id="badge", markup=False)
        yield Static("…", id="env-status", markup=False)
        for status in _GROUP_ORDER[1:]:  # the groups after the first; crit is always the first when there is one
            yield Static("", id=f"more-{status.value}", classes="more", markup=False)
        yield Static(self._round_variants[0], id="round-info", markup=False)

    def on_mount(self) -> None:
        self._fit()

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    def show_environment(self, environment: Environment, read_only: bool) -> None:
        self.set_class(environment.is_production, "production")
        self._badge = badge_text(environment, read_only)
        self._fit()

    def show_status(self, status: Status | None, members: Sequence[tuple[str, Status]] = ()) -> None:
        """The environment's status and its members' (name, status) in config order: those not ok are named."""
        groups = problem_groups(members) if status is not None else []
        if status is self._status and groups == self._groups:
            return  # unchanged: no restyle, no layout
        self._status, self._groups = status, groups
        for widget in self._part("#env-status"):
            for s in Status:
                widget.set_class(status is s, s.value)
        self._fit()

    def show_round_info(self, text: str | Sequence[str]) -> None:
        """The round clock; several variants, longest first, let it shrink to leave the names room."""
        variants = (text,) if isinstance(text, str) else tuple(text)
        if variants != self._round_variants:
            self._round_variants = variants
            self._fit()

    def _fit(self) -> None:
        """Share the line: the badge, then the status and the names, then the clock in what is left."""
        if not self.is_mounted:
            return
        width = self.size.width or self.app.size.width
        room = width - cell_len(self._badge) - 2
        shortest = min(self._round_variants, key=cell_len, default="")
        names_room = room - (cell_len(shortest) + 2 if shortest else 0)
        texts: dict[str, str] = {}
        if self._status is None:
            texts["env-status"] = "…"
        else:
            groups = self._groups
            if groups and groups[0][0] is self._status:
                first = group_text(self._status, groups[0][1], names_room - 2, required=True) or ""
                groups = groups[1:]
            else:  # ok, or a status no member has (never, while it is the worst of them)
                first = self._status.value.upper()
            texts["env-status"] = first
            left = names_room - cell_len(first) - 2
            for status, names in groups:
                more = group_text(status, names, left - 2)
                if more is None:
                    break  # the worse group did not fit: a milder one after it would mislead
                texts[f"more-{status.value}"] = more
                left -= cell_len(more) + 2
        used = sum(cell_len(t) + 2 for t in texts.values())
        clock_room = room - used - 2
        texts["round-info"] = next((v for v in self._round_variants if cell_len(v) <= clock_room),
                                   self._round_variants[-1] if self._round_variants else "")
        texts["badge"] = self._badge
        for status in _GROUP_ORDER[1:]:
            texts.setdefault(f"more-{status.value}", "")
        for part, value in texts.items():
            if self._shown.get(part) == value:
                continue
            self._shown[part] = value
            for widget in self._part(f"#{part}"):
                # The clock changes every second: a repaint of one fixed-width cell, never a layout.
                widget.update(value, layout=part != "round-info")
                if widget.has_class("more"):
                    widget.set_class(bool(value), "-shown")

    def _part(self, selector: str) -> list[Static]:
        # Empty only while the app shuts down: its children go first, and a timer may still tick then.
        return list(self.query_children(selector).results(Static))
