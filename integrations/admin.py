"""The edges' configuration, edited by operators (the subdomains Caddy may get certificates for, the
phone numbers VAPI calls reach and who answers each, each persona's voice on a call), and Slack's
messages and threads, written by the system and so read-only."""

from django import forms
from django.contrib import admin

from agents.admin import SystemWrittenAdmin, process_link
from agents.display import ellipsis

from .models import PersonaVoice, PhoneNumber, SlackMessage, SlackThread, Subdomain


class LabelField(forms.CharField):
    """Lowercases before the model's DNS-label validator runs, as `Subdomain.save()` would anyway."""

    def to_python(self, value):
        return super().to_python(value).lower()


class SubdomainForm(forms.ModelForm):
    class Meta:
        model = Subdomain
        fields = ["name", "target", "enabled"]
        field_classes = {"name": LabelField}


@admin.register(Subdomain)
class SubdomainAdmin(admin.ModelAdmin):
    form = SubdomainForm
    list_display = ["name", "target", "enabled", "created_at"]
    list_editable = ["enabled"]
    list_filter = ["enabled"]
    search_fields = ["name", "target"]
    fields = ["name", "target", "enabled", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(SlackMessage)
class SlackMessageAdmin(SystemWrittenAdmin):
    """What Slack delivered and what became of it: a `failed` row says why its reply is missing."""

    list_display = [
        "received_at",
        "status",
        "kind",
        "user",
        "channel",
        "persona_name",
        "short_text",
        "process_column",
    ]
    list_filter = ["status", "kind"]
    list_select_related = ["thread", "process"]
    search_fields = ["event_id", "user", "text", "thread__channel"]
    raw_id_fields = ["thread", "process"]
    fields = [
        "event_id",
        "thread",
        "kind",
        "user",
        "ts",
        "text",
        "file_names",
        "status",
        "attempts",
        "persona_name",
        "process",
        "reply",
        "error",
        "received_at",
        "answered_at",
    ]
    readonly_fields = fields

    @admin.display(description="channel", ordering="thread__channel")
    def channel(self, obj):
        return obj.thread.channel

    @admin.display(description="text")
    def short_text(self, obj):
        return ellipsis(obj.text, 60)

    @admin.display(description="process")
    def process_column(self, obj):
        return process_link(obj.process) if obj.process_id else "-"


@admin.register(SlackThread)
class SlackThreadAdmin(SystemWrittenAdmin):
    list_display = ["channel", "thread_ts", "persona_name", "lease_until", "created_at"]
    search_fields = ["channel", "thread_ts"]
    fields = ["team_id", "channel", "thread_ts", "persona_name", "lease_holder", "lease_until", "created_at"]
    readonly_fields = fields


@admin.register(PhoneNumber)
class PhoneNumberAdmin(admin.ModelAdmin):
    list_display = ["number", "persona", "label", "enabled"]
    list_editable = ["enabled"]
    list_filter = ["enabled", "persona"]
    list_select_related = ["persona"]
    search_fields = ["number", "label", "persona__name"]
    fields = ["number", "persona", "label", "enabled", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(PersonaVoice)
class PersonaVoiceAdmin(admin.ModelAdmin):
    list_display = ["persona", "voice_provider", "voice_id", "first_message"]
    list_select_related = ["persona"]
    search_fields = ["persona__name", "voice_id", "first_message"]
    fields = ["persona", "first_message", "voice_provider", "voice_id"]
