"""Real servers for the tests: throwaway PostgreSQL and Redis processes started from the installed
binaries (own port, own data dir, stoppable and restartable), TLS material, and an HTTP server.

A missing binary skips the test on a laptop and fails it under CI=true.
"""

from __future__ import annotations

import glob
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """Skip on a developer machine; fail under CI, where every server must be there."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: integration servers are required)")
    pytest.skip(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> TLSFiles:
    """A throwaway CA and a server certificate for localhost / 127.0.0.1."""
    if shutil.which("openssl") is None:
        missing("openssl is not installed")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=opsconsole test CA")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return TLSFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key")


def _postgres_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(os.path.realpath(initdb)).parent if initdb else None


class PostgresServer:
    """A PostgreSQL cluster of our own. Runs as the `postgres` user when we are root."""

    password = "s3cret-Pg-pass"

    def __init__(self, root: Path, tls: TLSFiles | None) -> None:
        bindir = _postgres_bindir()
        if bindir is None or not (bindir / "postgres").exists():
            missing("PostgreSQL server binaries (initdb, postgres) are not installed")
        self.bindir = bindir
        self.port = free_port()
        self.root = root
        self.data = root / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            shutil.chown(root, "postgres", "postgres")
        pwfile = root / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._own(pwfile)
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
             "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync", "--no-instructions"],
            check=True, capture_output=True, user=self.user,
        )
        self.ssl_args: list[str] = []
        if tls is not None:
            for src, name in ((tls.cert, "server.crt"), (tls.key, "server.key")):
                dst = self.data / name
                shutil.copy(src, dst)
                os.chmod(dst, 0o600)
                self._own(dst)
            self.ssl_args = ["-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key"]

    def _own(self, path: Path) -> None:
        if self.user:
            shutil.chown(path, self.user, self.user)

    def url(self, password: str | None = None, database: str = "postgres", query: str = "") -> str:
        pw = self.password if password is None else password
        return f"postgresql://postgres:{pw}@127.0.0.1:{self.port}/{database}{'?' + query if query else ''}"

    def start(self) -> None:
        if self.running:
            return
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.root),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=50", *self.ssl_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=self.user, start_new_session=True,
        )
        wait_port(self.port)
        # Accepting TCP is not accepting queries: wait for the startup to finish.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = subprocess.run([str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                               capture_output=True)
            if r.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("PostgreSQL did not become ready")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGINT) -> None:
        """SIGINT is a fast shutdown; SIGKILL a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig) if sig == signal.SIGKILL else self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def psql(self, sql: str) -> str:
        r = subprocess.run([str(self.bindir / "psql"), "-h", str(self.root), "-p", str(self.port), "-U", "postgres",
                            "-d", "postgres", "-Atc", sql], check=True, capture_output=True, text=True, user=self.user)
        return r.stdout.strip()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A redis-server of our own on a free port, optionally with a TLS port too."""

    def __init__(self, root: Path, tls: TLSFiles | None = None) -> None:
        if shutil.which("redis-server") is None:
            missing("redis-server is not installed")
        self.root = root
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def tls_url(self, verify: bool = True) -> str:
        assert self.tls is not None
        query = f"ssl_ca_certs={self.tls.ca}" if verify else "ssl_cert_reqs=none"
        return f"rediss://127.0.0.1:{self.tls_port}/0?{query}"

    def start(self) -> None:
        if self.running:
            return
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.root), "--daemonize", "no", "--loglevel", "warning"]
        if self.tls:
            args += ["--tls-port", str(self.tls_port), "--tls-cert-file", str(self.tls.cert),
                     "--tls-key-file", str(self.tls.key), "--tls-ca-cert-file", str(self.tls.ca),
                     "--tls-auth-clients", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def cli(self, *args: str) -> str:
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], check=True, capture_output=True, text=True)
        return r.stdout.strip()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


HEALTH = {
    "healthy": True,
    "services": {
        "database": {"status": "ok", "latency": 3.5},
        "cache": {"status": "degraded", "latency": 41},
        "search": {"status": "down", "error": "connection refused"},
    },
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, content_type: str = "application/json", extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        served = getattr(self.server, "routes", {}).get(path)
        if served is not None:
            self._send(*served)
        elif path == "/health":
            self._send(200, json.dumps(HEALTH).encode())
        elif path == "/healthy":
            self._send(200, json.dumps({"healthy": True, "services": {"db": {"status": "ok", "latency": 2}}}).encode())
        elif path == "/unhealthy":
            self._send(503, json.dumps({"healthy": False, "services": {"db": {"status": "down"}}}).encode())
        elif path == "/reports-unhealthy":
            self._send(200, json.dumps({"healthy": False, "services": {}}).encode())
        elif path == "/plain":
            self._send(200, b"OK", "text/plain")
        elif path == "/garbage":
            self._send(200, b"{this is not json", "application/json")
        elif path == "/500":
            self._send(500, b"boom", "text/plain")
        elif path == "/redirect":
            self._send(302, b"", "text/plain", {"Location": "/login"})
        elif path.startswith("/slow"):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            time.sleep(float(query.get("s", ["3"])[0]))
            self._send(200, b"{}")
        else:
            self._send(404, b"not found", "text/plain")


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that time out and hang up are part of the tests


class HTTPServer:
    """The stack's health endpoint and its failure modes, plus a port that accepts and never answers."""

    def __init__(self, tls: TLSFiles | None = None) -> None:
        self.server = _QuietServer(("127.0.0.1", 0), _Handler)
        scheme = "http"
        if tls is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(tls.cert, tls.key)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.base = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, code: int, body: bytes | str, content_type: str = "application/json") -> str:
        """Answer GET `path` with this code, body and content type from now on; returns its URL."""
        routes = self.server.__dict__.setdefault("routes", {})
        routes[path] = (code, body.encode() if isinstance(body, str) else body, content_type)
        return self.url(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Blackhole:
    """Accepts TCP connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self.held:
            c.close()


def tempdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
