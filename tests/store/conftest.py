"""Fixtures of the store tests: real Baileys in Node for reference values, real folders on disk."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.config import PROJECT_ROOT
from bridge.store.auth_store import AuthStore

LEGACY_SCRIPT = PROJECT_ROOT / "tests" / "store" / "node" / "legacy.mjs"
NODE_TIMEOUT = 120.0


def run_legacy(*args: str) -> dict[str, Any]:
    """Run tests/store/node/legacy.mjs (real Baileys, legacy useMultiFileAuthState); return its JSON."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; the store tests need real Node and Baileys")
    proc = subprocess.run(
        [node, str(LEGACY_SCRIPT), *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, f"legacy.mjs {args[0]} failed: {proc.stderr}"
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.fixture(scope="session")
def legacy_written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A folder written by real legacy useMultiFileAuthState, and the exact texts of its values.

    `texts["creds"]` is registered creds (with `me`), `texts["fresh"]` a fresh `initAuthCreds()`,
    `texts["keys"][type][id]` one value of every key type Baileys 7.0.0-rc14 stores.
    """
    folder = tmp_path_factory.mktemp("legacy") / "session"
    texts = run_legacy("write", str(folder))
    return folder, texts


@pytest.fixture()
def registered_creds(legacy_written: tuple[Path, dict[str, Any]]) -> str:
    """creds.json text of a logged-in device, made by real Baileys."""
    return str(legacy_written[1]["creds"])


@pytest.fixture()
def fresh_creds(legacy_written: tuple[Path, dict[str, Any]]) -> str:
    """creds.json text straight from Baileys' initAuthCreds() (not registered)."""
    return str(legacy_written[1]["fresh"])


@pytest.fixture()
def auth_root(tmp_path: Path) -> Path:
    """An empty auth root (BRIDGE_AUTH_ROOT) for one test."""
    root = tmp_path / "auth"
    root.mkdir()
    return root


@pytest.fixture()
def make_store(auth_root: Path) -> Iterator[Callable[..., AuthStore]]:
    """Factory: `make_store("s1", before_creds_downgrade=...)` opens AUTH_ROOT/s1.

    Every store it made is closed (its journal checkpointed and released) when the test ends.
    """
    opened: list[AuthStore] = []

    def factory(session_id: str = "s1", **kwargs: Any) -> AuthStore:
        store = AuthStore(auth_root / session_id, session_id=session_id, bridge_dir=auth_root / ".bridge", **kwargs)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        with contextlib.suppress(Exception):
            store.close()


@contextlib.contextmanager
def mounted_tmpfs(size: str) -> Iterator[Path]:
    """A tmpfs of `size`, unmounted afterwards (skips the test where mounting is not permitted)."""
    mount_point = Path(tempfile.mkdtemp(prefix="bridge-tmpfs-"))
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {proc.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)
        mount_point.rmdir()


@pytest.fixture()
def root(auth_root: Path) -> Path:
    """The auth root under the name the snapshot and adopt tests use."""
    return auth_root
