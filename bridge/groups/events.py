"""Baileys' group events -> `group.update` and `group.participants` (docs/groups.md).

- `groups.upsert` (the account is in a new group: it created it or was added at creation):
  `group.update` with membership `joined` and the group's metadata.
- `groups.update` (subject, description, announce, restrict changed): `group.update` naming the
  changed fields and who changed them.
- `group-participants.update`: `group.participants` (added, removed, left, promoted, demoted,
  changed_number) with who did it; when the account itself was added or removed, also a
  `group.update` with membership `joined`, `left` or `removed`.
"""

from __future__ import annotations

import msgspec

from bridge.events import EventBus, EventKind
from bridge.groups.model import GroupUpdate, Membership, Participant, ParticipantsChange
from bridge.groups.names import group_info, participant, person
from bridge.ipc import groups as ipc
from bridge.messages.addresses import LidBook, account

GROUP_EVENTS = frozenset({"groups.upsert", "groups.update", "group-participants.update"})
ACTIONS = {"add": "added", "remove": "removed", "promote": "promoted", "demote": "demoted",
           "modify": "changed_number"}


def _is_me(p: Participant, me: str | None, lids: LidBook) -> bool:
    acc = account(me)
    return acc is not None and bool(({p.jid, p.lid} & {acc, lids.preferred(acc), lids.lid(acc)}) - {None})


def publish(bus: EventBus, session: str, data: msgspec.Struct, me: str | None, lids: LidBook) -> None:
    """Publish the events of one runtime group event."""
    if isinstance(data, ipc.GroupsUpsertData):
        for meta in data.groups:
            info = group_info(meta, lids)
            author, phone = person(meta.get("author"), meta.get("authorPn"), lids)
            _emit(bus, session, EventKind.GROUP_UPDATE,
                  GroupUpdate(session=session, group=info.id, changed=["membership"], author=author, author_phone=phone,
                              membership=Membership.JOINED, metadata=info))
    elif isinstance(data, ipc.GroupsUpdateData):
        for raw in data.updates:
            update = _update(session, raw, lids)
            if update is not None:
                _emit(bus, session, EventKind.GROUP_UPDATE, update)
    elif isinstance(data, ipc.GroupParticipantsData):
        _participants(bus, session, data, me, lids)


def _update(session: str, raw: dict[str, object], lids: LidBook) -> GroupUpdate | None:
    changed: list[str] = []
    fields: dict[str, object] = {}
    if isinstance(raw.get("subject"), str):
        changed.append("subject")
        fields["subject"] = raw["subject"]
    if "desc" in raw:
        changed.append("description")
        fields["description"] = raw["desc"] if isinstance(raw["desc"], str) and raw["desc"] else None
    for name in ("announce", "restrict"):
        if isinstance(raw.get(name), bool):
            changed.append(name)
            fields[name] = raw[name]
    if not changed:
        return None
    author, phone = person(_s(raw.get("author")), _s(raw.get("authorPn")), lids)
    return msgspec.convert({"session": session, "group": str(raw.get("id")), "changed": changed, "author": author,
                            "author_phone": phone, **fields}, GroupUpdate)


def _participants(bus: EventBus, session: str, data: ipc.GroupParticipantsData, me: str | None,
                  lids: LidBook) -> None:
    people = [participant(msgspec.to_builtins(p), lids) for p in data.participants]
    author, author_phone = person(data.author, data.authorPn, lids)
    action = ACTIONS.get(data.action, data.action)
    if action == "removed" and len(people) == 1 and author is not None and people[0].jid == author:
        action = "left"
    mine = any(_is_me(p, me, lids) for p in people)
    _emit(bus, session, EventKind.GROUP_PARTICIPANTS,
          ParticipantsChange(session=session, group=data.id, action=action, participants=people, author=author,
                             author_phone=author_phone, includes_me=mine))
    membership = {"added": Membership.JOINED, "left": Membership.LEFT, "removed": Membership.REMOVED}.get(action)
    if mine and membership is not None:
        _emit(bus, session, EventKind.GROUP_UPDATE,
              GroupUpdate(session=session, group=data.id, changed=["membership"], author=author,
                          author_phone=author_phone, membership=membership))


def _s(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _emit(bus: EventBus, session: str, kind: EventKind, data: msgspec.Struct) -> None:
    bus.publish(session, kind, msgspec.to_builtins(data))
