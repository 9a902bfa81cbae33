"""Baileys' `messages.update` (status) and `message-receipt.update` (group receipts) -> reports.

A report says "message `id` in `chat` reached `status`", with the member in a group. Whether it is
news (status only moves forward) is `bridge.messages.status.advance`'s call, made by the desk
that knows each message's status so far.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.ipc import messaging as ipc
from bridge.messages.addresses import LidBook, account
from bridge.messages.incoming import to_int
from bridge.messages.model import MessageStatus
from bridge.messages.status import from_baileys


@dataclass(frozen=True)
class StatusReport:
    id: str
    chat: str
    from_me: bool
    status: MessageStatus
    participant: str = ""
    timestamp: int | None = None
    error: str | None = None


def _chat(key: dict[str, object], lids: LidBook) -> str:
    remote = key.get("remoteJid")
    remote = remote if isinstance(remote, str) else None
    return (remote if remote and remote.endswith("@g.us") else lids.preferred(remote)) or ""


def from_updates(data: ipc.MessagesUpdateData, lids: LidBook) -> list[StatusReport]:
    reports = []
    for update in data.updates:
        status = from_baileys(update.status)
        message_id = update.key.get("id")
        if status is None or not isinstance(message_id, str):
            continue
        reports.append(StatusReport(id=message_id, chat=_chat(update.key, lids), from_me=bool(update.key.get("fromMe")),
                                    status=status, error=update.error))
    return reports


def from_receipts(data: ipc.ReceiptUpdateData, lids: LidBook) -> list[StatusReport]:
    reports = []
    for item in data.receipts:
        message_id = item.key.get("id")
        if not isinstance(message_id, str):
            continue
        r = item.receipt
        when: int | str | None
        if r.playedTimestamp:
            status, when = MessageStatus.PLAYED, r.playedTimestamp
        elif r.readTimestamp:
            status, when = MessageStatus.READ, r.readTimestamp
        else:
            status, when = MessageStatus.DELIVERED, r.receiptTimestamp
        reports.append(StatusReport(id=message_id, chat=_chat(item.key, lids), from_me=bool(item.key.get("fromMe")),
                                    status=status, participant=lids.preferred(account(r.userJid)) or r.userJid,
                                    timestamp=to_int(when) or None))
    return reports
