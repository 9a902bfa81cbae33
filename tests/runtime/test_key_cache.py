"""The runtime's key cache: repeated reads stay in Node, writes are still durable before they
resolve, and nothing the store replaced or refused is ever served (node-runtime/key-cache.mjs)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import msgspec

from bridge.config import Settings
from bridge.errors import StoreError
from bridge.ipc import protocol as p
from tests.runtime.conftest import CHILDREN, Harness

SESSION_A = json.dumps({"type": "Buffer", "data": "c2Vzc2lvbi1h"}, separators=(",", ":"))
SESSION_B = json.dumps({"type": "Buffer", "data": "c2Vzc2lvbi1i"}, separators=(",", ":"))


def _count(h: Harness, op: str) -> int:
    return sum(1 for _, o in h.ops if o == op)


async def _child(settings: Settings, make_harness: Callable[..., Harness], cache: object = None) -> Harness:
    h = make_harness(settings, "alice", script=CHILDREN / "key_cache.mjs", extra_read=[CHILDREN])
    await h.proc.start()
    await h.proc.call("alice", "open", {"cache": cache})
    return h


async def test_repeated_reads_of_present_and_absent_keys_cross_ipc_once(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    h = await _child(settings, make_harness)
    await h.proc.call("alice", "set", {"data": {"session": {"a": SESSION_A}}})
    h.ops.clear()
    for _ in range(5):
        got = await h.proc.call("alice", "get", {"type": "session", "ids": ["a", "nobody"]})
        assert got == {"a": SESSION_A, "nobody": None}
    assert _count(h, "auth.get") == 1, "only the absent key was asked for, once; the written one was cached"
    stats = await h.proc.call("alice", "stats")
    assert stats["hits"] == 9 and stats["misses"] == 1


async def test_a_write_resolves_only_after_python_made_it_durable_and_is_then_served(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    h = await _child(settings, make_harness)
    await h.proc.call("alice", "get", {"type": "session", "ids": ["a"]})
    store = h.stores["alice"]
    await h.proc.call("alice", "set", {"data": {"session": {"a": SESSION_A}}})
    assert store.get_keys("session", ["a"]) == {"a": SESSION_A}, "durable in Python's store once the write resolved"
    store.checkpoint()
    assert (settings.auth_root / "alice" / "session-a.json").read_text() == SESSION_A
    await h.proc.call("alice", "set", {"data": {"session": {"a": None}}})
    assert store.get_keys("session", ["a"]) == {"a": None}
    store.checkpoint()
    assert not (settings.auth_root / "alice" / "session-a.json").exists()
    h.ops.clear()
    assert await h.proc.call("alice", "get", {"type": "session", "ids": ["a"]}) == {"a": None}
    assert _count(h, "auth.get") == 0, "a deletion Python acknowledged is served as absent without asking"


async def test_a_read_racing_a_write_of_the_same_key_never_leaves_the_old_value_cached(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    h = await _child(settings, make_harness)
    await h.proc.call("alice", "set", {"data": {"session": {"a": SESSION_A}}})
    for _ in range(20):
        assert await h.proc.call("alice", "race", {"type": "session", "id": "a", "text": SESSION_B}) == {"a": SESSION_B}
        assert await h.proc.call("alice", "race", {"type": "session", "id": "a", "text": SESSION_A}) == {"a": SESSION_A}


async def test_a_write_python_refuses_empties_the_cache_and_reports_the_fault(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    h = await _child(settings, make_harness)
    await h.proc.call("alice", "set", {"data": {"session": {"a": SESSION_A}}})

    def refuse(req: p.Req, args: msgspec.Struct) -> None:
        if req.op == "auth.set":
            raise StoreError("disk full (test)", code="storage_full")

    h.request_hooks.append(refuse)
    try:
        await h.proc.call("alice", "set", {"data": {"session": {"a": SESSION_B}}})
    except Exception as exc:
        assert "disk full" in str(exc)
    else:
        raise AssertionError("a write Python could not make durable must fail")
    stats = await h.proc.call("alice", "stats")
    assert stats["entries"] == 0 and stats["faults"] == 1
    h.ops.clear()
    assert await h.proc.call("alice", "get", {"type": "session", "ids": ["a"]}) == {"a": SESSION_A}
    assert _count(h, "auth.get") == 1, "after a failed write the value is asked for again, never assumed"


async def test_writes_of_one_tick_are_one_auth_set_and_one_journal_record(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    h = await _child(settings, make_harness)
    h.ops.clear()
    journal = h.stores["alice"].backend.journal  # type: ignore[attr-defined]
    records = journal.stats.records
    batches = [{"session": {"a": SESSION_A}}, {"tctoken": {"x@lid": SESSION_B}}, {"session": {"a": SESSION_B}}]
    await h.proc.call("alice", "set_same_tick", {"batches": batches})
    assert _count(h, "auth.set") == 1
    assert journal.stats.records == records + 1
    await asyncio.to_thread(h.stores["alice"].checkpoint)
    folder = settings.auth_root / "alice"
    assert (folder / "session-a.json").read_text() == SESSION_B, "the later write of a key wins, as in order"
    assert (folder / "tctoken-x@lid.json").read_text() == SESSION_B


async def test_a_send_s_key_write_resolves_once_sent_is_served_meanwhile_and_is_durable_before_its_outcome(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    """Baileys holds its key transaction until the commit resolves; a send's commit (pipelined)
    resolves once it is on its way to Python, and the send learns later whether it is durable."""
    h = await _child(settings, make_harness)
    h.ops.clear()
    got = await h.proc.call("alice", "pipelined", {"data": {"session": {"a": SESSION_A}},
                                                   "read": {"type": "session", "ids": ["a"]}})
    assert got["unanswered"] == 1, "the write resolved before Python answered it"
    assert got["served"] == {"a": SESSION_A} and _count(h, "auth.get") == 0, "the next reader sees it without asking"
    assert got["durable"] is True
    assert h.stores["alice"].get_keys("session", ["a"]) == {"a": SESSION_A}


async def test_a_send_s_key_write_python_refuses_is_reported_to_the_send_and_faults_the_state(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    h = await _child(settings, make_harness)

    def refuse(req: p.Req, args: msgspec.Struct) -> None:
        if req.op == "auth.set":
            raise StoreError("disk full (test)", code="storage_full")

    h.request_hooks.append(refuse)
    got = await h.proc.call("alice", "pipelined", {"data": {"session": {"a": SESSION_A}},
                                                   "read": {"type": "session", "ids": ["a"]}})
    assert got["served"] == {"a": SESSION_A}
    assert got["durable"] is False and got["authWrite"] is True and "disk full" in got["error"]
    stats = await h.proc.call("alice", "stats")
    assert stats["faults"] == 1 and stats["entries"] == 0
    h.request_hooks.clear()
    h.ops.clear()
    assert await h.proc.call("alice", "get", {"type": "session", "ids": ["a"]}) == {"a": None}
    assert _count(h, "auth.get") == 1, "what was never stored is asked for again, never served"


async def test_the_cache_is_bounded_and_can_be_turned_off(
    settings: Settings, make_harness: Callable[..., Harness]
) -> None:
    h = await _child(settings, make_harness, cache={"maxEntries": 2})
    await h.proc.call("alice", "set", {"data": {"session": {"a": SESSION_A, "b": SESSION_B, "c": SESSION_A}}})
    stats = await h.proc.call("alice", "stats")
    assert stats["entries"] == 2 and stats["evictions"] == 1
    await h.proc.stop()

    off = await _child(settings, make_harness, cache=False)
    off.ops.clear()
    for _ in range(3):
        await off.proc.call("alice", "get", {"type": "session", "ids": ["a"]})
    assert _count(off, "auth.get") == 3


async def test_a_new_auth_state_reads_what_the_store_holds_now(
    settings: Settings, make_harness: Callable[..., Harness], tmp_path: Path
) -> None:
    """Every start builds a new auth state: a value put back from outside (restore, repair) between
    two starts is what the new one serves."""
    h = await _child(settings, make_harness)
    await h.proc.call("alice", "set", {"data": {"session": {"a": SESSION_A}}})
    assert await h.proc.call("alice", "get", {"type": "session", "ids": ["a"]}) == {"a": SESSION_A}
    await asyncio.to_thread(h.stores["alice"].set_keys, {"session": {"a": SESSION_B}})
    await h.proc.call("alice", "open", {})
    assert await h.proc.call("alice", "get", {"type": "session", "ids": ["a"]}) == {"a": SESSION_B}


async def test_the_cache_bookkeeping_keeps_no_stale_answer_in_orderings_a_live_test_cannot_force(
    settings: Settings,
) -> None:
    proc = await asyncio.create_subprocess_exec(settings.node, str(CHILDREN / "key_cache_unit.mjs"),
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    result = json.loads(out)
    assert result["stale_read_after_write"] == '"new"'
    assert result["stale_read_after_eviction"] is False
    assert result["read_sent_during_write"] == '"new"'
    assert result["served_while_newer_write_in_flight"] is False
    assert result["after_both"] == '"second"'
    assert result["after_failed_write"] == {"x": False, "y": False, "pending": 0}
    assert result["provisional"] == {"served": '"ahead"', "pending": 1}, "in flight and never evicted"
    assert result["provisional_answered"] == {"served": '"ahead"', "left": 0}
    assert result["provisional_superseded"] is False, "a later plain write of the key is not served before its answer"
    assert result["provisional_after_failed_write"] == {"a": False, "z": False, "other_pending": True}
    assert result["absent"] == {"hit": True, "text": None}
    assert result["budget"] == {"entries": 3, "within": True, "oldest_gone": True, "newest": True}


async def test_a_signal_job_runs_in_the_context_of_the_socket_that_queued_it(settings: Settings) -> None:
    """libsignal's per-address job queue is global to the process: unpatched, the second socket's
    job runs in the first socket's key transaction (its fresh session unseen: "No sessions")."""
    proc = await asyncio.create_subprocess_exec(settings.node, str(CHILDREN / "signal_context.mjs"),
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    result = json.loads(out)
    assert result["before"]["cipher"]["socket-b"] == "socket-a", "the upstream behaviour this patch exists for"
    both = {"socket-a": "socket-a", "socket-b": "socket-b"}
    assert result["after"] == {"cipher": both, "builder": both}
