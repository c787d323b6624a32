"""Life-loop runs in the control panel: written by the scheduler, so read-only here."""

from django.contrib import admin

from agents.admin import SystemWrittenAdmin
from agents.display import ellipsis

from .models import ActivityRun


@admin.register(ActivityRun)
class ActivityRunAdmin(SystemWrittenAdmin):
    list_display = ["persona", "activity", "trigger", "status", "started_at", "finished_at", "short_result"]
    list_filter = ["activity", "status", "trigger", "persona"]
    list_select_related = ["persona"]
    date_hierarchy = "started_at"
    search_fields = ["persona__name", "result"]
    fields = [
        "persona",
        "activity",
        "trigger",
        "status",
        "process",
        "started_at",
        "finished_at",
        "result",
        "error",
    ]
    readonly_fields = fields

    @admin.display(description="result")
    def short_result(self, obj):
        return ellipsis(obj.error or obj.result, 80)
