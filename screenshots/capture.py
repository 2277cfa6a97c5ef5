"""Render the real app to SVG after its first probe round.

Usage: .venv/bin/python screenshots/capture.py CONFIG OUTPUT.svg [--env NAME] [--size 100x24]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opsconsole import config  # noqa: E402
from opsconsole.ui.app import OpsConsole  # noqa: E402


async def capture(cfg_path: str, output: Path, env: str | None, size: tuple[int, int]) -> None:
    cfg = config.load(cfg_path)
    app = OpsConsole(cfg, cfg.environment(env))
    async with app.run_test(size=size) as pilot:
        for _ in range(400):
            await pilot.pause(0.05)
            if app.last_round is not None:
                break
        await pilot.pause(0.2)
        app.save_screenshot(filename=output.name, path=str(output.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("output", type=Path)
    parser.add_argument("--env")
    parser.add_argument("--size", default="100x24")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    asyncio.run(capture(args.config, args.output, args.env, (width, height)))


if __name__ == "__main__":
    main()
