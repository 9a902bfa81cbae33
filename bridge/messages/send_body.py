"""The body of `POST /sessions/{id}/messages`: one typed shape per `kind`, checked against
WhatsApp's limits before anything reaches Node.

Why here and not in the route: these rules are WhatsApp's (a poll has 2 to 12 options, text is at
most 65536 characters, a reaction is one emoji), not HTTP's; the same checks serve any caller.
Each rule fails with a message naming the field and what to change (the API answers 422 with
it). Rules that need the message store (does the quoted message exist, may it still be edited)
are `bridge.messages.outgoing`'s.

`kind` may be left out for a text message, so the first API's `{"to", "text"}` keeps working.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, Tag, field_validator, model_validator

from bridge.messages.emoji import is_single_emoji

MAX_TEXT = 65_536
"""WhatsApp's longest text message, in characters."""
MAX_MENTIONS = 256
MAX_POLL_NAME = 255
MAX_POLL_OPTION = 100
MIN_POLL_OPTIONS, MAX_POLL_OPTIONS = 2, 12
MAX_CONTACTS = 100
MAX_VCARD = 16_384
MAX_PLACE_TEXT = 1_000
MESSAGE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"

MessageId = Annotated[str, Field(pattern=MESSAGE_ID_PATTERN, description="A message id as the bridge reported it")]
To = Annotated[str, Field(min_length=1, max_length=128,
                          description="Phone number (digits, country code first), user JID, @lid JID or group JID")]
Quoted = Annotated[MessageId | None, Field(description="Reply to (quote) this message")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Addressed(_Body):
    to: To
    """Checked by `bridge.messages.outgoing` (an invalid recipient is a 400 `invalid_recipient`)."""


def _text(value: str, field: str = "text") -> str:
    if not value.strip():
        raise ValueError(f"{field} is empty; send at least one visible character")
    return value


class SendText(_Addressed):
    kind: Literal["text"] = "text"
    text: str = Field(min_length=1, max_length=MAX_TEXT, description=f"At most {MAX_TEXT} characters")
    mentions: list[str] = Field(default_factory=list, max_length=MAX_MENTIONS,
                                description="Users mentioned (phone numbers or user/@lid JIDs); write @<number> in "
                                "text. Checked like `to` (400 invalid_recipient)")
    link_preview: bool = Field(True, description="false: never attach a link preview")
    quoted: Quoted = None

    @field_validator("text")
    @classmethod
    def _visible(cls, value: str) -> str:
        return _text(value)


class SendReaction(_Body):
    kind: Literal["reaction"]
    message_id: MessageId = Field(description="The message to react to")
    emoji: str = Field(max_length=32, description='One emoji; "" removes your reaction')

    @field_validator("emoji")
    @classmethod
    def _one_emoji(cls, value: str) -> str:
        if value and not is_single_emoji(value):
            raise ValueError(f"emoji {value[:32]!r} is not one emoji; send exactly one (e.g. 👍), or \"\" to remove")
        return value


class SendEdit(_Body):
    kind: Literal["edit"]
    message_id: MessageId = Field(description="Your own text message to change (within 15 minutes of sending)")
    text: str = Field(min_length=1, max_length=MAX_TEXT)

    @field_validator("text")
    @classmethod
    def _visible(cls, value: str) -> str:
        return _text(value)


class SendRevoke(_Body):
    kind: Literal["revoke"]
    message_id: MessageId = Field(description="Your own message to delete for everyone")


class SendLocation(_Addressed):
    kind: Literal["location"]
    lat: float = Field(ge=-90, le=90, description="Latitude in degrees, -90..90")
    long: float = Field(ge=-180, le=180, description="Longitude in degrees, -180..180")
    name: str | None = Field(None, max_length=MAX_PLACE_TEXT)
    address: str | None = Field(None, max_length=MAX_PLACE_TEXT)
    quoted: Quoted = None

    @field_validator("lat", "long")
    @classmethod
    def _finite(cls, value: float) -> float:
        if value != value:  # NaN passes ge/le
            raise ValueError("coordinates must be numbers, not NaN")
        return value


class ContactCardBody(_Body):
    display_name: str = Field(min_length=1, max_length=MAX_PLACE_TEXT)
    vcard: str = Field(min_length=1, max_length=MAX_VCARD, description="A vCard: BEGIN:VCARD ... END:VCARD")

    @field_validator("vcard")
    @classmethod
    def _is_vcard(cls, value: str) -> str:
        lines = [line.strip() for line in value.strip().splitlines() if line.strip()]
        if not lines or lines[0].upper() != "BEGIN:VCARD" or lines[-1].upper() != "END:VCARD":
            raise ValueError("vcard must start with a BEGIN:VCARD line and end with an END:VCARD line")
        if not any(line.upper().startswith("VERSION:") for line in lines):
            raise ValueError("vcard has no VERSION line; add VERSION:3.0")
        if not any(line.upper().startswith(("FN:", "FN;")) for line in lines):
            raise ValueError("vcard has no FN (formatted name) line; WhatsApp shows the contact by it")
        return value


class SendContact(_Addressed):
    kind: Literal["contact"]
    contacts: list[ContactCardBody] = Field(min_length=1, max_length=MAX_CONTACTS)
    quoted: Quoted = None


class SendPoll(_Addressed):
    kind: Literal["poll"]
    name: str = Field(min_length=1, max_length=MAX_POLL_NAME, description="The question")
    options: list[str] = Field(description=f"{MIN_POLL_OPTIONS} to {MAX_POLL_OPTIONS} distinct options")
    selectable_count: int = Field(1, ge=0, description="How many options a voter may pick; 0 = any number")
    quoted: Quoted = None

    @field_validator("options")
    @classmethod
    def _valid_options(cls, values: list[str]) -> list[str]:
        if not MIN_POLL_OPTIONS <= len(values) <= MAX_POLL_OPTIONS:
            raise ValueError(f"a poll has {MIN_POLL_OPTIONS} to {MAX_POLL_OPTIONS} options, not {len(values)}")
        for index, option in enumerate(values):
            if not option.strip():
                raise ValueError(f"options[{index}] is empty; every option needs text")
            if len(option) > MAX_POLL_OPTION:
                raise ValueError(f"options[{index}] has {len(option)} characters; the limit is {MAX_POLL_OPTION}")
        if len(set(values)) != len(values):
            raise ValueError("options repeat; every option must be different")
        return values

    @model_validator(mode="after")
    def _selectable(self) -> SendPoll:
        if self.selectable_count > len(self.options):
            raise ValueError(f"selectable_count {self.selectable_count} exceeds the {len(self.options)} options; "
                             "use 1 for a single choice, 0 for any number")
        return self


class SendForward(_Addressed):
    kind: Literal["forward"]
    message_id: MessageId = Field(description="An earlier message (text, location or contact) to forward")


MEDIA_SEND_KINDS = ("image", "video", "audio", "voice", "document", "sticker")
MAX_CAPTION = 1024
MAX_URL = 2048


class SendMedia(_Addressed):
    """A file (docs/media.md): `data` (base64) or `url` in JSON, or a `file` part in multipart/form-data.
    Size, real type and thumbnail are `bridge.media`'s business."""

    kind: Literal["image", "video", "audio", "voice", "document", "sticker"]
    data: str | None = Field(None, description="The file, base64 (JSON bodies up to BRIDGE_MEDIA_JSON_MAX_BYTES)")
    url: str | None = Field(None, max_length=MAX_URL, description="An http(s) URL the bridge fetches the file from")
    mimetype: str | None = Field(None, max_length=255, description="Claimed type; the bridge sniffs the real one")
    caption: str | None = Field(None, max_length=MAX_CAPTION, description="Shown under images, videos, documents")
    file_name: str | None = Field(None, max_length=255, description="Document file name")
    gif_playback: bool = Field(False, description="Video: play as a looping GIF")
    quoted: Quoted = None

    @model_validator(mode="after")
    def _caption_fits(self) -> SendMedia:
        if self.caption is not None and self.kind in ("audio", "voice", "sticker"):
            raise ValueError(f"a {self.kind} has no caption; leave caption out")
        return self


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "text"))
    return str(getattr(value, "kind", "text"))


SendUnion = Annotated[
    Annotated[SendText, Tag("text")]
    | Annotated[SendReaction, Tag("reaction")]
    | Annotated[SendEdit, Tag("edit")]
    | Annotated[SendRevoke, Tag("revoke")]
    | Annotated[SendLocation, Tag("location")]
    | Annotated[SendContact, Tag("contact")]
    | Annotated[SendPoll, Tag("poll")]
    | Annotated[SendForward, Tag("forward")]
    | Annotated[SendMedia, Tag("image")] | Annotated[SendMedia, Tag("video")] | Annotated[SendMedia, Tag("audio")]
    | Annotated[SendMedia, Tag("voice")] | Annotated[SendMedia, Tag("document")] | Annotated[SendMedia, Tag("sticker")],
    Discriminator(_kind_of, custom_error_type="unknown_kind",
                  custom_error_message="unknown kind; use text, reaction, edit, revoke, location, contact, poll, "
                                       "forward, image, video, audio, voice, document or sticker"),
]
AnySend = (SendText | SendReaction | SendEdit | SendRevoke | SendLocation | SendContact | SendPoll | SendForward
           | SendMedia)


class SendBody(RootModel[SendUnion]):
    """A message to send; `kind` picks the shape (default text)."""
