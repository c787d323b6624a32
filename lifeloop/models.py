"""The personas' autonomous day: activity runs, and what they produce (journal, news, goals, posts)."""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
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
    """One run of one activity for one persona. A scheduled run names its slot (the hour it was scheduled
    for); the database allows one run per persona, activity and slot, so however many workers get the
    task, one runs it (`lifeloop.runner`)."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        MANUAL = "manual", "Manual (command or API)"
        IMPORTANCE = "importance", "Importance threshold"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        SKIPPED = "skipped"

    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="activity_runs")
    activity = models.CharField(max_length=16, choices=Activity.choices)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    slot = models.DateTimeField(
        null=True, blank=True, help_text="The scheduled hour this run is for; empty for a manual run."
    )
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
        constraints = [
            # Exactly once per slot: a second worker (or a redelivered task) inserting the same slot fails.
            models.UniqueConstraint(
                fields=["persona", "activity", "slot"],
                condition=Q(slot__isnull=False),
                name="lifeloop_run_once_per_slot",
            ),
        ]
        indexes = [
            # a persona's recent runs of one activity (stalled-run sweep, prompts, admin)
            models.Index(fields=["persona", "activity", "-started_at"], name="lifeloop_run_persona_act"),
            models.Index(fields=["-started_at"], name="lifeloop_run_started"),
        ]

    def __str__(self):
        return f"{self.persona.name} {self.activity} ({self.status})"

    @property
    def caller_id(self) -> str:
        """The engine's caller for this run: one caller, so one session and process, per run."""
        return f"life-{self.persona.name.lower()}-{self.activity}-{self.pk}"


class JournalEntry(models.Model):
    """The persona's memory stream: what each activity did, in words, scored 1-10 for importance by the
    model (no score when it gave none: nothing is invented). Reflections are entries too; the importance
    summed since the latest one can trigger the next (Generative Agents)."""

    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="journal_entries")
    run = models.ForeignKey(
        ActivityRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="journal_entries"
    )
    kind = models.CharField(max_length=16, choices=Activity.choices)
    text = models.TextField()
    importance = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="1 (mundane) to 10 (poignant), as the model scored it; empty when it gave no score.",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "journal entries"
        ordering = ["-created_at", "-id"]
        indexes = [
            # a persona's recent entries (prompts, the reflection threshold)
            models.Index(fields=["persona", "-created_at"], name="lifeloop_journal_persona"),
            # the latest reflection (prompt context)
            models.Index(fields=["persona", "kind", "-created_at"], name="lifeloop_journal_kind"),
        ]

    def __str__(self):
        return f"{self.persona.name} {self.kind}: {self.text[:60]}"


class NewsItem(models.Model):
    """A feed item a persona has seen; `picked` ones the model chose for the persona, with its take."""

    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="news_items")
    run = models.ForeignKey(
        ActivityRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="news_items"
    )
    key = models.CharField(max_length=255, help_text="The item's guid, else its link: what deduplicates it.")
    link = models.URLField(max_length=2000, blank=True)
    title = models.CharField(max_length=500)
    summary = models.TextField(blank=True)
    feed = models.URLField(max_length=2000, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    picked = models.BooleanField(default=False)
    take = models.CharField(max_length=500, blank=True, help_text="The persona's one-line take.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "news item"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["persona", "key"], name="lifeloop_news_once_per_persona"),
        ]
        indexes = [
            # the persona's picks (prompts, admin)
            models.Index(fields=["persona", "picked", "-created_at"], name="lifeloop_news_picked"),
            # deduplication by link
            models.Index(fields=["persona", "link"], name="lifeloop_news_link"),
        ]

    def __str__(self):
        return self.title


class Goal(models.Model):
    """One of a persona's goals, reviewed by the goals activity (and editable by operators)."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        DONE = "done"
        DROPPED = "dropped"

    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="goals")
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    notes = models.TextField(blank=True, help_text="Progress notes, newest last, one per line.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["persona", "status", "-updated_at"]
        constraints = [
            models.UniqueConstraint(
                "persona",
                Lower("title"),
                name="lifeloop_goal_title_unique",
                violation_error_message="This persona already has a goal with this title.",
            ),
        ]

    def __str__(self):
        return self.title


class Post(models.Model):
    """A short post in the persona's voice: published to TRON_SOCIAL_API_URL when it is set, only stored
    when it is not; withheld (kept with the reason) when it is empty or repeats its prompt or an earlier
    post; held for an operator's approval first when TRON_POSTS_NEED_APPROVAL is on."""

    class Status(models.TextChoices):
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        APPROVED = "approved", "Approved, being published"
        REJECTED = "rejected", "Rejected by an operator"
        WITHHELD = "withheld", "Withheld (not published)"
        STORED = "stored", "Stored, not published (no social API set)"
        PUBLISHED = "published"
        FAILED = "failed", "Publishing failed"

    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="posts")
    run = models.ForeignKey(
        ActivityRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="posts"
    )
    text = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.STORED)
    error = models.TextField(
        "why not published", blank=True, help_text="Why it was withheld, or why publishing failed."
    )
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Requests made to the social API.")
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.CharField(
        max_length=150, blank=True, help_text="The operator who approved or rejected it."
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["persona", "-created_at"], name="lifeloop_post_persona")]

    def __str__(self):
        return self.text[:60] or "(empty)"
