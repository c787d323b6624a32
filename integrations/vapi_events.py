"""VAPI's server messages, read: the two shapes they arrive in, and the fields Tron uses.

VAPI today wraps every message: `{"message": {"type": "status-update", "call": {...}, ...}}`
(../shared/docs/protocols.md §1.2). The seed's contract (../shared/spec/tron-api.md) writes them flat:
`{"type": "call.started", "call": {"id", "from", "to"}}`. Both are validated against one schema
(integrations/vapi_schemas.py) and read here into one `VapiEvent`; a body that is neither shape, or a
field the schema refuses, is a `BadEvent` (a 400 naming the field). The words a message carries are
bounded too: one line longer than TRON_MAX_MESSAGE_CHARS is a 413, as on the chat API.
"""

import re

from django.conf import settings
from pydantic import ValidationError

from agents.callers import Caller, clean_id, normalize_phone
from agents.models import Channel

from .identify import call_caller_id
from .json_input import NotJson, field_path, loads
from .vapi_schemas import ServerMessage

CALL_STARTED = "started"
CALL_ENDED = "ended"

# The message types that start and end a call, and those that carry transcript lines.
ROLES = {"user": "user", "customer": "user", "bot": "assistant", "assistant": "assistant", "ai": "assistant"}
TRANSCRIPT_LINE = re.compile(r"^\s*(ai|assistant|bot|user|customer)\s*:\s?(.*)$", re.IGNORECASE)
# The newest lines of a message that are compared with the transcript: VAPI resends the whole call in
# each update, so older lines arrived with the updates before (and the comparison grows with both sides).
MAX_LINES = 1000


class BadEvent(Exception):
    def __init__(self, message: str, param: str | None = None, *, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code


def _text(value) -> str:
    """A string (or an id written as a number) as stored text: trimmed, without NUL characters (which
    no database stores); "" for none."""
    return "" if value is None else str(value).replace("\x00", "").strip()


class VapiEvent:
    def __init__(self, message: ServerMessage, flat: bool):
        self.message, self.flat = message, flat
        self.type = message.type

    @property
    def where(self) -> str:
        """Where this message's fields are, for error messages: `message.` or nothing (flat)."""
        return "" if self.flat else "message."

    # -- the call -------------------------------------------------------------------------------------

    @property
    def _call(self):
        return self.message.call

    @property
    def call_id(self) -> str:
        call_id = self._call.id if self._call else None
        return clean_id(_text(call_id) or _text(self.message.call_id) or _text(self.message.callId))

    @property
    def caller_number(self) -> str:
        """The caller's number, E.164 when it reads as one; "" when withheld or absent."""
        call, message = self._call, self.message
        for candidate in (
            call and call.customer and call.customer.number,
            message.customer and message.customer.number,
            call and call.from_,
        ):
            if number := normalize_phone(_text(candidate or None)):
                return number
        return ""

    @property
    def called_number(self) -> str:
        """The number the caller dialled (one of ours)."""
        call, message = self._call, self.message
        for candidate in (
            message.phoneNumber and message.phoneNumber.number,
            call and call.phoneNumber and call.phoneNumber.number,
            call and call.to,
        ):
            if number := normalize_phone(_text(candidate or None)):
                return number
        return ""

    @property
    def assistant_model(self) -> str:
        """The model VAPI's assistant names (a persona, when the assistant is this server's custom LLM)."""
        assistant = self.message.assistant
        return _text(assistant.model.model) if assistant and assistant.model else ""

    def caller(self) -> Caller | None:
        """The caller as a chat request of this call would name them: the number, else the call id."""
        call_id, number = self.call_id, self.caller_number
        if number:
            return Caller(clean_id(number), Channel.VAPI, call_id, number)
        if call_id:
            return Caller(clean_id(call_caller_id(call_id)), Channel.VAPI, call_id)
        return None

    # -- what the message is about ----------------------------------------------------------------------

    @property
    def call_phase(self) -> str | None:
        """CALL_STARTED, CALL_ENDED, or None for a message that neither starts nor ends the call."""
        if self.type == "call.started":
            return CALL_STARTED
        if self.type in ("end-of-call-report", "call.ended"):
            return CALL_ENDED
        if self.type == "status-update":
            return {"in-progress": CALL_STARTED, "ended": CALL_ENDED}.get(_text(self.message.status))
        return None

    @property
    def is_report(self) -> bool:
        """A message that carries the whole call at its end (transcript, summary, cost)."""
        return self.type in ("end-of-call-report", "call.ended")

    def lines(self) -> list[tuple[str, str]]:
        """The transcript lines the message carries, oldest first, as (role, text), user and assistant
        only: the newest MAX_LINES whose words together fit TRON_MAX_MESSAGE_CHARS. Raises BadEvent (413)
        for one line longer than that."""
        limit = settings.TRON_MAX_MESSAGE_CHARS
        lines = [(role, text.replace("\x00", "")) for role, text in self._lines()]
        for index, (_role, text) in enumerate(lines):
            if len(text) > limit:
                raise BadEvent(
                    f"Line {index} of the transcript is {len(text):,} characters long; the most this server "
                    f"takes in one line is {limit:,} (TRON_MAX_MESSAGE_CHARS).",
                    status=413,
                    code="message_too_long",
                )
        kept, total = [], 0
        for line in reversed(lines[-MAX_LINES:]):
            total += len(line[1])
            if total > limit:
                break
            kept.append(line)
        return kept[::-1]

    def _lines(self) -> list[tuple[str, str]]:
        message = self.message
        if self.type in ("transcript", 'transcript[transcriptType="final"]'):
            if _text(message.transcriptType) not in ("", "final"):
                return []  # a partial transcript: the final one follows
            return _line(message.role, message.transcript)
        if self.type == "speech.recognized":
            return _line("user", message.transcript or message.text)
        if self.type == "assistant.message":
            return _line("assistant", message.message or message.content or message.text)
        if self.type in ("conversation-update", "end-of-call-report", "call.ended", "status-update"):
            return self._conversation()
        return []

    def _conversation(self) -> list[tuple[str, str]]:
        """A whole conversation: OpenAI-formatted messages first (VAPI's LLM requests carry the same
        words, so they match what the chat endpoint stored), then VAPI's own, then the transcript text."""
        artifact, message = self.message.artifact, self.message
        for items in (
            artifact and artifact.messagesOpenAIFormatted,
            message.messagesOpenAIFormatted,
            artifact and artifact.messages,
            message.messages,
        ):
            if items is None:
                continue
            lines = []
            for item in items:
                if isinstance(item, dict):
                    lines += _line(item.get("role"), item.get("content", item.get("message")))
            return lines
        transcript = (
            artifact.transcript if artifact and artifact.transcript is not None else message.transcript
        )
        return _parse_transcript(transcript) if transcript is not None else []

    # -- the end-of-call report -------------------------------------------------------------------------

    @property
    def summary(self) -> str:
        analysis = self.message.analysis
        return _text(analysis.summary if analysis else None) or _text(self.message.summary)

    @property
    def ended_reason(self) -> str:
        return _text(self.message.endedReason) or _text(self._call.endedReason if self._call else None)

    @property
    def cost(self) -> float | None:
        if self.message.cost is not None:
            return self.message.cost
        return self._call.cost if self._call else None

    # -- tool calls -------------------------------------------------------------------------------------

    def tool_calls(self) -> list[dict]:
        """Each call as {"id", "name", "arguments"} (a dict or JSON text), from `toolCallList` (OpenAI's
        shape, or the docs' flat {id, name, parameters}) or `toolWithToolCallList[].toolCall`."""
        items = self.message.toolCallList
        if items is None and self.message.toolWithToolCallList is not None:
            items = []
            for index, entry in enumerate(self.message.toolWithToolCallList):
                if entry.toolCall is None:
                    raise BadEvent(
                        f"{self.where}toolWithToolCallList[{index}] needs its toolCall.",
                        f"{self.where}toolWithToolCallList[{index}].toolCall",
                    )
                items.append(entry.toolCall)
        if items is None:
            raise BadEvent(
                f"{self.where}toolCallList must be a list of tool calls.", f"{self.where}toolCallList"
            )
        calls = []
        for item in items:
            function = item.function
            if function is not None and "arguments" in function.model_fields_set:
                arguments = function.arguments
            else:
                arguments = item.parameters if "parameters" in item.model_fields_set else item.arguments
            name = _text(function.name if function else None) or _text(item.name)
            calls.append({"id": _text(item.id), "name": name, "arguments": arguments})
        return calls


def parse_event(body: bytes) -> VapiEvent:
    try:
        data = loads(body or b"")
    except NotJson as exc:
        raise BadEvent(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise BadEvent(_SHAPES)
    if "message" in data and not isinstance(data.get("type"), str):
        raw, where = data["message"], "message."
        if not isinstance(raw, dict):
            raise BadEvent(f"message must be an object. {_SHAPES}", "message")
    else:
        raw, where = data, ""
    try:
        return VapiEvent(ServerMessage.model_validate(raw), flat=not where)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = where + field_path(first["loc"])
        if param == f"{where}type":
            raise BadEvent(f"{param} must name the message type. {_SHAPES}", param) from None
        raise BadEvent(f"{param}: {first['msg']}.", param) from None


_SHAPES = (
    'A VAPI server message is {"message": {"type": ..., "call": {...}}}, or the flat '
    '{"type": ..., "call": {...}}.'
)


def _line(role, text) -> list[tuple[str, str]]:
    role = ROLES.get(role.strip().lower()) if isinstance(role, str) else None
    if role is None or not isinstance(text, str) or not text.strip():
        return []
    return [(role, text.strip())]


def _parse_transcript(transcript: str) -> list[tuple[str, str]]:
    """VAPI's transcript as text ("AI: ...\\nUser: ..."), a line per speaker turn."""
    lines: list[list[str]] = []
    for raw in transcript.splitlines():
        if match := TRANSCRIPT_LINE.match(raw):
            lines.append([ROLES[match.group(1).lower()], match.group(2).strip()])
        elif lines and raw.strip():
            lines[-1][1] = f"{lines[-1][1]} {raw.strip()}".strip()
    return [(role, text) for role, text in lines if text]
