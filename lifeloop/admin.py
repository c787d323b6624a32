"""The life loop in the control panel: runs, journal, news and posts are written by the loop, so read-only
here (posts are approved or rejected here when they need approval); goals are the loop's and the
operators' both, so they are edited here too."""

from datetime import timedelta

from django.contrib import admin
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django_q.tasks import async_task

from agents.admin import SystemWrittenAdmin, process_link
from agents.display import ellipsis, human_duration
from agents.spend import cost_text

from .models import ActivityRun, Goal, JournalEntry, NewsItem, Post


@admin.register(ActivityRun)
class ActivityRunAdmin(SystemWrittenAdmin):
    # The trigger is a filter and the finish a duration, so the result has the room to be read.
    list_display = ["persona", "activity", "status", "started_at", "took", "process_column", "short_result"]
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
        return ellipsis(obj.error or obj.result, 120)

    @admin.display(description="took")
    def took(self, obj):
        if obj.finished_at is None:
            return "running"
        return human_duration(max(obj.finished_at - obj.started_at, timedelta(0)))

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
    empty_value_display = "not given"  # an importance the model did not give
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
    """Posts as the loop wrote them. With TRON_POSTS_NEED_APPROVAL on they wait here: an operator
    approves (they are published by the worker) or rejects them; a withheld post may be approved too."""

    list_display = ["created_at", "persona", "status", "short_text", "short_reason", "reviewed", "run_link"]
    list_filter = ["status", "persona"]
    list_select_related = ["persona"]
    date_hierarchy = "created_at"
    search_fields = ["persona__name", "text", "error"]
    actions = ["approve", "reject"]
    fields = [
        "persona",
        "text",
        "status",
        "error",
        "attempts",
        "created_at",
        "published_at",
        "reviewed",
        "run_link",
    ]
    readonly_fields = fields

    @admin.display(description="text")
    def short_text(self, obj):
        return ellipsis(obj.text, 100) or "(empty)"

    @admin.display(description="why not published")
    def short_reason(self, obj):
        return ellipsis(obj.error, 80)

    @admin.display(description="reviewed", ordering="reviewed_at")
    def reviewed(self, obj):
        if not obj.reviewed_at:
            return ""
        return (
            f"{obj.reviewed_by} {formats.date_format(timezone.localtime(obj.reviewed_at), 'DATETIME_FORMAT')}"
        )

    @admin.action(description="Approve and publish", permissions=["operate"])
    def approve(self, request, queryset):
        reviewable = queryset.filter(
            status__in=[Post.Status.AWAITING_APPROVAL, Post.Status.WITHHELD]
        ).exclude(text="")
        approved = 0
        for post in reviewable:
            # Conditional, so two operators approving at once publish it once.
            if Post.objects.filter(pk=post.pk, status=post.status).update(
                status=Post.Status.APPROVED,
                reviewed_by=request.user.get_username(),
                reviewed_at=timezone.now(),
            ):
                async_task("lifeloop.tasks.publish_approved", post.pk, group="lifeloop: posts")
                approved += 1
        skipped = queryset.count() - approved
        message = f"Approved {approved} post(s); the worker publishes them."
        if skipped:
            message += f" Skipped {skipped} that were not awaiting approval (or withheld with text)."
        self.message_user(request, message)

    @admin.action(description="Reject (never publish)", permissions=["operate"])
    def reject(self, request, queryset):
        rejected = queryset.filter(status__in=[Post.Status.AWAITING_APPROVAL, Post.Status.WITHHELD]).update(
            status=Post.Status.REJECTED, reviewed_by=request.user.get_username(), reviewed_at=timezone.now()
        )
        self.message_user(request, f"Rejected {rejected} post(s).")
