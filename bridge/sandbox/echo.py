"""The echo contact: a simulated user that reads and answers every message it gets.

Why: a newcomer who sends a first message sees, at once, every step of a real exchange (sent,
delivered, read, and an incoming message) without a second phone. The simulator has no
auto-reply of its own, so the bridge plays this contact through the control API: it polls the
contact's inbox, sends a read receipt, then a reply quoting the message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bridge.sandbox.phone import PhoneError, VirtualPhone

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.5
"""Seconds between two looks at the echo contact's inbox (a loopback HTTP call)."""


def reply_text(message: dict[str, Any]) -> str:
    """What the echo contact answers: the text back, or what kind of message it got."""
    text = message.get("text")
    if message.get("kind") == "text" and isinstance(text, str):
        return f"echo: {text}"
    return f"echo: got a {message.get('kind', 'message')}"


def sender_phone(message: dict[str, Any]) -> str | None:
    """The account that sent `message` (`from` is `<phone>@s.whatsapp.net`)."""
    sender = str(message.get("from") or "")
    phone = sender.split("@", 1)[0].split(":", 1)[0]
    return phone if phone.isdigit() else None


class EchoContact:
    """Answers each message in contact `phone`'s inbox once, for as long as `run()` runs."""

    def __init__(self, phone: VirtualPhone, number: str) -> None:
        self.phone = phone
        self.number = number
        self.answered: set[str] = set()

    async def answer_new(self) -> int:
        """Answer what arrived since the last call; returns how many messages were answered."""
        count = 0
        for message in await self.phone.inbox(self.number):
            msg_id = str(message.get("id", ""))
            to = sender_phone(message)
            if not msg_id or msg_id in self.answered or to is None or message.get("kind") in ("protocol",
                                                                                               "history_sync"):
                continue
            self.answered.add(msg_id)
            await self.phone.send_receipt(self.number, to, [msg_id], "read")
            await self.phone.send_text(self.number, to, reply_text(message), quoted=msg_id)
            count += 1
        return count

    async def run(self) -> None:
        while True:
            try:
                await self.answer_new()
            except PhoneError as exc:
                log.warning("echo contact: %s", exc)
            await asyncio.sleep(POLL_INTERVAL)
