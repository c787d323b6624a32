"""Rows the edges need: the subdomains Caddy may get certificates for, Slack's threads and messages,
the phone numbers VAPI calls reach and the persona that owns each, and each persona's voice on a call."""

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

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


class SlackThread(models.Model):
    """One Slack conversation: a thread in a channel or a direct message, and the persona answering it.

    Its messages are answered one at a time, oldest first, by whichever worker holds its lease; a lease
    left by a worker that died runs out after SLACK_LEASE (integrations/slack/tasks.py).
    """

    team_id = models.CharField(max_length=32, blank=True)
    channel = models.CharField(max_length=32)
    thread_ts = models.CharField(max_length=32, help_text="The ts of the thread's first message.")
    persona_name = models.CharField(
        max_length=64, blank=True, help_text="Who answers here now; empty: the default persona."
    )
    lease_holder = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team_id", "channel", "thread_ts"], name="integrations_slackthread_key"
            )
        ]

    def __str__(self):
        return self.caller_id

    @property
    def caller_id(self) -> str:
        """The engine's conversation key: each thread is a conversation of its own."""
        return f"slack-{self.team_id or 'T'}-{self.channel}-{self.thread_ts}"


class SlackMessage(models.Model):
    """A message Slack delivered for a persona to answer, and what became of it.

    `event_id` is the dedup key: Slack sends a retry of an event with the same id, and whichever web
    process receives a copy, the unique constraint lets one row in. The row is also the work to do: a
    task answers the thread's pending rows in order, so a message is stored before it is acknowledged
    and is never lost to a worker that is busy or gone.
    """

    class Kind(models.TextChoices):
        MENTION = "mention", "Mention in a channel"
        DIRECT = "direct", "Direct message"

    class Status(models.TextChoices):
        PENDING = "pending"
        ANSWERING = "answering"
        ANSWERED = "answered"
        FAILED = "failed"  # no reply could be posted: `error` says why

    event_id = models.CharField(max_length=64, unique=True)
    thread = models.ForeignKey(SlackThread, on_delete=models.CASCADE, related_name="messages")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    user = models.CharField(max_length=32, help_text="Slack user id of the author.")
    ts = models.CharField(max_length=32)
    text = models.TextField(blank=True, help_text="As Slack sent it, markup included.")
    file_names = models.JSONField(default=list, blank=True)
    bot_user_id = models.CharField(max_length=32, blank=True, help_text="The bot's own user id.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    persona_name = models.CharField(max_length=64, blank=True)
    process = models.ForeignKey(
        "agents.Process", null=True, blank=True, on_delete=models.SET_NULL, related_name="slack_messages"
    )
    reply = models.TextField(blank=True, help_text="What was posted (Slack mrkdwn).")
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            # One mention can arrive as two events (app_mention and message.channels): answered once.
            models.UniqueConstraint(fields=["thread", "ts"], name="integrations_slackmessage_once"),
        ]
        indexes = [
            # the thread's next message to answer (tasks.answer_thread)
            models.Index(fields=["thread", "status", "ts"], name="integrations_slackmsg_next"),
            # messages still to answer, for the sweep (tasks.resume_waiting)
            models.Index(
                fields=["received_at"],
                name="integrations_slackmsg_waiting",
                condition=models.Q(status__in=["pending", "answering"]),
            ),
        ]

    def __str__(self):
        return f"{self.event_id} {self.status}"


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
