"""Why a group operation was refused (each code has its HTTP status in `bridge.errors.FAILURES`)."""

from __future__ import annotations

from bridge.errors import ErrorCode, SessionError


class GroupNotFound(SessionError):
    """WhatsApp knows no such group (404)."""

    code: str = ErrorCode.GROUP_NOT_FOUND


class NotGroupMember(SessionError):
    """The account is not (or no longer) in the group (403)."""

    code: str = ErrorCode.NOT_GROUP_MEMBER


class NotGroupAdmin(SessionError):
    """Only the group's admins may do this (403)."""

    code: str = ErrorCode.NOT_GROUP_ADMIN


class ParticipantNotInGroup(SessionError):
    """Remove, promote or demote names someone who is not in the group (404)."""

    code: str = ErrorCode.NOT_IN_GROUP


class InviteNotFound(SessionError):
    """The invite code is unknown, revoked or expired (404)."""

    code: str = ErrorCode.INVITE_NOT_FOUND


class GroupRefused(SessionError):
    """The server refused the change for another reason (409); the message gives its answer."""

    code: str = ErrorCode.GROUP_REFUSED


class InvalidInviteCode(SessionError):
    """Not an invite code or link at all (400)."""

    code: str = ErrorCode.BAD_REQUEST
