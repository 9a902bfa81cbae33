"""Poll votes: decrypt a received vote with its poll's secret and keep the poll's tally.

A vote (`pollUpdateMessage`) is encrypted: AES-GCM under a key derived from the poll's
`messageSecret`, the poll's id, its creator and the voter. The bridge has the poll (and its secret)
in its message store, so `PollVotes` - a `Prefetcher` of the message desk - holds the vote's
`message` event back, finds the poll, has the runtime run Baileys' `decryptPollVote` (IPC
`poll_vote`; the runtime tries the creator's and voter's phone JID and LID, since the wire does not
say which one the voter's phone used), maps the chosen option hashes (sha256 of each option name)
back to names, records the voter's latest choice and the tally on the stored poll, and publishes
the vote with `selected` and `tally`. A vote whose poll the bridge does not have, or that does not
decrypt, is published as it came (`selected` null), never dropped.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

import msgspec

from bridge.errors import BridgeError
from bridge.ipc import messaging as ipc
from bridge.messages.incoming import unwrap
from bridge.messages.model import Message, MessageKind, Poll
from bridge.messages.store import MessageStore


class RuntimeCalls(Protocol):
    def call(self, session: str, cmd: str, args: dict[str, Any]) -> Awaitable[Any]:
        """A runtime command for `session` (the desk's `SessionPort.call`)."""

log = logging.getLogger(__name__)


def option_hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def tallied(poll: Poll, voter: str, selected: list[str]) -> Poll:
    """`poll` with `voter`'s latest choice (an empty one takes the vote back) and the new tally."""
    votes = {k: v for k, v in poll.votes.items() if k != voter}
    if selected:
        votes[voter] = selected
    tally = {option: sum(option in chosen for chosen in votes.values()) for option in poll.options}
    return msgspec.structs.replace(poll, votes=votes, tally=tally)


def _secret(raw: dict[str, Any]) -> str | None:
    context = (raw.get("message") or {}).get("messageContextInfo") or {}
    secret = context.get("messageSecret")
    return secret if isinstance(secret, str) and secret else None


def _vote(raw: dict[str, Any]) -> tuple[str, str] | None:
    update = (unwrap(raw.get("message")) or {}).get("pollUpdateMessage") or {}
    vote = update.get("vote") or {}
    payload, iv = vote.get("encPayload"), vote.get("encIv")
    return (payload, iv) if isinstance(payload, str) and isinstance(iv, str) else None


class PollVotes:
    def __init__(self, store: MessageStore, sessions: RuntimeCalls) -> None:
        self.store = store
        self.sessions = sessions

    def wants(self, message: Message) -> bool:
        return message.kind is MessageKind.POLL_VOTE and message.poll_vote is not None

    async def fetch(self, session: str, message: Message) -> Message:
        try:
            return await self._decrypted(session, message)
        except BridgeError as exc:
            log.warning("session %s: poll vote %s not decrypted: %s", session, message.id, exc)
            return message
        except Exception:  # a vote must still be published, whatever went wrong
            log.exception("session %s: poll vote %s not decrypted", session, message.id)
            return message

    async def _decrypted(self, session: str, message: Message) -> Message:
        assert message.poll_vote is not None
        vote_entry = self.store.get(session, message.id)
        poll_entry = await self.store.fetch(session, message.poll_vote.poll_id)
        if vote_entry is None or poll_entry is None or poll_entry.message.poll is None:
            log.info("session %s: vote %s is for poll %s the bridge does not have", session, message.id,
                     message.poll_vote.poll_id)
            return message
        secret, vote = _secret(poll_entry.raw), _vote(vote_entry.raw)
        if secret is None or vote is None:
            return message
        poll_message = poll_entry.message
        creators = [] if poll_message.from_me else [
            j for j in (poll_message.sender, phone_jid(poll_message.sender_phone), poll_message.sender_lid) if j]
        voters = list(dict.fromkeys(j for j in (phone_jid(message.sender_phone), message.sender_lid, message.sender)
                                    if j))
        args = ipc.PollVoteArgs(poll_id=poll_message.id, poll_enc_key=secret, enc_payload=vote[0], enc_iv=vote[1],
                                creators=list(dict.fromkeys(creators)), voters=voters,
                                creator_is_me=poll_message.from_me)
        answer = msgspec.convert(await self.sessions.call(session, "poll_vote", msgspec.to_builtins(args)),
                                 ipc.PollVoteResult)
        poll = poll_message.poll
        assert poll is not None
        names = {option_hash(option): option for option in poll.options}
        selected = [names.get(h, f"unknown:{h}") for h in answer.selected]
        updated = tallied(poll, message.sender_phone or message.sender, selected)
        self.store.revise(poll_entry, msgspec.structs.replace(poll_message, poll=updated))
        await self.store.written()  # a client that saw the vote's event reads the new tally
        return msgspec.structs.replace(message, poll_vote=msgspec.structs.replace(
            message.poll_vote, selected=selected, tally=updated.tally))


def phone_jid(phone: str | None) -> str | None:
    return f"{phone}@s.whatsapp.net" if phone else None
