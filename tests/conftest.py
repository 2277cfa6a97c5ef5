from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Blackhole, HTTPServer, PostgresServer, RedisServer, TLSFiles, make_tls, tempdir

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tls() -> Iterator[TLSFiles]:
    root = tempdir("opsconsole-tls-")
    files = make_tls(root)
    os.chmod(root, 0o755)
    for f in root.iterdir():
        os.chmod(f, 0o644)
    yield files


@pytest.fixture(scope="session")
def pg(tls: TLSFiles) -> Iterator[PostgresServer]:
    server = PostgresServer(tempdir("opsconsole-pg-"), tls)
    server.start()
    yield server
    server.close()


@pytest.fixture
def pg_running(pg: PostgresServer) -> PostgresServer:
    """The session cluster, restarted if an earlier test stopped it."""
    pg.start()
    return pg


@pytest.fixture(scope="session")
def redis_server(tls: TLSFiles) -> Iterator[RedisServer]:
    server = RedisServer(tempdir("opsconsole-redis-"), tls)
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_running(redis_server: RedisServer) -> RedisServer:
    redis_server.start()
    return redis_server


@pytest.fixture(scope="session")
def http_server() -> Iterator[HTTPServer]:
    server = HTTPServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def https_server(tls: TLSFiles) -> Iterator[HTTPServer]:
    server = HTTPServer(tls)
    yield server
    server.close()


@pytest.fixture(scope="session")
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


@pytest.fixture
def write_config(tmp_path: Path):
    """Write opsconsole.toml (dedented) into a fresh directory; returns its path."""
    def write(text: str, name: str = "opsconsole.toml", files: dict[str, str] | None = None) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        for filename, content in (files or {}).items():
            (tmp_path / filename).write_text(textwrap.dedent(content))
        return path
    return write


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run `python -m opsconsole` as a real process; returns CompletedProcess."""
    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
        full_env.pop("DATABASE_URL", None)
        full_env.pop("REDIS_URL", None)
        full_env.update(env or {})
        return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True,
                              env=full_env, cwd=cwd or tmp_path, timeout=60)
    return run
