"""The runtime cannot write, delete or spawn: Node's permission model, proved from inside."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from bridge.config import Settings
from bridge.errors import BridgeError
from bridge.ipc import protocol as p
from bridge.runtime.auth_handler import AuthRequestHandler
from bridge.store.auth_store import AsyncAuthStore, AuthStore
from bridge.store.layout import KEY_TYPES
from tests.runtime.conftest import CHILDREN, Harness

CREDS = '{"noiseKey":{"private":{"type":"Buffer","data":"AA=="}},"registrationId":1}'


async def test_write_and_delete_attempts_inside_the_runtime_fail_with_access_denied(
    settings: Settings, make_harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = settings.auth_root / "carol"
    folder.mkdir(parents=True)
    (folder / "creds.json").write_text(CREDS)
    monkeypatch.setenv("PROBE_AUTH_DIR", str(folder))
    probe = CHILDREN / "probe_write.mjs"
    h = make_harness(settings, "carol", node_args=[f"--import={probe.as_uri()}"], extra_read=[CHILDREN])
    assert "--allow-fs-write" not in " ".join(h.proc.command())
    await h.proc.start()
    line = await h.wait_for(lambda: next((x for x in h.proc.stderr_tail if x.startswith("PROBE ")), None),
                            what="probe report")
    results = json.loads(line.removeprefix("PROBE "))
    for attempt in ("write_creds", "unlink_creds", "rm_folder", "rename_creds", "truncate_creds", "write_tmp",
                    "write_runtime_dir", "read_creds", "child_process", "worker"):
        assert results[attempt] == "ERR_ACCESS_DENIED", (attempt, results[attempt])
    assert (folder / "creds.json").read_text() == CREDS
    # The real runtime behind the preload still boots and answers.
    assert (await h.proc.call("carol", "ping"))["pid"] == h.proc.pid


async def test_no_protocol_message_can_delete_or_blank_creds(settings: Settings) -> None:
    """Only four auth requests exist (plus `message.get` and `message.durable`, which ask the
    message store); deletes of every key type aimed at creds.json miss it, and creds.save refuses
    anything that is not valid creds."""
    assert set(p.REQUESTS) == {"auth.load", "auth.get", "auth.set", "creds.save", "message.get", "message.durable"}
    handler = AuthRequestHandler()
    store = AuthStore(settings.auth_root / "dora", session_id="dora", bridge_dir=settings.bridge_dir)
    handler.host("dora", AsyncAuthStore(store))
    valid = (CHILDREN.parent / "fixtures_creds.json").read_text()
    store.save_creds(valid)
    creds = settings.auth_root / "dora" / "creds.json"
    before = creds.read_bytes()

    attempts: list[dict[str, object]] = []
    for key_type in sorted(KEY_TYPES):
        for key_id in ("creds", "../creds", "/creds", "..", ".", "../dora/creds", "creds.json"):
            attempts.append({"t": "req", "id": 1, "s": "dora", "op": "auth.set",
                             "args": {"data": {key_type: {key_id: None}}}})
    for text in ("", "{}", "null", "[]", '{"noiseKey":null}', valid[: len(valid) // 2]):
        attempts.append({"t": "req", "id": 1, "s": "dora", "op": "creds.save", "args": {"creds": text}})
    attempts.append({"t": "req", "id": 1, "s": "dora", "op": "auth.set", "args": {"data": {"creds": {"": None}}}})
    for raw in attempts:
        try:
            req = p.decode(json.dumps(raw).encode())
            assert isinstance(req, p.Req)
            await handler(req, p.validate_args(req))
        except BridgeError:
            pass
        assert creds.read_bytes() == before, raw


async def test_console_output_of_dependencies_never_reaches_the_ipc_channel(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    probe = CHILDREN / "console_probe.mjs"
    slow = CHILDREN / "slow_start.mjs"  # the pings are written before the runtime reads stdin, as under load
    h = make_harness(settings, "quiet", node_args=[f"--import={probe.as_uri()}", f"--import={slow.as_uri()}"],
                     extra_read=[CHILDREN])
    await h.proc.start()
    await h.proc.call("console-probe", "ping")
    await h.proc.call("quiet", "ping")
    await h.wait_for(lambda: any("CONSOLE-ERROR" in line for line in h.proc.stderr_tail), what="console.error")
    assert h.proc.violations == 0, "console output must not reach stdout"
    assert any("CONSOLE-WARN" in line for line in h.proc.stderr_tail)
    assert not any("secret-key-material" in line for line in h.proc.stderr_tail)
