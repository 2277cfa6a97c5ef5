"""Recorded rounds played back through the app, for snapshots that do not change between runs."""

from __future__ import annotations

import json
from collections import deque
from datetime import timezone
from pathlib import Path

from opsconsole import config
from opsconsole.health import Reading, Round
from opsconsole.ui.app import OpsConsole, create
from tests.demo import round_from_json

RECORDINGS = Path(__file__).resolve().parent / "recordings"


class Replay:
    """Stands in for the Monitor: hands out recorded rounds in order, then keeps returning the last."""

    def __init__(self, rounds: list[Round]) -> None:
        self.rounds = rounds
        self.given = 0
        self.history: dict[str, deque[Reading]] = {}
        self.running = False

    async def round(self) -> Round:
        rnd = self.rounds[min(self.given, len(self.rounds) - 1)]
        if self.given < len(self.rounds):
            for r in rnd.readings:
                self.history.setdefault(r.name, deque(maxlen=120)).append(r)
        self.given += 1
        return rnd

    async def aclose(self) -> None:
        pass


RUNBOOKS = Path(__file__).resolve().parent / "runbooks"


def replay_app(name: str, environment: str = "staging", theme: str | None = None,
               read_only: bool = False) -> tuple[OpsConsole, int]:
    data = json.loads((RECORDINGS / f"{name}.json").read_text())
    text = data["config"]
    # Fixed runbooks for the snapshots (the shipped ones change as they improve).
    settings = f'runbooks = "{RUNBOOKS}"\n' + (f'theme = "{theme}"\n' if theme else "")
    text = text.replace("[opsconsole]\n", "[opsconsole]\n" + settings, 1)
    rounds = [round_from_json(r) for r in data["rounds"]]
    cfg = config.parse(text, None, Path.cwd())
    app = create(cfg, cfg.environment(environment), read_only,
                 monitor_factory=lambda env, timeout: Replay(rounds), clock=lambda: 0.0, tz=timezone.utc)
    return app, len(rounds)


async def play_all(app: OpsConsole, pilot, count: int) -> None:
    """Show every recorded round, one refresh after another."""
    for shown in range(1, count + 1):
        while app.rounds_shown < shown:
            await pilot.pause(0.01)
        if shown < count:
            app.action_refresh_now()
    await pilot.pause(0.1)
