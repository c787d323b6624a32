"""The frames a client sends on ElevenLabs' Conversational AI socket (../shared/docs/protocols.md §2b),
as Tron reads them: Pydantic models of the fields it uses, with their types and bounds.

Audio (`user_audio_chunk`) and the events Tron takes no action on are accepted unread; every other
frame is validated against its type's model. A frame that is not a JSON object, names no known type
or does not fit its model is a `BadFrame`: the consumer answers it with an `error` event and the
socket stays open. The words of a frame are bounded by TRON_MAX_MESSAGE_CHARS in the consumer.
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from agents.models import CallerSession

from .json_input import NotJson, field_path, loads

INITIATION = "conversation_initiation_client_data"
IGNORED = {"user_activity", "feedback", "client_tool_result", "mcp_tool_approval_result"}

Ident = (
    Annotated[str, StringConstraints(max_length=CallerSession._meta.get_field("caller_id").max_length)]
    | Annotated[int, Field(ge=-(2**63), lt=2**63)]
)
# Words: no NUL (U+0000), which no database stores (the chat API refuses it too).
Words = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]


class Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    type: str


class Initiation(Frame):
    type: str = INITIATION
    user_id: Ident | None = None  # the caller (`elevenlabs-user-<id>`), so memory follows the user


class UserMessage(Frame):
    text: Words | None = None  # null: a text-mode signal, not words


class MultimodalText(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    text: Words | None = None


class MultimodalMessage(Frame):
    text: MultimodalText | Words | None = None

    @property
    def words(self) -> str | None:
        return self.text.text if isinstance(self.text, MultimodalText) else self.text


class ContextualUpdate(Frame):
    text: Words | None = None
    context_id: Ident | None = None  # only the latest update of an id is kept


class Pong(Frame):
    event_id: Annotated[int, Field(ge=0, lt=2**63)] | None = None


class Ignored(Frame):
    """An event the client may send that Tron takes no action on."""


SCHEMAS = {
    INITIATION: Initiation,
    "user_message": UserMessage,
    "multimodal_message": MultimodalMessage,
    "contextual_update": ContextualUpdate,
    "pong": Pong,
    **dict.fromkeys(IGNORED, Ignored),
}


class BadFrame(Exception):
    def __init__(self, message: str, kind: str | None = None):
        super().__init__(message)
        self.message, self.kind = message, kind


def read_frame(text: str) -> Frame | None:
    """The frame, validated; None for audio. Raises BadFrame."""
    try:
        data = loads(text)
    except NotJson as exc:
        raise BadFrame(f"The frame is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise BadFrame("A frame is a JSON object with a `type`.")
    if "user_audio_chunk" in data:
        return None  # audio: this server speaks text only
    kind = data.get("type")
    if not kind:
        raise BadFrame("A frame needs a `type`.")
    if not isinstance(kind, str):
        raise BadFrame("A frame's `type` is the name of a message type, a string.")
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise BadFrame(f"Unknown message type {kind[:100]!r}.", kind)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BadFrame(f"{kind} needs its `{field_path(first['loc'])}`: {first['msg']}.", kind) from None
