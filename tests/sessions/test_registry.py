"""The session registry: atomic, durable, refuses to overwrite a damaged file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import Settings
from bridge.errors import SessionError, SessionNotFound, StoreError
from bridge.events import EventBus
from bridge.sessions.manager import SessionManager
from bridge.sessions.phone import to_jid, validate_phone
from bridge.sessions.registry import Registry, SessionRecord
from bridge.store.snapshots import Snapshots
from tests.sessions.disk import small_disk


def test_records_survive_a_new_registry_over_the_same_folder(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.put(SessionRecord(id="a", login="pairing_code", phone="4915123456789", desired_running=True))
    reg.put(SessionRecord(id="b"))
    reg.update("b", last_state="open", last_reason="open")
    again = Registry(tmp_path)
    assert [r.id for r in again.all()] == ["a", "b"]
    a = again.get("a")
    assert (a.login, a.phone, a.desired_running) == ("pairing_code", "4915123456789", True)
    assert again.get("b").last_state == "open"
    assert a.created_at > 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_unknown_session_is_session_not_found(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(SessionNotFound):
        reg.get("nope")
    with pytest.raises(SessionNotFound):
        reg.update("nope", desired_running=True)


def test_a_damaged_registry_is_refused_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "sessions.json").write_text('{"version": 1, "sessions": {"a": ')
    with pytest.raises(SessionError, match="unreadable"):
        Registry(tmp_path)
    assert (tmp_path / "sessions.json").read_text() == '{"version": 1, "sessions": {"a": '


def test_copies_are_returned_so_callers_cannot_mutate_the_registry(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.put(SessionRecord(id="a"))
    record = reg.get("a")
    record.desired_running = True
    assert reg.get("a").desired_running is False


@pytest.mark.parametrize("phone", ["4915123456789", "+4915123456789", "12025550123"])
def test_valid_phone_numbers(phone: str) -> None:
    assert validate_phone(phone) == phone.lstrip("+")


@pytest.mark.parametrize(
    "phone", ["", "0151 234567", "01512345678", "+49 151 2345678", "49-151-2345678", "12345", "1" * 16, "abc"]
)
def test_invalid_phone_numbers_say_what_is_expected(phone: str) -> None:
    with pytest.raises(SessionError, match="digits only, country code"):
        validate_phone(phone)


def test_recipients_as_phone_or_jid() -> None:
    assert to_jid("4915123456789") == "4915123456789@s.whatsapp.net"
    assert to_jid("4915123456789@s.whatsapp.net") == "4915123456789@s.whatsapp.net"
    assert to_jid("123456789-123456@g.us") == "123456789-123456@g.us"
    for bad in ["hello", "a@evil.example", "../x@s.whatsapp.net", "0151@"]:
        with pytest.raises(SessionError):
            to_jid(bad)


def test_a_failed_registry_write_on_a_full_disk_changes_nothing_in_memory_or_on_disk() -> None:
    with small_disk("256k") as disk:
        reg = Registry(disk.path / ".bridge")
        reg.put(SessionRecord(id="a"))
        reg.put(SessionRecord(id="b", desired_running=True))
        before = (disk.path / ".bridge" / "sessions.json").read_bytes()
        disk.fill()
        with pytest.raises(StoreError) as failed:
            reg.update("a", desired_running=True)
        assert "full" in str(failed.value)
        with pytest.raises(StoreError):
            reg.put(SessionRecord(id="c"))
        assert reg.get("a").desired_running is False and not reg.exists("c")
        assert (disk.path / ".bridge" / "sessions.json").read_bytes() == before
        disk.free()
        # The next successful write (of another record) must not carry the failed change along.
        reg.update("b", last_state="open")
        again = Registry(disk.path / ".bridge")
        assert again.get("a").desired_running is False and not again.exists("c")
        assert again.get("b").last_state == "open"


async def test_a_start_that_cannot_be_recorded_on_a_full_disk_does_not_happen() -> None:
    with small_disk("1m") as disk:
        settings = Settings(_env_file=None, auth_root=disk.path / "auth")
        manager = SessionManager(settings, EventBus(), Snapshots(settings.auth_root))
        try:
            await manager.create("s")
            disk.fill()
            with pytest.raises(StoreError):
                await manager.start("s")
            info = manager.get("s")
            assert (info.state, info.desired_running, info.pid) == ("stopped", False, None)
            assert Registry(settings.bridge_dir).get("s").desired_running is False
        finally:
            await manager.shutdown()
