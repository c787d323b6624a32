"""The tools a persona's model may call, run on the server. This module is the registry: every tool is
listed in TOOLS, defined in the module of what it touches with what each kind of principal may do with
it (Access; the table in docs/security.md), and checked here before it runs. Whatever goes wrong in a
call comes back to the model as a tool error: a tool never fails the turn.
"""

import json
import logging

import jsonschema
from asgiref.sync import sync_to_async

from .. import tracing
from ..dbthread import db_write, release_connection
from ..models import Persona
from ..principals import Principal
from .base import Access, Tool, ToolContext, ToolResult
from .delegate import CHECK_TASK, SPAWN_AGENT
from .instructions import SAVE_DIRECTIVE
from .notes import RECALL_PERSON, SAVE_PERSON_MEMORY
from .team import LIST_TEAM

__all__ = ["TOOLS", "Access", "Tool", "ToolContext", "ToolResult", "acall_tool", "call_tool", "tools_for"]

log = logging.getLogger(__name__)

TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (LIST_TEAM, RECALL_PERSON, SAVE_PERSON_MEMORY, SAVE_DIRECTIVE, SPAWN_AGENT, CHECK_TASK)
}

MAX_RESULT_CHARS = 20_000  # what one tool result may put into the prompt


def tools_for(persona: Persona, principal: Principal) -> list[Tool]:
    """The tools `persona.tools` names that exist and that `principal` may use, in that order."""
    found = (TOOLS[name] for name in persona.tools if name in TOOLS)
    return [tool for tool in found if tool.access(principal.trust) is not Access.NO]


def call_tool(
    name: str, arguments: str | dict | None, context: ToolContext, *, call_id: str = ""
) -> ToolResult:
    """Run one tool call as the model made it (`arguments` as its JSON text, or already parsed), then
    start the work it hands on. Traced as `execute_tool {name}` (agents.tracing)."""
    with tracing.span(f"execute_tool {name}", _span_attributes(name, call_id, arguments)) as span:
        result = _start(name, _call(name, arguments, context))
        _span_ended(span, result)
        return result


async def acall_tool(
    name: str, arguments: str | dict | None, context: ToolContext, *, call_id: str = ""
) -> ToolResult:
    """`call_tool` from async code: the tool on the runtime's writer thread, the work it hands on from
    another thread (queueing a task is one write of the broker's), both within the tool's span (a task
    it queues continues the trace from there)."""
    with tracing.span(f"execute_tool {name}", _span_attributes(name, call_id, arguments)) as span:
        result = await db_write(_call)(name, arguments, context)
        if result.start is not None:

            def start() -> ToolResult:
                try:
                    return _start(name, result)
                finally:
                    release_connection()

            result = await sync_to_async(start, thread_sensitive=False)()
        _span_ended(span, result)
        return result


def _span_attributes(name: str, call_id: str, arguments) -> dict | None:
    if not tracing.on():
        return None
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.type": "function",
    }
    if call_id:
        attributes["gen_ai.tool.call.id"] = call_id
    if tracing.capture_content():
        attributes["gen_ai.tool.call.arguments"] = (
            arguments if isinstance(arguments, str) else tracing.as_json(arguments)
        )
    return attributes


def _span_ended(span, result: ToolResult) -> None:
    if span is None:
        return
    if result.error:
        tracing.failed(span, "tool_error")
    if tracing.capture_content():
        span.set_attribute("gen_ai.tool.call.result", result.content)


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
    found = TOOLS.get(name)
    if found is None or name not in context.persona.tools:
        return ToolResult(f"Error: there is no tool named {name!r} available to you.", error=True)
    try:
        parsed = json.loads(arguments or "{}") if not isinstance(arguments, dict) else arguments
    except ValueError as exc:
        return ToolResult(f"Error: the arguments are not valid JSON ({exc}).", error=True)
    except RecursionError:  # nested deeper than Python's json parser goes (a caller's VAPI tool call)
        return ToolResult("Error: the arguments are not valid JSON (nested too deeply).", error=True)
    try:
        jsonschema.validate(parsed, found.parameters)
    except jsonschema.ValidationError as exc:
        return ToolResult(f"Error: bad arguments for {name}: {exc.message}.", error=True)
    if (denied := _denied(found, parsed, context)) is not None:
        log.warning("Refused %s to %s for %s: %s", name, context.persona, context.principal, denied)
        return ToolResult(f"Error: not allowed: {denied}", error=True)
    if found.writes and context.recorded is not None:
        return _recorded(name, context.recorded)
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


NOT_RUN_IN_REPLAY = (
    "Done. (This is a replay: the tool changes shared state, so it did not run, and the conversation "
    "replayed made no such call to take its result from.)"
)


def _recorded(name: str, recorded: list) -> ToolResult:
    """A replay's call of a tool that writes: the original turn's result of its next call of the same
    tool (taken from `recorded`, so each is given once), else a note that nothing ran."""
    for index, (recorded_name, content) in enumerate(recorded):
        if recorded_name == name:
            del recorded[index]
            return ToolResult(content)
    return ToolResult(NOT_RUN_IN_REPLAY)


def _denied(tool: Tool, arguments: dict, context: ToolContext) -> str | None:
    """Why the principal may not make this call, or None when it may."""
    access = tool.access(context.principal.trust)
    if access is Access.NO:
        return f"{tool.name} cannot be used on behalf of a {context.principal.trust.label.lower()}."
    if access is Access.OWN:
        whose = tool.whose(arguments, context)
        if whose is None or whose != context.principal.caller_id:
            return (
                f"on behalf of a {context.principal.trust.label.lower()}, {tool.name} reaches only the "
                "notes of the person you are speaking with ('the caller')."
            )
    return None
