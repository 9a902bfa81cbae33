"""A hostile child can only ask: the bridge stays up, memory stays bounded, disk changes only by valid writes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import psutil
import pytest

from bridge.config import Settings
from bridge.metrics import IPC_VIOLATIONS
from bridge.runtime.process import ProcessState
from tests.runtime.conftest import CHILDREN, Harness


def _violations(session: str, kind: str) -> float:
    value = IPC_VIOLATIONS.labels(session, kind)._value.get()
    return float(value)


def _tree(root: os.PathLike[str]) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


async def test_hostile_child_cannot_hurt_the_bridge_or_the_disk(
    settings: Settings, make_harness: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two tenants with real creds made by the real runtime's first start would take long; a
    # valid creds.json written by the store itself is enough here.
    h = make_harness(settings, "victim", sessions=["victim", "bystander"], script=CHILDREN / "hostile.mjs",
                     extra_read=[CHILDREN])
    creds = (CHILDREN.parent / "fixtures_creds.json")
    for sid in ("victim", "bystander"):
        h.stores[sid].save_creds(creds.read_text())
    monkeypatch.setenv("HOSTILE_AUTH_DIR", str(settings.auth_root / "victim"))
    before_disk = _tree(settings.auth_root)
    kinds = ("too_long", "bad_json", "bad_shape", "bad_direction", "unknown_id", "unknown_event", "unknown_op",
             "hostile_name", "bad_args", "refused")
    before_counts = {k: _violations("victim", k) + _violations("unknown", k) for k in kinds}
    me = psutil.Process()
    rss_before = me.memory_info().rss

    await h.proc.start()
    line = await h.wait_for(lambda: next((x for x in h.proc.stderr_tail if x.startswith("HOSTILE ")), None),
                            within=240, what="hostile child's report")
    report = json.loads(line.removeprefix("HOSTILE "))
    rss_after = me.memory_info().rss

    assert h.proc.state is ProcessState.RUNNING and h.proc.restarts == 0
    assert all(code != "OK" for code in report["refused"]), report["refused"]
    assert report["flood_ok"] == 10_000
    assert report["fs_unlink"] == report["fs_write"] == report["fs_rm"] == "ERR_ACCESS_DENIED"
    assert report["valid"] is True
    # Memory: the 50 MiB line was never held whole, the flood was throttled by back-pressure.
    assert rss_after - rss_before < 40 * 1024 * 1024, (rss_before, rss_after)

    # The journal's worker writes a running session's legacy files up to 50 ms after the answer
    # (coalesced, docs/storage.md): wait for the one valid write's file before comparing.
    landed = settings.auth_root / "victim" / "pre-key-77.json"
    await h.wait_for(lambda: landed.exists() or None, within=5, what="the valid write's legacy file")
    after_disk = _tree(settings.auth_root)
    new = {k: v for k, v in after_disk.items() if before_disk.get(k) != v}
    # The one valid write lands in the legacy folder; the session's write-ahead journal under
    # .bridge/journal/ is the only other file that may change (it carried that write).
    journal = os.path.join(".bridge", "journal", "victim") + os.sep
    assert {k for k in new if not k.startswith(journal)} == {os.path.join("victim", "pre-key-77.json")}, sorted(new)
    assert all(k in after_disk for k in before_disk), "nothing was deleted"

    counted = {k: _violations("victim", k) + _violations("unknown", k) - before_counts[k] for k in kinds}
    for kind in ("too_long", "bad_json", "bad_shape", "bad_direction", "unknown_id", "unknown_event",
                 "unknown_op", "hostile_name", "refused"):
        assert counted[kind] >= 1, (kind, counted)
    assert h.proc.violations >= 12
    print("hostile report:", report, "violations:", counted, "rss growth MiB:", (rss_after - rss_before) / 2**20)
