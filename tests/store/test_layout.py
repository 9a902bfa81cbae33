"""The legacy name codec: same names as Baileys, and no name ever leaves the session folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import HostileNameError
from bridge.store.layout import (
    CREDS_FILE,
    KEY_TYPES,
    MAX_KEY_ID_CHARS,
    NAME_MAX,
    is_bridge_private,
    key_file_name,
    parse_key_file_name,
    validate_session_id,
)

key_types = st.sampled_from(sorted(KEY_TYPES))
any_ids = st.text(max_size=MAX_KEY_ID_CHARS + 20)
# Ids the escaping leaves alone: no "/" or ":" (the two characters legacy rewrites).
plain_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/:\\"), max_size=60
)


def test_names_match_legacy_fix_file_name() -> None:
    assert key_file_name("pre-key", "12") == "pre-key-12.json"
    assert key_file_name("app-state-sync-key", "AAAAAF/x") == "app-state-sync-key-AAAAAF__x.json"
    assert key_file_name("sender-key", "1203@g.us::49151::0") == "sender-key-1203@g.us--49151--0.json"
    assert key_file_name("identity-key", "49151:1@s.whatsapp.net") == "identity-key-49151-1@s.whatsapp.net.json"
    assert key_file_name("tctoken", "__index") == "tctoken-__index.json"


@given(key_types, any_ids)
def test_a_key_name_is_one_plain_file_inside_the_folder(key_type: str, key_id: str) -> None:
    try:
        name = key_file_name(key_type, key_id)
    except HostileNameError:
        return
    folder = Path("/auth/s1")
    resolved = Path(os.path.normpath(folder / name))
    assert resolved.parent == folder
    assert "/" not in name and "\x00" not in name
    assert name not in (".", "..", CREDS_FILE)
    assert not is_bridge_private(name)
    assert len(name.encode("utf-8")) <= NAME_MAX


@given(key_types, plain_ids)
def test_round_trip_where_the_escaping_is_lossless(key_type: str, key_id: str) -> None:
    name = key_file_name(key_type, key_id)
    parsed = parse_key_file_name(name)
    assert parsed is not None
    # The split between type and id is ambiguous only when the id starts like a longer type's tail.
    longer = [t for t in KEY_TYPES if t.startswith(key_type + "-") and (key_type + "-" + key_id).startswith(t + "-")]
    if not longer:
        assert parsed == (key_type, key_id)


@given(key_types, any_ids)
def test_parsing_a_name_then_naming_it_again_gives_the_same_file(key_type: str, key_id: str) -> None:
    try:
        name = key_file_name(key_type, key_id)
    except HostileNameError:
        return
    parsed = parse_key_file_name(name)
    assert parsed is not None
    assert key_file_name(*parsed) == name


@given(st.text(max_size=300))
def test_parse_never_accepts_a_name_it_would_not_write(name: str) -> None:
    parsed = parse_key_file_name(name)
    if parsed is not None:
        assert key_file_name(*parsed) == name


@pytest.mark.parametrize(
    ("key_type", "key_id"),
    [
        ("pre-key", "\x00"),
        ("pre-key", "a\x00b"),
        ("session", "x\n"),
        ("session", "..\\..\\evil"),
        ("sender-key", "a" * (MAX_KEY_ID_CHARS + 1)),
        ("session", "\u00e9" * MAX_KEY_ID_CHARS),  # 400 bytes of UTF-8: over NAME_MAX
        ("../../etc", "passwd"),
        ("creds", "x"),
        ("", "1"),
        ("Pre-Key", "1"),
    ],
)
def test_hostile_names_are_refused(key_type: str, key_id: str) -> None:
    with pytest.raises(HostileNameError) as err:
        key_file_name(key_type, key_id)
    assert "refused" in str(err.value)


@pytest.mark.parametrize("key_id", ["../../../etc/passwd", "/etc/passwd", "..", "a/../../b"])
def test_slashes_and_dots_stay_in_the_folder_exactly_as_legacy(key_id: str) -> None:
    name = key_file_name("session", key_id)
    assert "/" not in name
    assert name == "session-" + key_id.replace("/", "__") + ".json"


def test_parse_ignores_creds_and_private_and_foreign_names() -> None:
    for name in (CREDS_FILE, ".bridge-tmp.1.abc", "notes.txt", "unknown-1.json", "pre-key-1.json.bak"):
        assert parse_key_file_name(name) is None
    assert parse_key_file_name("sender-key-memory-1203@g.us.json") == ("sender-key-memory", "1203@g.us")
    assert parse_key_file_name("app-state-sync-key-AAAAAF__x.json") == ("app-state-sync-key", "AAAAAF__x")


@pytest.mark.parametrize("sid", ["a", "tenant-1", "A.b_c-9", "x" * 64])
def test_valid_session_ids(sid: str) -> None:
    assert validate_session_id(sid) == sid


@pytest.mark.parametrize("sid", ["", ".bridge", "-x", "a/b", "..", "x" * 65, "a b", "a\x00", "é"])
def test_invalid_session_ids_are_refused(sid: str) -> None:
    with pytest.raises(HostileNameError):
        validate_session_id(sid)


@given(st.text(max_size=80))
def test_a_valid_session_id_is_one_safe_path_component(sid: str) -> None:
    try:
        validate_session_id(sid)
    except HostileNameError:
        return
    assert "/" not in sid and sid not in (".", "..") and not sid.startswith(".")
