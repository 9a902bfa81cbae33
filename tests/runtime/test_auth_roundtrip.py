"""Auth goes through Python only, and lands on disk exactly as legacy useMultiFileAuthState writes it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.config import Settings
from tests.runtime.conftest import CHILDREN, Harness

DEAD_URL = "ws://127.0.0.1:1/ws/chat"


def _files(folder: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}


async def test_keys_written_over_ipc_are_byte_identical_to_legacy_files(
    settings: Settings, make_harness: Callable[..., Harness], tmp_path: Path
) -> None:
    h = make_harness(settings, "alice", script=CHILDREN / "auth_roundtrip.mjs", extra_read=[CHILDREN])
    await h.proc.start()
    result = await h.proc.call("alice", "roundtrip", {}, timeout=120)
    assert result["fresh"] is True and result["equal"] is True
    assert result["app_state_is_proto"] and result["missing_is_null"] and result["deleted_is_null"]
    assert [op for _, op in h.ops[:2]] == ["auth.load", "creds.save"]

    legacy = tmp_path / "legacy"
    writer = await asyncio.create_subprocess_exec(settings.node, str(CHILDREN / "legacy_writer.mjs"), str(legacy))
    assert await asyncio.wait_for(writer.wait(), 120) == 0
    h.stores["alice"].checkpoint()  # the folder alone, as a legacy process would read it
    ours = _files(settings.auth_root / "alice")
    theirs = _files(legacy)
    assert ours.pop("creds.json") == result["creds_text"].encode()
    assert ours == theirs, "key files must match useMultiFileAuthState byte for byte"
    assert "pre-key-2.json" not in ours
    trash = list((settings.bridge_dir / "trash" / "alice").rglob("*pre-key-2*"))
    assert trash, "a deleted key is moved to the trash, never unlinked"
    assert json.loads(ours["pre-key-1.json"])["public"]["type"] == "Buffer"


async def test_real_runtime_loads_creds_over_ipc_and_reports_the_disconnect(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    h = make_harness(settings, "bob")
    await h.proc.start()
    assert await h.proc.call("bob", "start", {"wa_url": DEAD_URL}) == {}
    close = await h.wait_for(lambda: h.event("bob", "connection.update", lambda d: d.get("connection") == "close"),
                             what="connection close")
    assert close["disconnect"]["status_code"] == 408 and close["disconnect"]["reason"] == "connectionLost"
    ops = [op for _, op in h.ops]
    assert ops[:2] == ["auth.load", "creds.save"], "fresh creds are made durable before connecting"
    creds = (settings.auth_root / "bob" / "creds.json").read_bytes()
    noise = json.loads(creds)["noiseKey"]

    # A second start reads the same creds back over IPC and does not invent new ones.
    h.ops.clear()
    await h.proc.call("bob", "start", {"wa_url": DEAD_URL})
    await h.wait_for(lambda: ("bob", "auth.load") in h.ops, what="auth.load")
    assert ("bob", "creds.save") not in h.ops[:1]
    assert json.loads((settings.auth_root / "bob" / "creds.json").read_bytes())["noiseKey"] == noise
    ready = h.event("bob", "ready")
    assert ready["permission"] is True and ready["fs_write_denied"] is True


async def test_pooled_runtime_keeps_each_sessions_requests_in_its_own_folder(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    h = make_harness(settings, "pool-1", sessions=["t1", "t2"])
    await h.proc.start()
    for sid in ("t1", "t2"):
        await h.proc.call(sid, "start", {"wa_url": DEAD_URL})
    def closed(sid: str) -> Any:
        return h.event(sid, "connection.update", lambda d: d.get("connection") == "close")

    await h.wait_for(lambda: closed("t1") and closed("t2"), what="both sessions closed")
    c1 = json.loads((settings.auth_root / "t1" / "creds.json").read_bytes())
    c2 = json.loads((settings.auth_root / "t2" / "creds.json").read_bytes())
    assert c1["noiseKey"] != c2["noiseKey"]
    assert {s for s, _ in h.ops} == {"t1", "t2"}
    ping = await h.proc.call("t1", "ping")
    assert sorted(ping["sessions"]) == ["t1", "t2"]

    # A session the runtime does not host cannot be started: its auth.load is refused.
    before = h.proc.violations
    try:
        await h.proc.call("intruder", "start", {"wa_url": DEAD_URL})
    except Exception as exc:
        assert "does not host" in str(exc)
    else:
        raise AssertionError("starting an unhosted session must fail")
    assert not (settings.auth_root / "intruder").exists()
    assert h.proc.violations == before + 1
