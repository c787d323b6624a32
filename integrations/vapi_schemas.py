"""VAPI's server messages as Tron reads them (../shared/docs/protocols.md §1.2): Pydantic models of the
fields it uses, with their types and bounds. Unknown fields are ignored, as are unknown message types
(VAPI adds both often). A known field of another type, a number that is not finite or does not fit the
column it is stored in, or a string longer than its column is refused; integrations/vapi_events.py
makes that a 400 naming the field. Transcript text is bounded there, by TRON_MAX_MESSAGE_CHARS.
"""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from agents.models import CALL_COST_MAX_USD, CALL_SUMMARY_MAX_CHARS, CallerSession, Process

MAX_ITEMS = 10_000  # items of one list (a call's messages, its tool calls)


def _width(model, field: str) -> int:
    return model._meta.get_field(field).max_length


def _text(max_length: int):
    return Annotated[str, StringConstraints(max_length=max_length)]


# A call id, a phone number or a persona's name: VAPI writes them as strings, the seed's shape may write
# an id as a number. Longer than the caller id column, it is no id Tron can keep.
Ident = _text(_width(CallerSession, "caller_id")) | Annotated[int, Field(ge=-(2**63), lt=2**63)]
Label = _text(64)  # a word VAPI chooses from a list: a status, a role, a transcript type
Cost = Annotated[float, Field(ge=0, le=float(CALL_COST_MAX_USD), allow_inf_nan=False)]
EndedReason = _text(_width(Process, "ended_reason"))
Summary = _text(CALL_SUMMARY_MAX_CHARS)
Lines = Annotated[list[Any], Field(max_length=MAX_ITEMS)]  # messages; an item that is no object is skipped


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class Number(Model):
    number: Ident | None = None


class Call(Model):
    id: Ident | None = None
    customer: Number | None = None
    from_: Ident | None = Field(None, alias="from")  # the seed's flat shape
    to: Ident | None = None
    phoneNumber: Number | None = None
    cost: Cost | None = None
    endedReason: EndedReason | None = None


class ModelChoice(Model):
    model: Ident | None = None


class Assistant(Model):
    model: ModelChoice | None = None


class Analysis(Model):
    summary: Summary | None = None


class Artifact(Model):
    messages: Lines | None = None
    messagesOpenAIFormatted: Lines | None = None
    transcript: str | None = None


class Function(Model):
    name: Ident | None = None
    arguments: Any = None


class ToolCall(Model):
    id: Ident
    function: Function | None = None
    name: Ident | None = None
    parameters: Any = None
    arguments: Any = None


class ToolWithCall(Model):
    toolCall: ToolCall | None = None


class ServerMessage(Model):
    """One server message: the envelope's `message`, or the seed's flat body."""

    type: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    call: Call | None = None
    call_id: Ident | None = None
    callId: Ident | None = None
    customer: Number | None = None
    phoneNumber: Number | None = None
    assistant: Assistant | None = None
    status: Label | None = None
    endedReason: EndedReason | None = None
    cost: Cost | None = None
    summary: Summary | None = None
    analysis: Analysis | None = None
    artifact: Artifact | None = None
    messages: Lines | None = None
    messagesOpenAIFormatted: Lines | None = None
    # a line: `transcript` (VAPI's transcript messages, the seed's speech.recognized), `text`, or the
    # seed's assistant.message `message` / `content`
    transcript: str | None = None
    transcriptType: Label | None = None
    role: Label | None = None
    text: str | None = None
    message: str | None = None
    content: str | None = None
    toolCallList: Annotated[list[ToolCall], Field(max_length=MAX_ITEMS)] | None = None
    toolWithToolCallList: Annotated[list[ToolWithCall], Field(max_length=MAX_ITEMS)] | None = None
