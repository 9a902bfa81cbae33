"""Compatibility both ways with real Baileys 7.0.0-rc14 `useMultiFileAuthState` (Node, no fakes).

The bridge must be a drop-in replacement for the legacy folder: same file names, same bytes, same
values after Baileys' BufferJSON reviver. Both directions are checked with keys of every type.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import CredsCorruptError
from bridge.store.auth_store import AuthStore
from bridge.store.layout import KEY_TYPES
from tests.store.conftest import run_legacy


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder)) if not name.startswith(".")}


def test_reference_values_cover_every_key_type(legacy_written: tuple[Path, dict[str, Any]]) -> None:
    _, texts = legacy_written
    assert set(texts["keys"]) == KEY_TYPES


def test_bridge_reads_a_legacy_folder_to_identical_bytes_and_values(
    legacy_written: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    legacy_folder, texts = legacy_written
    store = AuthStore(legacy_folder, session_id="legacy", bridge_dir=tmp_path / ".bridge")
    before = _files(legacy_folder)

    creds = store.load_creds()
    assert creds is not None
    assert creds == texts["creds"]
    assert json.loads(creds) == json.loads(texts["creds"])
    for key_type, values in texts["keys"].items():
        got = store.get_keys(key_type, list(values))
        assert got == values, key_type
        for key_id, text in values.items():
            assert json.loads(got[key_id] or "null") == json.loads(text)
    assert store.get_keys("pre-key", ["999"]) == {"999": None}
    assert _files(legacy_folder) == before, "reading must not rewrite a legacy folder"


def test_legacy_reads_a_bridge_folder_with_deep_equal_values(
    legacy_written: tuple[Path, dict[str, Any]], make_store: Callable[..., AuthStore], tmp_path: Path
) -> None:
    legacy_folder, texts = legacy_written
    store = make_store("bridge1")
    store.save_creds(texts["creds"])
    store.set_keys(texts["keys"])

    assert _files(store.folder) == _files(legacy_folder), "bridge files must be byte-identical to legacy ones"

    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({"creds": texts["creds"], "keys": texts["keys"]}))
    result = run_legacy("read", str(store.folder), str(expected))
    assert result["mismatches"] == []
    assert result["ok"] is True
    assert result["creds"] == texts["creds"]


def test_legacy_sees_a_key_deleted_by_the_bridge_as_absent(
    legacy_written: tuple[Path, dict[str, Any]], make_store: Callable[..., AuthStore], tmp_path: Path
) -> None:
    _, texts = legacy_written
    store = make_store("bridge2")
    store.save_creds(texts["creds"])
    store.set_keys(texts["keys"])
    store.set_keys({"pre-key": {"1": None}, "session": {"4915112345678.0": None}})

    expected_keys = {t: dict(v) for t, v in texts["keys"].items()}
    expected_keys["pre-key"]["1"] = None
    expected_keys["session"]["4915112345678.0"] = None
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({"creds": texts["creds"], "keys": expected_keys}))
    result = run_legacy("read", str(store.folder), str(expected))
    assert result["mismatches"] == []
    trashed = sorted(os.listdir(store.trash_dir))
    assert [n.split("-", 1)[1] for n in trashed] == ["pre-key-1.json", "session-4915112345678.0.json"]


def test_torn_creds_make_legacy_start_a_new_identity_but_the_bridge_refuses(
    legacy_written: tuple[Path, dict[str, Any]], make_store: Callable[..., AuthStore], tmp_path: Path
) -> None:
    _, texts = legacy_written
    store = make_store("torn")
    store.save_creds(texts["creds"])
    store.creds_path.write_text(texts["creds"][:100])  # what a crash during legacy writeFile leaves

    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({"creds": texts["creds"], "keys": {}}))
    legacy = run_legacy("read", str(store.folder), str(expected))
    assert legacy["mismatches"] == ["creds"], "legacy silently replaced the identity"
    assert "me" not in json.loads(legacy["creds"])

    with pytest.raises(CredsCorruptError, match=str(store.creds_path)):
        store.load_creds()
    assert store.creds_path.read_text() == texts["creds"][:100], "the bridge leaves the evidence alone"
