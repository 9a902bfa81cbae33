"""The shipped systemd unit passes `systemd-analyze verify` (systemd need not be running for it).

`verify` also checks that ExecStart's binary exists, so the copy under test points ExecStart at
this Python and WorkingDirectory at this checkout; every other line is the shipped one. `verify`
exits 0 even for unknown keys or unparsable values (it only warns), so any output fails the test,
and a deliberately broken copy proves the check bites.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.conftest import REPO

UNIT = REPO / "deploy" / "baileys-bridge.service"
INSTALLED_PYTHON = "/opt/baileys-bridge/.venv/bin/python"


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (.ci/run installs the `systemd` package)")
    return found


def local_copy(tmp_path: Path, text: str) -> Path:
    """The unit with only ExecStart's interpreter and WorkingDirectory made real on this machine."""
    lines = []
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            assert line == f"ExecStart={INSTALLED_PYTHON} -m bridge run"
            line = f"ExecStart={sys.executable} -m bridge run"
        elif line.startswith("WorkingDirectory="):
            line = f"WorkingDirectory={REPO}"
        lines.append(line)
    path = tmp_path / "baileys-bridge.service"
    path.write_text("\n".join(lines) + "\n")
    return path


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60,
                          check=False)


def test_the_shipped_unit_verifies_without_a_single_warning(tmp_path: Path) -> None:
    result = verify(local_copy(tmp_path, UNIT.read_text()))
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == "", result.stdout + result.stderr


def test_a_broken_unit_is_caught(tmp_path: Path) -> None:
    text = UNIT.read_text().replace("Restart=on-failure", "Restart=sometimes\nKilMode=mixed")
    result = verify(local_copy(tmp_path, text))
    output = result.stdout + result.stderr
    assert "Failed to parse service restart specifier" in output
    assert "Unknown key 'KilMode'" in output


def test_the_unit_stops_gracefully_and_does_not_restart_a_refused_configuration() -> None:
    settings = dict(line.split("=", 1) for line in UNIT.read_text().splitlines() if "=" in line
                    and not line.startswith("#"))
    assert settings["KillSignal"] == "SIGTERM" and settings["KillMode"] == "mixed"
    assert int(settings["TimeoutStopSec"]) >= 30
    assert settings["RestartPreventExitStatus"] == "2"
    assert settings["Environment"] == "BRIDGE_AUTH_ROOT=/var/lib/baileys-bridge/auth"
    assert settings["StateDirectory"] == "baileys-bridge"
