"""Screenshots of the real app probing a real stack, for the README.

    .venv/bin/python screenshots/capture.py

Starts a throwaway PostgreSQL, Redis and HTTP health endpoint (tests/demo.py), points opsconsole at
them and renders the dashboard after real probe rounds: healthy, degraded (a dependency down, a
queue backing up, Redis killed), a production environment, the light theme, and a detail view; then a
real runbook run, its journal entry, a typed confirmation on production, and the secret rotation flow.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opsconsole import config  # noqa: E402
from opsconsole.ui.app import create  # noqa: E402
from tests.demo import DemoStack  # noqa: E402

HERE = Path(__file__).resolve().parent


async def capture(text: str, output: str, env: str, size: tuple[int, int], rounds: int = 6,
                  between=None, keys: tuple[str, ...] = ()) -> None:
    app = app_in_own_folder(text, env)
    async with app.run_test(size=size) as pilot:
        for i in range(rounds):
            while app.rounds_shown <= i:
                await pilot.pause(0.02)
            if between is not None:
                between(i)
            if i < rounds - 1:
                await pilot.pause(0.25)  # rounds a little apart, so queue trends have time in them
                app.action_refresh_now()
        if keys:
            await pilot.press(*keys)
        await pilot.pause(0.3)
        app.save_screenshot(filename=output, path=str(HERE))
    print(f"wrote screenshots/{output}")


def app_in_own_folder(text: str, env: str):
    """The app on `text` as a config in a folder of its own, with a journal of its own (runs are made there)."""
    folder = Path(tempfile.mkdtemp(prefix="opsconsole-shot-"))
    (folder / "opsconsole.toml").write_text(text)
    os.environ["OPSCONSOLE_JOURNAL"] = str(folder / "journal.sqlite3")
    cfg = config.load(str(folder / "opsconsole.toml"))
    return create(cfg, cfg.environment(env))


async def capture_run(text: str, env: str, output: str, size: tuple[int, int], finish: bool) -> None:
    """The run screen of a real runbook: run to the end (confirming each change), or stopped at the first
    confirmation."""
    from opsconsole import runbook
    from opsconsole.ui.dialogs.confirm import ConfirmDialog
    from opsconsole.ui.screens.run import RunScreen

    app = app_in_own_folder(text, env)
    async with app.run_test(size=size) as pilot:
        while app.rounds_shown < 2:
            await pilot.pause(0.05)
            if app.rounds_shown == 1:
                app.action_refresh_now()
        book = runbook.load(ROOT / "tests" / "ui" / "runbooks" / "scale-workers.md")
        app.plan_runbook(book, {"replicas": "6"})
        while not isinstance(app.screen, RunScreen):
            await pilot.pause(0.05)
        run = app.screen
        await pilot.pause(0.3)
        await pilot.press("s")
        while True:
            await pilot.pause(0.05)
            if isinstance(app.screen, ConfirmDialog):
                if not finish:
                    break
                await pilot.click("#confirm")
            if run.finished is not None:
                break
        await pilot.pause(0.5)
        app.save_screenshot(filename=output, path=str(HERE))
        print(f"wrote screenshots/{output}")
        if finish:  # the run just made, as the journal shows it
            from opsconsole.ui.screens.journal import JournalScreen

            await pilot.press("escape", "j")
            while not (isinstance(app.screen, JournalScreen) and app.screen.loads >= 1):
                await pilot.pause(0.05)
            await pilot.pause(0.3)
            app.save_screenshot(filename="journal.svg", path=str(HERE))
            print("wrote screenshots/journal.svg")


async def capture_plain(text: str, env: str, size: tuple[int, int]) -> None:
    """A team's own operations doc (tests/fixtures/plain/common-operations.md: `###` sections, a `<new_secret>`
    placeholder, `openssl rand`, `railway logs -f`) planned as a guided run, before anything starts."""
    from opsconsole import runbook
    from opsconsole.ui.screens.run import RunScreen

    app = app_in_own_folder(text, env)
    async with app.run_test(size=size) as pilot:
        while app.rounds_shown < 1:
            await pilot.pause(0.05)
        book = runbook.load(ROOT / "tests" / "fixtures" / "plain" / "common-operations.md")
        app.plan_runbook(book, {"new_secret": "a-new-signing-key-0042"})
        while not isinstance(app.screen, RunScreen):
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        await pilot.press("down", "down", "down")  # the Rotate Secrets step: its placeholder, masked
        await pilot.pause(0.3)
        app.save_screenshot(filename="plain-doc.svg", path=str(HERE))
        print("wrote screenshots/plain-doc.svg")


async def capture_secrets(text: str, env: str, size: tuple[int, int]) -> None:
    """The secret rotation flow: the list of rotatable secrets, then the summary shown before a rotation."""
    from opsconsole.ui.screens.secrets import RotationSummary, SecretsScreen

    folder = Path(tempfile.mkdtemp(prefix="opsconsole-shot-"))
    api = f'[environments.{env}.services.api]\nkind = "http"\n'
    text = text.replace(api, api + 'restart = "echo restarting api"\n', 1)
    text += (f'\n[environments.{env}.secrets.JWT_SECRET]\nrestart = ["api"]\n'
             f'\n[environments.{env}.secrets.SESSION_KEY]\nrestart = ["api"]\nalphabet = "urlsafe"\nlength = 48\n')
    (folder / "opsconsole.toml").write_text(text)
    (folder / f".env.{env}").write_text(f"JWT_SECRET={os.urandom(16).hex()}\nSESSION_KEY={os.urandom(16).hex()}\n")
    os.environ["OPSCONSOLE_JOURNAL"] = str(folder / "journal.sqlite3")
    cfg = config.load(str(folder / "opsconsole.toml"))
    app = create(cfg, cfg.environment(env))
    async with app.run_test(size=size) as pilot:
        while app.rounds_shown < 1:
            await pilot.pause(0.05)
        await pilot.press("x")
        while not (isinstance(app.screen, SecretsScreen) and app.screen.loads >= 1):
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        app.save_screenshot(filename="secrets.svg", path=str(HERE))
        print("wrote screenshots/secrets.svg")
        await pilot.press("enter")
        while not isinstance(app.screen, RotationSummary):
            await pilot.pause(0.05)
        await pilot.pause(0.3)
        app.save_screenshot(filename="rotate-secret.svg", path=str(HERE))
        print("wrote screenshots/rotate-secret.svg")


# The README shows the app as it looks in a laptop's 80x24 terminal and on a large screen.
SMALL = (80, 24)
LARGE = (200, 50)


def main() -> None:
    # The journal records the git identity; the pictures show an on-call engineer's, not this machine's.
    os.environ.update(GIT_CONFIG_COUNT="2", GIT_CONFIG_KEY_0="user.name", GIT_CONFIG_VALUE_0="Ana On-call",
                      GIT_CONFIG_KEY_1="user.email", GIT_CONFIG_VALUE_1="ana@example.com")
    stack = DemoStack()
    try:
        stack.fill_queue(420)
        text = stack.config_text()
        drain = lambda i: stack.drain_queue(30)  # noqa: E731
        asyncio.run(capture(text, "dashboard-healthy.svg", "staging", SMALL, between=drain))
        asyncio.run(capture(text, "dashboard-production.svg", "production", LARGE, between=drain))
        asyncio.run(capture(text.replace("[opsconsole]\n", '[opsconsole]\ntheme = "opsconsole-light"\n', 1),
                            "dashboard-light.svg", "staging", SMALL, between=drain))
        asyncio.run(capture(text, "detail.svg", "staging", SMALL, between=drain, keys=("enter",)))

        stack.fill_queue(240)  # a backlog for the run to check: a queue that is not there proves nothing
        asyncio.run(capture_run(text, "staging", "run-screen.svg", LARGE, finish=True))
        asyncio.run(capture_run(text, "production", "confirm-typed.svg", SMALL, finish=False))
        asyncio.run(capture_secrets(text, "staging", SMALL))
        asyncio.run(capture_plain(text, "staging", LARGE))

        stack.fill_queue(880)
        degraded = stack.config_text(api_path="/health")

        def worsen(i: int) -> None:
            stack.redis.cli("LPUSH", "emails", *[f"late-{i}-{j}" for j in range(40)])

        asyncio.run(capture(degraded, "dashboard-degraded.svg", "staging", LARGE, rounds=8, between=worsen))
        stack.redis.stop(signal.SIGKILL)
        asyncio.run(capture(degraded, "dashboard-down.svg", "staging", SMALL, rounds=3))
    finally:
        stack.close()


if __name__ == "__main__":
    main()
