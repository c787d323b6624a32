"""Response schemas of the control-panel API (`../shared/spec/tron-api.md`)."""

from datetime import UTC, datetime

from ninja import Schema

from .models import CallerSession, LLMCall, Message, Process


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z suffix, to the second, as the spec shows: 2024-01-15T10:30:00Z."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatusOut(Schema):
    status: str
    uptime: str
    process_count: int
    session_count: int
    personas: list[str]
    active_personas: list[str]


class MetricsOut(Schema):
    input_tokens: int
    output_tokens: int
    total_tokens: int
    llm_calls: int
    tool_calls: int
    estimated_cost: float
    duration_ms: int


class ProcessFields(Schema):
    """A process as the API shows it (the fields; ProcessOut reads them from a Process)."""

    id: str
    agent: str
    name: str
    status: str
    task: str
    channel: str
    started_at: str
    finished_at: str | None
    error: str  # why its last turn failed, until one succeeds; empty otherwise
    parent_id: str | None  # the process that delegated this one (agents.delegation)
    metrics: MetricsOut


class ProcessOut(ProcessFields):
    @staticmethod
    def resolve_id(obj: Process) -> str:
        return obj.public_id

    @staticmethod
    def resolve_agent(obj: Process) -> str:
        return obj.persona.name

    @staticmethod
    def resolve_parent_id(obj: Process) -> str | None:
        return obj.parent_public_id  # the queries that serve processes annotate it (with_parent_id)

    @staticmethod
    def resolve_started_at(obj: Process) -> str:
        return iso_utc(obj.started_at)

    @staticmethod
    def resolve_finished_at(obj: Process) -> str | None:
        return iso_utc(obj.finished_at)

    @staticmethod
    def resolve_metrics(obj: Process) -> dict:
        return {
            "input_tokens": obj.input_tokens,
            "output_tokens": obj.output_tokens,
            "total_tokens": obj.total_tokens,
            "llm_calls": obj.llm_calls,
            "tool_calls": obj.tool_calls,
            "estimated_cost": float(obj.cost_usd),
            "duration_ms": obj.duration_ms,
        }


class MessageOut(Schema):
    role: str
    content: str
    created_at: str

    @staticmethod
    def resolve_created_at(obj: Message) -> str:
        return iso_utc(obj.created_at)


class LLMCallOut(Schema):
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    estimated_cost: float
    usage_source: str
    finish_reason: str
    ttft_ms: int | None
    duration_ms: int
    error: str
    created_at: str

    @staticmethod
    def resolve_estimated_cost(obj: LLMCall) -> float:
        return float(obj.cost_usd)

    @staticmethod
    def resolve_created_at(obj: LLMCall) -> str:
        return iso_utc(obj.created_at)


class PrincipalOut(Schema):
    """Who the process was started for (docs/security.md): how far it is trusted, whose own data "the
    caller" means, who authenticated, and whose allowance its calls count against."""

    trust: str
    caller_id: str
    name: str
    allowance: str


class ProcessDetailOut(ProcessOut):
    """One process, with its whole transcript and its LLM calls, oldest first."""

    principal: PrincipalOut
    # The OpenTelemetry trace of its first traced turn (agents.tracing); null while tracing was off.
    trace_id: str | None
    transcript: list[MessageOut]
    llm_calls: list[LLMCallOut]
    # What the voice platform reported when the call ended (VAPI's end-of-call report); empty otherwise.
    summary: str
    ended_reason: str
    call_cost: float | None
    # Delegated work: its depth below the conversation, its final answer, when that reached the parent.
    spawn_depth: int
    result: str
    delivered_at: str | None

    @staticmethod
    def resolve_principal(obj: Process) -> dict:
        return {
            "trust": obj.trust,
            "caller_id": obj.principal_caller_id,
            "name": obj.principal_name,
            "allowance": obj.allowance,
        }

    @staticmethod
    def resolve_trace_id(obj: Process) -> str | None:
        return obj.trace_id or None

    @staticmethod
    def resolve_delivered_at(obj: Process) -> str | None:
        return iso_utc(obj.delivered_at)

    @staticmethod
    def resolve_call_cost(obj: Process) -> float | None:
        return float(obj.call_cost_usd) if obj.call_cost_usd is not None else None

    @staticmethod
    def resolve_transcript(obj: Process) -> list[Message]:
        return list(obj.messages.order_by("id"))

    @staticmethod
    def resolve_llm_calls(obj: Process) -> list[LLMCall]:
        return list(obj.llm_call_rows.order_by("created_at", "id"))


class SpawnNodeOut(ProcessFields):
    """A process in the spawn tree, with the processes it delegated to (oldest first). Built as plain
    data (`spawn_node`): django-ninja's resolvers do not run inside a recursive schema."""

    spawn_depth: int
    children: list["SpawnNodeOut"]


def spawn_node(process: Process) -> dict:
    """`process` and its tree (`tree_children`, agents.spawn_tree.grow) as SpawnNodeOut's data."""
    return {
        **ProcessOut.from_orm(process).dict(),
        "spawn_depth": process.spawn_depth,
        "children": [spawn_node(child) for child in process.tree_children],
    }


class SessionOut(Schema):
    caller_id: str
    process_id: str
    agent: str
    status: str
    channel: str
    last_seen_at: str
    ended_at: str | None

    @staticmethod
    def resolve_process_id(obj: CallerSession) -> str:
        return obj.process.public_id

    @staticmethod
    def resolve_agent(obj: CallerSession) -> str:
        return obj.process.persona.name

    @staticmethod
    def resolve_status(obj: CallerSession) -> str:
        return obj.process.status

    @staticmethod
    def resolve_last_seen_at(obj: CallerSession) -> str:
        return iso_utc(obj.last_seen_at)

    @staticmethod
    def resolve_ended_at(obj: CallerSession) -> str | None:
        return iso_utc(obj.ended_at)


SpawnNodeOut.model_rebuild()
