"""The core domain: personas, the processes they run, caller sessions, transcripts and LLM calls."""

import secrets
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Exists, ExpressionWrapper, F, OuterRef, Q, Subquery
from django.db.models.functions import Lower
from django.utils import timezone

from .principals import Principal, Trust
from .validators import validate_life_schedule, validate_string_list, validate_time_zone, validate_url_list


class Channel(models.TextChoices):
    HTTP = "http", "HTTP (OpenAI-compatible)"
    VAPI = "vapi", "VAPI"
    ELEVENLABS = "elevenlabs", "ElevenLabs"
    SLACK = "slack", "Slack"
    LIFE = "life", "Life loop"
    CLI = "cli", "Command line"
    MEMORY = "memory", "Caller memory"  # the model call that updates a caller's memory after a call
    DELEGATED = "delegated", "Delegated task"  # work a persona handed to a team member (spawn_agent)
    REPLAY = "replay", "Replay"  # a candidate persona answering recorded conversations (agents.replay)


class PersonaQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True)

    def with_life_loop(self):
        """Personas whose life loop is switched on: the API's `active_personas`."""
        return self.filter(enabled=True, life_enabled=True)

    def named(self, name: str):
        """The persona called `name`, ignoring case; raises Persona.DoesNotExist."""
        return self.get(name__iexact=name.strip())

    def ids_named(self, name: str) -> list[int]:
        """Ids of personas called `name`, ignoring case (one query). Filtering processes by these ids,
        rather than joining on the name, lets SQLite's planner use the (persona, status, started) index."""
        return list(self.filter(name__iexact=name.strip()).values_list("pk", flat=True))


TEMPERATURE_RANGE = "Must be a number from 0 to 2."


class Persona(models.Model):
    """A persona and its settings. Every rule a persona must meet lives here (field validators, and
    `clean_fields()` for the reporting line), so the admin's form and `load_team` (through
    `full_clean()`) refuse the same values."""

    class Kind(models.TextChoices):
        EXECUTIVE = "executive", "Executive"
        SPECIALIST = "specialist", "Specialist"

    name = models.CharField(max_length=64, help_text="Unique, case-insensitively; the chat API's `model`.")
    role = models.CharField(max_length=120, help_text="e.g. CTO, Tech Lead.")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.EXECUTIVE)
    reports_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    focus_areas = models.JSONField(
        default=list, blank=True, validators=[validate_string_list], help_text="A list of topics."
    )
    tone = models.CharField(max_length=255, blank=True)
    system_prompt = models.TextField()
    model = models.CharField(
        max_length=120, blank=True, help_text="Overrides TRON_MODEL for this persona when set."
    )
    temperature = models.FloatField(
        null=True,
        blank=True,
        validators=[
            MinValueValidator(0, message=TEMPERATURE_RANGE),
            MaxValueValidator(2, message=TEMPERATURE_RANGE),
        ],
        help_text="From 0 to 2; empty for the model's default.",
    )
    budget_usd = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0), message="Must not be negative.")],
        help_text="Spending cap per UTC day (USD); empty for TRON_DEFAULT_DAILY_BUDGET_USD. 0 stops the "
        "persona's model calls altogether (every turn is refused).",
    )
    tools = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_string_list],
        help_text="Names of the tools this persona may use.",
    )
    life_enabled = models.BooleanField(
        "life loop enabled", default=False, help_text="Runs the scheduled life loop (news, goals, …)."
    )
    life_schedule = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_life_schedule],
        help_text='Hours (0-23, in the time zone below) per activity, e.g. {"news": [6, 12, 18]}; an '
        "activity left out keeps its default hours, an empty list switches it off.",
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="IANA name, e.g. Europe/Berlin: the life schedule's hours are in this zone.",
    )
    news_feeds = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_url_list],
        help_text="RSS, Atom or JSON Feed URLs the news activity reads; empty for TRON_NEWS_FEEDS.",
    )
    enabled = models.BooleanField(default=True)
    # The explicit maximum is smallint's: SQLite would otherwise allow any 64-bit number, which PostgreSQL
    # then refuses on save.
    sort_order = models.PositiveSmallIntegerField(default=100, validators=[MaxValueValidator(32767)])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PersonaQuerySet.as_manager()

    class Meta:
        ordering = ["sort_order", "name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="agents_persona_name_ci_unique",
                violation_error_message="A persona with this name already exists (names are unique ignoring case).",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.role})" if self.role else self.name

    def clean_fields(self, exclude=None):
        """The fields' own rules, then the reporting line's (the one rule that needs the row itself).

        It is checked here rather than in `clean()` because it belongs to `reports_to`: a form without that
        field (the changelist's switches) excludes it, and Django cannot show an error on a field a form
        lacks (it raises instead). This is the pattern Django's docs give for `clean_fields()`."""
        errors = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if "reports_to" not in (exclude or ()) and "reports_to" not in errors:
            try:
                self.check_reporting_line()
            except ValidationError as exc:
                errors = exc.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def check_reporting_line(self):
        """The reporting line must end: no persona reports to itself, directly or through its leads.

        Leads may be unsaved (load_team checks a whole file before writing), so the walk compares
        instances (`==` is identity for unsaved ones) and stops at a loop that does not include this one."""
        lead, seen = self.reports_to, set()
        while lead is not None and (lead.pk or id(lead)) not in seen:
            if lead == self:
                raise ValidationError(
                    {"reports_to": "A persona cannot report to itself, directly or through its leads."},
                    code="reports_to_loop",
                )
            seen.add(lead.pk or id(lead))
            lead = lead.reports_to


# What a voice platform reports about a call at its end (VAPI's end-of-call report), checked at the edge
# before it is written (integrations/vapi_schemas.py) and by the fields' validators. No call costs a
# million dollars; the bound keeps the stored value well inside the column on PostgreSQL and on SQLite,
# which keeps 15 significant digits (a value that rounds to 10,000,000 there can no longer be read).
CALL_COST_MAX_USD = Decimal(1_000_000)
CALL_SUMMARY_MAX_CHARS = 10_000  # a summary is a paragraph; it goes into the caller's memory prompt


def new_public_id() -> str:
    return secrets.token_hex(4)


class ProcessQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status__in=Process.ACTIVE_STATUSES)

    def with_live_state(self, now):
        """Each process with `in_turn` (one of its sessions is in a turn at `now`, by
        CallerSessionQuerySet.in_turn) and `last_message_at` (its latest transcript line: when its last
        turn ended, or when the caller spoke in the one running; None before any): what tells a
        conversation talking now from one waiting for its caller. Two subqueries on indexes (the
        sessions' process, the transcript's process and id), however many rows."""
        latest = Message.objects.filter(process=OuterRef("pk")).order_by("-id").values("created_at")[:1]
        return self.annotate(
            in_turn=Exists(CallerSession.objects.in_turn(now).filter(process=OuterRef("pk"))),
            last_message_at=Subquery(latest),
        )

    def with_latest_caller(self):
        """Each process with `caller_id`: the caller of its most recently seen session (None for none).
        A subquery on the sessions' process index."""
        sessions = CallerSession.objects.filter(process=OuterRef("pk")).order_by("-last_seen_at", "-id")
        return self.annotate(caller_id=Subquery(sessions.values("caller_id")[:1]))

    def with_last_model(self):
        """Each process with `last_model`: the model of its latest LLM call (None before any), which says
        whether a cost of 0 is free or unpriced. A subquery on the calls' (process, created_at) index."""
        latest = LLMCall.objects.filter(process=OuterRef("pk")).order_by("-created_at", "-id")
        return self.annotate(last_model=Subquery(latest.values("model")[:1]))

    def with_parent_id(self):
        """Each process with `parent_public_id`: its parent's public id, or None (the API's `parent_id`)."""
        return self.annotate(parent_public_id=F("parent__public_id"))

    def finish_by_outcome(self, now) -> int:
        """End these unfinished processes: `failed` when their last turn failed (`error` is set), else
        `completed`. One UPDATE."""
        return self.filter(finished_at__isnull=True).update(
            status=models.Case(
                models.When(error="", then=models.Value(Process.Status.COMPLETED)),
                default=models.Value(Process.Status.FAILED),
            ),
            finished_at=now,
        )


class Process(models.Model):
    """One conversation or autonomous activity, with its token, call and cost counters.

    Counters only change by UPDATEs that add in the database (agents.turn_store), never by
    read-modify-write in Python, so concurrent turns cannot lose each other's numbers.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING)

    public_id = models.CharField(
        "id", max_length=8, unique=True, editable=False, default=new_public_id, help_text="8 hex digits."
    )
    persona = models.ForeignKey(Persona, on_delete=models.PROTECT, related_name="processes")
    name = models.CharField(max_length=120, blank=True, help_text="Registered name, if any.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    task = models.CharField(max_length=500, blank=True)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.HTTP)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    # Delegated work (agents.delegation): how far below a conversation it runs (0 for one that is no
    # one's child), the child's final answer, and when that answer (or its failure) reached the
    # conversation that delegated it.
    spawn_depth = models.PositiveSmallIntegerField(default=0)
    result = models.TextField(blank=True, help_text="A delegated task's final answer.")
    delivered_at = models.DateTimeField(
        null=True, blank=True, help_text="When the result or failure reached the delegating conversation."
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # The principal it was started for (agents.principals): how far it is trusted, whose own data "the
    # caller" means, and who authenticated. Each turn records its own too (a Slack thread has several
    # people); delegated work runs with this.
    trust = models.CharField(max_length=16, choices=Trust.choices, default=Trust.PUBLIC)
    principal_caller_id = models.CharField(max_length=255, blank=True)
    principal_name = models.CharField(max_length=255, blank=True)
    allowance = models.CharField(
        max_length=255, blank=True, help_text="Whose allowance its calls count against."
    )
    trace_id = models.CharField(
        max_length=32,
        blank=True,
        help_text="The OpenTelemetry trace of its first traced turn (agents.tracing).",
    )
    # What the platform that carried a call reported when it ended (VAPI's end-of-call report).
    summary = models.TextField(
        blank=True,
        validators=[MaxLengthValidator(CALL_SUMMARY_MAX_CHARS)],
        help_text="The call's summary, as the voice platform wrote it.",
    )
    ended_reason = models.CharField(
        max_length=120, blank=True, help_text="Why the call ended, e.g. customer-ended-call."
    )
    call_cost_usd = models.DecimalField(
        "call cost (USD)",
        max_digits=16,
        decimal_places=9,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(CALL_COST_MAX_USD)],
        help_text="What the voice platform billed for the call, apart from the model calls in cost.",
    )

    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    llm_calls = models.PositiveIntegerField(default=0)
    tool_calls = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=9, default=0)

    objects = ProcessQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "processes"
        ordering = ["-started_at", "-id"]
        indexes = [
            # /api/processes (newest first) and the admin changelist
            models.Index(fields=["-started_at", "-id"], name="agents_proc_started"),
            # /api/processes?status=…, /api/status's process_count
            models.Index(fields=["status", "-started_at"], name="agents_proc_status_started"),
            # /api/processes?agent=…
            models.Index(fields=["persona", "-started_at"], name="agents_proc_persona_started"),
            # /api/processes?agent=…&status=…
            models.Index(fields=["persona", "status", "-started_at"], name="agents_proc_persona_status"),
            # delegated work waiting for delivery (agents.delegation): few rows, read by every turn's peek
            models.Index(
                fields=["parent"],
                name="agents_proc_undelivered",
                condition=Q(parent__isnull=False, delivered_at__isnull=True),
            ),
        ]

    def __str__(self):
        # No status: "running" would read as "talking now" for a conversation waiting for its caller.
        return f"{self.public_id} {self.persona_id and self.persona.name}"

    @property
    def principal(self) -> Principal:
        return Principal(Trust(self.trust), self.principal_caller_id, self.principal_name, self.allowance)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def duration(self) -> timedelta:
        """Time since start for a live process, start to finish for an ended one."""
        end = self.finished_at or timezone.now()
        return max(end - self.started_at, timedelta(0))

    @property
    def duration_ms(self) -> int:
        return int(self.duration.total_seconds() * 1000)

    def finish(self, status: str = Status.COMPLETED, error: str = ""):
        """Mark the process ended (completed or failed), once; returns whether this call ended it."""
        ended = Process.objects.filter(pk=self.pk, finished_at__isnull=True).update(
            status=status, finished_at=timezone.now(), error=error
        )
        self.refresh_from_db(fields=["status", "finished_at", "error"])
        return bool(ended)


class CallerSessionQuerySet(models.QuerySet):
    def open(self):
        return self.filter(ended_at__isnull=True)

    def idle_since(self, cutoff):
        return self.open().filter(last_seen_at__lt=cutoff)

    def with_continuation(self, persona, cutoff):
        """Each session with `continues`: the rule for "a turn now continues this session". It is open,
        its process has not ended (an operator may have failed it), it was seen since `cutoff` (it is
        not idle) and it serves the same persona."""
        rule = Q(
            ended_at__isnull=True,
            process__finished_at__isnull=True,
            last_seen_at__gte=cutoff,
            process__persona=persona,
        )
        return self.annotate(continues=ExpressionWrapper(rule, output_field=models.BooleanField()))

    def in_turn(self, now=None):
        """Sessions a turn is running in now (a running Turn whose lease is live): the one rule for
        "talking now" that the dashboard, the lists and their counts use. A turn left by a server that
        died stops counting when its lease lapses."""
        return self.filter(turns__in=Turn.objects.live(now).filter(state=Turn.State.RUNNING))

    def with_live_state(self, now):
        """Each session with `in_turn` (by `in_turn`'s rule, an EXISTS on the primary key) and
        `last_message_at` (its latest transcript line; None before any), as for processes."""
        latest = Message.objects.filter(session=OuterRef("pk")).order_by("-id").values("created_at")[:1]
        return self.annotate(
            in_turn=Exists(CallerSession.objects.in_turn(now).filter(pk=OuterRef("pk"))),
            last_message_at=Subquery(latest),
        )


class CallerSession(models.Model):
    """Maps a caller (phone, request id, Slack user…) to the process that serves them."""

    caller_id = models.CharField(max_length=255)
    process = models.ForeignKey(Process, on_delete=models.CASCADE, related_name="sessions")
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.HTTP)
    provider_call_id = models.CharField(max_length=255, blank=True, help_text="e.g. VAPI's call id.")
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = CallerSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            # At most one open session per caller; concurrent first requests race on this, not in Python.
            models.UniqueConstraint(
                fields=["caller_id"],
                condition=Q(ended_at__isnull=True),
                name="agents_session_one_open_per_caller",
            ),
        ]
        indexes = [
            # /api/sessions (open sessions, most recently seen first) and the idle-session sweep
            models.Index(
                fields=["-last_seen_at", "-id"],
                name="agents_sess_open_seen",
                condition=Q(ended_at__isnull=True),
            ),
            # /api/sessions?include_ended=true and the admin changelist
            models.Index(fields=["-last_seen_at", "-id"], name="agents_sess_seen"),
            models.Index(fields=["caller_id"], name="agents_sess_caller"),
            # a VAPI webhook or chat request that names only the call finds the call's session
            models.Index(fields=["provider_call_id"], name="agents_sess_call"),
        ]

    def __str__(self):
        return f"{self.caller_id} → {self.process.public_id}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    def turn_running(self) -> bool:
        """Whether a turn runs in this session now."""
        return CallerSession.objects.in_turn().filter(pk=self.pk).exists()


class TurnQuerySet(models.QuerySet):
    def live(self, now=None):
        """Turns waiting or running whose holder is alive (its lease has not run out)."""
        return self.filter(state__in=Turn.LIVE_STATES, lease_until__gte=now or timezone.now())

    def lapsed(self, now=None):
        """Turns left waiting or running by a server that stopped renewing them (it died)."""
        return self.filter(state__in=Turn.LIVE_STATES, lease_until__lt=now or timezone.now())


class Turn(models.Model):
    """One turn of a caller: their words in, the persona's answer out (agents.runtime).

    The row is also the caller's place in line: a caller's turns run one at a time, in the order they
    arrived (by id). A turn waits while an earlier live turn of the same caller waits or runs, and runs
    only when none does; the database allows one running turn per caller. Its holder renews
    `lease_until` while it waits or runs; a turn whose lease runs out was lost with its server and is
    ended as failed by the next turn of its caller or the sweep (agents.turn_store)."""

    class State(models.TextChoices):
        WAITING = "waiting"  # behind an earlier turn of the same caller
        RUNNING = "running"
        ANSWERED = "answered"
        FAILED = "failed"  # the model failed, or the turn was lost with its server
        CANCELLED = "cancelled"  # the caller went away mid-turn

    LIVE_STATES = (State.WAITING, State.RUNNING)

    caller_id = models.CharField(max_length=255)
    state = models.CharField(max_length=16, choices=State.choices, default=State.WAITING)
    session = models.ForeignKey(
        "CallerSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="turns"
    )
    process = models.ForeignKey(
        Process, null=True, blank=True, on_delete=models.CASCADE, related_name="turns"
    )
    arrived_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True, help_text="When it began running.")
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(help_text="Its holder is alive while it renews this.")
    trust = models.CharField(max_length=16, choices=Trust.choices, default=Trust.PUBLIC)
    principal = models.CharField(max_length=255, blank=True, help_text="Who it ran for.")
    allowance = models.CharField(max_length=255, blank=True, help_text="Whose allowance it counts against.")
    held_usd = models.DecimalField(
        max_digits=16, decimal_places=9, default=0, help_text="What its model calls hold against the budget."
    )
    caller_held_usd = models.DecimalField(
        max_digits=16, decimal_places=9, default=0, help_text="What they hold against the caller's allowance."
    )
    error = models.TextField(blank=True)
    # Its span in OpenTelemetry (agents.tracing), while tracing was on: what a task it queued continues.
    trace_id = models.CharField(max_length=32, blank=True)
    span_id = models.CharField(max_length=16, blank=True)

    objects = TurnQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            # One running turn per caller: two claims at once cannot both win (agents.turn_store).
            models.UniqueConstraint(
                fields=["caller_id"],
                condition=Q(state="running"),
                name="agents_turn_one_running_per_caller",
            ),
        ]
        indexes = [
            # a caller's turns waiting or running (every turn's claim), and the sweep of lapsed ones
            models.Index(
                fields=["caller_id", "id"],
                name="agents_turn_live",
                condition=Q(state__in=["waiting", "running"]),
            ),
            models.Index(fields=["process", "id"], name="agents_turn_process"),
        ]

    def __str__(self):
        return f"turn {self.pk} of {self.caller_id} ({self.state})"


class Message(models.Model):
    """One line of a transcript: what a user said, what a persona answered, or a tool's result."""

    class Role(models.TextChoices):
        SYSTEM = "system"
        USER = "user"
        ASSISTANT = "assistant"
        TOOL = "tool"

    process = models.ForeignKey(Process, on_delete=models.CASCADE, related_name="messages")
    session = models.ForeignKey(
        CallerSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    turn = models.ForeignKey(Turn, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    # The model call that wrote an assistant's line (none for lines a platform reported).
    llm_call = models.ForeignKey(
        "LLMCall", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    name = models.CharField(max_length=120, blank=True, help_text="Tool name or speaker name, if any.")
    # An assistant message's calls of tools, as OpenAI writes them; a tool message answers one of them.
    tool_calls = models.JSONField(null=True, blank=True)
    tool_call_id = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # A tool result's run began here (its `created_at` is when it ended): the process page's timeline.
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # the transcript of a process, in order (prompt history, admin inline)
            models.Index(fields=["process", "id"], name="agents_msg_process"),
        ]

    def __str__(self):
        return f"{self.role}: {self.content[:60]}"


class LLMCall(models.Model):
    """One call to a model, with its exact (or, when the provider gave none, estimated) usage."""

    class UsageSource(models.TextChoices):
        PROVIDER = "provider", "Reported by the provider"
        ESTIMATED = "estimated", "Estimated offline"
        PARTIAL = "partial", "Partial (client disconnected)"

    process = models.ForeignKey(Process, on_delete=models.CASCADE, related_name="llm_call_rows")
    turn = models.ForeignKey(Turn, null=True, blank=True, on_delete=models.SET_NULL, related_name="llm_calls")
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=120)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=9, default=0)
    usage_source = models.CharField(max_length=16, choices=UsageSource.choices, default=UsageSource.PROVIDER)
    finish_reason = models.CharField(max_length=32, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True, help_text="Time to first token.")
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # What was sent: the messages, the names of the tools offered, temperature and max_tokens.
    request = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="Empty while the call runs.")

    class Meta:
        verbose_name = "LLM call"
        ordering = ["-created_at", "-id"]
        indexes = [
            # the cost summary per day (admin)
            models.Index(fields=["created_at"], name="agents_llmcall_created"),
            models.Index(fields=["process", "created_at"], name="agents_llmcall_process"),
        ]

    def __str__(self):
        return f"{self.model} {self.input_tokens}+{self.output_tokens} tokens"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class CallerMemory(models.Model):
    """What the team has learned about one caller (a phone number, a Slack user, ...) across
    conversations: written after a call by a model call (agents.memory), put into the prompt of the
    caller's later conversations, edited or erased by operators in the admin."""

    caller_id = models.CharField(max_length=255, unique=True)
    notes = models.TextField(
        blank=True, help_text="What the personas know about this caller, in plain words."
    )
    last_process = models.ForeignKey(
        Process,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The conversation the notes were last brought up to date from.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "caller memory"
        verbose_name_plural = "caller memories"
        ordering = ["-updated_at", "-id"]

    def __str__(self):
        return self.caller_id


class MemoryNote(models.Model):
    """A fact a persona added to a caller's notes during a conversation (the save_person_memory tool):
    what, in which process, and for whom the turn ran, so operators can tell who wrote what."""

    memory = models.ForeignKey(CallerMemory, on_delete=models.CASCADE, related_name="added")
    text = models.TextField()
    process = models.ForeignKey(Process, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    trust = models.CharField(max_length=16, choices=Trust.choices)
    added_for = models.CharField(
        max_length=255, blank=True, help_text="The caller id the turn ran for (its principal's)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.text if len(self.text) <= 60 else self.text[:59] + "…"


DIRECTIVE_MAX_CHARS = 1000  # one standing instruction


class DirectiveQuerySet(models.QuerySet):
    def in_force(self):
        """The directives that go into prompts: switched on and approved by an operator."""
        return self.filter(active=True, approved_at__isnull=False)

    def awaiting_approval(self):
        return self.filter(approved_at__isnull=True)


class Directive(models.Model):
    """A standing instruction a persona keeps: saved by its model (the `save_directive` tool) or by an
    operator, put into every prompt of the persona while active and approved (agents.directives). One
    a model saved for anyone but an operator waits for an operator's approval in the admin
    (TRON_TEAM_DIRECTIVES_ACTIVE_AT_ONCE lets a team member's count at once)."""

    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="directives")
    text = models.TextField(validators=[MaxLengthValidator(DIRECTIVE_MAX_CHARS)])
    active = models.BooleanField(
        default=True, help_text="Only active, approved directives go into the prompt."
    )
    process = models.ForeignKey(
        Process,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The conversation the persona saved it in; empty when an operator wrote it.",
    )
    # Who asked for it: the principal of the turn that saved it (empty: an operator wrote it here).
    trust = models.CharField(max_length=16, choices=Trust.choices, blank=True)
    asked_by = models.CharField(max_length=255, blank=True, help_text="The caller or user who asked for it.")
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.CharField(max_length=150, blank=True, help_text="The operator who approved it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DirectiveQuerySet.as_manager()

    class Meta:
        ordering = ["persona", "created_at", "id"]
        indexes = [models.Index(fields=["persona", "active", "created_at"], name="agents_directive_persona")]

    def __str__(self):
        return self.text if len(self.text) <= 60 else self.text[:59] + "…"

    def save(self, *args, **kwargs):
        # One written by an operator (in the admin: no turn asked for it) is in force at once.
        if self._state.adding and not self.trust and self.approved_at is None:
            self.approved_at = timezone.now()
            self.approved_by = self.approved_by or "an operator (written in the admin)"
        super().save(*args, **kwargs)

    @property
    def awaiting_approval(self) -> bool:
        return self.approved_at is None


class DaySpend(models.Model):
    """Spend on one UTC day, and what model calls in flight hold against it: a row of an
    agents.budgets.Ledger, which a check reads instead of the day's calls.

    `spent_usd` grows with the cost of every model call the day records (in the transaction that stores
    the LLMCall rows, so it is their sum); `reserved_usd` is what calls running now may cost at most."""

    day = models.DateField(help_text="UTC.")
    spent_usd = models.DecimalField("spent (USD)", max_digits=16, decimal_places=9, default=0)
    reserved_usd = models.DecimalField(
        "held (USD)",
        max_digits=16,
        decimal_places=9,
        default=0,
        help_text="The most the model calls running now may cost; it counts as spent until they end.",
    )
    reserved_at = models.DateTimeField(default=timezone.now, help_text="When a call last took a hold.")

    class Meta:
        abstract = True


class DailySpend(DaySpend):
    """What one persona spent on one UTC day, against its budget (agents.budgets)."""

    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="daily_spend")
    budget_usd = models.DecimalField(
        "budget (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="The budget the day's last check applied; empty: no limit.",
    )

    class Meta:
        verbose_name = "daily spend"
        verbose_name_plural = "daily spend"
        ordering = ["-day", "persona"]
        constraints = [
            models.UniqueConstraint(fields=["persona", "day"], name="agents_dailyspend_persona_day"),
        ]

    def __str__(self):
        return f"{self.persona_id and self.persona.name} {self.day}"


class CallerUsage(DaySpend):
    """What one public caller used on one UTC day, against their limits (agents.allowances): requests
    this minute, and spend."""

    allowance = models.CharField(
        max_length=255, help_text="The caller id, or the address of callers whose id nobody vouched for."
    )
    requests = models.PositiveIntegerField(default=0, help_text="Turns begun this day.")
    minute = models.DateTimeField(null=True, blank=True, help_text="The start of the current minute.")
    minute_requests = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "caller usage"
        verbose_name_plural = "caller usage"
        ordering = ["-day", "-requests"]
        constraints = [
            models.UniqueConstraint(fields=["allowance", "day"], name="agents_callerusage_allowance_day"),
        ]

    def __str__(self):
        return f"{self.allowance} {self.day}"


class CallerAllowance(models.Model):
    """An operator's word on one caller's limits: lifted, or other than the defaults
    (TRON_CALLER_REQUESTS_PER_MINUTE, TRON_CALLER_DAILY_SPEND_USD)."""

    allowance = models.CharField(
        max_length=255, unique=True, help_text="As caller usage names it: a caller id or an address."
    )
    unlimited = models.BooleanField(default=False, help_text="No limits at all for this caller.")
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: TRON_CALLER_REQUESTS_PER_MINUTE."
    )
    daily_spend_usd = models.DecimalField(
        "daily spend (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0), message="Must not be negative.")],
        help_text="Empty: TRON_CALLER_DAILY_SPEND_USD.",
    )
    note = models.CharField(max_length=255, blank=True)
    updated_by = models.CharField(max_length=150, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["allowance"]

    def __str__(self):
        return self.allowance


class ModelPrice(models.Model):
    """A model's price as an operator set it in the admin, over the built-in table and TRON_PRICES
    (agents.pricing, which keeps them in memory: calls are priced without a query)."""

    model = models.CharField(
        max_length=120,
        help_text="The model's name as its calls record it, e.g. gpt-4o-mini (any case). It also prices "
        "its dated variants (gpt-4o-mini-2024-07-18) and provider-prefixed names (openai/gpt-4o-mini).",
    )
    input_usd_per_million = models.DecimalField(
        "input (USD per 1M tokens)",
        max_digits=12,
        decimal_places=6,
        validators=[MinValueValidator(Decimal(0), message="Must not be negative.")],
    )
    output_usd_per_million = models.DecimalField(
        "output (USD per 1M tokens)",
        max_digits=12,
        decimal_places=6,
        validators=[MinValueValidator(Decimal(0), message="Must not be negative.")],
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "model price"
        ordering = ["model"]
        constraints = [
            models.UniqueConstraint(
                Lower("model"),
                name="agents_modelprice_model_ci_unique",
                violation_error_message="This model has a price already (names are unique ignoring case).",
            ),
        ]

    def __str__(self):
        return self.model

    def clean_fields(self, exclude=None):
        self.model = (self.model or "").strip()
        super().clean_fields(exclude=exclude)


class Replay(models.Model):
    """An operator's test of a change to a persona before it ships: chosen conversations of the persona
    answered again, turn by turn, by a candidate (a copy of the persona with a changed prompt, model,
    temperature or tools), which goes live only when an operator applies it (agents.replay)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="replays")
    # The candidate: the persona's settings as they would be.
    system_prompt = models.TextField()
    model = models.CharField(max_length=120, blank=True, help_text="Empty: TRON_MODEL.")
    temperature = Persona._meta.get_field("temperature").clone()
    tools = models.JSONField(default=list, blank=True, validators=[validate_string_list])
    rubric = models.TextField(
        blank=True,
        help_text="What a judge model grades both answers by, each grade with its reason. Empty: no grades.",
    )
    judge_model = models.CharField(
        max_length=120, blank=True, help_text="The model that grades; empty: the candidate's model."
    )
    conversations = models.ManyToManyField(
        Process, related_name="replays", help_text="The conversations replayed."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    turns_total = models.PositiveIntegerField(default=0, help_text="The caller's turns to answer again.")
    turns_done = models.PositiveIntegerField(default=0)
    graded = models.PositiveIntegerField(default=0, help_text="Turns the judge has graded.")
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Applying the candidate onto the persona, audited: who, when, and what the persona had before.
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_by = models.CharField(max_length=150, blank=True)
    previous = models.JSONField(
        null=True, blank=True, help_text="The persona's settings before it was applied."
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"replay {self.pk} of {self.persona_id and self.persona.name}"

    CANDIDATE_FIELDS = ("system_prompt", "model", "temperature", "tools")

    def candidate(self, persona: Persona | None = None) -> Persona:
        """The persona as the candidate would make it: an unsaved copy with the candidate's settings (its
        id and budget are the persona's)."""
        copy = Persona.objects.get(pk=self.persona_id) if persona is None else persona
        for name in self.CANDIDATE_FIELDS:
            setattr(copy, name, getattr(self, name))
        return copy


class ReplayTurn(models.Model):
    """One caller's turn of a replayed conversation: what they said, the original answer and the
    candidate's, each with its tokens, cost and time to first token, and the judge's grades."""

    replay = models.ForeignKey(Replay, on_delete=models.CASCADE, related_name="turns")
    original = models.ForeignKey(
        Process,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The conversation replayed.",
    )
    position = models.PositiveIntegerField(help_text="The turn's number in its conversation, from 1.")
    said = models.TextField(help_text="The caller's words.")
    original_answer = models.TextField(blank=True)
    original_model = models.CharField(max_length=120, blank=True)
    original_input_tokens = models.BigIntegerField(default=0)
    original_output_tokens = models.BigIntegerField(default=0)
    original_cost_usd = models.DecimalField(max_digits=16, decimal_places=9, default=0)
    original_ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    process = models.ForeignKey(
        Process,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Where the candidate answered.",
    )
    answer = models.TextField(blank=True)
    model = models.CharField(max_length=120, blank=True)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=16, decimal_places=9, default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="Why the candidate gave no answer.")
    original_grade = models.PositiveSmallIntegerField(null=True, blank=True)
    original_reason = models.TextField(blank=True)
    grade = models.PositiveSmallIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    judge_process = models.ForeignKey(Process, null=True, on_delete=models.SET_NULL, related_name="+")
    judge_cost_usd = models.DecimalField(max_digits=16, decimal_places=9, default=0)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"turn {self.position} of replay {self.replay_id}"
