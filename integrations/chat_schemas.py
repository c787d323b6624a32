"""The OpenAI chat-completions request, as clients (the SDK, LangChain, VAPI, ElevenLabs) send it.

Unknown fields are ignored; known fields are type-checked strictly, so a wrong type is a 400 naming the
field rather than a silent coercion.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.models import Message

from .json_input import field_path

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class FunctionCallIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = ""
    arguments: str = ""


class ToolCallIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    type: str = "function"
    function: FunctionCallIn


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    # stored with the tool's result (Message.tool_call_id): OpenAI's ids are some 30 characters
    tool_call_id: str | None = Field(None, max_length=Message._meta.get_field("tool_call_id").max_length)


class FunctionIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str | None = None
    parameters: dict | None = None


class ToolIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: FunctionIn


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = False


# The longest answer a request may ask for: far past any model's output (a million tokens or so), and
# small enough that a call's price fits its column. Unbounded, 1e32 written out overflowed the pricing.
MAX_TOKENS = 10_000_000


class ChatCompletionIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    messages: list[MessageIn] = Field(min_length=1)
    stream: bool | None = False  # OpenAI's own types allow null for both flags: null is false
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    user: str | None = None
    tools: list[ToolIn] | None = None
    tool_choice: str | dict | None = None
    # ElevenLabs' custom-LLM extras: read on its endpoints only, and like the other unknown fields
    # never a reason to refuse a request on the others
    user_id: Any = None
    elevenlabs_extra_body: Any = None
    # VAPI's extras (metadataSendMode "variable"): read for the caller's number and call id, any shape
    call: Any = None
    customer: Any = None


class RequestError(Exception):
    """A client mistake, reported as a 400 invalid_request_error naming `param`."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


def parse_chat_request(body: bytes) -> ChatCompletionIn:
    """Validate a request body; raises RequestError with the first problem."""
    if not body.strip():
        raise RequestError("The request body is empty: send a JSON object with `messages`.")
    try:
        return ChatCompletionIn.model_validate_json(body, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise RequestError(f"The request body is not valid JSON: {first['msg']}") from None
        if first["type"] == "model_type" and not first["loc"]:
            raise RequestError("The request body must be a JSON object.") from None
        param = field_path(first["loc"]) or None
        if param == "messages" and first["type"] == "missing":
            raise RequestError("`messages` is required.", "messages") from None
        if param == "messages" and first["type"] == "too_short":
            raise RequestError("`messages` must contain at least one message.", "messages") from None
        message = first["msg"]
        raise RequestError(f"Invalid `{param}`: {message}" if param else message, param) from None


# Only an assistant message may come without content (its tool calls say what it did).
CONTENT_REQUIRED = {"system", "developer", "user", "tool", "function"}


def flatten_content(message: MessageIn, index: int) -> str:
    """A message's text: a string as is, text parts joined; other part types are refused, not dropped."""
    content = message.content
    if content is None:
        if message.role in CONTENT_REQUIRED:
            raise RequestError(f"A {message.role} message needs `content`.", f"messages[{index}].content")
        return ""
    if isinstance(content, str):
        return _no_nul(content, f"messages[{index}].content")
    texts = []
    for part_index, part in enumerate(content):
        param = f"messages[{index}].content[{part_index}]"
        if part.type in ("text", "input_text"):
            if part.text is None:
                raise RequestError("A text part needs `text`.", f"{param}.text")
            texts.append(_no_nul(part.text, f"{param}.text"))
        else:
            raise RequestError(f"Content parts of type {part.type!r} are not supported; send text.", param)
    return "\n".join(texts)


def _no_nul(text: str, param: str) -> str:
    # Databases cannot store U+0000 in text (PostgreSQL refuses it): say so rather than fail later.
    if "\x00" in text:
        raise RequestError("Text must not contain NUL (U+0000) characters.", param)
    return text


def normalize_messages(messages: list[MessageIn]) -> list[dict]:
    """OpenAI messages → the engine's: {"role": system|user|assistant|tool, "content": str}, an assistant's
    with its `tool_calls`, a tool result with its `tool_call_id`, as OpenAI's API takes them back.

    `developer` is a system message. The legacy `function` role (a result without a call id) is kept as
    readable text, so the model still sees what happened.
    """
    normalized = []
    for index, message in enumerate(messages):
        text = flatten_content(message, index)
        role = message.role
        line = {"role": role, "content": text}
        if role == "developer":
            line["role"] = "system"
        elif role == "function":
            name = _no_nul(message.name or "function", f"messages[{index}].name")
            line = {"role": "user", "content": f"[Result of {name}]: {text}"}
        elif role == "tool":
            if not message.tool_call_id:
                raise RequestError("A tool message needs `tool_call_id`.", f"messages[{index}].tool_call_id")
            line["tool_call_id"] = _no_nul(message.tool_call_id, f"messages[{index}].tool_call_id")
        elif role == "assistant" and message.tool_calls:
            line["tool_calls"] = [
                _tool_call(call, f"messages[{index}].tool_calls[{call_index}]")
                for call_index, call in enumerate(message.tool_calls)
            ]
        normalized.append(line)
    return normalized


def _tool_call(call: ToolCallIn, param: str) -> dict:
    if not call.id:
        raise RequestError("A tool call needs its `id`.", f"{param}.id")
    if not call.function.name:
        raise RequestError("A tool call needs `function.name`.", f"{param}.function.name")
    return {
        "id": _no_nul(call.id, f"{param}.id"),
        "type": "function",
        "function": {
            "name": _no_nul(call.function.name, f"{param}.function.name"),
            "arguments": _no_nul(call.function.arguments, f"{param}.function.arguments"),
        },
    }


def client_tools(payload: ChatCompletionIn) -> list[dict] | None:
    """The request's tools as OpenAI's API takes them (unknown fields kept)."""
    if not payload.tools:
        return None
    return [tool.model_dump(exclude_none=True) for tool in payload.tools]
