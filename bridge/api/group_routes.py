"""Groups over HTTP: list, read, create, change, participants, invite link, join, leave.

Each handler validates its body, asks the `GroupDesk` and shapes the answer; the rules live in
`bridge.groups` (docs/groups.md). Messages to a group go through the message routes with the
group's JID as `to`. A session that is not open answers 409; nothing invalid reaches Node.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from bridge.api import state
from bridge.api.models import Strict
from bridge.api.routing import json_response, operation, read_body
from bridge.groups.desk import GroupDesk
from bridge.groups.invite import link
from bridge.groups.model import GroupInfo, ParticipantAction
from bridge.ipc.groups import MAX_PARTICIPANTS

routes = web.RouteTableDef()
GROUP = "/api/v1/sessions/{id}/groups/{jid}"
ERRORS = (400, 401, 403, 404, 409, 422, 503)


class ParticipantView(BaseModel):
    jid: str = Field(description="Phone-number JID when known, else the LID")
    phone: str | None = Field(description="Digits, also when WhatsApp named the member by LID only")
    lid: str | None = None
    role: Literal["member", "admin", "superadmin"]


class GroupView(BaseModel):
    id: str = Field(description="The group JID (<digits>@g.us): use it as `to` when sending")
    subject: str
    description: str | None
    owner: str | None = Field(description="Creator")
    created: int | None = Field(description="Unix seconds")
    announce: bool = Field(description="Only admins send messages")
    restrict: bool = Field(description="Only admins edit subject, description and settings")
    size: int
    participants: list[ParticipantView]


class GroupList(BaseModel):
    groups: list[GroupView]


class CreateBody(Strict):
    subject: str = Field(min_length=1, max_length=100)
    participants: list[str] = Field(
        min_length=1, max_length=MAX_PARTICIPANTS,
        description=f"1..{MAX_PARTICIPANTS} phone numbers, user JIDs or LIDs (you are added as superadmin)")


class UpdateBody(Strict):
    subject: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=2048, description="\"\" or null removes it")
    announce: bool | None = Field(None, description="true: only admins send")
    restrict: bool | None = Field(None, description="true: only admins edit the group's info")

    @model_validator(mode="after")
    def _something(self) -> UpdateBody:
        if not self.model_fields_set:
            raise ValueError("give at least one of subject, description, announce, restrict")
        if "subject" in self.model_fields_set and self.subject is None:
            raise ValueError("subject cannot be removed; give a new one")
        return self


class ParticipantsBody(Strict):
    action: Literal["add", "remove", "promote", "demote"]
    participants: list[str] = Field(min_length=1, max_length=MAX_PARTICIPANTS,
                                    description="Phone numbers, user JIDs or LIDs")


class ParticipantResultView(BaseModel):
    jid: str
    phone: str | None
    status: str = Field(description="WhatsApp's code for this participant: \"200\" done, else its error")
    result: str = Field(description="added, removed, promoted, demoted, not_on_whatsapp, privacy_blocked, "
                                    "already_in_group, not_in_group, recently_left, not_authorized, failed")


class ParticipantResults(BaseModel):
    results: list[ParticipantResultView]


class InviteView(BaseModel):
    code: str
    link: str


class JoinBody(Strict):
    code: str = Field(min_length=1, max_length=200, description="Invite code or https://chat.whatsapp.com/<code>")


class Joined(BaseModel):
    id: str = Field(description="The group joined")


class Left(BaseModel):
    id: str
    left: bool = True


def _desk(request: web.Request) -> GroupDesk:
    return request.app[state.MANAGER].messages.groups


def _view(info: GroupInfo) -> GroupView:
    return GroupView.model_validate(info, from_attributes=True)


@operation(routes, "GET", "/api/v1/sessions/{id}/groups", summary="Groups the account is in", tag="groups",
           responses={200: GroupList}, errors=ERRORS)
async def list_groups(request: web.Request) -> web.StreamResponse:
    groups = await _desk(request).list_groups(request.match_info["id"])
    return json_response(GroupList(groups=[_view(g) for g in groups]))


@operation(routes, "POST", "/api/v1/sessions/{id}/groups", summary="Create a group", tag="groups",
           body=CreateBody, responses={201: GroupView}, errors=ERRORS)
async def create_group(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, CreateBody)
    info = await _desk(request).create(request.match_info["id"], body.subject, body.participants)
    return json_response(_view(info), status=201)


@operation(routes, "POST", "/api/v1/sessions/{id}/groups/join", summary="Join a group by invite code or link",
           tag="groups", body=JoinBody, responses={200: Joined}, errors=ERRORS)
async def join_group(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, JoinBody)
    return json_response(Joined(id=await _desk(request).join(request.match_info["id"], body.code)))


@operation(routes, "GET", GROUP, summary="A group's metadata", tag="groups", responses={200: GroupView},
           errors=ERRORS)
async def group_metadata(request: web.Request) -> web.StreamResponse:
    info = await _desk(request).metadata(request.match_info["id"], request.match_info["jid"])
    return json_response(_view(info))


@operation(routes, "PATCH", GROUP, summary="Change subject, description, settings", tag="groups",
           body=UpdateBody, responses={200: GroupView}, errors=ERRORS)
async def update_group(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, UpdateBody)
    info = await _desk(request).update(
        request.match_info["id"], request.match_info["jid"], subject=body.subject, description=body.description,
        set_description_to="description" in body.model_fields_set, announce=body.announce, restrict=body.restrict)
    return json_response(_view(info))


@operation(routes, "POST", GROUP + "/participants", summary="Add, remove, promote or demote participants",
           tag="groups", body=ParticipantsBody, responses={200: ParticipantResults}, errors=ERRORS)
async def change_participants(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, ParticipantsBody)
    results = await _desk(request).participants(request.match_info["id"], request.match_info["jid"],
                                                ParticipantAction(body.action), body.participants)
    return json_response(ParticipantResults(
        results=[ParticipantResultView.model_validate(r, from_attributes=True) for r in results]))


@operation(routes, "GET", GROUP + "/invite", summary="The group's invite link (admins)", tag="groups",
           responses={200: InviteView}, errors=ERRORS)
async def get_invite(request: web.Request) -> web.StreamResponse:
    code = await _desk(request).invite(request.match_info["id"], request.match_info["jid"])
    return json_response(InviteView(code=code, link=link(code)))


@operation(routes, "DELETE", GROUP + "/invite", summary="Revoke the invite link; answers the new one",
           tag="groups", responses={200: InviteView}, errors=ERRORS)
async def revoke_invite(request: web.Request) -> web.StreamResponse:
    code = await _desk(request).invite(request.match_info["id"], request.match_info["jid"], revoke=True)
    return json_response(InviteView(code=code, link=link(code)))


@operation(routes, "POST", GROUP + "/leave", summary="Leave the group", tag="groups", responses={200: Left},
           errors=ERRORS)
async def leave_group(request: web.Request) -> web.StreamResponse:
    jid = request.match_info["jid"]
    await _desk(request).leave(request.match_info["id"], jid)
    return json_response(Left(id=jid if "@" in jid else f"{jid}@g.us"))
