"""Status ordering: a message's status only moves forward, one step at a time, each step once.

WhatsApp's receipts arrive out of order and sometimes not at all (a contact who reads at once
sends only `read`; the server ack and the delivery receipt can cross). Clients want one simple
promise: `message.status` events for a message come in the order sent -> delivered -> read ->
played, each at most once. So a later status fills in the steps it proves (`implied`), and an
earlier or repeated one is dropped. `failed` is final and only follows `pending` or `sent`
(a message the contact already has cannot fail any more).
"""

from __future__ import annotations

from bridge.messages.model import MessageStatus

S = MessageStatus

ORDER: tuple[MessageStatus, ...] = (S.PENDING, S.SENT, S.DELIVERED, S.READ, S.PLAYED)
RANK = {status: index for index, status in enumerate(ORDER)}

BAILEYS_STATUS: dict[int, MessageStatus] = {
    0: S.FAILED, 1: S.PENDING, 2: S.SENT, 3: S.DELIVERED, 4: S.READ, 5: S.PLAYED,
}
"""proto.WebMessageInfo.Status (ERROR, PENDING, SERVER_ACK, DELIVERY_ACK, READ, PLAYED)."""


def from_baileys(value: int | str | None) -> MessageStatus | None:
    """The status of a Baileys `status` (number, or its enum name in proto JSON); None if unknown."""
    if isinstance(value, str):
        names = {"ERROR": S.FAILED, "PENDING": S.PENDING, "SERVER_ACK": S.SENT, "DELIVERY_ACK": S.DELIVERED,
                 "READ": S.READ, "PLAYED": S.PLAYED}
        if value in names:
            return names[value]
        if not value.isdigit():
            return None
        value = int(value)
    if isinstance(value, bool) or value is None:
        return None
    return BAILEYS_STATUS.get(value)


def advance(current: MessageStatus, new: MessageStatus) -> list[tuple[MessageStatus, bool]]:
    """The statuses to publish when a message at `current` is reported `new`, oldest first, each
    with `implied` (True for a step no receipt reported). Empty when `new` is not progress."""
    if current is S.FAILED:
        return []
    if new is S.FAILED:
        return [(S.FAILED, False)] if RANK[current] <= RANK[S.SENT] else []
    if RANK[new] <= RANK[current]:
        return []
    between = ORDER[RANK[current] + 1:RANK[new]]
    steps: list[tuple[MessageStatus, bool]] = [(status, True) for status in between if status is not S.PENDING]
    steps.append((new, False))
    return steps
