"""What a tool is: its name, what the model is told, the JSON schema of its arguments, the function that
runs it, and what each kind of principal may do with it (`access`)."""

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

import jsonschema

from ..callers import Caller
from ..models import Persona, Process
from ..principals import Principal, Trust

NO_ARGUMENTS = {"type": "object", "properties": {}, "additionalProperties": False}


class Access(enum.Enum):
    YES = "yes"
    OWN = "own"  # only on the principal's own data: the tool's `whose(arguments, context)` must be theirs
    NO = "no"


@dataclass(frozen=True)
class ToolContext:
    """Who is calling the tool: the persona whose model asked, its process, the caller it serves and the
    principal the turn runs for."""

    persona: Persona
    principal: Principal
    process: Process | None = None
    caller: Caller | None = None
    # A replay's turn (agents.replay): the original turn's results of the tools that write, as (name,
    # content), taken in order by the calls that would write; None for a live turn.
    recorded: list | None = None


@dataclass(frozen=True)
class ToolResult:
    content: str
    error: bool = False
    # Work to hand on once the tool has returned (queueing a django-q2 task), run by the caller of the
    # tool off the database threads: where tasks run inline (the tests), the task runs a turn itself.
    start: Callable[[], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    run: Callable[[ToolContext, dict], "str | ToolResult"]
    access: Callable[[Trust], Access]
    parameters: dict = field(default_factory=lambda: NO_ARGUMENTS)
    # For Access.OWN: whose data the arguments touch (a caller id), or None for nobody's it can tell.
    whose: Callable[[dict, ToolContext], str | None] | None = None
    writes: bool = False  # it changes shared state (notes, directives, processes): stubbed in a replay

    def __post_init__(self):
        jsonschema.Draft202012Validator.check_schema(self.parameters)
        if self.whose is None and any(self.access(trust) is Access.OWN for trust in Trust):
            raise TypeError(f"{self.name}: a tool with Access.OWN must say whose data a call touches")

    def schema(self) -> dict:
        """The tool as OpenAI's `tools` list takes it."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def access_table(**by_trust: Access) -> Callable[[Trust], Access]:
    """`access` from one value per trust level, e.g. access_table(public=Access.OWN, team=Access.YES, ...);
    a level left out gets Access.NO."""
    return lambda trust: by_trust.get(trust.value, Access.NO)
