"""A throwaway PostgreSQL server for the cluster tests: `initdb` + `pg_ctl` in a temporary folder.

The server runs as an unprivileged user (`postgres` when the tests run as root: PostgreSQL refuses
to run as root), on a free TCP port of 127.0.0.1, with its unix socket inside its own folder, so
it never touches the system cluster. `stop()` / `start()` / `restart()` exist for the "database
restarts under load" tests; `destroy()` stops the server (fast, then immediate, then SIGKILL of
the postmaster from `postmaster.pid`) and removes the folder, so no postgres survives a module.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
UNPRIVILEGED_USER = "postgres"


def pg_bin() -> Path | None:
    """The folder holding initdb/pg_ctl/postgres, or None when PostgreSQL is not installed."""
    override = os.environ.get("BRIDGE_TEST_PG_BIN")
    for candidate in ([override] if override else []) + list(PG_BIN_CANDIDATES):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgServer:
    """One PostgreSQL cluster in its own folder. `dsn` connects as the superuser `postgres`."""

    def __init__(self, bin_dir: Path, *, user: str | None = None) -> None:
        self.bin_dir = bin_dir
        self.user = user if user is not None else (UNPRIVILEGED_USER if os.geteuid() == 0 else None)
        self.root = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_file = self.root / "server.log"
        self.port = free_port()
        self.socket_dir.mkdir()
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chmod(self.root, 0o700)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, args: Sequence[str], *, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=self.root, stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def init(self) -> None:
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
                "-N",
            ],
        )

    def start(self) -> None:
        for attempt in range(3):
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.socket_dir} "
                "-c max_connections=200 -c shared_buffers=32MB"
            )
            command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_file)]
            try:
                self._run([*command, "-o", options, "-w", "-t", "60", "start"])
                return
            except RuntimeError:
                if attempt == 2 or self.is_running():
                    raise
                self.port = free_port()  # another process took the port between free_port() and bind

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: disconnect clients, checkpoint; `immediate`: like a crash)."""
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def postmaster_pid(self) -> int | None:
        try:
            first = (self.data / "postmaster.pid").read_text().splitlines()[0]
        except (OSError, IndexError):
            return None
        return int(first) if first.strip().isdigit() else None

    def is_running(self) -> bool:
        pid = self.postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def destroy(self) -> None:
        """Stop whatever runs (politely, then by force) and remove the folder."""
        for mode in ("fast", "immediate"):
            if not self.is_running():
                break
            try:
                self.stop(mode)
            except (RuntimeError, subprocess.TimeoutExpired):
                continue
        pid = self.postmaster_pid()
        if pid is not None and self.is_running():
            os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                if not self.is_running():
                    break
                time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)


def start_server() -> PgServer:
    """A fresh, running server; raises RuntimeError (with initdb/pg_ctl output) when it cannot start."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (initdb/pg_ctl not found); .ci/run installs it")
    server = PgServer(bin_dir)
    try:
        server.init()
        server.start()
    except BaseException:
        server.destroy()
        raise
    return server
