"""Why a message operation was refused (each code has its HTTP status in `bridge.errors.FAILURES`)."""

from __future__ import annotations

from bridge.errors import ErrorCode, SessionError


class MessageNotFound(SessionError):
    """A reaction, edit, revoke, reply or forward names a message the bridge does not know (404)."""

    code: str = ErrorCode.MESSAGE_NOT_FOUND


class MessageRefused(SessionError):
    """The message exists but this operation is not allowed on it (someone else's, too old) (409)."""

    code: str = ErrorCode.MESSAGE_REFUSED


class NotOnWhatsApp(SessionError):
    """The phone number has no WhatsApp account (404)."""

    code: str = ErrorCode.NOT_ON_WHATSAPP


class ContactInfoHidden(SessionError):
    """The contact has no profile picture or status text, or hides it from this account (404)."""

    code: str = ErrorCode.CONTACT_INFO_HIDDEN
