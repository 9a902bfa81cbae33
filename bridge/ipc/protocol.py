"""The IPC protocol between Python and the Node runtime, sans I/O.

Line-delimited JSON on the child's stdin/stdout: one object a line, UTF-8. Four kinds, tagged by
`"t"`: `cmd` (Python asks Node), `req` (Node asks Python: auth state, or a stored message), `res` (the
answer to either, echoing `id`), `evt` (Node tells Python something happened). Every message names its
session in `"s"`, because one runtime may host several sessions.

This module only turns bytes into typed messages and back, and knows the catalogue of commands,
requests and events with the shape of their arguments. It does no I/O (h11 style), so every rule
here is testable without a process. docs/protocol.md is generated from `CATALOGUE` by
`python -m bridge.ipc.protocol_doc > docs/protocol.md` (the renderer lives there), and a test
checks the two agree.

What may go wrong: every decode failure raises `MessageRejected` (a `ProtocolError`) that carries
whatever id/session/kind could be salvaged from the line, so the channel can answer the sender with
an error where there was an id, and count the violation against the right session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from bridge.errors import ProtocolError
from bridge.ipc import groups as g
from bridge.ipc import messaging as m

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Same rule as the store's session ids; a message for any other name is refused before routing."""

DEFAULT_MAX_LINE = 4 << 20
"""Default largest line (BRIDGE_IPC_MAX_LINE); longer lines are discarded by the channel unread."""

MAX_IDS_PER_GET = 10_000
"""auth.get may ask for at most this many ids at once (Baileys asks for a handful)."""

MAX_KEYS_PER_SET = 20_000
"""auth.set may carry at most this many values in one batch (pre-key uploads are ~30-800)."""

MAX_NAME_LEN = 256
"""Longest key type or key id accepted; real ones are under 100 characters."""

SessionId = Annotated[str, msgspec.Meta(pattern=SESSION_ID_PATTERN)]
MessageId = Annotated[int, msgspec.Meta(ge=0, le=2**53 - 1)]
KeyName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LEN)]


# --------------------------------------------------------------------------- envelopes


class Cmd(msgspec.Struct, tag_field="t", tag="cmd", forbid_unknown_fields=True):
    """Python asks the runtime to do something for session `s`; answered by a `Res` with `id`."""

    id: MessageId
    s: SessionId
    cmd: str
    args: dict[str, Any] = {}


class Req(msgspec.Struct, tag_field="t", tag="req", forbid_unknown_fields=True):
    """The runtime asks Python to read or write session `s`'s auth state (or for a stored message);
    answered by a `Res`."""

    id: MessageId
    s: SessionId
    op: str
    args: dict[str, Any] = {}


class ErrorInfo(msgspec.Struct, forbid_unknown_fields=True):
    """Why a command or request failed: a stable `code` (BridgeError codes) and an operator message."""

    code: str
    message: str


class Res(msgspec.Struct, tag_field="t", tag="res", forbid_unknown_fields=True, omit_defaults=True):
    """The answer to a `Cmd` or `Req` with the same `id` (the two directions number independently)."""

    id: MessageId
    s: SessionId
    ok: bool
    result: Any = None
    error: ErrorInfo | None = None


class Evt(msgspec.Struct, tag_field="t", tag="evt", forbid_unknown_fields=True):
    """Something happened in the runtime for session `s`; never answered."""

    s: SessionId
    name: str
    data: dict[str, Any] = {}


Message = Cmd | Req | Res | Evt


# --------------------------------------------------------------------------- arguments and results


class StartArgs(msgspec.Struct, forbid_unknown_fields=True):
    """Create (or re-create) the session's Baileys socket. Answered once the socket exists."""

    wa_url: str
    trust_root: str = ""
    login: Literal["qr", "pairing_code"] = "qr"
    phone: str = ""
    browser: str = "baileys-bridge"
    connect_timeout_ms: Annotated[int, msgspec.Meta(ge=1000)] = 20_000
    query_timeout_ms: Annotated[int, msgspec.Meta(ge=1000)] = 60_000
    send_ack_timeout_ms: Annotated[int, msgspec.Meta(ge=1000)] = 20_000
    log_level: Literal["fatal", "error", "warn", "info", "debug", "trace", "silent"] = "warn"


class Empty(msgspec.Struct, forbid_unknown_fields=True):
    """No arguments / no result fields."""


class PairingCodeArgs(msgspec.Struct, forbid_unknown_fields=True):
    phone: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6,20}$")]


class PairingCodeResult(msgspec.Struct):
    code: str


class PingResult(msgspec.Struct):
    pid: int
    sessions: list[str]


class AuthGetArgs(msgspec.Struct, forbid_unknown_fields=True):
    type: KeyName
    ids: Annotated[list[KeyName], msgspec.Meta(max_length=MAX_IDS_PER_GET)]


class AuthSetArgs(msgspec.Struct, forbid_unknown_fields=True):
    data: dict[KeyName, dict[KeyName, str | None]]


class CredsSaveArgs(msgspec.Struct, forbid_unknown_fields=True):
    creds: Annotated[str, msgspec.Meta(min_length=2)]


class ReadyData(msgspec.Struct):
    pid: int
    node: str
    baileys: str
    permission: bool
    fs_write_denied: bool


class Disconnect(msgspec.Struct):
    status_code: int | None
    reason: str | None
    message: str
    handled_by_runtime: bool = False


class Me(msgspec.Struct):
    id: str
    name: str | None = None
    lid: str | None = None


class ConnectionUpdateData(msgspec.Struct):
    connection: Literal["connecting", "open", "close"] | None = None
    qr: str | None = None
    is_new_login: bool | None = None
    receivedPendingNotifications: bool | None = None  # Baileys' own field name
    me: Me | None = None
    disconnect: Disconnect | None = None


class QrData(msgspec.Struct):
    qr: str


class PairingCodeData(msgspec.Struct):
    code: str


class MessageData(msgspec.Struct, rename={"from_": "from"}):
    """The first runtime's text-only `message` event. No longer in the catalogue (the runtime
    forwards `messages.upsert` instead); kept until the sessions layer stops naming it."""

    id: str
    from_: str
    to: str
    text: str
    from_me: bool
    timestamp: int


class CredsUpdateData(msgspec.Struct):
    count: int
    keys: list[str]


@dataclass(frozen=True)
class Entry:
    """One line of the catalogue: a command, request or event, its shapes and its contract."""

    kind: Literal["cmd", "req", "evt"]
    name: str
    args: type[msgspec.Struct]
    result: Any
    doc: str


CATALOGUE: tuple[Entry, ...] = (
    Entry("cmd", "start", StartArgs, Empty,
          "Create the session's socket with these options (wa_url is Baileys' waWebSocketUrl; trust_root, "
          "when not empty, replaces WA_CERT_DETAILS.PUBLIC_KEY: a test server's root key). The runtime first "
          "sends `auth.load`; answered `{}` once the socket exists. Progress arrives as events. `login` and `phone` "
          "only label the runtime's logs: a pairing code is asked for with `request_pairing_code` once the "
          "socket is up (after the first `qr` event)."),
    Entry("cmd", "stop", Empty, Empty,
          "Close the socket without logging out (creds stay valid) and forget the session; answered after "
          "its pending auth writes are durable. The runtime keeps running; it exits when its stdin closes."),
    Entry("cmd", "logout", Empty, Empty,
          "Log the device out on the server (Baileys `logout()`). Deletes nothing: the runtime cannot "
          "write, and Python keeps the folder (snapshot + alert)."),
    Entry("cmd", "request_pairing_code", PairingCodeArgs, PairingCodeResult,
          "Ask for an 8-character pairing code for `phone` (digits, country code first) on a started, "
          "unregistered session; the code also arrives as a `pairing_code` event."),
    Entry("cmd", "send", m.SendArgs, m.SendResult,
          "Send one message. `content.kind` picks the shape; the runtime turns it into Baileys' sendMessage "
          "content (text: `{text, mentions, linkPreview}` with `preview` as Baileys' urlInfo or null, never "
          "fetched by the runtime; reaction: `{react: "
          "{text: emoji, key}}`, edit: `{text, edit: key}`, revoke: `{delete: key}`, location: `{location}`, "
          "contact: `{contacts: {displayName, contacts}}`, poll: `{poll: {name, values, selectableCount}}`, "
          "forward: `{forward: message}`) and `quoted` (a WAMessage as proto JSON) into the `quoted` option. "
          "Python has validated everything and resolved earlier messages from its store; keys are Baileys' "
          "WAMessageKey. Answered only after the server acknowledged it (`<ack class=message>` with the message "
          "id, waited for up to the start command's `send_ack_timeout_ms`, BRIDGE_SEND_ACK_TIMEOUT) and "
          "Baileys committed the message's Signal keys: `id` is then a message "
          "WhatsApp has. The moment the ack arrives the runtime forwards the message and its ack in one write "
          "(`messages.upsert` append, then `messages.update` status 2), usually while the key commit still "
          "runs, so Python stores both meanwhile; `message` (the WAMessage) is in the answer only when it "
          "was not forwarded that way, and Baileys' own later `append` upsert of a forwarded message is not "
          "forwarded again (a status or group receipt Baileys merged into it is forwarded as `messages.update` "
          "/ `message-receipt.update`). The runtime builds and relays the message with Baileys' "
          "`generateWAMessage` and `relayMessage`, the two steps of `sendMessage`. Errors: `no_server_ack` "
          "(timeout), `server_nack` (the ack carried an error), `session_state`."),
    Entry("cmd", "read", m.ReadArgs, "{}",
          "Send read receipts for received messages (Baileys `readMessages(keys)`; read-self when the account "
          "hides read receipts)."),
    Entry("cmd", "presence", m.PresenceArgs, "{}",
          "Baileys `sendPresenceUpdate(type, to)`: `available`/`unavailable` for the account (no `to`), "
          "`composing`/`recording`/`paused` in the chat `to`."),
    Entry("cmd", "presence_subscribe", m.JidArgs, "{}",
          "Baileys `presenceSubscribe(jid)`: the contact's presence then arrives as `presence.update` events."),
    Entry("cmd", "check_numbers", m.CheckNumbersArgs, m.CheckNumbersResult,
          f"Baileys `onWhatsApp(...numbers)` (at most {m.MAX_NUMBERS_PER_CHECK}, digits): only the numbers on "
          "WhatsApp come back, each with its JID and, when Baileys knows or can learn it, its LID."),
    Entry("cmd", "profile_picture", m.ProfilePictureArgs, m.ProfilePictureResult,
          "Baileys `profilePictureUrl(jid, high_res ? 'image' : 'preview')`; `url` null when the contact has "
          "none or hides it (the server's 404 item-not-found / 401 not-authorized)."),
    Entry("cmd", "status_text", m.JidArgs, m.StatusTextResult,
          "Baileys `fetchStatus(jid)`: the about text and when it was set (Unix seconds); `status` null when "
          "none, \"\" when hidden."),
    Entry("cmd", "media_retry", m.MediaRetryArgs, m.MediaRetryResult,
          "Baileys `updateMediaMessage(message)`: asks the sender's phone to upload an expired file again (a "
          "`server-error` receipt with the encrypted media retry request) and waits for its `mediaretry` "
          "notification; answers the new direct path. Error `media_retry_failed` when the phone answers with an "
          "error or not in time."),
    Entry("cmd", "poll_vote", m.PollVoteArgs, m.PollVoteResult,
          "Baileys `decryptPollVote(vote, {pollMsgId, pollCreatorJid, voterJid, pollEncKey})`, tried for each "
          "creator and voter address until one decrypts (AES-GCM authenticates): the option hashes chosen. "
          "Error `poll_vote_undecryptable` when none does."),
    Entry("cmd", "group_list", Empty, g.GroupListResult,
          "Baileys `groupFetchAllParticipating()`: the metadata of every group the account is in (each also "
          "refreshes the runtime's group cache)."),
    Entry("cmd", "group_metadata", g.GroupMetadataArgs, g.GroupMetadataResult,
          "Baileys `groupMetadata(jid)` (refreshes the cache); with `cached: true` the cached entry when there "
          "is one (`cached` in the answer says which)."),
    Entry("cmd", "group_create", g.GroupCreateArgs, g.GroupCreateResult,
          f"Baileys `groupCreate(subject, participants)` (1..{g.MAX_PARTICIPANTS} user JIDs or LIDs); answers "
          "the new group's metadata."),
    Entry("cmd", "group_subject", g.GroupSubjectArgs, "{}", "Baileys `groupUpdateSubject(jid, subject)`."),
    Entry("cmd", "group_description", g.GroupDescriptionArgs, "{}",
          "Baileys `groupUpdateDescription(jid, description)`; no `description` removes it."),
    Entry("cmd", "group_setting", g.GroupSettingArgs, "{}",
          "Baileys `groupSettingUpdate(jid, setting)`: announcement (only admins send), not_announcement, "
          "locked (only admins edit the info), unlocked."),
    Entry("cmd", "group_participants", g.GroupParticipantsArgs, g.GroupParticipantsResult,
          "Baileys `groupParticipantsUpdate(jid, participants, action)`: one result per participant, `status` "
          "\"200\" or the server's code for it."),
    Entry("cmd", "group_invite_code", g.GroupJidArgs, g.InviteCodeResult, "Baileys `groupInviteCode(jid)`."),
    Entry("cmd", "group_revoke_invite", g.GroupJidArgs, g.InviteCodeResult,
          "Baileys `groupRevokeInvite(jid)`: the old link stops working; answers the new code."),
    Entry("cmd", "group_join", g.GroupJoinArgs, g.GroupJoinResult,
          "Baileys `groupAcceptInvite(code)`: answers the group's JID."),
    Entry("cmd", "group_leave", g.GroupJidArgs, "{}", "Baileys `groupLeave(jid)` (drops the group from the cache)."),
    Entry("cmd", "ping", Empty, PingResult,
          "Liveness check; `s` may be any valid id. Returns the runtime's pid and hosted sessions."),
    Entry("req", "auth.load", Empty, "string or null",
          "creds.json text, or null when the session has none yet (the runtime then runs initAuthCreds() "
          "and sends `creds.save` before connecting). A corrupt creds.json is an error, never null."),
    Entry("req", "auth.get", AuthGetArgs, "{id: string or null}",
          "Signal keys of one type: the exact JSON text of each file (BufferJSON), null when absent."),
    Entry("req", "auth.set", AuthSetArgs, "null",
          "Write a batch `{type: {id: text or null}}` (null = delete, which moves the file to the bridge's "
          "trash). Answered only after the batch is durable (fsync'd and renamed)."),
    Entry("req", "creds.save", CredsSaveArgs, "null",
          "Replace creds.json with this BufferJSON text. Answered only after it is durable. The runtime "
          "serialises these and flushes them before reporting `open` or reconnecting after a 515."),
    Entry("req", "message.get", m.GetMessageArgs, "proto JSON of the message (proto.IMessage) or null",
          "Baileys' `getMessage(key)`: a contact's retry receipt asks for a message this session sent (or a poll "
          "vote needs its poll); Python answers from its message store (the `message` field of the stored "
          "WAMessage, media keys included), null when it does not have it or after it was asked for "
          "20 times (a peer that keeps asking cannot loop). Answered from the store's file, so it also works for "
          "messages sent before a bridge restart."),
    Entry("req", "message.durable", m.MessageDurableArgs, m.MessageDurableResult,
          "Sent right after the `messages.upsert` of a message the runtime just decrypted, before Baileys commits "
          "its Signal keys and acknowledges it to WhatsApp: answered once no event of the session is held back "
          "(a media auto-download, a poll vote) and every event and message row published so far is in the event "
          "log's file (`durable: true`); with `durable: false` at once while the event log is failing (they are "
          "held in memory, bounded, and written when it recovers) or after 10 s of waiting (the runtime goes on). "
          "So a bridge killed at any moment either has the message and its event stored or WhatsApp delivers it "
          "again."),
    Entry("evt", "ready", ReadyData, None,
          "The runtime booted; `permission` is true when Node's permission model is on and "
          "`fs_write_denied` when `process.permission.has('fs.write')` is false. Sent once at boot, with `s` = "
          "BRIDGE_SESSION from the environment (the first hosted session)."),
    Entry("evt", "connection.update", ConnectionUpdateData, None,
          "Baileys' connection.update, reduced. On `close`, `disconnect` gives the status code, the "
          "DisconnectReason name and the message; the runtime then waits for a new `start`, except for "
          "restartRequired (515): it flushes creds and reconnects itself (`handled_by_runtime: true`). `open` is "
          "reported only after every pending auth write is durable; if one failed, the runtime reports `close` "
          "with `status_code: null` and a 'creds not durable' message instead, and closes the socket."),
    Entry("evt", "qr", QrData, None, "A new QR string to show (also inside connection.update)."),
    Entry("evt", "pairing_code", PairingCodeData, None, "A pairing code produced by request_pairing_code."),
    Entry("evt", "messages.upsert", m.UpsertData, None,
          "Baileys' messages.upsert of type notify (new) or append (sent by this session or the phone), "
          "forwarded as is: each WAMessage as proto JSON (`key` with remoteJid, remoteJidAlt, participant, "
          "participantAlt, fromMe, id, addressingMode; `message`; `messageTimestamp`; `pushName`; `status`). "
          "Python normalises them (bridge.messages.incoming). Messages without a key id are left out."),
    Entry("evt", "messages.update", m.MessagesUpdateData, None,
          "The status changes of Baileys' messages.update (receipts in chats: 2 server ack, 3 delivered, "
          "4 read, 5 played; 0 error with the server's code in `error`); other updates are not forwarded."),
    Entry("evt", "message-receipt.update", m.ReceiptUpdateData, None,
          "Baileys' message-receipt.update: receipts of group members (`userJid` and the timestamp of "
          "delivery, read or played)."),
    Entry("evt", "presence.update", m.PresenceUpdateData, None,
          "Baileys' presence.update: `id` is the chat, `presences` maps each JID to its lastKnownPresence "
          "(available, unavailable, composing, recording; a paused chat state reads available) and lastSeen."),
    Entry("evt", "groups.upsert", g.GroupsUpsertData, None,
          "Baileys' groups.upsert: the account is in a new group (created by it or by someone who added it); "
          "each item is the group's metadata with `author`."),
    Entry("evt", "groups.update", g.GroupsUpdateData, None,
          "Baileys' groups.update items that are changes (subject, desc, announce, restrict, with `author`, "
          "`authorPn`); the full metadata Baileys reports while listing groups only refreshes the cache."),
    Entry("evt", "group-participants.update", g.GroupParticipantsData, None,
          "Baileys' group-participants.update: `action` add, remove, promote, demote or modify, the "
          "participants `{id, phoneNumber, lid}`, who did it (`author`, `authorPn`). Also patches the cache."),
    Entry("evt", "creds.update", CredsUpdateData, None,
          "Baileys updated creds: how many fields and which. The matching creds.save request follows."),
)

COMMANDS = {e.name: e for e in CATALOGUE if e.kind == "cmd"}
REQUESTS = {e.name: e for e in CATALOGUE if e.kind == "req"}
EVENTS = {e.name: e for e in CATALOGUE if e.kind == "evt"}


# --------------------------------------------------------------------------- encode / decode


class MessageRejected(ProtocolError):
    """A line that broke the protocol, with whatever could be salvaged to answer and count it.

    `kind` is a short label for the IPC_VIOLATIONS metric (too_long, bad_json, bad_shape,
    unknown_op, unknown_event, bad_args, unknown_id, unknown_session).
    """

    def __init__(self, message: str, *, kind: str, msg_id: int | None = None, session: str | None = None,
                 t: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.msg_id = msg_id
        self.session = session
        self.t = t


class _Salvage(msgspec.Struct):
    """Lenient view of a broken message: enough to answer it and to blame the right session."""

    t: Any = None
    id: Any = None
    s: Any = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Message)
_salvager = msgspec.json.Decoder(_Salvage)


def encode(msg: Message) -> bytes:
    """Serialise one message as a line (trailing newline included)."""
    return _encoder.encode(msg) + b"\n"


def _salvage(line: bytes) -> _Salvage:
    try:
        return _salvager.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _Salvage()


def decode(line: bytes, *, max_line: int = DEFAULT_MAX_LINE) -> Message:
    """Parse one line (with or without its newline) into a typed message.

    Raises `MessageRejected` for lines over `max_line`, invalid UTF-8/JSON, an unknown `t`, a bad
    session id or missing fields. It does not check `cmd`/`op`/`name` against the catalogue: that is
    `validate_args`, so a well-formed request with an unknown op can still be answered by id.
    """
    if len(line) > max_line:
        raise MessageRejected(f"IPC line of {len(line)} bytes exceeds the {max_line}-byte limit", kind="too_long")
    try:
        msg: Message = _decoder.decode(line)
        return msg
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        salvage = _salvage(line)
        msg_id = salvage.id if isinstance(salvage.id, int) and not isinstance(salvage.id, bool) else None
        session = salvage.s if isinstance(salvage.s, str) and len(salvage.s) <= 64 else None
        t = salvage.t if isinstance(salvage.t, str) and len(salvage.t) <= 16 else None
        kind = "bad_shape" if isinstance(exc, msgspec.ValidationError) else "bad_json"
        raise MessageRejected(f"IPC line rejected: {exc}", kind=kind, msg_id=msg_id, session=session, t=t) from exc


def validate_args(msg: Cmd | Req | Evt) -> msgspec.Struct:
    """Check a message's `args`/`data` against the catalogue and return them typed.

    Raises `MessageRejected` (kind unknown_op / unknown_event / bad_args) carrying the message's id.
    """
    if isinstance(msg, Cmd):
        entry, payload, msg_id, kind = COMMANDS.get(msg.cmd), msg.args, msg.id, "unknown_op"
        what = f"command {msg.cmd!r}"
    elif isinstance(msg, Req):
        entry, payload, msg_id, kind = REQUESTS.get(msg.op), msg.args, msg.id, "unknown_op"
        what = f"request op {msg.op!r}"
    else:
        entry, payload, msg_id, kind = EVENTS.get(msg.name), msg.data, None, "unknown_event"
        what = f"event {msg.name!r}"
    if entry is None:
        raise MessageRejected(f"unknown {what[:80]}", kind=kind, msg_id=msg_id, session=msg.s)
    try:
        return msgspec.convert(payload, entry.args)
    except msgspec.ValidationError as exc:
        raise MessageRejected(f"bad arguments for {what}: {exc}", kind="bad_args", msg_id=msg_id,
                              session=msg.s) from exc


def ok(msg_id: int, session: str, result: Any = None) -> Res:
    """A success reply."""
    return Res(id=msg_id, s=session, ok=True, result=result)


def fail(msg_id: int, session: str, code: str, message: str) -> Res:
    """An error reply (codes are BridgeError codes)."""
    return Res(id=msg_id, s=session, ok=False, error=ErrorInfo(code=code, message=message))
