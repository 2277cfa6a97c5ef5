"""A small real stack to point opsconsole at: PostgreSQL, Redis and an HTTP health endpoint of our own.

Used by the UI recordings (tests/ui/record.py), the screenshots script and the dashboard benchmark,
so every picture and figure comes from the real app probing real servers.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from opsconsole import config
from opsconsole.config import Environment
from opsconsole.health import Reading, Round, Status
from tests.servers import HTTPServer, PostgresServer, RedisServer, tempdir


class DemoStack:
    def __init__(self) -> None:
        self.pg = PostgresServer(tempdir("opsconsole-demo-pg-"), None)
        self.redis = RedisServer(tempdir("opsconsole-demo-redis-"))
        self.http = HTTPServer()
        self.pg.start()
        self.redis.start()

    def config_text(self, api_path: str = "/healthy", extra: str = "") -> str:
        """`staging` and `production` share the stack; production is protected by a typed confirmation."""
        out = ["[opsconsole]", "refresh = 5", "timeout = 1.0", extra, ""]
        for env, protection in (("staging", "confirm"), ("production", "typed")):
            out += [
                f"[environments.{env}]", 'provider = "local"', f'protection = "{protection}"', "",
                f"[environments.{env}.services.db]", f'url = "{self.pg.url()}"', "",
                f"[environments.{env}.services.cache]", f'url = "{self.redis.url}"', "",
                f"[environments.{env}.services.api]", 'kind = "http"', f'url = "{self.http.url(api_path)}"', "",
                f"[environments.{env}.queues.emails]", 'kind = "redis-list"', f'url = "{self.redis.url}"',
                "thresholds = { depth = { warn = 500, crit = 1000 } }", "",
            ]
        return "\n".join(out)

    def environment(self, name: str = "staging", **kw: Any) -> Environment:
        return config.parse(self.config_text(**kw), None, Path.cwd()).environment(name)

    def fill_queue(self, n: int, name: str = "emails") -> None:
        self.redis.cli("DEL", name)
        for start in range(0, n, 500):
            self.redis.cli("LPUSH", name, *[f"job-{i}" for i in range(start, min(n, start + 500))])

    def drain_queue(self, n: int, name: str = "emails") -> None:
        self.redis.cli("LTRIM", name, "0", str(-n - 1))

    def close(self) -> None:
        self.http.close()
        self.redis.close()
        self.pg.close()


def round_to_json(rnd: Round) -> dict[str, Any]:
    """A lossless recording of a round (unlike `check --json`, which is for people and scripts)."""
    readings = []
    for r in rnd.readings:
        item = asdict(r)
        item["status"] = r.status.value
        item["checked_at"] = r.checked_at.isoformat()
        readings.append(item)
    return {"environment": rnd.environment, "started_at": rnd.started_at.isoformat(),
            "duration_s": rnd.duration_s, "readings": readings}


def round_from_json(data: dict[str, Any]) -> Round:
    readings = []
    for item in data["readings"]:
        item = dict(item)
        item["status"] = Status(item["status"])
        item["checked_at"] = datetime.fromisoformat(item["checked_at"])
        item["reasons"] = tuple(item["reasons"])
        readings.append(Reading(**item))
    return Round(data["environment"], datetime.fromisoformat(data["started_at"]), data["duration_s"], tuple(readings))


def save_recording(path: Path, config_text: str, rounds: list[Round]) -> None:
    path.write_text(json.dumps({"config": config_text, "rounds": [round_to_json(r) for r in rounds]}, indent=1) + "\n")


async def record(environment: Environment, rounds: int, between: Any = None) -> list[Round]:
    """Probe `environment` for real `rounds` times; `between(i)` may change the stack between rounds."""
    from opsconsole.health import Monitor

    monitor = Monitor(environment, 1.0)
    out = []
    try:
        for i in range(rounds):
            out.append(await monitor.round())
            if between is not None:
                between(i)
            await asyncio.sleep(0.2)
    finally:
        await monitor.aclose()
    return out
