from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from opsconsole import config
from opsconsole.config import Environment
from opsconsole.health import Monitor, Round

pytestmark = pytest.mark.integration


def environment(members: dict[str, dict], queues: dict[str, dict] | None = None, name: str = "t") -> Environment:
    """An environment built from member tables, through the real config parser."""
    lines = [f"[environments.{name}]"]
    for group, table in (("services", members), ("queues", queues or {})):
        for member, spec in table.items():
            lines.append(f"[environments.{name}.{group}.{member}]")
            for key, value in spec.items():
                lines.append(f"{key} = {json.dumps(value) if not isinstance(value, dict) else _inline(value)}")
    return config.parse("\n".join(lines) + "\n", None, Path.cwd()).environment(name)


def _inline(table: dict) -> str:
    return "{ " + ", ".join(f"{k} = {_inline(v) if isinstance(v, dict) else json.dumps(v)}" for k, v in table.items()) + " }"


def probe_once(members: dict[str, dict], timeout: float = 2.0, **kw) -> Round:
    async def run() -> Round:
        monitor = Monitor(environment(members, **kw), timeout)
        try:
            return await monitor.round()
        finally:
            await monitor.aclose()
    return asyncio.run(run())
