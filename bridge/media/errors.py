"""Why a media operation was refused; each code has its HTTP status in `bridge.errors.FAILURES`."""

from __future__ import annotations

from bridge.errors import BridgeError, ErrorCode


class MediaError(BridgeError):
    """Root of the media refusals."""


class MediaTooLarge(MediaError):
    """Larger than WhatsApp accepts for the kind (413, the message names the limit)."""

    code: str = ErrorCode.MEDIA_TOO_LARGE


class MediaTypeMismatch(MediaError):
    """The file's real type (sniffed) cannot be sent as the kind asked for (415)."""

    code: str = ErrorCode.MEDIA_TYPE_MISMATCH


class MediaEmpty(MediaError):
    """A file of zero bytes (422)."""

    code: str = ErrorCode.MEDIA_EMPTY


class MediaUrlRefused(MediaError):
    """The URL is not http(s), or it (or a redirect) points at a loopback, private or link-local address (400)."""

    code: str = ErrorCode.MEDIA_URL_REFUSED


class MediaFetchFailed(MediaError):
    """The URL could not be fetched: timeout, error status, too many redirects (502)."""

    code: str = ErrorCode.MEDIA_FETCH_FAILED


class MediaGone(MediaError):
    """The media host no longer has the file (410)."""

    code: str = ErrorCode.MEDIA_GONE


class NotMedia(MediaError):
    """The message has no file to download (404)."""

    code: str = ErrorCode.NOT_MEDIA
