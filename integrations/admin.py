"""The edges' configuration, edited by operators: the subdomains Caddy may get certificates for, the
phone numbers VAPI calls reach and who answers each, and each persona's voice on a call."""

from django import forms
from django.contrib import admin

from .models import PersonaVoice, PhoneNumber, Subdomain


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
