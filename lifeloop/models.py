"""The personas' autonomous day: one row per life-loop activity run."""

from django.db import models
from django.utils import timezone

from agents.models import Persona, Process


class Activity(models.TextChoices):
    NEWS = "news"
    GOALS = "goals"
    TEAM_CHECK = "team_check", "Team check"
    REFLECTION = "reflection"
    JOURNAL = "journal"
    POST = "post"


class ActivityRun(models.Model):
    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        MANUAL = "manual", "Manual (command or API)"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        SKIPPED = "skipped"

    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="activity_runs")
    activity = models.CharField(max_length=16, choices=Activity.choices)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    result = models.TextField(blank=True)
    error = models.TextField(blank=True)
    process = models.ForeignKey(
        Process, null=True, blank=True, on_delete=models.SET_NULL, related_name="activity_runs"
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            # a persona's recent runs of one activity (scheduler de-duplication, admin)
            models.Index(fields=["persona", "activity", "-started_at"], name="lifeloop_run_persona_act"),
            models.Index(fields=["-started_at"], name="lifeloop_run_started"),
        ]

    def __str__(self):
        return f"{self.persona.name} {self.activity} ({self.status})"
