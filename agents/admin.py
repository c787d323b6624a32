"""The operators' control panel for the core domain.

Personas are configuration and are edited here. Everything else (processes, sessions, transcripts,
LLM calls) is written by the system: the admin shows it read-only, lets superusers purge it, and offers
a few operator actions that go through the models' own methods (`Process.finish`).
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from . import budgets, pricing, spend
from .conversation import conversation
from .display import compact, ellipsis, human_duration, milliseconds, usd
from .erasure import CallerBusy, erase
from .live import LiveState, live_state, session_state, since_text
from .llm import get_provider
from .models import (
    CallerAllowance,
    CallerMemory,
    CallerSession,
    CallerUsage,
    DailySpend,
    Directive,
    LLMCall,
    Message,
    ModelPrice,
    Persona,
    Process,
)
from .persona_form import SCHEDULE_FIELDS, PersonaForm
from .replay_admin import export_fine_tuning, export_replay_input, replay_conversations, replays_link
from .sessions import end_session
from .timeline import timelines

COST_SUMMARY_DEFAULT_DAYS = 7
CALLER_ID_COLUMN = 32  # characters of a caller id shown in a list (E.164 numbers and req-<uuid> fit)
PROCESS_CALLER_COLUMN = 24  # the process list has more columns to fit
COST_SUMMARY_MAX_DAYS = 366


def process_link(process: Process, anchor: str = "") -> str:
    url = reverse("admin:agents_process_change", args=[process.pk])
    return format_html('<a href="{}{}">{}</a>', url, anchor, process.public_id)


class SystemWrittenAdmin(admin.ModelAdmin):
    """Rows the system writes: viewable, never added or edited here, purged only by superusers.

    Operator actions declare `permissions=["operate"]`: users who hold the model's change permission
    (superusers always do) may run them, though the change form itself stays read-only.
    """

    show_full_result_count = False  # these tables grow without bound; skip the second COUNT(*)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_operate_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Personas -------------------------------------------------------------------------------------


class DirectiveInline(admin.TabularInline):
    model = Directive
    fields = ["text", "active", "approval", "created_at", "updated_at"]
    readonly_fields = ["approval", "created_at", "updated_at"]

    @admin.display(description="approved")
    def approval(self, obj):
        return approval_of(obj)

    extra = 0
    verbose_name_plural = "standing instructions (directives)"


@admin.register(Persona)
class PersonaAdmin(admin.ModelAdmin):
    form = PersonaForm
    list_display = [
        "name",
        "role",
        "kind",
        "reports_to",
        "enabled",
        "life_enabled",
        "model_used",
        "spend_today",
        "process_count",
    ]
    list_editable = ["enabled", "life_enabled"]
    list_filter = ["kind", "enabled", "life_enabled"]
    list_select_related = ["reports_to"]
    search_fields = ["name", "role"]
    readonly_fields = ["spend_today", "replays", "created_at", "updated_at"]
    inlines = [DirectiveInline]
    fieldsets = [
        ("Identity", {"fields": ["name", "role", "kind", "reports_to", "enabled", "sort_order"]}),
        ("Prompt", {"fields": ["system_prompt", "tone", "focus_areas", "tools"]}),
        ("Model settings", {"fields": ["model", "temperature", "budget_usd", "spend_today"]}),
        ("Life loop", {"fields": ["life_enabled", "time_zone", *SCHEDULE_FIELDS, "news_feeds"]}),
        ("Replays", {"fields": ["replays"]}),
        ("Record", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        # One GROUP BY for the whole page instead of a COUNT per row, with today's spend, and the model of
        # the latest call of its latest conversation that made one (subqueries on the process and call
        # indexes: a persona with no calls costs one short index scan, not a scan of every call).
        today = DailySpend.objects.filter(persona=OuterRef("pk"), day=spend.utc_today())
        with_calls = Process.objects.filter(
            Exists(LLMCall.objects.filter(process=OuterRef("pk"))), persona=OuterRef("pk")
        )
        latest_call = LLMCall.objects.filter(process=OuterRef("last_process")).order_by("-created_at", "-id")
        return (
            super()
            .get_queryset(request)
            .annotate(
                process_count=Count("processes"),
                spent_today=Subquery(today.values("spent_usd")[:1]),
                last_process=Subquery(with_calls.order_by("-started_at", "-id").values("pk")[:1]),
            )
            .annotate(last_model=Subquery(latest_call.values("model")[:1]))
        )

    @admin.display(description="try a change first")
    def replays(self, obj):
        return replays_link(obj)

    @admin.display(description="processes", ordering="process_count")
    def process_count(self, obj):
        url = reverse("admin:agents_process_changelist")
        return format_html('<a href="{}?persona__id__exact={}">{}</a>', url, obj.pk, obj.process_count)

    @admin.display(description="model (last used)", ordering="last_model")
    def model_used(self, obj):
        """The model the persona's latest call used; before any, the one it would use."""
        setting = obj.model or get_provider().default_model()
        if not obj.last_model:
            return format_html('{} <span class="quiet">(not used yet)</span>', setting)
        if obj.last_model != setting:
            return format_html('{} <span class="quiet">(now set: {})</span>', obj.last_model, setting)
        return obj.last_model

    @admin.display(description="spent today (UTC)", ordering="spent_today")
    def spend_today(self, obj):
        if obj.pk is None:
            return "-"
        spent = getattr(obj, "spent_today", None) or 0
        budget = budgets.daily_budget(obj)
        if budget is None:
            limit = "no daily budget"
        elif budget == 0:
            limit = "model calls off (budget 0)"
        else:
            limit = f"of {usd(budget)}"
        spent_text = spend.cost_text(spent, [getattr(obj, "last_model", None)])  # "free" for a free model
        url = reverse("admin:agents_dailyspend_changelist")
        return format_html('<a href="{}?persona__id__exact={}">{} {}</a>', url, obj.pk, spent_text, limit)


def approval_of(directive: Directive) -> str:
    if directive.pk is None:
        return "-"
    if directive.awaiting_approval:
        return "awaiting an operator"
    return f"{directive.approved_by}, {directive.approved_at:%Y-%m-%d %H:%M:%S} UTC"


@admin.register(Directive)
class DirectiveAdmin(admin.ModelAdmin):
    """Standing instructions: written here (in force at once), or saved by a persona's model for
    whoever asked, which waits for an operator's approval before it enters any prompt
    (agents.directives)."""

    list_display = ["short_text", "persona", "active", "approval", "asked", "source", "updated_at"]
    list_display_links = ["short_text"]
    list_editable = ["active"]
    list_filter = ["active", ("approved_at", admin.EmptyFieldListFilter), "trust", "persona"]
    list_select_related = ["persona", "process"]
    search_fields = ["text", "persona__name", "asked_by"]
    fields = ["persona", "text", "active", "approval", "asked", "source", "created_at", "updated_at"]
    readonly_fields = ["approval", "asked", "source", "created_at", "updated_at"]
    actions = ["approve"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.approved_by = request.user.get_username()
        super().save_model(request, obj, form, change)

    @admin.action(description="Approve the selected directives: they enter their persona's prompts")
    def approve(self, request, queryset):
        approved = 0
        for directive in queryset.awaiting_approval():  # saved one by one: each save drops the cached prompts
            directive.approved_at, directive.approved_by = timezone.now(), request.user.get_username()
            directive.save(update_fields=["approved_at", "approved_by", "updated_at"])
            approved += 1
        self.message_user(request, f"Approved {approved} directive(s).")

    @admin.display(description="directive")
    def short_text(self, obj):
        return ellipsis(obj.text, 100)

    @admin.display(description="approved", ordering="approved_at")
    def approval(self, obj):
        return approval_of(obj)

    @admin.display(description="asked by")
    def asked(self, obj):
        if not obj.trust:
            return "an operator, here"
        return f"{obj.asked_by} ({obj.get_trust_display().lower()})"

    @admin.display(description="saved in")
    def source(self, obj):
        return process_link(obj.process) if obj.process else "the admin"


@admin.register(DailySpend)
class DailySpendAdmin(SystemWrittenAdmin):
    """Spend against budget per persona and UTC day: the rows the budget check reads (agents.budgets)."""

    list_display = ["day", "persona", "spent", "budget", "used", "held"]
    list_filter = ["persona", "day"]
    list_select_related = ["persona"]
    date_hierarchy = "day"
    fields = ["persona", "day", "spent", "budget", "used", "held", "reserved_at"]
    readonly_fields = fields

    @admin.display(description="spent (USD)", ordering="spent_usd")
    def spent(self, obj):
        return usd(obj.spent_usd)

    @admin.display(description="budget (USD)", ordering="budget_usd")
    def budget(self, obj):
        return "no limit" if obj.budget_usd is None else usd(obj.budget_usd)

    @admin.display(description="used")
    def used(self, obj):
        if obj.budget_usd is None:
            return "-"
        if not obj.budget_usd:
            return "over" if obj.spent_usd else "0%"
        return f"{obj.spent_usd / obj.budget_usd:.0%}"

    @admin.display(description="held by calls in flight (USD)")
    def held(self, obj):
        return usd(obj.reserved_usd)


# --- Processes ------------------------------------------------------------------------------------


class ChildProcessInline(ReadOnlyInline):
    """The processes this one delegated to (agents.delegation), each linked to its own page."""

    model = Process
    fk_name = "parent"
    fields = ["public_id", "persona", "status", "task", "short_result", "error", "delivered_at"]
    readonly_fields = fields
    ordering = ["started_at", "id"]
    verbose_name = "delegated task"
    verbose_name_plural = "delegated tasks (children)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("persona")

    @admin.display(description="result")
    def short_result(self, obj):
        return ellipsis(obj.result, 200) or "-"


def tokens_cell(input_tokens: int, output_tokens: int) -> str:
    """Tokens in a narrow column: `1.2k / 34` (in / out), the exact figures on hover."""
    return format_html(
        '<span class="nowrap" title="{} in / {} out">{} / {}</span>',
        f"{input_tokens:,}",
        f"{output_tokens:,}",
        compact(input_tokens),
        compact(output_tokens),
    )


def state_cell(state: LiveState) -> str:
    since = since_text(state)
    return format_html(
        '<span class="state-{}">{}</span>{}',
        state.key,
        state.label,
        format_html(' <span class="since">{}</span>', since) if since else "",
    )


class LiveFilter(admin.SimpleListFilter):
    """Processes a turn runs in now, or waiting for their caller (by CallerSessionQuerySet.in_turn)."""

    title = "live state"
    parameter_name = "live"

    def lookups(self, request, model_admin):
        return [("in_turn", "In a turn now"), ("waiting", "Waiting for the caller")]

    def queryset(self, request, queryset):
        if self.value() == "in_turn":
            return queryset.filter(in_turn=True)
        if self.value() == "waiting":
            return queryset.filter(in_turn=False, status=Process.Status.RUNNING)
        return queryset


@admin.register(Process)
class ProcessAdmin(SystemWrittenAdmin):
    list_display = ["public_id", "persona", "caller", "state", "channel", "tokens", "cost", "started_at"]
    list_filter = [LiveFilter, "status", "persona", "channel", "started_at"]
    list_select_related = ["persona"]
    date_hierarchy = "started_at"
    # Fields of the process's own row (the persona is one per process); its callers and its words are
    # searched in get_search_results.
    search_fields = ["^public_id", "persona__name", "name", "task"]
    search_help_text = "An id, persona, caller id, task, or words from the conversation."
    actions = ["mark_failed", replay_conversations, export_fine_tuning, export_replay_input]
    change_form_template = "admin/agents/process/change_form.html"
    fieldsets = [
        ("Process", {"fields": ["public_id", "persona", "name", "state", "channel", "task", "error"]}),
        ("Runs for", {"fields": ["trust", "principal_caller_id", "principal_name", "allowance"]}),
        ("Timing", {"fields": ["started_at", "finished_at", "duration", "trace_id"]}),
        ("Usage", {"fields": ["tokens", "llm_calls", "tool_calls", "cost"]}),
        ("Call", {"fields": ["summary", "ended_reason", "call_cost"]}),
        ("Delegation", {"fields": ["parent", "spawn_depth", "result", "delivered_at", "children_link"]}),
        ("Callers", {"fields": ["sessions_links"]}),
    ]
    readonly_fields = [field for _name, options in fieldsets for field in options["fields"]]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .with_live_state(timezone.now())
            .with_last_model()
            .with_latest_caller()
        )

    def has_replay_permission(self, request):
        return request.user.has_perm("agents.add_replay")

    def get_search_results(self, request, queryset, search_term):
        """The search fields' matches, and the processes whose callers or transcript hold the search as a
        phrase. Those are read once each for the phrase (IN subqueries): a sessions__ or messages__
        search field joins every session and line to every process and makes the list DISTINCT over
        all its columns, a 3.8 s page over 60,000 lines on PostgreSQL where this one takes 0.5 s
        (bench/console_pages.py)."""
        found, _duplicates = super().get_search_results(request, queryset, search_term)
        if phrase := search_term.strip():
            callers = CallerSession.objects.filter(caller_id__icontains=phrase).values("process_id")
            said = Message.objects.filter(content__icontains=phrase).values("process_id")
            found |= queryset.filter(Q(pk__in=callers) | Q(pk__in=said))
        return found, False  # no join that repeats a process

    def get_fieldsets(self, request, obj=None):
        """Sections with nothing to say are left out: a call's report only for a call, delegation only
        for a process that delegated or was delegated to."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        empty = set()
        if not (obj.summary or obj.ended_reason or obj.call_cost_usd is not None):
            empty.add("Call")
        if not (obj.parent_id or obj.spawn_depth or obj.result or obj.delivered_at or obj.children.exists()):
            empty.add("Delegation")
        return [(name, options) for name, options in fieldsets if name not in empty]

    def get_inlines(self, request, obj):
        return [ChildProcessInline] if obj is not None and obj.children.exists() else []

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The page puts the conversation first (templates/admin/agents/process/change_form.html)."""
        process = self.get_object(request, unquote(object_id))
        if process is not None:
            turns = conversation(process)
            extra_context = {
                **(extra_context or {}),
                "turns": turns,
                "calls": [(call, call_cost(call)) for turn in turns for call in turn.calls],
                "timelines": timelines(process),
                "live": state_cell(live_state(process, timezone.now())),
                "callers": ", ".join(
                    process.sessions.order_by("created_at").values_list("caller_id", flat=True)
                ),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="state")
    def state(self, obj):
        return state_cell(live_state(obj, timezone.now()))

    @admin.display(description="caller")
    def caller(self, obj):
        return ellipsis(obj.caller_id or "-", PROCESS_CALLER_COLUMN)

    @admin.display(description="tokens in / out", ordering=F("input_tokens") + F("output_tokens"))
    def tokens(self, obj):
        return tokens_cell(obj.input_tokens, obj.output_tokens)

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, obj):
        return spend.cost_text(obj.cost_usd, [getattr(obj, "last_model", None)])

    @admin.display(description="call cost (voice platform)")
    def call_cost(self, obj):
        return "-" if obj.call_cost_usd is None else usd(obj.call_cost_usd)

    @admin.display(description="duration")
    def duration(self, obj):
        return human_duration(obj.duration)

    @admin.display(description="children")
    def children_link(self, obj):
        count = obj.children.count()
        if not count:
            return "-"
        url = reverse("admin:agents_process_changelist")
        label = f"{count} child process{'' if count == 1 else 'es'}"
        return format_html('<a href="{}?parent__id__exact={}">{}</a>', url, obj.pk, label)

    @admin.display(description="sessions")
    def sessions_links(self, obj):
        sessions = obj.sessions.order_by("created_at", "id")
        if not sessions:
            return "-"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>{}',
            (
                (
                    reverse("admin:agents_callersession_change", args=[s.pk]),
                    s.caller_id,
                    "" if s.ended_at else " (open)",
                )
                for s in sessions
            ),
        )

    @admin.action(description="Mark as failed (stuck pending/running processes)", permissions=["operate"])
    def mark_failed(self, request, queryset):
        stopped = 0
        for process in queryset.filter(status__in=Process.ACTIVE_STATUSES):
            # finish() only ends a process that has not ended, so a race with its worker is harmless.
            stopped += process.finish(status=Process.Status.FAILED, error="Stopped by operator")
        skipped = queryset.count() - stopped
        message = f"Marked {stopped} process(es) as failed."
        if skipped:
            message += f" Skipped {skipped} that had already ended."
        self.message_user(request, message)


def call_cost(call: LLMCall) -> str:
    return spend.cost_text(call.cost_usd, [call.model])


def call_outcome(call: LLMCall) -> str:
    """A tick for a call that answered, a cross for one that failed or was cancelled, and a word when
    its usage is not the provider's count (estimated, partial)."""
    ok = not call.error and call.finish_reason != "cancelled"
    words = []
    if call.finish_reason == "cancelled":
        words.append("cancelled")
    elif call.error:
        words.append("failed")
    if call.usage_source != LLMCall.UsageSource.PROVIDER:
        words.append(f"usage {call.usage_source}")
    return format_html(
        '<span class="nowrap"><img src="{}" alt="{}"> {}</span>',
        static(f"admin/img/icon-{'yes' if ok else 'no'}.svg"),
        "answered" if ok else "no answer",
        ", ".join(words),
    )


# --- Sessions -------------------------------------------------------------------------------------


class SessionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("in_turn", "In a turn now"), ("open", "Open"), ("ended", "Ended")]

    def queryset(self, request, queryset):
        if self.value() == "in_turn":
            return queryset.in_turn(timezone.now())
        if self.value() == "open":
            return queryset.filter(ended_at__isnull=True)
        if self.value() == "ended":
            return queryset.filter(ended_at__isnull=False)
        return queryset


@admin.register(CallerSession)
class CallerSessionAdmin(SystemWrittenAdmin):
    list_display = ["caller", "process_column", "persona", "channel", "state", "last_seen_at", "transcript"]
    list_filter = ["channel", SessionStateFilter, "process__persona"]
    list_select_related = ["process__persona"]
    search_fields = ["caller_id", "provider_call_id", "^process__public_id"]
    actions = ["end_sessions", "erase_callers"]
    fields = [
        "caller_id",
        "process",
        "persona",
        "channel",
        "state",
        "provider_call_id",
        "created_at",
        "last_seen_at",
        "ended_at",
        "transcript",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return (
            super().get_queryset(request).select_related("process__persona").with_live_state(timezone.now())
        )

    @admin.display(description="caller id", ordering="caller_id")
    def caller(self, obj):
        return ellipsis(obj.caller_id, CALLER_ID_COLUMN)

    @admin.display(description="process", ordering="process__started_at")
    def process_column(self, obj):
        return process_link(obj.process)

    @admin.display(description="persona", ordering="process__persona__name")
    def persona(self, obj):
        return obj.process.persona.name

    @admin.display(description="state", ordering="ended_at")
    def state(self, obj):
        return state_cell(session_state(obj, timezone.now()))

    @admin.display(description="transcript")
    def transcript(self, obj):
        url = reverse("admin:agents_process_change", args=[obj.process_id])
        return format_html('<a href="{}#transcript">Transcript</a>', url)

    @admin.action(description="End session (and complete its process)", permissions=["operate"])
    def end_sessions(self, request, queryset):
        # end_session's conditional UPDATE lets a concurrent end (idle sweep, hang-up) win cleanly.
        ended = sum(end_session(session) for session in queryset.filter(ended_at__isnull=True))
        self.message_user(request, f"Ended {ended} session(s).")

    def has_erase_permission(self, request):
        return request.user.is_superuser

    @admin.action(description="Erase everything about these callers…", permissions=["erase"])
    def erase_callers(self, request, queryset):
        """A caller who asked to be forgotten (agents.erasure), after a confirmation page, as Django's
        own "Delete selected" asks."""
        callers = sorted(set(queryset.values_list("caller_id", flat=True)))
        if request.POST.get("post") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Erase everything about these callers?",
                "opts": self.opts,
                "callers": callers,
                "selected": queryset.values_list("pk", flat=True),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/agents/callersession/erase_callers.html", context)
        try:
            erased = erase(callers, by=f"admin user {request.user.get_username()}")
        except CallerBusy as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        self.message_user(request, f"Erased {len(callers)} caller(s): {erased.summary()}.")
        if erased.trace_ids:
            self.message_user(
                request,
                "Their conversations' traces, to delete in the tracing backend: "
                + " ".join(erased.trace_ids),
                messages.WARNING,
            )
        return None


# --- Caller memory --------------------------------------------------------------------------------


@admin.register(CallerMemory)
class CallerMemoryAdmin(admin.ModelAdmin):
    """What the personas remember about each caller: operators read and correct the notes, and erase a
    caller's memory (delete it) when they ask to be forgotten. The system writes new notes after each
    of the caller's conversations (agents.memory)."""

    list_display = ["caller", "short_notes", "updated_at", "last_process_column"]
    list_select_related = ["last_process"]
    search_fields = ["caller_id", "notes"]
    fields = ["caller_id", "notes", "last_process_column", "facts_added", "created_at", "updated_at"]
    readonly_fields = ["last_process_column", "facts_added", "created_at", "updated_at"]
    actions = ["delete_selected"]

    def get_readonly_fields(self, request, obj=None):
        # The caller id is the memory's key: set when an operator adds a memory, fixed afterwards.
        return [*self.readonly_fields, "caller_id"] if obj else self.readonly_fields

    @admin.display(description="caller id", ordering="caller_id")
    def caller(self, obj):
        return ellipsis(obj.caller_id, CALLER_ID_COLUMN)

    @admin.display(description="notes")
    def short_notes(self, obj):
        return ellipsis(obj.notes, 80)

    @admin.display(description="learned from", ordering="last_process__started_at")
    def last_process_column(self, obj):
        return process_link(obj.last_process) if obj.last_process else "-"

    @admin.display(description="facts added in conversations")
    def facts_added(self, obj):
        """Who added what with save_person_memory (MemoryNote), newest first."""
        notes = obj.added.select_related("process")[:50] if obj.pk else []
        if not notes:
            return "-"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{}: “{}”, for {} ({}){}</li>",
                (
                    (
                        f"{note.created_at:%Y-%m-%d %H:%M:%S} UTC",
                        note.text,
                        note.added_for or "nobody known",
                        note.get_trust_display().lower(),
                        format_html(", in {}", process_link(note.process)) if note.process else "",
                    )
                    for note in notes
                ),
            ),
        )


# --- Messages -------------------------------------------------------------------------------------


@admin.register(Message)
class MessageAdmin(SystemWrittenAdmin):
    list_display = ["id", "process_column", "role", "short_content", "created_at"]
    list_display_links = ["id"]
    list_filter = ["role"]
    list_select_related = ["process"]
    search_fields = ["content", "^process__public_id"]
    ordering = ["-id"]
    fields = ["process", "session", "role", "name", "content", "created_at"]
    readonly_fields = fields

    @admin.display(description="process", ordering="process__started_at")
    def process_column(self, obj):
        return process_link(obj.process, "#transcript")

    @admin.display(description="content")
    def short_content(self, obj):
        return ellipsis(obj.content, 80)


# --- LLM calls and the cost summary ---------------------------------------------------------------


class CallResultFilter(admin.SimpleListFilter):
    title = "result"
    parameter_name = "result"

    def lookups(self, request, model_admin):
        return [("ok", "Succeeded"), ("failed", "Failed")]

    def queryset(self, request, queryset):
        if self.value() == "ok":
            return queryset.filter(error="")
        if self.value() == "failed":
            return queryset.exclude(error="")
        return queryset


@admin.register(LLMCall)
class LLMCallAdmin(SystemWrittenAdmin):
    # The provider and the usage source are filters (and on the detail page); the outcome column says
    # when a call's usage is not the provider's own count.
    list_display = [
        "created_at",
        "process_column",
        "persona",
        "model",
        "tokens",
        "cost",
        "ttft",
        "duration",
        "outcome",
    ]
    list_display_links = ["created_at"]
    list_filter = ["provider", "model", "usage_source", CallResultFilter, "created_at", "process__persona"]
    list_select_related = ["process__persona"]
    date_hierarchy = "created_at"
    search_fields = ["^process__public_id", "model"]
    fields = [
        "process",
        "persona",
        "provider",
        "model",
        "input_tokens",
        "output_tokens",
        "cost",
        "usage_source",
        "finish_reason",
        "ttft",
        "duration",
        "error",
        "created_at",
        "finished_at",
        "prompt",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("process__persona")

    @admin.display(description="process", ordering="process__started_at")
    def process_column(self, obj):
        return process_link(obj.process, f"#call-{obj.pk}")

    @admin.display(description="prompt sent")
    def prompt(self, obj):
        """What the model was sent, as stored with the call (kept as long as the call's row)."""
        request = obj.request or {}
        messages = request.get("messages") or []
        if not messages:
            return "-"
        settings_line = ", ".join(
            f"{name}: {value}"
            for name, value in (
                ("tools offered", ", ".join(request.get("tools") or []) or "none"),
                ("temperature", request.get("temperature")),
                ("max_tokens", request.get("max_tokens")),
            )
            if value is not None
        )
        return format_html(
            '<div id="prompt"><p>{}</p>{}</div>',
            settings_line,
            format_html_join(
                "",
                '<div class="prompt-message"><strong>{}</strong><pre style="white-space: pre-wrap">{}</pre></div>',
                ((message.get("role", "?"), message.get("content") or "") for message in messages),
            ),
        )

    @admin.display(description="persona", ordering="process__persona__name")
    def persona(self, obj):
        return obj.process.persona.name

    @admin.display(description="tokens in / out", ordering=F("input_tokens") + F("output_tokens"))
    def tokens(self, obj):
        return tokens_cell(obj.input_tokens, obj.output_tokens)

    @admin.display(description="cost", ordering="cost_usd")
    def cost(self, obj):
        return call_cost(obj)

    @admin.display(description="first token", ordering="ttft_ms")
    def ttft(self, obj):
        return milliseconds(obj.ttft_ms)

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, obj):
        return milliseconds(obj.duration_ms)

    @admin.display(description="outcome", ordering="error")
    def outcome(self, obj):
        return call_outcome(obj)

    def get_urls(self):
        # Before the default patterns: "<path:object_id>/" would otherwise swallow "cost-summary/".
        return [
            path(
                "cost-summary/",
                self.admin_site.admin_view(self.cost_summary_view),
                name="agents_llmcall_cost_summary",
            ),
            *super().get_urls(),
        ]

    def cost_summary_view(self, request):
        """Token and cost totals per persona, per model and per UTC day for the last `?days=` days
        (default 7), and the spend of models that have no price: one aggregate query, however many calls
        the period holds (spend.daily_usage), added up here."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = parse_days(request.GET.get("days"))
        since = spend.since_days(days)
        rows = spend.daily_usage(LLMCall.objects.filter(created_at__gte=since))
        changelist_url = reverse("admin:agents_llmcall_changelist")

        def linked(entries, label, query):
            for entry in entries:
                entry["label"] = label(entry)
                entry["url"] = changelist_url + "?" + urlencode(query(entry))
            return entries

        since_query = {"created_at__gte": since.isoformat()}
        per_persona = linked(
            spend.totals(rows, lambda row: (row["persona_name"], row["persona_id"])),
            lambda entry: entry["key"][0],
            lambda entry: {"process__persona__id__exact": entry["key"][1], **since_query},
        )
        per_model = linked(
            spend.totals(rows, lambda row: row["model"]),
            lambda entry: entry["key"],
            lambda entry: {"model__exact": entry["key"], **since_query},
        )
        per_day = linked(
            spend.totals(rows, lambda row: row["day"]),
            lambda entry: entry["key"].isoformat(),
            lambda entry: {
                "created_at__year": entry["key"].year,
                "created_at__month": entry["key"].month,
                "created_at__day": entry["key"].day,
            },
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Cost summary",
            "days": days,
            "day_choices": [1, 7, 30, 90, 366],
            "since": since.date(),
            "until": spend.utc_today(),
            "per_persona": sorted(per_persona, key=lambda entry: (-entry["cost_usd"], entry["label"])),
            "per_model": sorted(
                per_model, key=lambda entry: (-entry["cost_usd"], -entry["tokens"], entry["label"])
            ),
            "per_day": sorted(per_day, key=lambda entry: entry["key"], reverse=True),
            "grand_total": spend.grand_total(rows),
            "unpriced_models": spend.unpriced_models(rows),
            "changelist_url": changelist_url,
        }
        return TemplateResponse(request, "admin/agents/llmcall/cost_summary.html", context)


def price_text(price) -> str:
    """`$2.50 in / $10.00 out`, `free`, or `-` for none (USD per million tokens)."""
    if price is None:
        return "-"
    if price == (0, 0):
        return spend.FREE
    return f"{usd(price[0])} in / {usd(price[1])} out"


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices set here apply over the defaults (the built-in table, TRON_PRICES_FILE, TRON_PRICES), which
    the list shows below its rows. A model priced 0 in and out is shown as free."""

    list_display = ["model", "input_usd_per_million", "output_usd_per_million", "replaces", "updated_at"]
    search_fields = ["model"]
    fields = ["model", "input_usd_per_million", "output_usd_per_million", "replaces", "updated_at"]
    readonly_fields = ["replaces", "updated_at"]
    change_list_template = "admin/agents/modelprice/change_list.html"

    def changelist_view(self, request, extra_context=None):
        defaults = [
            {"model": name, "price": price_text(price)}
            for name, price in sorted(pricing.default_table().items())
        ]
        return super().changelist_view(request, {**(extra_context or {}), "default_prices": defaults})

    @admin.display(description="default it replaces")
    def replaces(self, obj):
        if not obj.model:
            return "-"
        return price_text(pricing.default_table().get(obj.model.strip().lower())) + (
            "" if obj.model.strip().lower() in pricing.default_table() else " (no default for this name)"
        )


def parse_days(raw) -> int:
    """The `days` parameter: a whole number from 1 to 366; anything else means the default."""
    try:
        days = int(raw)
    except (TypeError, ValueError):
        return COST_SUMMARY_DEFAULT_DAYS
    if not 1 <= days <= COST_SUMMARY_MAX_DAYS:
        return COST_SUMMARY_DEFAULT_DAYS
    return days


# --- Limits per caller ------------------------------------------------------------------------------


@admin.register(CallerUsage)
class CallerUsageAdmin(SystemWrittenAdmin):
    """What each public caller used, per UTC day (agents.allowances); operators lift a caller's limits
    from here."""

    list_display = ["allowance", "day", "requests", "spent", "held", "limits"]
    list_filter = ["day"]
    search_fields = ["allowance"]
    date_hierarchy = "day"
    actions = ["lift_limits"]

    @admin.display(description="spent (USD)", ordering="spent_usd")
    def spent(self, obj):
        return usd(obj.spent_usd)

    @admin.display(description="held (USD)")
    def held(self, obj):
        return usd(obj.reserved_usd)

    @admin.display(description="limits")
    def limits(self, obj):
        from .allowances import limits_of

        limits = limits_of(obj.allowance)
        if limits.requests_per_minute is None and limits.daily_spend_usd is None:
            return "none"
        per_minute = limits.requests_per_minute or "no limit"
        spend_limit = usd(limits.daily_spend_usd) if limits.daily_spend_usd is not None else "no limit"
        return f"{per_minute} / minute, {spend_limit} / day"

    @admin.action(description="Lift the limits of the selected callers", permissions=["operate"])
    def lift_limits(self, request, queryset):
        lifted = 0
        for allowance in queryset.values_list("allowance", flat=True).distinct():
            CallerAllowance.objects.update_or_create(
                allowance=allowance, defaults={"unlimited": True, "updated_by": request.user.get_username()}
            )
            lifted += 1
        self.message_user(request, f"Lifted the limits of {lifted} caller(s); see Caller allowances to undo.")


@admin.register(CallerAllowance)
class CallerAllowanceAdmin(admin.ModelAdmin):
    """An operator's word on one caller's limits: none, or other than the defaults."""

    list_display = ["allowance", "unlimited", "requests_per_minute", "daily_spend_usd", "note", "updated_by"]
    search_fields = ["allowance", "note"]
    readonly_fields = ["updated_by", "updated_at"]

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user.get_username()
        super().save_model(request, obj, form, change)
