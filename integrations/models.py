"""Rows the edges need: the subdomains Caddy may get certificates for, the phone numbers VAPI calls
reach and the persona that owns each, and each persona's voice on a call."""

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

from agents.callers import normalize_phone
from agents.models import Persona

label_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    "A DNS label: lowercase letters, digits and inner hyphens, at most 63 characters.",
)


class Subdomain(models.Model):
    """A name under TRON_BASE_DOMAIN that this server answers for (and Caddy may issue TLS for)."""

    name = models.CharField(
        max_length=63,
        validators=[label_validator],
        help_text="The label only: `demo` for demo.<base domain>.",
    )
    target = models.CharField(
        max_length=255, blank=True, help_text="What it routes to, e.g. http://127.0.0.1:3001 or a project."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(Lower("name"), name="integrations_subdomain_name_ci_unique")]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.name = self.name.strip().lower()
        super().save(*args, **kwargs)


class PhoneNumber(models.Model):
    """A number callers dial (bought on VAPI) and the persona who answers it: VAPI's `assistant-request`
    for a call to this number gets that persona's assistant."""

    number = models.CharField(max_length=32, unique=True, help_text="E.164, e.g. +14155550100.")
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="phone_numbers")
    label = models.CharField(max_length=120, blank=True, help_text="What the number is for, for operators.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]

    def __str__(self):
        return f"{self.number} → {self.persona.name}"

    def save(self, *args, **kwargs):
        self.number = normalize_phone(self.number) or self.number.strip()
        super().save(*args, **kwargs)

    def clean_fields(self, exclude=None):
        super().clean_fields(exclude=exclude)
        if "number" not in (exclude or ()):
            number = normalize_phone(self.number)
            if not number.startswith("+"):
                raise ValidationError({"number": "A phone number with its country code, e.g. +14155550100."})
            self.number = number


class PersonaVoice(models.Model):
    """How a persona sounds and greets on a call (VAPI's assistant, the ElevenLabs conversation)."""

    persona = models.OneToOneField(Persona, on_delete=models.CASCADE, related_name="voice")
    first_message = models.TextField(
        blank=True, help_text="What the persona says when it picks up; empty: it waits for the caller."
    )
    voice_provider = models.CharField(
        max_length=32, blank=True, help_text="VAPI's voice provider, e.g. 11labs, openai, cartesia, azure."
    )
    voice_id = models.CharField(max_length=120, blank=True, help_text="The voice's id at that provider.")

    class Meta:
        verbose_name = "persona voice"
        ordering = ["persona__sort_order", "persona__name"]

    def __str__(self):
        return f"{self.persona.name}'s voice"

    def vapi_voice(self) -> dict | None:
        """The voice as VAPI's assistant takes it, or None when it is not set."""
        if self.voice_provider and self.voice_id:
            return {"provider": self.voice_provider, "voiceId": self.voice_id}
        return None
