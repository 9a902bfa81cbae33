"""The reconnect table and the backoff calculator."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from bridge.sessions.reconnect import RULES, Backoff, DisconnectReason, ReconnectAction, classify

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


def test_backoff_grows_exponentially_is_jittered_and_capped() -> None:
    backoff = Backoff(1.0, 60.0, random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    for attempt, delay in enumerate(delays):
        base = min(60.0, 2.0**attempt)
        assert base / 2 <= delay <= base
    assert max(delays) <= 60.0
    assert len({round(d, 6) for d in delays}) == len(delays)  # jitter: no two alike


def test_backoff_spreads_tenants_that_fail_together() -> None:
    delays = [Backoff(1.0, 60.0, random.Random(seed)) for seed in range(50)]
    for b in delays:
        for _ in range(5):
            b.next_delay()
    sixth = [b.next_delay() for b in delays]
    assert min(sixth) >= 16.0 and max(sixth) <= 32.0
    assert max(sixth) - min(sixth) > 4.0


def test_backoff_reset_and_huge_attempts() -> None:
    backoff = Backoff(0.5, 10.0, random.Random(1))
    for _ in range(5000):
        assert backoff.next_delay() <= 10.0
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(5.0, 1.0)
