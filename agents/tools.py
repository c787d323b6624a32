"""Tools a persona's model may call, run on the server: a registry of names, JSON schemas and functions.

    @tool("list_team", "The team: who does what and who reports to whom.", {"type": "object", ...})
    def list_team(context: ToolContext, arguments: dict) -> str: ...

    call_tool("list_team", '{}', context)  # -> ToolResult(content, error)

A persona gets the registered tools its `tools` setting names (`tools_for`); names without a tool here
(tools of the Go original that are out of scope, or one a later release adds) are skipped. Whatever goes
wrong in a call (an unknown tool, arguments that are not JSON or do not match the schema, a tool that
raises) comes back as a ToolResult with `error=True`, for the model to read and recover from: a tool
never fails the turn. Tools are plain sync functions, short (work that takes long is handed to a django-q2 task); `acall_tool`
runs one on the runtime's database writer thread (agents.dbthread).

A tool that hands work to a django-q2 task returns `ToolResult(content, start=...)`: the call's caller
runs `start` once the tool has returned, and `acall_tool` runs it off the database threads. Where tasks
run inline (django-q2's sync mode, the tests), the task is then free to run a turn of its own, which
needs the writer thread the tool held (agents.delegation).
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import jsonschema
from asgiref.sync import sync_to_async

from .callers import Caller
from .dbthread import db_write, release_connection
from .models import Persona, Process

log = logging.getLogger(__name__)

MAX_RESULT_CHARS = 20_000  # what one tool result may put into the prompt


@dataclass(frozen=True)
class ToolContext:
    """Who is calling the tool: the persona whose model asked, its process, and the caller it serves."""

    persona: Persona
    process: Process | None = None
    caller: Caller | None = None


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict  # the JSON schema of the arguments object
    run: Callable[
        [ToolContext, dict], "str | ToolResult"
    ]  # a str is the result; a ToolResult may be an error

    def schema(self) -> dict:
        """The tool as OpenAI's `tools` list takes it."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


@dataclass(frozen=True)
class ToolResult:
    content: str
    error: bool = False
    start: Callable[[], None] | None = field(default=None, compare=False, repr=False)  # see above


REGISTRY: dict[str, Tool] = {}


def tool(name: str, description: str, parameters: dict | None = None):
    """Register the decorated `func(context, arguments) -> str | ToolResult` as the tool `name`."""
    parameters = parameters or {"type": "object", "properties": {}, "additionalProperties": False}
    jsonschema.Draft202012Validator.check_schema(parameters)

    def register(func):
        REGISTRY[name] = Tool(name, description, parameters, func)
        return func

    return register


def tools_for(persona: Persona) -> list[Tool]:
    """The registered tools `persona.tools` names, in that order."""
    return [REGISTRY[name] for name in persona.tools if name in REGISTRY]


def call_tool(name: str, arguments: str | dict | None, context: ToolContext) -> ToolResult:
    """Run one tool call as the model made it (`arguments` as its JSON text, or already parsed), then
    start the work it hands on."""
    return _start(name, _call(name, arguments, context))


async def acall_tool(name: str, arguments: str | dict | None, context: ToolContext) -> ToolResult:
    """`call_tool` from async code: the tool on the runtime's writer thread, the work it hands on from
    another thread (queueing a task is one write of the broker's)."""
    result = await db_write(_call)(name, arguments, context)
    if result.start is None:
        return result

    def start() -> ToolResult:
        try:
            return _start(name, result)
        finally:
            release_connection()

    return await sync_to_async(start, thread_sensitive=False)()


def _start(name: str, result: ToolResult) -> ToolResult:
    if result.start is None:
        return result
    try:
        result.start()
    except Exception as exc:  # the work was not handed on: the model hears so
        log.exception("Tool %s could not start its work", name)
        return ToolResult(f"Error: {name} could not start its work ({exc.__class__.__name__}).", error=True)
    return ToolResult(result.content, result.error)


def _call(name: str, arguments: str | dict | None, context: ToolContext) -> ToolResult:
    found = REGISTRY.get(name)
    if found is None or name not in context.persona.tools:
        return ToolResult(f"Error: there is no tool named {name!r} available to you.", error=True)
    try:
        parsed = json.loads(arguments or "{}") if not isinstance(arguments, dict) else arguments
    except ValueError as exc:
        return ToolResult(f"Error: the arguments are not valid JSON ({exc}).", error=True)
    try:
        jsonschema.validate(parsed, found.parameters)
    except jsonschema.ValidationError as exc:
        return ToolResult(f"Error: bad arguments for {name}: {exc.message}.", error=True)
    try:
        returned = found.run(context, parsed)
    except Exception as exc:  # a tool's bug must not fail the turn; the model hears it failed
        log.exception("Tool %s failed for %s", name, context.persona)
        return ToolResult(f"Error: {name} failed ({exc.__class__.__name__}).", error=True)
    result = returned if isinstance(returned, ToolResult) else ToolResult(returned)
    if len(result.content) > MAX_RESULT_CHARS:
        content = result.content[:MAX_RESULT_CHARS] + "\n[cut: the result was longer]"
        result = ToolResult(content, result.error, result.start)
    return result


@tool("list_team", "The team: each member's name, role and who they report to.")
def list_team(context: ToolContext, arguments: dict) -> str:
    personas = Persona.objects.enabled().select_related("reports_to")
    lines = []
    for persona in personas:
        lead = f", reports to {persona.reports_to.name}" if persona.reports_to else ""
        lines.append(f"- {persona.name}: {persona.role or persona.kind}{lead}")
    return "\n".join(lines) or "The team is empty."
