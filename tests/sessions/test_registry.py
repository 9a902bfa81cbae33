"""The session registry: atomic, durable, refuses to overwrite a damaged file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import SessionError, SessionNotFound
from bridge.sessions.phone import to_jid, validate_phone
from bridge.sessions.registry import Registry, SessionRecord


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
