"""`MediaDesk`: media sends and downloads of every session, on top of the `MessageDesk`.

Send: the client's file (already written to `incoming/` by the route, or fetched here from a URL)
is prepared (`bridge.media.prepare`: refusals first, then encryption into the spool), handed to
`MessageDesk.send` with the message's other rules (recipient, quoted message), and the spool file
is removed once the send is answered, acknowledged or not. Download: plan from the remembered
WAMessage, execute into the cache once, serve from the cache.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import msgspec

from bridge.config import Settings
from bridge.errors import ErrorCode, SessionError
from bridge.media.cache import MediaCache
from bridge.media.download import download, plan_download, ssl_context
from bridge.media.errors import MediaEmpty, MediaTooLarge
from bridge.media.fetch import fetch_to_file, refused_address
from bridge.media.kinds import MediaKind, human, rules
from bridge.media.prepare import MediaRequest, prepare
from bridge.media.spool import Spool, media_dir, write_bytes
from bridge.messages.desk import MessageDesk, SendOutcome
from bridge.messages.errors import MessageNotFound
from bridge.messages.send_body import SendMedia


class BadMediaBody(SessionError):
    code: str = ErrorCode.VALIDATION_ERROR


class CachedFile(msgspec.Struct, frozen=True):
    path: Path
    mimetype: str
    file_name: str | None
    kind: MediaKind


class MediaDesk:
    def __init__(self, settings: Settings, messages: MessageDesk) -> None:
        self.settings = settings
        self.messages = messages
        self.spool = Spool(settings)
        self.cache = MediaCache(media_dir(settings) / "cache", settings.media_cache_bytes)
        self._ssl = ssl_context(settings.media_trust_ca)

    # ----- send ---------------------------------------------------------------------------------
    async def send_json(self, session: str, body: SendMedia) -> SendOutcome:
        """A JSON media send: the file is `data` (base64) or `url` (exactly one)."""
        self.messages.sessions.require_open(session)
        if (body.data is None) == (body.url is None):
            raise BadMediaBody("give the file as exactly one of `data` (base64) or `url`")
        kind = MediaKind(body.kind)
        source = self.spool.incoming_path()
        if body.data is not None:
            limit = rules(kind).max_bytes
            if len(body.data) * 3 // 4 > limit + 2:
                raise MediaTooLarge(f"the {kind} is over {human(limit)}, WhatsApp's limit for a {kind}")
            try:
                data = base64.b64decode(body.data, validate=True)
            except (binascii.Error, ValueError):
                raise BadMediaBody("`data` is not valid base64; encode the file with standard base64") from None
            if not data:
                raise MediaEmpty(f"the {kind} file is empty (0 bytes); send the file's content")
            write_bytes(data, source)
            claimed = body.mimetype
        else:
            assert body.url is not None
            _, served = await fetch_to_file(body.url, source, limit=rules(kind).max_bytes,
                                            seconds=self.settings.media_fetch_timeout,
                                            refuse=None if self.settings.media_fetch_allow_private
                                            else refused_address)
            claimed = body.mimetype or served
        return await self.send_file(session, body, source, claimed)

    async def send_file(self, session: str, body: SendMedia, source: Path, claimed: str | None) -> SendOutcome:
        """Prepare `source` (a file in `incoming/`, removed here) and send it."""
        try:
            self.messages.sessions.require_open(session)
            request = MediaRequest(kind=MediaKind(body.kind), claimed_mimetype=claimed, caption=body.caption,
                                   file_name=body.file_name, gif_playback=body.gif_playback)
            prepared = await prepare(request, source, self.spool)
        finally:
            self.spool.remove(source)
        try:
            return await self.messages.send(session, body, media=prepared.content)
        finally:
            self.spool.remove(prepared.spool_file)

    # ----- download -----------------------------------------------------------------------------
    async def file(self, session: str, message_id: str) -> CachedFile:
        """The decrypted file of message `message_id`, downloading it into the cache first if needed."""
        entry = await self.messages.lookup(session, message_id)
        if entry is None:
            raise MessageNotFound(f"session {session} does not know message {message_id!r}; use an id from a "
                                  "`message` event of this session")
        plan = plan_download(message_id, entry.raw)
        name = plan.cache_name
        async with self.cache.lock(name):
            path = self.cache.hit(name)
            if path is None:
                path = self.cache.path(name)
                await download(plan, target=path, ssl_ctx=self._ssl,
                               seconds=self.settings.media_fetch_timeout)
                self.cache.evict(keep=name)
        return CachedFile(path=path, mimetype=plan.mimetype, file_name=plan.file_name, kind=plan.kind)
