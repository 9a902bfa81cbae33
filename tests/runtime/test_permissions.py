"""The runtime cannot write, delete or spawn: Node's permission model, proved from inside."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from bridge.config import Settings
from bridge.ipc import protocol as p
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


def test_no_protocol_message_can_delete_creds() -> None:
    """Only four requests exist; none deletes, and auth.set cannot name creds.json."""
    assert set(p.REQUESTS) == {"auth.load", "auth.get", "auth.set", "creds.save"}
    for entry in p.CATALOGUE:
        assert not any(w in entry.name for w in ("delete", "remove", "unlink", "wipe"))
