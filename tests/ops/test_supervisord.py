"""The bridge under real supervisord, with the program section docs/operations.md ships.

The test config is deploy/supervisord.conf with only what must differ on a test machine replaced
(the interpreter path, the folder, the environment, the user, the log file), plus the
supervisord/supervisorctl sections a host's main supervisord.conf provides. The bridge runs a
session whose real Node runtime connects to the simulator, so "no Node process left" has a Node
process to look for: after `supervisorctl restart` the old runtime is gone and a new one runs;
after `supervisorctl stop` the bridge has exited 0 and no process with its auth root is left.
"""

from __future__ import annotations

import configparser
import getpass
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.ops.conftest import REPO, TIMEOUT, answers, free_port, http, wait_until
from tests.simulator.fixture import SimulatorClient

SHIPPED = REPO / "deploy" / "supervisord.conf"
PROGRAM = "program:baileys-bridge"
INSTALLED_PYTHON = "/opt/baileys-bridge/.venv/bin/python"
#: The only keys of the shipped program section the test machine needs different.
LOCAL_KEYS = {"command", "directory", "environment", "user", "stdout_logfile"}
KEY = "supervisord-test-key-0123456789"
SESSION = "supervised-1"


def supervisor_binaries() -> tuple[str, str]:
    supervisord, supervisorctl = shutil.which("supervisord"), shutil.which("supervisorctl")
    if supervisord is None or supervisorctl is None:
        pytest.skip("supervisor is not installed (.ci/run installs Debian's `supervisor` package)")
    return supervisord, supervisorctl


def shipped_program() -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    parser.read(SHIPPED)
    assert parser.sections() == [PROGRAM], "the shipped file is one program section"
    return dict(parser[PROGRAM])


def environment(values: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in values.items())


def local_config(tmp_path: Path, simulator: SimulatorClient, port: int) -> Path:
    """The shipped program section made to run here, inside a minimal supervisord.conf."""
    program = shipped_program()
    assert program["command"] == f"{INSTALLED_PYTHON} -m bridge run"
    shipped_env = dict(item.split("=", 1) for item in program["environment"].split(","))
    local = {
        "command": f"{sys.executable} -m bridge run",
        "directory": str(tmp_path),
        "environment": environment({
            **{k: v.strip('"') for k, v in shipped_env.items()},
            "BRIDGE_AUTH_ROOT": str(tmp_path / "auth"),
            "BRIDGE_PORT": str(port),
            "BRIDGE_API_KEYS": KEY,
            "BRIDGE_WA_URL": simulator.ws_url,
            "BRIDGE_WA_TRUST_ROOT": simulator.root_pub,
            "PYTHONPATH": str(REPO),
        }),
        "user": getpass.getuser(),
        "stdout_logfile": str(tmp_path / "bridge.log"),
    }
    assert set(local) == LOCAL_KEYS
    program.update(local)
    config = configparser.ConfigParser(interpolation=None)
    config["unix_http_server"] = {"file": str(tmp_path / "s.sock"), "chmod": "0700"}
    config["supervisord"] = {"logfile": str(tmp_path / "supervisord.log"), "pidfile": str(tmp_path / "s.pid"),
                             "childlogdir": str(tmp_path), "nodaemon": "true"}
    config["rpcinterface:supervisor"] = {
        "supervisor.rpcinterface_factory": "supervisor.rpcinterface:make_main_rpcinterface"}
    config["supervisorctl"] = {"serverurl": f"unix://{tmp_path / 's.sock'}"}
    config[PROGRAM] = program
    path = tmp_path / "supervisord.conf"
    with path.open("w") as handle:
        config.write(handle)
    return path


class Supervisor:
    def __init__(self, config: Path) -> None:
        self.supervisord, self.supervisorctl = supervisor_binaries()
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    def ctl(self, *args: str) -> str:
        result = subprocess.run([self.supervisorctl, "-c", str(self.config), *args], capture_output=True,
                                text=True, timeout=TIMEOUT, check=False)
        return result.stdout + result.stderr

    def state(self) -> str:
        out = self.ctl("status", "baileys-bridge").split()
        return out[1] if len(out) > 1 else ""

    def bridge_pid(self) -> int:
        out = self.ctl("pid", "baileys-bridge").strip()
        assert out.isdigit() and out != "0", out
        return int(out)


@pytest.fixture()
def supervisor(tmp_path: Path, simulator: SimulatorClient) -> Iterator[tuple[Supervisor, int]]:
    work = Path(f"/tmp/ops-sv-{free_port()}")  # short: the control socket path has a length limit
    work.mkdir()
    port = free_port()
    sv = Supervisor(local_config(work, simulator, port))
    sv.proc = subprocess.Popen([sv.supervisord, "-c", str(sv.config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        yield sv, port
    finally:
        if sv.proc.poll() is None:
            sv.ctl("shutdown")
            try:
                sv.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(sv.proc.pid).children(recursive=True):
                    child.kill()
                sv.proc.kill()
                sv.proc.wait()
        shutil.copytree(work, tmp_path / "supervisor", dirs_exist_ok=True)  # logs, for a failed run
        shutil.rmtree(work)


def processes_of(auth_root: Path) -> list[psutil.Process]:
    """Every live process (bridge or Node, anywhere in the tree or orphaned) started for this root."""
    found = []
    for proc in psutil.process_iter(["environ", "status"]):
        try:
            env = proc.info["environ"] or {}
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        if env.get("BRIDGE_AUTH_ROOT") == str(auth_root) and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def node_pids(bridge_pid: int) -> set[int]:
    return {p.pid for p in psutil.Process(bridge_pid).children(recursive=True) if p.name() == "node"}


def session_state(base: str) -> str:
    status, body = http("GET", f"{base}/api/v1/sessions/{SESSION}", key=KEY)
    return str(json.loads(body)["state"]) if status == 200 else ""


def test_supervisord_runs_restarts_and_stops_the_bridge_leaving_no_process(
    supervisor: tuple[Supervisor, int],
) -> None:
    sv, port = supervisor
    base = f"http://127.0.0.1:{port}"
    auth_root = sv.config.parent / "auth"
    wait_until(lambda: sv.state() == "RUNNING", "supervisord to report RUNNING")
    wait_until(lambda: answers(f"{base}/healthz"), "/healthz")
    status, body = http("POST", f"{base}/api/v1/sessions", {"id": SESSION}, key=KEY)
    assert status == 201, body
    wait_until(lambda: session_state(base) == "qr", "the session's runtime to reach the simulator")
    first_bridge = sv.bridge_pid()
    first_nodes = node_pids(first_bridge)
    assert len(first_nodes) == 1

    out = sv.ctl("restart", "baileys-bridge")
    assert "baileys-bridge: stopped" in out and "baileys-bridge: started" in out, out
    assert not psutil.pid_exists(first_bridge)
    assert not any(psutil.pid_exists(pid) for pid in first_nodes), "the old Node runtime is gone"
    wait_until(lambda: answers(f"{base}/healthz"), "/healthz after the restart")
    wait_until(lambda: session_state(base) == "qr", "the session to run again after the restart")
    second_bridge = sv.bridge_pid()
    assert second_bridge != first_bridge and len(node_pids(second_bridge)) == 1

    out = sv.ctl("stop", "baileys-bridge")
    assert "baileys-bridge: stopped" in out, out
    assert sv.state() == "STOPPED"
    assert processes_of(auth_root) == [], "no bridge or Node process of this auth root is left"
    time.sleep(1.5)  # a Node runtime checks its parent once a second: nothing may come back either
    assert processes_of(auth_root) == []
    supervisord_log = (sv.config.parent / "supervisord.log").read_text()
    assert supervisord_log.count("stopped: baileys-bridge (exit status 0)") == 2, supervisord_log
    bridge_log = (sv.config.parent / "bridge.log").read_text()
    assert bridge_log.count("bridge.app: shutdown complete") == 2
