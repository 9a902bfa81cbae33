"""Identity: which account a folder holds, recorded once per session, checked where folders change.

Folders and creds are made by real Baileys (useMultiFileAuthState in Node); the swap is done by
another process (`mv`), the way an operator's mistake happens.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import StoreError
from bridge.store.identity import Identity, IdentityBook, IdentityMismatch, identity_of
from tests.store.test_snapshots import make_legacy


def _creds(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / "creds.json").read_text())
    return loaded


@pytest.fixture
def two_tenants(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "auth"
    make_legacy(root / "alice", pre_keys=1)
    make_legacy(root / "bob", pre_keys=1)
    return root / "alice", root / "bob"


def test_the_identity_key_is_stable_from_creation_and_the_jid_appears_on_linking(fresh_creds: str) -> None:
    creds = json.loads(fresh_creds)
    before = identity_of(creds)
    assert before.jid is None and len(before.key) == 16
    creds.update(me={"id": "4915112345678@s.whatsapp.net", "name": "~"}, pairingCode="ABCD1234")
    assert identity_of(creds) == before, "a pairing-code request links nothing"
    creds.update(me={"id": "4915112345678:4@s.whatsapp.net"}, registered=True)
    linked = identity_of(creds)
    assert linked == Identity(key=before.key, jid="4915112345678@s.whatsapp.net")
    assert linked.same_account(before) and before.same_account(linked)
    assert not linked.same_account(Identity(key=before.key, jid="4915100000000@s.whatsapp.net"))


def test_a_recorded_identity_survives_a_new_book_and_re_recording_writes_nothing(
    tmp_path: Path, registered_creds: str
) -> None:
    bridge_dir = tmp_path / ".bridge"
    book = IdentityBook(bridge_dir)
    assert book.expected("acme") is None
    identity = identity_of(json.loads(registered_creds))
    book.record("acme", identity)
    path = bridge_dir / "identity" / "acme.json"
    first = path.stat()
    book.record("acme", identity)
    assert path.stat().st_ino == first.st_ino and path.stat().st_mtime_ns == first.st_mtime_ns
    assert IdentityBook(bridge_dir).expected("acme") == identity
    assert book.check("acme", json.loads(registered_creds)) is None
    assert book.owner_of(identity) == "acme"


def test_swapped_folders_are_a_mismatch_naming_the_owner(tmp_path: Path, two_tenants: tuple[Path, Path]) -> None:
    alice, bob = two_tenants
    book = IdentityBook(tmp_path / ".bridge")
    book.record("alice", identity_of(_creds(alice)))
    book.record("bob", identity_of(_creds(bob)))
    assert book.check("alice", _creds(alice)) is None

    swap = alice.parent / "swap"
    subprocess.run(["sh", "-c", f"mv {alice} {swap} && mv {bob} {alice} && mv {swap} {bob}"], check=True)

    mismatch = book.check("alice", _creds(alice))
    assert isinstance(mismatch, IdentityMismatch)
    assert mismatch.owner == "bob" and mismatch.session == "alice"
    assert mismatch.expected == book.expected("alice") and mismatch.found == book.expected("bob")
    assert "'bob'" in mismatch.describe() and "swapped" in mismatch.describe()
    again = book.check("bob", _creds(bob))
    assert again is not None and again.owner == "alice"


def test_foreign_creds_have_no_owner_and_a_relink_is_recorded_over_the_old_identity(
    tmp_path: Path, two_tenants: tuple[Path, Path], fresh_creds: str
) -> None:
    alice, _bob = two_tenants
    book = IdentityBook(tmp_path / ".bridge")
    book.record("alice", identity_of(_creds(alice)))
    foreign = json.loads(fresh_creds)
    mismatch = book.check("alice", foreign)
    assert mismatch is not None and mismatch.owner is None
    assert "no session" in mismatch.describe()

    book.record("alice", identity_of(foreign))  # the session relinked: new creds after a logout
    assert book.check("alice", foreign) is None
    assert book.check("alice", _creds(alice)) is not None


def test_a_damaged_record_is_an_error_not_a_pass(tmp_path: Path, registered_creds: str) -> None:
    book = IdentityBook(tmp_path / ".bridge")
    book.record("acme", identity_of(json.loads(registered_creds)))
    (tmp_path / ".bridge" / "identity" / "acme.json").write_text("{torn")
    with pytest.raises(StoreError) as err:
        book.check("acme", json.loads(registered_creds))
    assert err.value.code == "identity_unreadable"
