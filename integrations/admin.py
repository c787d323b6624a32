"""Subdomains are configuration (which names Caddy may get certificates for), so they are editable."""

from django import forms
from django.contrib import admin

from .models import Subdomain


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
