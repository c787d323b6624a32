"""VAPI's server messages, read: the two shapes they arrive in, and the fields Tron uses.

VAPI today wraps every message: `{"message": {"type": "status-update", "call": {...}, ...}}`
(../shared/docs/protocols.md §1.2). The seed's contract (../shared/spec/tron-api.md) writes them flat:
`{"type": "call.started", "call": {"id", "from", "to"}}`. Both are read here into one `VapiEvent`;
unknown keys are ignored (VAPI adds fields often), and a body that is neither shape is a `BadEvent`
(a 400 naming the field).
"""

import json
import re
from dataclasses import dataclass

from agents.callers import Caller, clean_id, normalize_phone
from agents.models import Channel

from .callers import call_caller_id

CALL_STARTED = "started"
CALL_ENDED = "ended"

# The message types that start and end a call, and those that carry transcript lines.
ROLES = {"user": "user", "customer": "user", "bot": "assistant", "assistant": "assistant", "ai": "assistant"}
TRANSCRIPT_LINE = re.compile(r"^\s*(ai|assistant|bot|user|customer)\s*:\s?(.*)$", re.IGNORECASE)


class BadEvent(Exception):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message, self.param = message, param


@dataclass
class VapiEvent:
    type: str
    message: dict  # the server message: the envelope's `message`, or the flat body itself
    flat: bool

    @property
    def where(self) -> str:
        """Where this message's fields are, for error messages: `message.` or nothing (flat)."""
        return "" if self.flat else "message."

    def obj(self, *keys) -> dict:
        """The object at `keys` inside the message, {} when absent; a BadEvent when it is not an object."""
        value = self.message
        for index, key in enumerate(keys):
            value = value.get(key)
            if value is None:
                return {}
            if not isinstance(value, dict):
                raise BadEvent(
                    f"{self.where}{'.'.join(keys[: index + 1])} must be an object.", self._param(keys)
                )
        return value

    def text(self, *keys) -> str:
        """The string (or number) at `keys`, trimmed; "" when absent or of another type."""
        *path, last = keys
        value = self.obj(*path).get(last) if path else self.message.get(last)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return ""
        return str(value).strip()

    def _param(self, keys) -> str:
        return f"{self.where}{'.'.join(keys)}"

    # -- the call -------------------------------------------------------------------------------------

    @property
    def call_id(self) -> str:
        return clean_id(self.text("call", "id") or self.text("call_id") or self.text("callId"))

    @property
    def caller_number(self) -> str:
        """The caller's number, E.164 when it reads as one; "" when withheld or absent."""
        for candidate in (
            self.text("call", "customer", "number"),
            self.text("customer", "number"),
            self.text("call", "from"),
        ):
            if number := normalize_phone(candidate):
                return number
        return ""

    @property
    def called_number(self) -> str:
        """The number the caller dialled (one of ours)."""
        for candidate in (
            self.text("phoneNumber", "number"),
            self.text("call", "phoneNumber", "number"),
            self.text("call", "to"),
        ):
            if number := normalize_phone(candidate):
                return number
        return ""

    @property
    def assistant_model(self) -> str:
        """The model VAPI's assistant names (a persona, when the assistant is this server's custom LLM)."""
        return self.text("assistant", "model", "model")

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
            status = self.text("status")
            return {"in-progress": CALL_STARTED, "ended": CALL_ENDED}.get(status)
        return None

    @property
    def is_report(self) -> bool:
        """A message that carries the whole call at its end (transcript, summary, cost)."""
        return self.type in ("end-of-call-report", "call.ended")

    def lines(self) -> list[tuple[str, str]]:
        """The transcript lines the message carries, oldest first, as (role, text), user and assistant only."""
        if self.type in ("transcript", 'transcript[transcriptType="final"]'):
            if self.text("transcriptType") not in ("", "final"):
                return []  # a partial transcript: the final one follows
            return _line(self.text("role"), self.message.get("transcript"))
        if self.type == "speech.recognized":
            return _line("user", self.message.get("transcript") or self.message.get("text"))
        if self.type == "assistant.message":
            text = self.message.get("message") or self.message.get("content") or self.message.get("text")
            return _line("assistant", text)
        if self.type in ("conversation-update", "end-of-call-report", "call.ended", "status-update"):
            return self._conversation()
        return []

    def _conversation(self) -> list[tuple[str, str]]:
        """A whole conversation: OpenAI-formatted messages first (VAPI's LLM requests carry the same
        words, so they match what the chat endpoint stored), then VAPI's own, then the transcript text."""
        artifact = self.obj("artifact")
        for source, key in (
            (artifact, "messagesOpenAIFormatted"),
            (self.message, "messagesOpenAIFormatted"),
            (artifact, "messages"),
            (self.message, "messages"),
        ):
            items = source.get(key)
            if items is None:
                continue
            if not isinstance(items, list):
                where = "artifact." if source is artifact else ""
                raise BadEvent(f"{self.where}{where}{key} must be a list.", f"{self.where}{where}{key}")
            lines = []
            for item in items:
                if isinstance(item, dict):
                    lines += _line(item.get("role"), item.get("content", item.get("message")))
            return lines
        transcript = artifact.get("transcript", self.message.get("transcript"))
        return _parse_transcript(transcript) if isinstance(transcript, str) else []

    # -- the end-of-call report -------------------------------------------------------------------------

    @property
    def summary(self) -> str:
        return self.text("analysis", "summary") or self.text("summary")

    @property
    def ended_reason(self) -> str:
        return (self.text("endedReason") or self.text("call", "endedReason"))[:120]

    @property
    def cost(self) -> float | None:
        for value in (self.message.get("cost"), self.obj("call").get("cost")):
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                return value
        return None

    # -- tool calls -------------------------------------------------------------------------------------

    def tool_calls(self) -> list[dict]:
        """Each call as {"id", "name", "arguments"} (a dict or JSON text), from `toolCallList` (OpenAI's
        shape, or the docs' flat {id, name, parameters}) or `toolWithToolCallList[].toolCall`."""
        items = self.message.get("toolCallList")
        if items is None and isinstance(self.message.get("toolWithToolCallList"), list):
            items = [
                entry.get("toolCall")
                for entry in self.message["toolWithToolCallList"]
                if isinstance(entry, dict)
            ]
        if not isinstance(items, list):
            raise BadEvent(
                f"{self.where}toolCallList must be a list of tool calls.", f"{self.where}toolCallList"
            )
        calls = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str | int):
                raise BadEvent(
                    f"{self.where}toolCallList[{index}] must be a tool call with an id.",
                    f"{self.where}toolCallList",
                )
            function = item.get("function") if isinstance(item.get("function"), dict) else {}
            calls.append(
                {
                    "id": str(item["id"]),
                    "name": str(function.get("name") or item.get("name") or ""),
                    "arguments": function.get("arguments", item.get("parameters", item.get("arguments"))),
                }
            )
        return calls


def parse_event(body: bytes) -> VapiEvent:
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEvent(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise BadEvent(_SHAPES)
    if "message" in data and not isinstance(data.get("type"), str):
        message, flat = data["message"], False
        if not isinstance(message, dict):
            raise BadEvent(f"message must be an object. {_SHAPES}", "message")
    else:
        message, flat = data, True
    kind = message.get("type")
    if not isinstance(kind, str) or not kind.strip():
        param = "type" if flat else "message.type"
        raise BadEvent(f"{param} must name the message type. {_SHAPES}", param)
    event = VapiEvent(kind.strip(), message, flat)
    event.obj("call")  # present messages of every type: a call that is not an object is refused
    return event


_SHAPES = (
    'A VAPI server message is {"message": {"type": ..., "call": {...}}}, or the flat '
    '{"type": ..., "call": {...}}.'
)


def _line(role, text) -> list[tuple[str, str]]:
    role = ROLES.get(str(role).strip().lower()) if isinstance(role, str) else None
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
