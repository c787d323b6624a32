"""The life loop in the control panel: runs, journal, news and posts are written by the loop, so read-only
here; goals are the loop's and the operators' both, so they are edited here too."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from agents.admin import SystemWrittenAdmin, process_link
from agents.display import ellipsis
from agents.spend import cost_text

from .models import ActivityRun, Goal, JournalEntry, NewsItem, Post


@admin.register(ActivityRun)
class ActivityRunAdmin(SystemWrittenAdmin):
    list_display = [
        "persona",
        "activity",
        "trigger",
        "status",
        "started_at",
        "finished_at",
        "process_column",
        "short_result",
    ]
    list_filter = ["activity", "status", "trigger", "persona"]
    list_select_related = ["persona", "process"]
    date_hierarchy = "started_at"
    search_fields = ["persona__name", "result", "error"]
    fields = [
        "persona",
        "activity",
        "trigger",
        "slot",
        "status",
        "process_and_transcript",
        "started_at",
        "finished_at",
        "result",
        "error",
    ]
    readonly_fields = fields

    @admin.display(description="result")
    def short_result(self, obj):
        return ellipsis(obj.error or obj.result, 80)

    @admin.display(description="process", ordering="process")
    def process_column(self, obj):
        return process_link(obj.process) if obj.process else "—"

    @admin.display(description="process")
    def process_and_transcript(self, obj):
        if obj.process is None:
            return "—"
        return format_html(
            '{} · <a href="{}#transcript">transcript</a> ({} LLM call(s), {})',
            process_link(obj.process),
            reverse("admin:agents_process_change", args=[obj.process.pk]),
            obj.process.llm_calls,
            cost_text(
                obj.process.cost_usd, obj.process.llm_call_rows.values_list("model", flat=True).distinct()
            ),
        )


class RunLinkMixin:
    @admin.display(description="run")
    def run_link(self, obj):
        if obj.run_id is None:
            return "—"
        url = reverse("admin:lifeloop_activityrun_change", args=[obj.run_id])
        return format_html('<a href="{}">{}</a>', url, obj.run_id)


@admin.register(JournalEntry)
class JournalEntryAdmin(RunLinkMixin, SystemWrittenAdmin):
    list_display = ["created_at", "persona", "kind", "importance", "short_text", "run_link"]
    list_filter = ["kind", "persona", "importance"]
    list_select_related = ["persona"]
    date_hierarchy = "created_at"
    search_fields = ["persona__name", "text"]
    fields = ["persona", "kind", "importance", "created_at", "run_link", "text"]
    readonly_fields = fields

    @admin.display(description="text")
    def short_text(self, obj):
        return ellipsis(obj.text, 100)


@admin.register(NewsItem)
class NewsItemAdmin(RunLinkMixin, SystemWrittenAdmin):
    list_display = ["created_at", "persona", "title", "picked", "take", "run_link"]
    list_filter = ["picked", "persona"]
    list_select_related = ["persona"]
    date_hierarchy = "created_at"
    search_fields = ["persona__name", "title", "take", "link"]
    fields = [
        "persona",
        "title",
        "link",
        "feed",
        "published_at",
        "picked",
        "take",
        "summary",
        "key",
        "run_link",
    ]
    readonly_fields = fields


@admin.register(Goal)
class GoalAdmin(admin.ModelAdmin):
    list_display = ["title", "persona", "status", "updated_at", "last_note"]
    list_editable = ["status"]
    list_filter = ["status", "persona"]
    list_select_related = ["persona"]
    search_fields = ["persona__name", "title", "notes"]
    fields = ["persona", "title", "status", "notes", "created_at", "updated_at"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="last note")
    def last_note(self, obj):
        lines = obj.notes.strip().splitlines()
        return ellipsis(lines[-1], 80) if lines else ""


@admin.register(Post)
class PostAdmin(RunLinkMixin, SystemWrittenAdmin):
    list_display = ["created_at", "persona", "status", "short_text", "attempts", "run_link"]
    list_filter = ["status", "persona"]
    list_select_related = ["persona"]
    date_hierarchy = "created_at"
    search_fields = ["persona__name", "text", "error"]
    fields = ["persona", "text", "status", "error", "attempts", "created_at", "published_at", "run_link"]
    readonly_fields = fields

    @admin.display(description="text")
    def short_text(self, obj):
        return ellipsis(obj.text, 100)
