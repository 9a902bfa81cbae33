"""When a healthy folder is snapshotted: the rules of snapshot_policy.py, one case each."""

from __future__ import annotations

import dataclasses
import random

from bridge.delivery import Backoff
from bridge.monitor.folder_check import CredsStatus, FolderLook
from bridge.monitor.snapshot_policy import NewestSnapshot, SessionMemory, SnapshotBackoff, remember, snapshot_reason
from bridge.store.identity import Identity

UNLINKED = Identity(key="k1" * 8)
LINKED = Identity(key="k1" * 8, jid="15550001111@s.whatsapp.net")
LOOK = FolderLook(True, CredsStatus.OK, 2000, "sha-1", True, frozenset({"pre-key-1.json"}), identity=LINKED)
SETTLE, MIN_INTERVAL = 10.0, 300.0


def reason(
    look: FolderLook, newest: NewestSnapshot | None, memory: SessionMemory, now: float, wall: float
) -> str | None:
    return snapshot_reason(look, newest, memory, now=now, wall_now=wall, settle_seconds=SETTLE,
                           min_interval=MIN_INTERVAL)


def test_a_session_without_snapshots_gets_its_first() -> None:
    assert reason(LOOK, None, SessionMemory(), 0.0, 0.0) == "monitor-first"


def test_a_link_is_snapshotted_at_once_then_again_once_it_has_settled() -> None:
    memory = SessionMemory()
    remember(memory, LOOK, now=100.0)
    before_link = NewestSnapshot(UNLINKED, "sha-0", created_at=1000.0)  # a pairing-code request's creds
    assert reason(LOOK, before_link, memory, 100.0, 1001.0) == "monitor-registration"
    at_link = NewestSnapshot(LINKED, "sha-1", created_at=1001.0)
    assert reason(LOOK, at_link, memory, 105.0, 1005.0) is None  # creds still changing after the link
    assert reason(LOOK, at_link, memory, 110.0, 1010.0) == "monitor-settled"  # quiet for SETTLE seconds
    memory.settled_for = LINKED
    assert reason(LOOK, at_link, memory, 500.0, 1400.0) is None  # once per account, not per minute


def test_the_pre_keys_of_a_link_are_snapshotted_as_soon_as_they_are_in_the_folder() -> None:
    memory = SessionMemory()
    remember(memory, LOOK, now=100.0)
    at_link = NewestSnapshot(LINKED, "sha-1", created_at=1001.0)  # the registration snapshot: no pre-keys yet
    counted = dataclasses.replace(LOOK, creds_sha256="sha-2", prekeys=812)
    assert reason(counted, at_link, memory, 101.0, 1002.0) is None  # creds count them, the files are not there yet
    written = dataclasses.replace(counted, key_files=frozenset(f"pre-key-{n}.json" for n in range(1, 813)))
    assert reason(written, at_link, memory, 101.0, 1002.0) == "monitor-prekeys"  # no settle wait
    with_keys = NewestSnapshot(LINKED, "sha-2", created_at=1002.0, prekeys=812)
    assert reason(written, with_keys, memory, 102.0, 1003.0) is None  # once per upload
    topped_up = dataclasses.replace(written, prekeys=842,
                                    key_files=written.key_files | {f"pre-key-{n}.json" for n in range(813, 843)})
    assert reason(topped_up, with_keys, memory, 102.0, 1003.0) == "monitor-prekeys"


def test_pre_keys_of_an_unlinked_folder_wait_for_the_link() -> None:
    unlinked = dataclasses.replace(LOOK, registered=False, identity=UNLINKED, prekeys=1)
    assert reason(unlinked, NewestSnapshot(UNLINKED, "sha-0", created_at=1.0), SessionMemory(), 0.0, 2.0) is None


def test_a_creds_change_waits_for_the_minimum_interval() -> None:
    memory = SessionMemory(settled_for=LINKED)
    changed = dataclasses.replace(LOOK, creds_sha256="sha-2")
    newest = NewestSnapshot(LINKED, "sha-1", created_at=1000.0)
    assert reason(changed, newest, memory, 0.0, 1000.0 + MIN_INTERVAL - 1) is None
    assert reason(changed, newest, memory, 0.0, 1000.0 + MIN_INTERVAL) == "monitor-change"


def test_failing_snapshots_back_off_and_the_first_success_ends_the_episode() -> None:
    backoff = SnapshotBackoff(Backoff(1.0, 900.0, jitter="none", rng=random.Random(1)))
    assert backoff.allowed(0.0)
    assert [backoff.failed(0.0) for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert not backoff.allowed(15.0) and backoff.allowed(16.0)
    assert backoff.succeeded() is True and backoff.allowed(0.0) and backoff.succeeded() is False
