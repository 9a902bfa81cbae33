"""Helpers of the operations tests: run `python -m bridge ...` as an operator would, in a clean
environment, and small real HTTP servers (stdlib) standing in for the hosts the doctor calls."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 120.0


def clean_env(**bridge: str) -> dict[str, str]:
    """os.environ without any BRIDGE_* of the developer's shell, plus `bridge` and our PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(bridge)
    return env


def run_bridge(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m bridge <args>` to completion (cwd has no .env, so only `env` configures it)."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=TIMEOUT, check=False,
    )


def run_doctor(cwd: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    """`python -m bridge doctor --json`: (exit code, the JSON document)."""
    proc = run_bridge(cwd, env, "doctor", "--json", *args)
    assert proc.stdout.strip(), f"doctor printed nothing (exit {proc.returncode}): {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def by_check(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The doctor's findings by check name."""
    return {c["check"]: c for c in document["checks"]}


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free loopback port in a thread; yield `http://127.0.0.1:<port>`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that does not print every request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: dict[str, Any] | None = None, *, key: str | None = None,
         timeout: float = 30.0) -> tuple[int, bytes]:
    """One real HTTP request: (status, body); an HTTP error status is returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until(condition: Callable[[], bool], what: str, within: float = TIMEOUT) -> None:
    """Poll `condition` every 0.2 s; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    try:
        return http("GET", url, timeout=2.0)[0] == 200
    except OSError:
        return False


class BridgeRun:
    """`python -m bridge run` as a child: stderr kept in a file, stopped with SIGTERM, never orphaned."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {**env, "BRIDGE_PORT": str(self.port)}
        self.stderr_path = workdir / f"bridge-{self.port}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BridgeRun:
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bridge", "run"], cwd=self.workdir, env=self.env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            )
        wait_until(lambda: answers(f"{self.base}/healthz") or self.proc is None or self.proc.poll() is not None,
                   "/healthz")
        assert self.proc.poll() is None, f"the bridge exited: {self.stderr()}"
        return self

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def node_children(self) -> list[psutil.Process]:
        assert self.proc is not None
        return [p for p in psutil.Process(self.proc.pid).children(recursive=True) if p.name() == "node"]

    def stop(self) -> int:
        """SIGTERM, then wait for the graceful stop; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=TIMEOUT)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
            self.proc.kill()
            self.proc.wait()
