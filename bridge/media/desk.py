"""`MediaDesk`: media sends and downloads of every session, on top of the `MessageDesk`.

Send: the client's file (already written to `incoming/` by the route, or fetched here from a URL)
is prepared (`bridge.media.prepare`: refusals first, then encryption into the spool), handed to
`MessageDesk.send` with the message's other rules (recipient, quoted message), and the spool file
is removed once the send is answered, acknowledged or not. Download: plan from the remembered
WAMessage, execute into the cache once, serve from the cache.

Auto-download: with `BRIDGE_MEDIA_AUTO_DOWNLOAD` naming kinds, the desk is the message desk's
`Prefetcher`: a received file of those kinds (announced size within
`BRIDGE_MEDIA_AUTO_DOWNLOAD_MAX_BYTES`) is downloaded into the cache before its `message` event is
published, which then carries `media.url`; a failed download still publishes the event, with
`media.download_error`.

The spool and cache folders are made on first use, and the spool is emptied then of what an
earlier run left behind (one bridge per state folder: nothing in it can belong to a send in
progress), so a bridge starting on a faulty state folder fails media operations only.
"""

from __future__ import annotations

import base64
import binascii
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec

from bridge.config import Settings
from bridge.errors import BridgeError, ErrorCode, NodeRuntimeError, SessionError
from bridge.ipc import messaging as ipc
from bridge.media.cache import MediaCache
from bridge.media.download import DownloadPlan, download, media_connector, plan_download, ssl_context
from bridge.media.errors import MediaEmpty, MediaGone, MediaTooLarge
from bridge.media.fetch import fetch_to_file, refused_address
from bridge.media.kinds import MediaKind, human, rules
from bridge.media.link_preview import link_preview
from bridge.media.prepare import MediaRequest, prepare
from bridge.media.spool import Spool, media_dir, write_bytes
from bridge.messages.desk import MessageDesk, SendOutcome
from bridge.messages.errors import MessageNotFound
from bridge.messages.model import Message
from bridge.messages.send_body import SendMedia

log = logging.getLogger(__name__)


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
        self._spool: Spool | None = None
        self._cache: MediaCache | None = None
        self._ssl = ssl_context(settings.media_trust_ca)
        self._connector: aiohttp.TCPConnector | None = None
        self.auto_kinds = frozenset(str(MediaKind(k)) for k in settings.media_auto_download.split(",") if k)
        if self.auto_kinds:
            messages.prefetchers.append(self)
        if settings.link_preview:
            messages.previewer = self.link_preview

    @property
    def spool(self) -> Spool:
        if self._spool is None:
            spool = Spool(self.settings)
            swept = spool.sweep()
            if swept:
                log.info("media spool: removed %d file(s) an earlier run left behind", swept)
            self._spool = spool
        return self._spool

    @property
    def cache(self) -> MediaCache:
        if self._cache is None:
            self._cache = MediaCache(media_dir(self.settings) / "cache", self.settings.media_cache_bytes)
        return self._cache

    @property
    def connector(self) -> aiohttp.TCPConnector:
        """Keep-alive connections to the media hosts, shared by every download (made on first use)."""
        if self._connector is None or self._connector.closed:
            self._connector = media_connector()
        return self._connector

    async def close(self) -> None:
        """Close the media hosts' idle connections (at shutdown, after downloads have ended)."""
        if self._connector is not None:
            await self._connector.close()

    async def link_preview(self, text: str) -> ipc.LinkPreview | None:
        """The preview of `text`'s first URL, fetched with the media fetch's guard; None when there is none."""
        return await link_preview(text, seconds=self.settings.link_preview_timeout,
                                  refuse=None if self.settings.media_fetch_allow_private else refused_address)

    # ----- auto-download (the message desk's Prefetcher) ------------------------------------------
    def wants(self, message: Message) -> bool:
        media = message.media
        return (media is not None and str(message.kind) in self.auto_kinds
                and (media.file_length or 0) <= self.settings.media_auto_download_max_bytes)

    async def fetch(self, session: str, message: Message) -> Message:
        assert message.media is not None
        try:
            await self.file(session, message.id)
        except BridgeError as exc:
            log.warning("session %s: auto-download of %s failed: %s", session, message.id, exc)
            media = msgspec.structs.replace(message.media, download_error=str(exc.code))
        except Exception:
            log.exception("session %s: auto-download of %s failed", session, message.id)
            media = msgspec.structs.replace(message.media, download_error=ErrorCode.INTERNAL)
        else:
            url = f"/api/v1/sessions/{session}/messages/{message.id}/media"
            media = msgspec.structs.replace(message.media, url=url)
        return msgspec.structs.replace(message, media=media)

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
    async def _reuploaded(self, session: str, plan: DownloadPlan, wa: dict[str, Any]) -> DownloadPlan:
        """Ask the sender's phone to upload an expired file again (Baileys' `updateMediaMessage`);
        the plan with the new direct path on the same host. `MediaGone` (410) when it cannot."""
        try:
            self.messages.sessions.require_open(session)
            raw = await self.messages.sessions.call(session, "media_retry", {"message": wa})
        except (NodeRuntimeError, SessionError) as exc:
            raise MediaGone(f"the media host no longer has this file and asking the sender's phone to upload it "
                            f"again failed ({exc}); ask the sender to send it again") from None
        answer = msgspec.convert(raw, ipc.MediaRetryResult)
        log.info("session %s: the sender's phone uploaded an expired file again", session)
        return msgspec.structs.replace(plan, url=f"https://{urlsplit(plan.url).netloc}{answer.direct_path}")

    async def file(self, session: str, message_id: str) -> CachedFile:
        """The decrypted file of message `message_id`, downloading it into the cache first if needed."""
        entry = await self.messages.lookup(session, message_id)
        if entry is None:
            raise MessageNotFound(f"session {session} does not know message {message_id!r}; use an id from a "
                                  "`message` event of this session")
        plan = plan_download(message_id, entry.raw)
        name = plan.cache_name
        async with self.cache.lock(name):
            path = await self.cache.hit(name, plan.file_sha256)
            if path is None:
                path = self.cache.path(name)
                try:
                    await download(plan, target=path, ssl_ctx=self._ssl, seconds=self.settings.media_fetch_timeout,
                                   connector=self.connector)
                except MediaGone:
                    plan = await self._reuploaded(session, plan, entry.raw)
                    await download(plan, target=path, ssl_ctx=self._ssl, seconds=self.settings.media_fetch_timeout,
                                   connector=self.connector)
                self.cache.placed(name)
                self.cache.evict(keep=name)
        return CachedFile(path=path, mimetype=plan.mimetype, file_name=plan.file_name, kind=plan.kind)
