"""The operators' control panel for the core domain.

Personas are configuration and are edited here. Everything else (processes, sessions, transcripts,
LLM calls) is written by the system: the admin shows it read-only, lets superusers purge it, and offers
a few operator actions that go through the models' own methods (`Process.finish`).
"""

from datetime import UTC

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, OuterRef, Subquery, Sum
from django.db.models.functions import TruncDate
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from . import budgets, pricing, spend
from .display import ellipsis, human_duration, usd
from .models import (
    CallerAllowance,
    CallerMemory,
    CallerSession,
    CallerUsage,
    DailySpend,
    Directive,
    LLMCall,
    Message,
    Persona,
    Process,
)
from .sessions import end_session

COST_SUMMARY_DEFAULT_DAYS = 7
CALLER_ID_COLUMN = 32  # characters of a caller id shown in a list (E.164 numbers and req-<uuid> fit)
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
    list_display = [
        "name",
        "role",
        "kind",
        "reports_to",
        "enabled",
        "life_enabled",
        "model",
        "spend_today",
        "process_count",
    ]
    list_editable = ["enabled", "life_enabled"]
    list_filter = ["kind", "enabled", "life_enabled"]
    list_select_related = ["reports_to"]
    search_fields = ["name", "role"]
    readonly_fields = ["spend_today", "created_at", "updated_at"]
    inlines = [DirectiveInline]
    fieldsets = [
        ("Identity", {"fields": ["name", "role", "kind", "reports_to", "enabled", "sort_order"]}),
        ("Prompt", {"fields": ["system_prompt", "tone", "focus_areas", "tools"]}),
        ("Model settings", {"fields": ["model", "temperature", "budget_usd", "spend_today"]}),
        ("Life loop", {"fields": ["life_enabled", "life_schedule", "time_zone", "news_feeds"]}),
        ("Record", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        # One GROUP BY for the whole page instead of a COUNT per row, and today's spend in it.
        today = DailySpend.objects.filter(persona=OuterRef("pk"), day=spend.utc_today())
        return (
            super()
            .get_queryset(request)
            .annotate(
                process_count=Count("processes"),
                spent_today=Subquery(today.values("spent_usd")[:1]),
            )
        )

    @admin.display(description="processes", ordering="process_count")
    def process_count(self, obj):
        url = reverse("admin:agents_process_changelist")
        return format_html('<a href="{}?persona__id__exact={}">{}</a>', url, obj.pk, obj.process_count)

    @admin.display(description="spent today (UTC)", ordering="spent_today")
    def spend_today(self, obj):
        if obj.pk is None:
            return "-"
        spent = getattr(obj, "spent_today", None) or 0
        budget = budgets.daily_budget(obj)
        limit = "no daily budget" if budget is None else f"of {usd(budget)}"
        url = reverse("admin:agents_dailyspend_changelist")
        return format_html('<a href="{}?persona__id__exact={}">{} {}</a>', url, obj.pk, usd(spent), limit)


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


class MessageInline(ReadOnlyInline):
    model = Message
    fields = ["created_at", "role", "name", "content"]
    readonly_fields = fields
    ordering = ["id"]
    verbose_name_plural = "transcript"


class LLMCallInline(ReadOnlyInline):
    model = LLMCall
    fields = [
        "created_at",
        "model",
        "provider",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "usage_source",
        "ttft_ms",
        "duration_ms",
        "error",
    ]
    readonly_fields = fields
    ordering = ["created_at", "id"]


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


@admin.register(Process)
class ProcessAdmin(SystemWrittenAdmin):
    list_display = [
        "public_id",
        "persona",
        "status",
        "channel",
        "tokens",
        "cost",
        "duration",
        "started_at",
    ]
    list_filter = ["status", "persona", "channel", "started_at"]
    list_select_related = ["persona"]
    date_hierarchy = "started_at"
    # Matches through sessions__ can repeat a process; the changelist de-duplicates such searches
    # itself (an EXISTS subquery, since Django 4.0), so no .distinct() is needed here.
    search_fields = ["^public_id", "persona__name", "name", "task", "sessions__caller_id"]
    actions = ["mark_failed"]
    inlines = [ChildProcessInline, MessageInline, LLMCallInline]
    fieldsets = [
        (None, {"fields": ["public_id", "persona", "name", "status", "channel", "task", "error"]}),
        ("Runs for", {"fields": ["trust", "principal_caller_id", "principal_name", "allowance"]}),
        ("Timing", {"fields": ["started_at", "finished_at", "duration"]}),
        ("Usage", {"fields": ["tokens", "llm_calls", "tool_calls", "cost"]}),
        ("Call", {"fields": ["summary", "ended_reason", "call_cost_usd"]}),
        ("Delegation", {"fields": ["parent", "spawn_depth", "result", "delivered_at"]}),
        ("Related", {"fields": ["children_link", "sessions_links", "transcript_link"]}),
    ]
    readonly_fields = [field for _name, options in fieldsets for field in options["fields"]]

    @admin.display(description="tokens", ordering=F("input_tokens") + F("output_tokens"))
    def tokens(self, obj):
        return f"{obj.total_tokens:,} ({obj.input_tokens:,} in / {obj.output_tokens:,} out)"

    @admin.display(description="cost (USD)", ordering="cost_usd")
    def cost(self, obj):
        return usd(obj.cost_usd)

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

    @admin.display(description="messages")
    def transcript_link(self, obj):
        url = reverse("admin:agents_message_changelist")
        return format_html('<a href="{}?process__id__exact={}">All messages of this process</a>', url, obj.pk)

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


# --- Sessions -------------------------------------------------------------------------------------


class SessionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("ended", "Ended")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(ended_at__isnull=True)
        if self.value() == "ended":
            return queryset.filter(ended_at__isnull=False)
        return queryset


@admin.register(CallerSession)
class CallerSessionAdmin(SystemWrittenAdmin):
    list_display = [
        "caller",
        "process_column",
        "persona",
        "channel",
        "last_seen_at",
        "is_open",
        "transcript",
    ]
    list_filter = ["channel", SessionStateFilter, "process__persona"]
    list_select_related = ["process__persona"]
    search_fields = ["caller_id", "provider_call_id", "^process__public_id"]
    actions = ["end_sessions"]
    fields = [
        "caller_id",
        "process",
        "persona",
        "channel",
        "provider_call_id",
        "created_at",
        "last_seen_at",
        "ended_at",
        "transcript",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("process__persona")

    @admin.display(description="caller id", ordering="caller_id")
    def caller(self, obj):
        return ellipsis(obj.caller_id, CALLER_ID_COLUMN)

    @admin.display(description="process", ordering="process__started_at")
    def process_column(self, obj):
        return process_link(obj.process)

    @admin.display(description="persona", ordering="process__persona__name")
    def persona(self, obj):
        return obj.process.persona.name

    @admin.display(description="open", boolean=True, ordering="ended_at")
    def is_open(self, obj):
        return obj.is_open

    @admin.display(description="transcript")
    def transcript(self, obj):
        url = reverse("admin:agents_process_change", args=[obj.process_id])
        return format_html('<a href="{}#messages-group">Transcript</a>', url)

    @admin.action(description="End session (and complete its process)", permissions=["operate"])
    def end_sessions(self, request, queryset):
        # end_session's conditional UPDATE lets a concurrent end (idle sweep, hang-up) win cleanly.
        ended = sum(end_session(session) for session in queryset.filter(ended_at__isnull=True))
        self.message_user(request, f"Ended {ended} session(s).")


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
        return process_link(obj.process, "#messages-group")

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
    list_display = [
        "created_at",
        "process_column",
        "persona",
        "model",
        "provider",
        "input_tokens",
        "output_tokens",
        "cost",
        "usage_source",
        "ttft_ms",
        "duration_ms",
        "succeeded",
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
        "cost_usd",
        "usage_source",
        "finish_reason",
        "ttft_ms",
        "duration_ms",
        "error",
        "created_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("process__persona")

    @admin.display(description="process", ordering="process__started_at")
    def process_column(self, obj):
        return process_link(obj.process, "#llm_call_rows-group")

    @admin.display(description="persona", ordering="process__persona__name")
    def persona(self, obj):
        return obj.process.persona.name

    @admin.display(description="cost (USD)", ordering="cost_usd")
    def cost(self, obj):
        return usd(obj.cost_usd)

    # A tick for a call that answered, a cross for one that failed (its message is on the detail page).
    @admin.display(description="succeeded", boolean=True)
    def succeeded(self, obj):
        return not obj.error

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
        """Token and cost totals per persona and per UTC day for the last `?days=` days (default 7), and
        the spend of models that have no price.

        Four aggregate queries, however many calls the period holds.
        """
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = parse_days(request.GET.get("days"))
        today = spend.utc_today()
        since = spend.since_days(days)
        calls = LLMCall.objects.filter(created_at__gte=since)
        totals = {
            "calls": Count("id"),
            "input_tokens": Sum("input_tokens"),
            "output_tokens": Sum("output_tokens"),
            "cost_usd": Sum("cost_usd"),
        }
        per_persona = list(
            calls.values(persona_id=F("process__persona_id"), persona_name=F("process__persona__name"))
            .annotate(**totals)
            .order_by("-cost_usd", "persona_name")
        )
        per_day = list(
            calls.annotate(day=TruncDate("created_at", tzinfo=UTC))
            .values("day")
            .annotate(**totals)
            .order_by("-day")
        )
        grand_total = calls.aggregate(**totals)
        unpriced = spend.unpriced(spend.daily_usage(calls))
        for row in per_persona:
            row["unpriced"] = notes_for(r for r in unpriced if r["persona_id"] == row["persona_id"])
        for row in per_day:
            row["unpriced"] = notes_for(r for r in unpriced if r["day"] == row["day"])
        grand_total["unpriced"] = notes_for(unpriced)
        changelist_url = reverse("admin:agents_llmcall_changelist")
        for row in per_persona:
            row["label"] = row["persona_name"]
            row["url"] = (
                changelist_url
                + "?"
                + urlencode(
                    {"process__persona__id__exact": row["persona_id"], "created_at__gte": since.isoformat()}
                )
            )
        for row in per_day:
            day = row["day"]
            row["label"] = day.isoformat()
            row["url"] = (
                changelist_url
                + "?"
                + urlencode(
                    {"created_at__year": day.year, "created_at__month": day.month, "created_at__day": day.day}
                )
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Cost summary",
            "days": days,
            "day_choices": [1, 7, 30, 90, 366],
            "since": since.date(),
            "until": today,
            "per_persona": per_persona,
            "per_day": per_day,
            "grand_total": grand_total,
            "unpriced_models": spend.unpriced_models(unpriced),
            "changelist_url": changelist_url,
        }
        return TemplateResponse(request, "admin/agents/llmcall/cost_summary.html", context)


def notes_for(rows) -> list[str]:
    """The missing-price notes of these usage rows, one per model."""
    return [pricing.missing_price(model) for model in sorted({row["model"] for row in rows})]


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
