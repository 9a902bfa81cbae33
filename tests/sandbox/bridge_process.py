"""`python -m bridge ...` as a real child process on a temp folder, as a newcomer runs it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell: no BRIDGE_* leaking in from the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def run_bridge(cwd: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m bridge args` to completion (for refusals); its output as text."""
    return subprocess.run([sys.executable, "-m", "bridge", *args], cwd=cwd, env=clean_env(**env), text=True,
                          capture_output=True, timeout=timeout, start_new_session=True)


class BridgeProcess:
    """A running bridge; `stop()` sends SIGINT like Ctrl-C and reports the processes left behind."""

    def __init__(self, cwd: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / "bridge.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "bridge", *args, "--port", str(self.port)], cwd=cwd,
                                     env=clean_env(**env), stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the bridge exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(urllib.error.URLError, ConnectionError):
                with urllib.request.urlopen(self.url + "/readyz", timeout=5) as resp:
                    if resp.status == 200:
                        return
            time.sleep(0.3)
        raise TimeoutError(f"the bridge was not ready within {within}s:\n{self.log_tail()}")

    def descendants(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            return psutil.Process(self.proc.pid).children(recursive=True)
        return []

    def stop(self) -> list[psutil.Process]:
        """Ctrl-C, wait for a clean exit; returns the processes of the bridge still alive after it."""
        family = self.descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        survivors = []
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    survivors.append(p)
        for p in survivors:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        return survivors

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
