"""Media over HTTP: sending a file (JSON with base64 or URL, or multipart/form-data) through the
one send route, and `GET /sessions/{id}/messages/{msg}/media` streaming a received file
(docs/media.md). The rules live in `bridge.media`; here only HTTP shapes.

Why the send route reads its own body: a file does not fit the API's 1 MiB JSON limit
(`BRIDGE_MAX_BODY_BYTES`), so a media JSON body may be up to `BRIDGE_MEDIA_JSON_MAX_BYTES`, and a
multipart upload is streamed to disk part by part, refused (413) as soon as it passes the kind's
limit.
"""

from __future__ import annotations

from typing import Any

import pydantic
from aiohttp import BodyPartReader, web

from bridge.api import state
from bridge.api.routing import RequestError, _validation_message, operation, read_body
from bridge.errors import ErrorCode
from bridge.media.desk import MediaDesk
from bridge.media.kinds import LARGEST, MediaKind, human, rules
from bridge.media.spool import write_stream
from bridge.messages.desk import SendOutcome
from bridge.messages.send_body import SendBody, SendMedia

routes = web.RouteTableDef()
FORM_FIELDS = frozenset(SendMedia.model_fields) - {"data", "url"}
FIELD_MAX = 4096


def media_desk(request: web.Request) -> MediaDesk:
    desk: MediaDesk = request.app[state.MANAGER].media
    return desk


def is_multipart(request: web.Request) -> bool:
    return request.content_type == "multipart/form-data"


async def read_send_body(request: web.Request) -> SendBody:
    """The JSON send body; past `max_body_bytes` (a base64 file) up to `media_json_max_bytes`."""
    settings = request.app[state.SETTINGS]
    length = request.content_length
    if length is None or length <= settings.max_body_bytes:
        return await read_body(request, SendBody)
    if length > settings.media_json_max_bytes:
        raise RequestError(f"the JSON body is {human(length)}, over {human(settings.media_json_max_bytes)}; send "
                           "larger files as multipart/form-data or by `url`", code=ErrorCode.MEDIA_TOO_LARGE)
    raw = await request.content.read()
    try:
        body = SendBody.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise RequestError(f"request body does not match the schema: {_validation_message(exc)}",
                           code=ErrorCode.VALIDATION_ERROR) from None
    if not isinstance(body.root, SendMedia):
        raise RequestError(f"a {body.root.kind} message body may be at most {human(settings.max_body_bytes)}",
                           code=ErrorCode.PAYLOAD_TOO_LARGE)
    return body


async def send_multipart(request: web.Request) -> SendOutcome:
    """multipart/form-data: form fields as in the JSON body (`to`, `kind`, `caption`...), then the
    file in a part named `file` (its filename and Content-Type are used as hints only)."""
    desk = media_desk(request)
    session = request.match_info["id"]
    desk.messages.sessions.require_open(session)
    reader = await request.multipart()
    fields: dict[str, Any] = {}
    source = None
    claimed = None
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise RequestError("nested multipart is not accepted; send flat form fields",
                                   code=ErrorCode.BAD_REQUEST)
            if part.name == "file":
                if source is not None:
                    raise RequestError("send one `file` part", code=ErrorCode.VALIDATION_ERROR)
                kind = str(fields.get("kind", ""))
                limit = rules(kind).max_bytes if kind in set(MediaKind) else LARGEST
                source = desk.spool.incoming_path()
                await write_stream(_chunks(part), source, limit, f"the {kind or 'file'}")
                claimed = part.headers.get("Content-Type")
                if part.filename and "file_name" not in fields:
                    fields["file_name"] = part.filename
            elif part.name in FORM_FIELDS:
                value = (await part.read(decode=True))[:FIELD_MAX + 1].decode("utf-8", "replace")
                fields[part.name] = value.lower() in ("1", "true", "yes") if part.name == "gif_playback" else value
            else:
                raise RequestError(f"unknown form field {part.name!r}; use {', '.join(sorted(FORM_FIELDS))} and file",
                                   code=ErrorCode.VALIDATION_ERROR)
        if source is None:
            raise RequestError("no `file` part; send the file as a form part named file",
                               code=ErrorCode.VALIDATION_ERROR)
        try:
            body = SendMedia.model_validate(fields)
        except pydantic.ValidationError as exc:
            raise RequestError(f"form fields do not match the schema: {_validation_message(exc)}",
                               code=ErrorCode.VALIDATION_ERROR) from None
    except BaseException:
        if source is not None:
            desk.spool.remove(source)
        raise
    return await desk.send_file(session, body, source, claimed or body.mimetype)


async def _chunks(part: BodyPartReader) -> Any:
    while chunk := await part.read_chunk(1 << 16):
        yield chunk


@operation(routes, "GET", "/api/v1/sessions/{id}/messages/{msg}/media", summary="Download a received file",
           tag="messages", responses={200: None}, errors=(401, 404, 409, 410, 502, 503),
           media={"200": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}})
async def download_media(request: web.Request) -> web.StreamResponse:
    found = await media_desk(request).file(request.match_info["id"], request.match_info["msg"])
    name = found.file_name or f"{request.match_info['msg']}"
    safe = "".join(c if c.isalnum() or c in "._- " else "_" for c in name)[:200] or "file"
    return web.FileResponse(found.path, headers={
        "Content-Type": found.mimetype,
        "Content-Disposition": f'{"attachment" if found.kind is MediaKind.DOCUMENT else "inline"}; filename="{safe}"',
    })
