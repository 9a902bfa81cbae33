"""Typed client for the simulator's control API, and the process launcher.

Tests use it to play the phone (scan a QR, enter a pairing code), to play contacts (send, read
what they received) and to break things on purpose (faults). Every call is plain HTTP to
127.0.0.1; the routes are documented in simulator/README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp
import msgspec

from tests.simulator.models import (
    Account,
    Addressing,
    Contact,
    ContactCard,
    ContactKind,
    Device,
    Group,
    InboxMessage,
    OutboxMessage,
    ParticipantResult,
    PresenceState,
    PresenceType,
    Receipt,
    ReceiptSent,
    ReceiptType,
    SentMessage,
    SimulatorInfo,
)

__all__ = [
    "Account",
    "Contact",
    "ContactCard",
    "Device",
    "FaultKind",
    "Group",
    "InboxMessage",
    "OutboxMessage",
    "PresenceState",
    "Receipt",
    "SentMessage",
    "SimulatorClient",
    "SimulatorError",
    "SimulatorInfo",
    "SimulatorProcess",
    "start_simulator",
]

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SIMULATOR_DIR = REPO_ROOT / "simulator"
"""The simulator ships with the product (sandbox mode); its Python client and tests stay here."""
MAIN = SIMULATOR_DIR / "main.mjs"
ACCEPTANCE_CLIENT = SIMULATOR_DIR / "acceptance" / "client.mjs"

FaultKind = Literal[
    "drop", "stall", "deaf", "515", "401", "403", "440", "503", "bad_frame", "slow_handshake", "bad_cert"
]


class SimulatorError(Exception):
    """The control API answered with an error (status and the simulator's message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"simulator control error {status}: {message}")
        self.status = status
        self.message = message


T = TypeVar("T")


class _Unset:
    """Marks an argument that was not given (None has a meaning: clear the value)."""


_UNSET = _Unset()


class SimulatorClient:
    """Control-API client. Stateless: each call opens its own HTTP connection, so one client can
    be shared by tests that run on different event loops (module-scoped fixture)."""

    def __init__(self, info: SimulatorInfo, *, timeout: float = 60.0) -> None:
        self.ws_url = info.ws_url
        self.control_url = info.control_url
        self.root_pub = info.root_pub
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with aiohttp.ClientSession(timeout=self._timeout) as http:
            async with http.request(method, self.control_url + path, json=body) as resp:
                data = await resp.json(content_type=None)
                if resp.status != 200:
                    err = data.get("error", {}) if isinstance(data, dict) else {}
                    raise SimulatorError(resp.status, str(err.get("message", data)))
                return data

    async def health(self) -> dict[str, Any]:
        """Liveness plus counters (connections, protocol violations)."""
        result: dict[str, Any] = await self._call("GET", "/health")
        return result

    async def accounts(self) -> list[Account]:
        return msgspec.convert(await self._call("GET", "/accounts"), list[Account])

    async def create_account(self, phone: str | None = None) -> Account:
        """Make a phone account exist (a random number when `phone` is None)."""
        return msgspec.convert(await self._call("POST", "/accounts", {"phone": phone}), Account)

    async def devices(self) -> list[Device]:
        return msgspec.convert(await self._call("GET", "/devices"), list[Device])

    async def device(self, jid: str) -> Device | None:
        return next((d for d in await self.devices() if d.jid == jid), None)

    async def scan(self, qr: str, phone: str | None = None) -> Device:
        """The phone `phone` scans `qr`; returns once the companion signed its identity."""
        body: dict[str, Any] = {"qr": qr}
        if phone is not None:
            body["phone"] = phone
        return msgspec.convert(await self._call("POST", "/scan", body), Device)

    async def enter_pairing_code(self, phone: str, code: str) -> Device:
        """The phone `phone` types the 8-character code the client displayed."""
        return msgspec.convert(await self._call("POST", "/pair-code", {"phone": phone, "code": code}), Device)

    async def fault(
        self,
        kind: FaultKind,
        *,
        jid: str | None = None,
        phone: str | None = None,
        delay_ms: int | None = None,
        count: int | None = None,
    ) -> dict[str, Any]:
        """Inject a fault into the connected devices of `phone` / `jid`, or (slow_handshake,
        bad_cert) into the next `count` handshakes."""
        body: dict[str, Any] = {"kind": kind}
        for key, value in (("jid", jid), ("phone", phone), ("delay_ms", delay_ms), ("count", count)):
            if value is not None:
                body[key] = value
        result: dict[str, Any] = await self._call("POST", "/fault", body)
        return result

    async def unban(self, phone: str) -> Account:
        return msgspec.convert(await self._call("POST", "/unban", {"phone": phone}), Account)

    async def create_contact(
        self,
        phone: str,
        *,
        addressing: Addressing | None = None,
        push_name: str | None = None,
        picture_url: str | _Unset | None = _UNSET,
        picture_hidden: bool | None = None,
        status: str | _Unset | None = _UNSET,
        status_hidden: bool | None = None,
        group_add: Literal["all", "nobody"] | None = None,
    ) -> Contact:
        """A simulated WhatsApp user with its own Signal identity (created once, then reconfigured).

        `addressing="lid"` makes its messages arrive from its LID with the phone number only in
        `sender_pn`, as WhatsApp does for LID chats. `picture_url` / `status` set its profile
        (None clears); the `*_hidden` flags make the server refuse them (401) like a privacy setting;
        `group_add="nobody"` makes adding it to a group answer 403.
        """
        body: dict[str, Any] = {"phone": phone}
        for key, value in (("addressing", addressing), ("push_name", push_name), ("picture_hidden", picture_hidden),
                           ("status_hidden", status_hidden), ("group_add", group_add)):
            if value is not None:
                body[key] = value
        for key, maybe in (("picture_url", picture_url), ("status", status)):
            if not isinstance(maybe, _Unset):
                body[key] = maybe
        return msgspec.convert(await self._call("POST", "/contacts", body), Contact)

    async def contact(self, phone: str) -> Contact:
        return msgspec.convert(await self._call("GET", f"/contacts/{phone}"), Contact)

    async def inbox(self, phone: str) -> list[InboxMessage]:
        """What the contact received and decrypted, oldest first."""
        return msgspec.convert(await self._call("GET", f"/contacts/{phone}/inbox"), list[InboxMessage])

    async def decrypt_errors(self, phone: str) -> list[dict[str, Any]]:
        """Messages sent to the contact that it could not decrypt ({id, from, error}), oldest first."""
        errors: list[dict[str, Any]] = await self._call("GET", f"/contacts/{phone}/errors")
        return errors

    async def outbox(self, phone: str) -> list[OutboxMessage]:
        """What the contact sent, oldest first."""
        return msgspec.convert(await self._call("GET", f"/contacts/{phone}/outbox"), list[OutboxMessage])

    async def receipts(self, phone: str) -> list[Receipt]:
        """Receipts sessions sent for the contact's messages (delivery, read, ...), oldest first."""
        return msgspec.convert(await self._call("GET", f"/contacts/{phone}/receipts"), list[Receipt])

    async def _send(self, phone: str, to: str, kind: ContactKind, **fields: Any) -> SentMessage:
        body = {"to": to, "kind": kind, **{k: v for k, v in fields.items() if v is not None}}
        return msgspec.convert(await self._call("POST", f"/contacts/{phone}/send", body), SentMessage)

    async def send_from_contact(
        self, phone: str, to: str, text: str, *, quoted: str | None = None, mentions: list[str] | None = None
    ) -> SentMessage:
        """Contact `phone` sends `text` to account `to` (a phone number), encrypted per device;
        `quoted` makes it a reply to a message of that chat (by id)."""
        return await self._send(phone, to, "text", text=text, quoted=quoted, mentions=mentions)

    async def send_reaction(self, phone: str, to: str, key_id: str, emoji: str) -> SentMessage:
        """React to a message of the chat (`emoji=""` removes the reaction)."""
        return await self._send(phone, to, "reaction", key_id=key_id, emoji=emoji)

    async def send_edit(self, phone: str, to: str, key_id: str, text: str) -> SentMessage:
        """Edit a text the contact sent (protocolMessage MESSAGE_EDIT, stanza edit="1")."""
        return await self._send(phone, to, "edit", key_id=key_id, text=text)

    async def send_revoke(self, phone: str, to: str, key_id: str) -> SentMessage:
        """Delete for everyone a message the contact sent (protocolMessage REVOKE, edit="7")."""
        return await self._send(phone, to, "revoke", key_id=key_id)

    async def send_location(
        self, phone: str, to: str, lat: float, long: float, *, name: str | None = None, address: str | None = None
    ) -> SentMessage:
        return await self._send(phone, to, "location", lat=lat, long=long, name=name, address=address)

    async def send_contacts(self, phone: str, to: str, cards: list[ContactCard]) -> SentMessage:
        """One card is a contactMessage, several a contactsArrayMessage."""
        contacts = [msgspec.to_builtins(card) for card in cards]
        return await self._send(phone, to, "contact", contacts=contacts)

    async def send_poll(
        self, phone: str, to: str, name: str, options: list[str], *, selectable_count: int = 1
    ) -> SentMessage:
        """A poll with a fresh 32-byte message secret (pollCreationMessageV3 when single-select)."""
        return await self._send(phone, to, "poll", name=name, options=options, selectable_count=selectable_count)

    async def send_poll_vote(self, phone: str, to: str, poll_id: str, options: list[str]) -> SentMessage:
        """Vote on a poll of the chat: option hashes encrypted with the poll's secret (AES-GCM)."""
        return await self._send(phone, to, "poll_vote", poll_id=poll_id, options=options)

    async def send_receipt(self, phone: str, to: str, ids: list[str], type: ReceiptType = "read") -> ReceiptSent:
        """Contact `phone` tells account `to` it got (delivery), read or played these messages."""
        body = {"to": to, "ids": ids, "type": type}
        return msgspec.convert(await self._call("POST", f"/contacts/{phone}/receipt", body), ReceiptSent)

    async def set_presence(self, phone: str, type: PresenceType, to: str | None = None) -> dict[str, Any]:
        """available/unavailable go to the devices subscribed to the contact; composing, recording
        and paused are chat states sent to account `to`'s connected devices."""
        body: dict[str, Any] = {"type": type}
        if to is not None:
            body["to"] = to
        result: dict[str, Any] = await self._call("POST", f"/contacts/{phone}/presence", body)
        return result

    async def presence_state(self, phone: str) -> PresenceState:
        return msgspec.convert(await self._call("GET", f"/contacts/{phone}/presence"), PresenceState)

    async def groups(self) -> list[Group]:
        return msgspec.convert(await self._call("GET", "/groups"), list[Group])

    async def group(self, jid: str) -> Group:
        return msgspec.convert(await self._call("GET", f"/groups/{jid}"), Group)

    async def create_group(self, phone: str, subject: str, participants: list[str]) -> Group:
        """Contact `phone` creates a group with these accounts (phone numbers or jids); every member
        device gets the `w:gp2` create notification."""
        body = {"phone": phone, "subject": subject, "participants": participants}
        return msgspec.convert(await self._call("POST", "/groups", body), Group)

    async def send_to_group(self, phone: str, jid: str, kind: ContactKind = "text", **fields: Any) -> SentMessage:
        """Member contact `phone` sends to group `jid` (fields as for `send_from_contact` and friends:
        text, quoted, key_id, emoji, ...): sender key to each member device pairwise, then skmsg."""
        body = {"phone": phone, "kind": kind, **{k: v for k, v in fields.items() if v is not None}}
        return msgspec.convert(await self._call("POST", f"/groups/{jid}/send", body), SentMessage)

    async def change_group_participants(
        self, phone: str, jid: str, action: Literal["add", "remove", "promote", "demote"], participants: list[str]
    ) -> list[ParticipantResult]:
        """Admin contact `phone` changes participants; members get the `w:gp2` notification."""
        body = {"phone": phone, "action": action, "participants": participants}
        answer = await self._call("POST", f"/groups/{jid}/participants", body)
        return msgspec.convert(answer["results"], list[ParticipantResult])

    async def wait_inbox(
        self, phone: str, predicate: Callable[[InboxMessage], bool], within: float = 60.0
    ) -> InboxMessage:
        """Poll the contact's inbox until a message matches (tests never assert durations)."""
        return await _first(lambda: self.inbox(phone), predicate, within)

    async def wait_receipt(
        self, phone: str, predicate: Callable[[Receipt], bool], within: float = 60.0
    ) -> Receipt:
        """Poll the receipts sessions sent to the contact until one matches."""
        return await _first(lambda: self.receipts(phone), predicate, within)

    async def wait_presence(
        self, phone: str, predicate: Callable[[PresenceState], bool], within: float = 60.0
    ) -> PresenceState:
        """Poll the contact's presence state until it matches."""
        return await _first(lambda: self._one(self.presence_state(phone)), predicate, within)

    @staticmethod
    async def _one(item: Awaitable[T]) -> list[T]:
        return [await item]

    async def stop(self) -> None:
        """Ask the simulator to exit (the launcher also stops it when the test ends)."""
        with contextlib.suppress(aiohttp.ClientError, SimulatorError):
            await self._call("POST", "/stop")


POLL_INTERVAL = 0.2
"""Seconds between two control-API polls of the wait_* helpers."""


async def _first(fetch: Callable[[], Awaitable[list[T]]], predicate: Callable[[T], bool], within: float) -> T:
    """Poll `fetch` until an item matches; TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            for item in await fetch():
                if predicate(item):
                    return item
            await asyncio.sleep(POLL_INTERVAL)


def node_binary() -> str:
    """The node executable: BRIDGE_NODE if set, else the one on PATH."""
    found = os.environ.get("BRIDGE_NODE") or shutil.which("node")
    if not found:
        raise RuntimeError("node not found: install Node 20 or set BRIDGE_NODE")
    return found


def simulator_command() -> list[str]:
    return [node_binary(), str(MAIN)]


def _decode_info(line: bytes) -> SimulatorInfo:
    if not line:
        raise RuntimeError("simulator exited before printing its address line (see its stderr)")
    return msgspec.json.decode(line, type=SimulatorInfo)


@contextlib.asynccontextmanager
async def start_simulator(
    env: dict[str, str] | None = None, *, startup_timeout: float = 60.0
) -> AsyncIterator[SimulatorClient]:
    """Start a private simulator process; yield its client; stop it (stdin EOF, then kill)."""
    proc = await asyncio.create_subprocess_exec(
        *simulator_command(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=None,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), startup_timeout)
        yield SimulatorClient(_decode_info(line))
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


class SimulatorProcess:
    """Synchronous launcher for module-scoped fixtures (no event loop needed to start or stop)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="simulator-", suffix=".log", delete=False)
        self.log_path = Path(self._log.name)
        self.proc = subprocess.Popen(
            simulator_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> SimulatorClient:
        box: list[bytes] = []
        assert self.proc.stdout is not None
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not box:
            self.stop()
            raise RuntimeError(f"simulator did not start within {timeout}s; log: {self.log_path}")
        return SimulatorClient(_decode_info(box[0]))

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the simulator's stderr, for assertion messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
