"""Creds history: every creds.save keeps the creds restorable, so creds-only damage is undone exactly.

Creds are real Baileys creds (tests/store/node/legacy.mjs); damage is done from outside (`truncate`
in another process), the way it happens in production.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.store.auth_store import AuthStore
from bridge.store.creds_history import CredsHistory
from bridge.store.identity import identity_of
from bridge.store.snapshots import Snapshots

StoreFactory = Callable[..., AuthStore]


def _gen(base: str, counter: int, **extra: Any) -> str:
    return json.dumps(dict(json.loads(base), accountSyncCounter=counter, **extra))


def _texts(history: CredsHistory) -> list[str]:
    return [data.decode() for _path, data in history.entries()]


def test_every_save_keeps_the_creds_and_the_newest_intact_ones_are_those_on_disk(
    make_store: StoreFactory, auth_root: Path, registered_creds: str
) -> None:
    store = make_store("acme")
    saved = [_gen(registered_creds, n) for n in range(3)]
    for text in saved:
        store.save_creds(text)
    assert _texts(store.history) == saved[::-1]

    subprocess.run(["truncate", "-s", "100", str(store.creds_path)], check=True)
    identity = identity_of(json.loads(registered_creds))
    found = Snapshots(auth_root).newest_intact_creds("acme", identity)
    assert found is not None
    text, source = found
    assert text == saved[-1], "the creds last saved, not an older generation"
    assert "creds history" in source and str(store.history.folder) in source


def test_creds_written_by_someone_else_are_kept_durably_before_being_replaced(
    make_store: StoreFactory, registered_creds: str
) -> None:
    store = make_store("acme")
    legacy = _gen(registered_creds, 41)
    store.creds_path.write_text(legacy)  # what a legacy Baileys process left behind
    store.save_creds(_gen(registered_creds, 42))
    assert _texts(store.history) == [_gen(registered_creds, 42), legacy]


def test_the_history_is_bounded_and_a_text_seen_again_moves_to_the_front(
    auth_root: Path, registered_creds: str
) -> None:
    store = AuthStore(auth_root / "acme", session_id="acme", bridge_dir=auth_root / ".bridge", creds_history_keep=3)
    for n in range(6):
        store.save_creds(_gen(registered_creds, n))
    assert _texts(store.history) == [_gen(registered_creds, n) for n in (5, 4, 3)]
    store.save_creds(_gen(registered_creds, 4))
    assert _texts(store.history) == [_gen(registered_creds, n) for n in (4, 5, 3)]
    assert len(list(store.history.folder.iterdir())) == 3


def test_unlinked_or_foreign_creds_are_never_offered_and_snapshots_are_the_fallback(
    make_store: StoreFactory, auth_root: Path, registered_creds: str, fresh_creds: str
) -> None:
    snaps = Snapshots(auth_root)
    identity = identity_of(json.loads(registered_creds))
    store = make_store("acme")
    assert snaps.newest_intact_creds("acme", identity) is None

    store.save_creds(registered_creds)
    snapshot = snaps.create("acme", reason="manual")
    for entry in store.history.folder.iterdir():
        entry.unlink()  # the history is lost: the snapshot still has the creds
    found = snaps.newest_intact_creds("acme", identity)
    assert found == (registered_creds, f"snapshot {snapshot.id} (manual, {snapshot.created_iso})")

    pairing = _gen(fresh_creds, 1, me={"id": "4915112345678@s.whatsapp.net", "name": "~"}, pairingCode="ABCD1234")
    foreign = _gen(fresh_creds, 2, me={"id": "4915100000000:2@s.whatsapp.net"}, registered=True)
    other = make_store("other")
    other.save_creds(pairing)
    other.save_creds(foreign)
    assert snaps.newest_intact_creds("other", identity) is None, "another identity's creds are never a repair"
    assert snaps.newest_intact_creds("other", identity_of(json.loads(pairing))) == (
        foreign,
        f"creds history {sorted(other.history.folder.iterdir())[-1]}",
    )
    assert snaps.newest_intact_creds("acme", identity_of(json.loads(foreign))) is None


def test_a_broken_history_never_fails_a_save(make_store: StoreFactory, auth_root: Path, registered_creds: str) -> None:
    store = make_store("acme")
    store.history.folder.parent.mkdir(parents=True)
    store.history.folder.write_text("not a folder")
    store.save_creds(registered_creds)
    assert store.load_creds() == registered_creds
