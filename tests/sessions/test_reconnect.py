"""The reconnect table and the backoff calculator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.sessions.reconnect import RULES, DisconnectReason, ReconnectAction, classify

BAILEYS_TYPES = Path(__file__).resolve().parents[2] / "node_modules/@whiskeysockets/baileys/lib/Types/index.js"


def test_table_matches_baileys_disconnect_reasons() -> None:
    """Every DisconnectReason of the pinned Baileys has a row, with the same number."""
    text = BAILEYS_TYPES.read_text()
    found = dict(re.findall(r'DisconnectReason\["(\w+)"\] = (\d+)', text))
    assert found, "DisconnectReason not found in the pinned Baileys"
    codes = {rule.code for rule in RULES}
    for name, code in found.items():
        assert int(code) in codes, f"{name}={code} has no row in the reconnect table"
        const = re.sub(r"(?<!^)([A-Z])", r"_\1", name).upper()
        assert getattr(DisconnectReason, const) == int(code)


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (515, ReconnectAction.RESTART_NOW),
        (428, ReconnectAction.BACKOFF),
        (408, ReconnectAction.BACKOFF),
        (503, ReconnectAction.BACKOFF),
        (500, ReconnectAction.BACKOFF),
        (401, ReconnectAction.LOGGED_OUT),
        (403, ReconnectAction.BANNED),
        (440, ReconnectAction.REPLACED),
        (411, ReconnectAction.FAILED),
        (None, ReconnectAction.BACKOFF),
        (418, ReconnectAction.BACKOFF),
    ],
)
def test_classify(code: int | None, action: ReconnectAction) -> None:
    assert classify(code).action is action
