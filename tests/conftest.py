from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from tests.servers import (Blackhole, HTTPServer, PostgresServer, RedisServer, TLSFiles, free_port, make_tls, missing,
                           tempdir, wait_port)

ROOT = Path(__file__).resolve().parent.parent

# Property tests' budgets (tests/budget.py scales each test's count by the active profile's max_examples):
# "default", inside `make test`: the same examples on every run and machine, no deadline for a slow CI,
# about 12 s for all of them. "fuzz", `make fuzz` (HYPOTHESIS_PROFILE=fuzz): 40 times as many, about
# 8 minutes on 2 cores, new ones each run, and every failure kept in .hypothesis/ (gitignored) to be tried
# first the next time.
settings.register_profile("default", max_examples=100, derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=4000, derandomize=False, deadline=None, print_blob=True,
                          database=DirectoryBasedExampleDatabase(ROOT / ".hypothesis" / "examples"),
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def own_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets a user state dir of its own: the default journal and backups never touch the
    developer's (~/.local/state/opsconsole), and no test sees runs another left behind."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.delenv("OPSCONSOLE_JOURNAL", raising=False)


@pytest.fixture(autouse=True)
def own_secrets() -> Iterator[None]:
    """Secrets a test registers (directly, or by planning a runbook with a secret param) are forgotten after it,
    as they are when an opsconsole process exits: a property test that registered "7" must not mask the next
    test's exit status. What was registered before the test (at import, by a wider fixture) stays."""
    from opsconsole import masking

    with masking._lock:
        before = set(masking._secrets)
    yield
    with masking._lock:
        masking._secrets.clear()
        masking._secrets.update(before)


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
    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            stdin: int | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPSCONSOLE")}
        full_env.pop("DATABASE_URL", None)
        full_env.pop("REDIS_URL", None)
        full_env.update(env or {})
        return subprocess.run([sys.executable, "-m", "opsconsole", *args], capture_output=True, text=True,
                              env=full_env, cwd=cwd or tmp_path, timeout=timeout, stdin=stdin)
    return run


@dataclass(frozen=True)
class FileKeyring:
    """A real keyring backend (keyrings.alt's PlaintextKeyring) writing to a file under the test's tmp dir."""

    path: Path                # the file the backend writes
    env: dict[str, str]       # what a subprocess needs to use the same keyring

    def read_bytes(self) -> bytes:
        return self.path.read_bytes() if self.path.exists() else b""

    def holds(self, value: str) -> bool:
        """Whether the file holds `value` (the backend stores values base64-encoded, wrapped over lines)."""
        import base64

        data = self.read_bytes()
        return value.encode() in data or base64.b64encode(value.encode()) in b"".join(data.split())


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileKeyring]:
    """Point keyring (in this process and in `run_cli` children given `.env`) at a file in tmp_path.

    No OS keyring daemon runs here, so the tests use keyrings.alt's file backend: a real backend that
    writes a real file, chosen explicitly through PYTHON_KEYRING_BACKEND as a user would.
    """
    import keyring
    import keyring.core

    data, conf = tmp_path / "keyring-data", tmp_path / "keyring-config"
    env = {"PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
           "XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(conf)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    previous = keyring.get_keyring()
    keyring.core.init_backend()
    try:
        yield FileKeyring(data / "python_keyring" / "keyring_pass.cfg", env)
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def no_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A machine without a keyring backend (keyring's own `fail` backend); returns the env for subprocesses."""
    import keyring
    import keyring.core

    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
           "XDG_DATA_HOME": str(tmp_path / "keyring-data"), "XDG_CONFIG_HOME": str(tmp_path / "keyring-config")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    previous = keyring.get_keyring()
    keyring.core.init_backend()
    try:
        yield env
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server (real HTTP, the real boto3 on the client side) for SQS, ECS, RDS and Secrets Manager.

    Its state lives for the session: tests use names of their own. Credentials: see `aws`."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto server's URL, with throwaway AWS credentials in the environment (this process and `run_cli`
    children) and nothing from the machine's own AWS setup (profiles, instance metadata)."""
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
                "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return moto_server


@pytest.fixture(scope="session")
def rabbitmq() -> str:
    """The machine's RabbitMQ management API (enabled if it is off), as a URL with the guest login."""
    import shutil
    import socket

    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        missing("RabbitMQ is not running on 127.0.0.1:5672")
    try:
        socket.create_connection(("127.0.0.1", 15672), timeout=1).close()
    except OSError:
        if shutil.which("rabbitmq-plugins") is None:
            missing("the RabbitMQ management plugin is off and rabbitmq-plugins is not installed")
        subprocess.run(["rabbitmq-plugins", "enable", "rabbitmq_management"], check=True, capture_output=True)
        wait_port(15672, timeout=60)
    return "http://guest:guest@127.0.0.1:15672"
