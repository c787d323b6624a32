"""The control-panel API: what is running, who is calling, and what it costs."""

import time
from typing import Literal

from django.apps import apps
from django.conf import settings
from django.http import Http404, HttpResponse
from ninja import Query, Router, Schema
from pydantic import Field

from .models import CallerSession, Persona, Process
from .schemas import ProcessDetailOut, ProcessOut, SessionOut, SpawnNodeOut, StatusOut, spawn_node
from .spawn_tree import all_roots, grow, live_roots

router = Router(tags=["control panel"])

ProcessStatus = Literal["pending", "running", "completed", "failed"]


def format_uptime(seconds: float) -> str:
    """Go's duration style, as the spec shows: 2h30m15s, 4m5s, 9s."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class PageFilters(Schema):
    limit: int | None = Field(
        None,
        ge=1,
        le=settings.TRON_API_MAX_PAGE_SIZE,
        description="Page size (default TRON_API_PAGE_SIZE, 50).",
    )
    offset: int = Field(0, ge=0, le=2**31, description="Rows to skip.")

    def page(self, queryset, response: HttpResponse):
        """Filter, count (into X-Total-Count) and slice; two queries."""
        response["X-Total-Count"] = str(queryset.count())
        limit = self.limit or settings.TRON_API_PAGE_SIZE
        return list(queryset[self.offset : self.offset + limit])


class ListFilters(PageFilters):
    status: ProcessStatus | None = Field(None, description="Only rows whose process has this status.")
    agent: str | None = Field(None, description="Only rows of this persona (case-insensitive).")


def life_loop_persona_ids() -> set[int]:
    """Personas that have life-loop schedules, as the app that runs the life loop reports them (an
    AppConfig with `life_loop_persona_ids()`; agents imports no app built on it)."""
    ids: set[int] = set()
    for config in apps.get_app_configs():
        if hook := getattr(config, "life_loop_persona_ids", None):
            ids |= hook()
    return ids


def system_status() -> dict:
    """/api/status's figures (four queries); Slack's `status` command reads them here too."""
    started_at = apps.get_app_config("agents").started_at
    personas = list(Persona.objects.enabled().values_list("pk", "name", "life_enabled"))
    scheduled = life_loop_persona_ids()
    return {
        "status": "ok",
        "uptime": format_uptime(time.monotonic() - started_at),
        "process_count": Process.objects.active().count(),
        "session_count": CallerSession.objects.open().count(),
        "personas": [name for _pk, name, _life in personas],
        "active_personas": [name for pk, name, life_enabled in personas if life_enabled and pk in scheduled],
    }


def sessions_by_activity(include_ended: bool = False):
    """Caller sessions with their process and persona, most recently active first (open ones only unless
    `include_ended`): /api/sessions, and Slack's `sessions` command."""
    sessions = CallerSession.objects.select_related("process__persona")
    if not include_ended:
        sessions = sessions.open()
    return sessions.order_by("-last_seen_at", "-id")


@router.get("/status", response=StatusOut, summary="System overview")
def status(request):
    return system_status()


@router.get("/processes", response=list[ProcessOut], summary="Processes, newest first")
def list_processes(request, response: HttpResponse, filters: Query[ListFilters]):
    processes = Process.objects.select_related("persona").with_parent_id()
    if filters.status:
        processes = processes.filter(status=filters.status)
    if filters.agent:
        processes = processes.filter(persona__in=Persona.objects.ids_named(filters.agent))
    return filters.page(processes.order_by("-started_at", "-id"), response)


@router.get("/processes/{process_id}", response=ProcessDetailOut, summary="One process with its transcript")
def get_process(request, process_id: str):
    """Three queries: the process with its persona, its messages, its LLM calls."""
    process = (
        Process.objects.select_related("persona")
        .with_parent_id()
        .filter(public_id=process_id.strip().lower())
        .first()
    )
    if process is None:
        raise Http404(f"No process has the id {process_id!r}.")
    return process


class SpawnTreeFilters(PageFilters):
    all: bool = Field(
        False, description="Every tree; without it only live ones (holding a pending or running process)."
    )


@router.get("/spawn-tree", response=list[SpawnNodeOut], summary="Processes as trees, parent → children")
def spawn_tree(request, response: HttpResponse, filters: Query[SpawnTreeFilters]):
    """Root processes newest first (a page of them; X-Total-Count counts roots), each with its tree."""
    roots = all_roots() if filters.all else live_roots()
    roots = roots.select_related("persona").with_parent_id().order_by("-started_at", "-id")
    return [spawn_node(root) for root in grow(filters.page(roots, response))]


class SessionFilters(ListFilters):
    include_ended: bool = Field(False, description="Also list sessions that have ended.")


@router.get("/sessions", response=list[SessionOut], summary="Caller sessions, most recently active first")
def list_sessions(request, response: HttpResponse, filters: Query[SessionFilters]):
    sessions = sessions_by_activity(filters.include_ended)
    if filters.status:
        sessions = sessions.filter(process__status=filters.status)
    if filters.agent:
        sessions = sessions.filter(process__persona__in=Persona.objects.ids_named(filters.agent))
    return filters.page(sessions, response)
