"""JSON as every edge reads it (the VAPI webhook, Slack's events, the ElevenLabs socket; the chat API's
Pydantic models use the same parser): RFC 8259 text in UTF-8 whose strings are valid Unicode (a lone
UTF-16 surrogate such as "\\ud800" is refused: no database can store it), nested at most about 200
levels deep (the parser's own limit, so depth never reaches Python's recursion limit), without the
NaN and Infinity literals. A number too large for a float (1e400) still reads as infinity: the
schemas refuse numbers that are not finite."""

import re

from pydantic_core import from_json


class NotJson(ValueError):
    """The text is not JSON an edge accepts; the message says why, for the client."""


def loads(data: bytes | str):
    try:
        return from_json(data, allow_inf_nan=False)
    except ValueError as exc:
        raise NotJson(str(exc)) from None


# The names Pydantic gives the branches of a union in an error's location: no field of the payload.
_BRANCH = re.compile(r"^(constrained-)?(str|int|float|bool|dict|list)$|\[")


def field_path(loc: tuple) -> str:
    """Where a Pydantic error points, as a client writes it: ("messages", 0, "content") is
    "messages[0].content"."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif _BRANCH.search(str(item)):
            break
        else:
            parts.append(str(item))
    return ".".join(parts)
