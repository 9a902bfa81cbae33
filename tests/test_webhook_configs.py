"""Webhook configs: saved whole and owner-only, done-or-unchanged (in memory too), read from the
first API's location when the new file does not exist yet, filters by kind and session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.errors import BridgeError
from bridge.events import Event
from bridge.webhooks import signing
from bridge.webhooks.config import Webhook, WebhookConfigs


def test_the_first_location_is_read_and_the_new_file_written_on_the_next_change(tmp_path: Path) -> None:
    legacy = tmp_path / "auth" / ".bridge" / "webhooks.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"shop": {"url": "http://127.0.0.1:9/h", "secret": "s" * 20, "events": ["state"]}}))
    configs = WebhookConfigs(tmp_path / "state" / "webhooks.json", legacy)
    configs.load()
    (hook,) = configs.all()
    assert (hook.id, hook.sessions, hook.events, hook.secret) == ("session-shop", ["shop"], ["session.state"], "s" * 20)
    configs.put(Webhook(id="global", url="https://example.com/h", secret=signing.new_secret()))
    assert configs.path.stat().st_mode & 0o777 == 0o600
    again = WebhookConfigs(configs.path, legacy)
    again.load()
    assert {h.id for h in again.all()} == {"session-shop", "global"}
    assert legacy.exists(), "the first file is left as it was"


def test_a_failed_save_changes_nothing_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    configs = WebhookConfigs(blocker / "webhooks.json")
    with pytest.raises((OSError, BridgeError)):
        configs.put(Webhook(id="w", url="https://example.com/h", secret="s" * 20))
    assert configs.all() == []


def test_filters_by_kind_and_session_with_first_names_understood() -> None:
    hook = Webhook(id="w", url="u", secret="s", events=["session.state", "message"], sessions=["a"])
    assert hook.wants(Event(seq=1, ts=0, session="a", kind="state", data={}))
    assert hook.wants(Event(seq=2, ts=0, session="a", kind="message", data={}))
    assert not hook.wants(Event(seq=3, ts=0, session="b", kind="message", data={}))
    assert not hook.wants(Event(seq=4, ts=0, session="a", kind="alert", data={}))
    assert Webhook(id="all", url="u", secret="s").wants(Event(seq=5, ts=0, session=None, kind="alert", data={}))


def test_signatures_match_the_standard_webhooks_library() -> None:
    from standardwebhooks.webhooks import Webhook as Verifier

    secret = signing.new_secret()
    body = b'{"seq":1}'
    headers = signing.headers(secret, "msg_e_1", 1_700_000_000, body)
    import datetime

    expected = Verifier(secret).sign("msg_e_1", datetime.datetime.fromtimestamp(1_700_000_000, datetime.UTC),
                                     body.decode())
    assert headers["webhook-signature"] == expected
    plain = "plain-secret-0123456789"
    assert signing.secret_key(plain) == plain.encode()
    with pytest.raises(ValueError):
        signing.secret_key("whsec_%%%")
