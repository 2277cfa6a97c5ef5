"""Record the rounds the UI snapshot tests replay, from real probes of a real stack.

    .venv/bin/python -m tests.ui.record

Rewrites tests/ui/recordings/*.json. Run it when a probe's output changes on purpose, then review
the snapshot diffs (`pytest tests/ui --snapshot-update`).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.demo import DemoStack, record, save_recording

HERE = Path(__file__).resolve().parent / "recordings"


def main() -> None:
    stack = DemoStack()
    try:
        # Healthy: everything answers; the queue drains 25 jobs a round.
        stack.fill_queue(320)
        text = stack.config_text()
        rounds = asyncio.run(record(stack.environment("staging"), 12, lambda i: stack.drain_queue(25)))
        save_recording(HERE / "healthy.json", text, rounds)

        # Degraded: the API reports a degraded and a down dependency, the queue backs up past crit,
        # and Redis dies after a few rounds (so its panel shows the error and the failure count).
        stack.fill_queue(900)
        text = stack.config_text(api_path="/health")

        def worsen(i: int) -> None:
            if i < 7:
                stack.redis.cli("LPUSH", "emails", *[f"late-{i}-{j}" for j in range(60)])
            if i == 7:
                stack.redis.stop(signal.SIGKILL)

        rounds = asyncio.run(record(stack.environment("staging", api_path="/health"), 11, worsen))
        save_recording(HERE / "degraded.json", text, rounds)
    finally:
        stack.close()
    print(f"wrote {HERE}/healthy.json and degraded.json")


if __name__ == "__main__":
    main()
