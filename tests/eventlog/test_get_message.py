"""Baileys' `getMessage` answered over IPC from the message store.

Specification: a `message.get` request line, as the Node runtime writes it, is decoded and
validated by the protocol and answered by the runtime's request handler from the store's file
(also by a store made after a restart, nothing cached) with the `message` proto JSON of a real
Baileys WAMessage (a poll with its secret); Baileys' own `proto.Message.fromObject` (real Node,
real Baileys) turns that answer back into the same content, bytes included. After `MAX_ASKS` asks
the answer is null, so a peer that keeps sending retry receipts cannot loop; an unknown message is
null; a session the runtime does not host is refused.

The simulator cannot send a retry receipt yet, so the whole path (contact fails to decrypt ->
retry receipt -> Baileys -> `message.get` -> re-sent message decrypts) is not exercised end to end
here; this tests the IPC request, the handler and the proto round trip directly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from bridge.errors import ProtocolError
from bridge.eventlog.log import EventLog
from bridge.events import EventBus
from bridge.ipc import protocol as p
from bridge.messages.addresses import LidBook
from bridge.messages.incoming import normalise
from bridge.messages.store import MessageStore
from bridge.messages.store_getmessage import MAX_ASKS, GetMessageAnswer
from bridge.runtime.auth_handler import AuthRequestHandler

ROOT = Path(__file__).resolve().parents[2]
POLL = json.loads((ROOT / "tests/messages/baileys_json/3EB080F67791C08B1F4EA3.json").read_text())
ME = "177700000001@s.whatsapp.net"


def request_line(n: int, session: str, key: dict[str, Any]) -> bytes:
    """What node-runtime/messages.mjs `storedMessage` writes for Baileys' getMessage(key)."""
    return json.dumps({"t": "req", "id": n, "s": session, "op": "message.get", "args": {"key": key}}).encode()


async def ask(handler: AuthRequestHandler, line: bytes) -> Any:
    req = p.decode(line)
    assert isinstance(req, p.Req)
    return await handler(req, p.validate_args(req))


@pytest.fixture
async def stored_poll(tmp_path: Path) -> AsyncIterator[tuple[EventBus, EventLog]]:
    bus = EventBus()
    log = EventLog(tmp_path / "state" / "events.db", bus)
    await log.open()
    message = normalise("s1", POLL, me=ME, lids=LidBook())
    assert message is not None
    MessageStore(bus).put(message, POLL)
    assert await log.flush()
    MessageStore(bus)  # as after a restart: the desk's new store has nothing cached
    yield bus, log
    await log.close()


async def test_a_message_get_request_is_answered_from_the_file_with_content_baileys_can_rebuild(
    stored_poll: tuple[EventBus, EventLog],
) -> None:
    bus, _ = stored_poll
    handler = AuthRequestHandler(messages=GetMessageAnswer(bus))
    handler.host("s1", object())  # type: ignore[arg-type]  # auth ops are not used here
    key = {"remoteJid": POLL["key"]["remoteJid"], "id": POLL["key"]["id"], "fromMe": True, "participant": None}
    answer = await ask(handler, request_line(1, "s1", key))
    assert answer == POLL["message"]

    script = (
        "import { proto } from '@whiskeysockets/baileys';"
        "const m = proto.Message.fromObject(JSON.parse(process.argv[1]));"
        "console.log(JSON.stringify({name: m.pollCreationMessageV3.name, options: m.pollCreationMessageV3.options"
        ".map(o => o.optionName), secret: Buffer.from(m.messageContextInfo.messageSecret).toString('base64')}))"
    )
    rebuilt = await asyncio.to_thread(subprocess.run, ["node", "--input-type=module", "-e", script,
                                                       json.dumps(answer)],
                                      cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    got = json.loads(rebuilt.stdout)
    assert got == {"name": "Day?", "options": ["mon", "tue"],
                   "secret": POLL["message"]["messageContextInfo"]["messageSecret"]}
    assert len(base64.b64decode(got["secret"])) == 32


async def test_past_max_asks_the_answer_is_null_and_unknown_or_foreign_keys_get_nothing(
    stored_poll: tuple[EventBus, EventLog],
) -> None:
    bus, log = stored_poll
    handler = AuthRequestHandler(messages=GetMessageAnswer(bus))
    handler.host("s1", object())  # type: ignore[arg-type]
    key = {"remoteJid": POLL["key"]["remoteJid"], "id": POLL["key"]["id"], "fromMe": True}
    answers = []
    for n in range(MAX_ASKS + 2):
        answers.append(await ask(handler, request_line(n, "s1", key)))
        assert await log.held_written()
    assert answers[:MAX_ASKS] == [POLL["message"]] * MAX_ASKS
    assert answers[MAX_ASKS:] == [None, None]
    assert await ask(handler, request_line(90, "s1", {**key, "id": "3EB0NOTSTORED"})) is None
    assert await ask(handler, request_line(91, "s1", {**key, "remoteJid": "19999999999@s.whatsapp.net"})) is None
    with pytest.raises(ProtocolError):
        await ask(handler, request_line(92, "other", key))
    with pytest.raises(p.MessageRejected):
        await ask(handler, request_line(93, "s1", {"remoteJid": "x", "id": ""}))
    assert msgspec.json.decode(p.encode(p.ok(1, "s1", POLL["message"])))["result"] == POLL["message"]
