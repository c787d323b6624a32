"""Replays and exports in the admin: describe a candidate persona and pick conversations (from the
process list's action, or the persona's latest), follow the replay's progress, read old and new answers
side by side, and apply the candidate; export conversations as JSONL.

The process list's actions live here (`replay_conversations`, `export_fine_tuning`, `export_replay_input`)
and agents.admin puts them on the process list.
"""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from .display import milliseconds, usd
from .models import Persona, Process, Replay
from .persona_form import tool_choices
from .recordings import export_lines, exportable
from .replay import apply, queue_replay

MAX_CONVERSATIONS = 50  # conversations one replay takes: each turn is a model call, or two with a judge


class ReplayForm(forms.ModelForm):
    """A candidate: the persona's settings as they would be, and the conversations to try them on."""

    chosen = forms.CharField(required=False, widget=forms.HiddenInput)
    last = forms.IntegerField(
        label="or its latest conversations",
        required=False,
        min_value=1,
        max_value=MAX_CONVERSATIONS,
        help_text="How many of the persona's latest conversations to replay, when none were picked in the "
        f"process list (at most {MAX_CONVERSATIONS}).",
    )
    tools = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, help_text="The tools the candidate may call."
    )

    class Meta:
        model = Replay
        fields = ["persona", "system_prompt", "model", "temperature", "tools", "rubric", "judge_model"]
        widgets = {"rubric": forms.Textarea(attrs={"rows": 4, "cols": 80})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tools"].choices = tool_choices(self.initial.get("tools") or [])
        self.processes: list[Process] = []

    def clean(self):
        cleaned = super().clean()
        persona, chosen, last = cleaned.get("persona"), cleaned.get("chosen"), cleaned.get("last")
        if persona is None:
            return cleaned
        if chosen:
            try:
                ids = [int(part) for part in chosen.split(",") if part.strip()]
            except ValueError:
                raise ValidationError("The conversations picked are not process ids.") from None
            found = exportable(Process.objects.filter(pk__in=ids[: MAX_CONVERSATIONS + 1]))
            if any(process.persona_id != persona.pk for process in found):
                raise ValidationError("Every conversation replayed must be one of this persona's.")
            self.processes = list(found.order_by("started_at", "id"))
        elif last:
            latest = exportable(Process.objects.filter(persona=persona)).order_by("-started_at", "-id")
            self.processes = list(reversed(latest[:last]))
        if not self.processes:
            raise ValidationError(
                "Pick the conversations to replay: select them in the process list and choose “Replay with "
                "a changed persona”, or give how many of the persona's latest conversations to take."
            )
        if len(self.processes) > MAX_CONVERSATIONS:
            raise ValidationError(f"A replay takes at most {MAX_CONVERSATIONS} conversations.")
        return cleaned


@admin.register(Replay)
class ReplayAdmin(admin.ModelAdmin):
    """Replays are made here (the add form is the candidate) and read on their comparison page; they
    are never edited: a different candidate is a new replay."""

    form = ReplayForm
    list_display = [
        "replay",
        "persona",
        "progress",
        "conversations_count",
        "cost",
        "created_by",
        "created_at",
        "applied",
    ]
    list_filter = ["status", "persona"]
    list_select_related = ["persona"]
    fieldsets = [
        (None, {"fields": ["persona", "chosen", "last"]}),
        (
            "The candidate (not live until applied)",
            {"fields": ["system_prompt", "model", "temperature", "tools"]},
        ),
        ("Grading (optional)", {"fields": ["rubric", "judge_model"]}),
    ]

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        # The list's totals from each replay's turns: two queries for the page, not two per row.
        return (
            super()
            .get_queryset(request)
            .annotate(conversation_count=Count("conversations"))
            .prefetch_related("turns")
        )

    def get_changeform_initial_data(self, request):
        """From the process list's action (`?persona=&chosen=`) or the persona's page (`?persona=`): the
        candidate starts as the persona is."""
        initial = super().get_changeform_initial_data(request)
        persona = Persona.objects.filter(pk=request.GET.get("persona") or None).first()
        if persona is not None:
            initial.update({name: getattr(persona, name) for name in Replay.CANDIDATE_FIELDS})
            initial["persona"] = persona.pk
            initial.setdefault("last", None if request.GET.get("chosen") else 5)
        return initial

    def save_model(self, request, obj, form, change):
        obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)
        obj.conversations.set(form.processes)
        queue_replay(obj.pk)

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, f"Replay {obj.pk} is queued: this page follows its progress.")
        return HttpResponseRedirect(reverse("admin:agents_replay_change", args=[obj.pk]))

    @admin.display(description="replay", ordering="id")
    def replay(self, obj):
        return f"#{obj.pk}"

    @admin.display(description="progress", ordering="status")
    def progress(self, obj):
        return progress_text(obj)

    @admin.display(description="conversations", ordering="conversation_count")
    def conversations_count(self, obj):
        return obj.conversation_count

    @admin.display(description="cost (original → candidate)")
    def cost(self, obj):
        totals = Totals.of(list(obj.turns.all()))
        return f"{usd(totals.original.cost_usd)} → {usd(totals.candidate.cost_usd)}"

    @admin.display(description="applied", ordering="applied_at")
    def applied(self, obj):
        if obj.applied_at is None:
            return "-"
        return f"{obj.applied_by}, {obj.applied_at:%Y-%m-%d %H:%M:%S} UTC"

    # -- the comparison page and applying ------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "<path:object_id>/apply/",
                self.admin_site.admin_view(self.apply_view),
                name="agents_replay_apply",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The comparison page: per turn the original and the candidate's answer side by side."""
        replay = self.get_object(request, unquote(object_id))
        if replay is None or not self.has_view_permission(request, replay):
            raise Http404("No such replay.")
        rows = list(replay.turns.select_related("original").order_by("id"))
        conversations: dict = {}
        for row in rows:
            row.original_cost, row.cost = usd(row.original_cost_usd), usd(row.cost_usd)  # as money reads
            conversations.setdefault(row.original, []).append(row)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Replay {replay.pk}: {replay.persona.name}, as the candidate would have answered",
            "replay": replay,
            "original": replay,
            "progress": progress_text(replay),
            "running": replay.status in (Replay.Status.QUEUED, Replay.Status.RUNNING),
            "changes": candidate_changes(replay),
            "conversations": list(conversations.items()),
            "totals": Totals.of(rows),
            "can_apply": replay.status == Replay.Status.COMPLETED
            and replay.applied_at is None
            and request.user.has_perm("agents.change_persona"),
        }
        return TemplateResponse(request, "admin/agents/replay/comparison.html", context)

    def apply_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return _apply(self, request, object_id)


def _apply(model_admin: ReplayAdmin, request, object_id):
    if not request.user.has_perm("agents.change_persona"):
        raise PermissionDenied
    replay = get_object_or_404(Replay.objects.select_related("persona"), pk=unquote(object_id))
    if replay.status != Replay.Status.COMPLETED or replay.applied_at is not None:
        model_admin.message_user(request, "Only a completed replay can be applied, once.", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:agents_replay_change", args=[replay.pk]))
    try:
        changed = apply(replay, request.user.get_username())
    except ValidationError as exc:
        model_admin.message_user(request, f"Not applied: {'; '.join(exc.messages)}", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:agents_replay_change", args=[replay.pk]))
    summary = f"Applied the candidate of replay {replay.pk} ({', '.join(changed) or 'no setting changed'})."
    model_admin.log_change(request, replay.persona, summary)  # the persona's history: who, when, which replay
    model_admin.message_user(request, summary, messages.SUCCESS)
    return HttpResponseRedirect(reverse("admin:agents_persona_change", args=[replay.persona_id]))


def progress_text(replay: Replay) -> str:
    if replay.status == Replay.Status.QUEUED:
        return "queued"
    done = f"{replay.turns_done} of {replay.turns_total} turns answered"
    if replay.rubric.strip():
        done += f", {replay.graded} graded"
    if replay.status == Replay.Status.FAILED:
        return f"failed ({done}): {replay.error}"
    return f"{replay.status}: {done}"


def candidate_changes(replay: Replay) -> list[tuple[str, object, object]]:
    """(setting, the persona's now, the candidate's) for each setting the candidate changes."""
    persona = replay.persona
    return [
        (name.replace("_", " "), getattr(persona, name), getattr(replay, name))
        for name in Replay.CANDIDATE_FIELDS
        if getattr(persona, name) != getattr(replay, name)
    ]


class Side:
    """One side's figures over a replay's turns."""

    def __init__(self, rows, prefix: str):
        answered = [row for row in rows if not (prefix == "" and row.error)]
        self.input_tokens = sum(getattr(row, f"{prefix}input_tokens") for row in answered)
        self.output_tokens = sum(getattr(row, f"{prefix}output_tokens") for row in answered)
        self.cost_usd = sum((getattr(row, f"{prefix}cost_usd") for row in answered), Decimal(0))
        ttfts = [
            getattr(row, f"{prefix}ttft_ms")
            for row in answered
            if getattr(row, f"{prefix}ttft_ms") is not None
        ]
        self.ttft_ms = sum(ttfts) / len(ttfts) if ttfts else None
        grades = [
            g for row in answered if (g := getattr(row, "original_grade" if prefix else "grade")) is not None
        ]
        self.grade = sum(grades) / len(grades) if grades else None

    @property
    def ttft(self) -> str:
        return milliseconds(self.ttft_ms)

    @property
    def cost(self) -> str:
        return usd(self.cost_usd)


class Totals:
    def __init__(self, original: Side, candidate: Side, judge_usd: Decimal, failed: int):
        self.original, self.candidate, self.judge_usd, self.failed = original, candidate, judge_usd, failed

    @classmethod
    def of(cls, rows) -> "Totals":
        return cls(
            Side(rows, "original_"),
            Side(rows, ""),
            sum((row.judge_cost_usd for row in rows), Decimal(0)),
            sum(1 for row in rows if row.error),
        )

    @property
    def replay_cost(self) -> str:
        """What the replay itself spent: the candidate's answers and the judge's grades."""
        return usd(self.candidate.cost_usd + self.judge_usd)


# -- the process list's actions -----------------------------------------------------------------------


@admin.action(description="Replay with a changed persona…", permissions=["replay"])
def replay_conversations(model_admin, request, queryset):
    chosen = exportable(queryset)
    personas = set(chosen.values_list("persona_id", flat=True))
    if len(personas) != 1:
        model_admin.message_user(
            request,
            "Pick conversations of one persona to replay (memory updates and replays are not conversations).",
            messages.ERROR,
        )
        return None
    ids = ",".join(str(pk) for pk in chosen.values_list("pk", flat=True)[: MAX_CONVERSATIONS + 1])
    query = urlencode({"persona": personas.pop(), "chosen": ids})
    return HttpResponseRedirect(f"{reverse('admin:agents_replay_add')}?{query}")


def _download(queryset, form: str, name: str):
    response = StreamingHttpResponse(
        (line + "\n" for line in export_lines(queryset, form)), content_type="application/jsonl"
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.jsonl"'
    return response


@admin.action(description="Export as JSONL: OpenAI chat fine-tuning", permissions=["view"])
def export_fine_tuning(model_admin, request, queryset):
    return _download(queryset, "openai", "conversations-fine-tuning")


@admin.action(description="Export as JSONL: the replay's input", permissions=["view"])
def export_replay_input(model_admin, request, queryset):
    return _download(queryset, "replay", "conversations-replay")


def replays_link(persona: Persona) -> str:
    """The persona page's way in: try a change on its latest conversations, and its replays so far."""
    if persona.pk is None:
        return "-"
    add = reverse("admin:agents_replay_add") + "?" + urlencode({"persona": persona.pk})
    listed = reverse("admin:agents_replay_changelist") + "?" + urlencode({"persona__id__exact": persona.pk})
    return format_html(
        '<a href="{}">Try a change on its latest conversations</a> · <a href="{}">its replays</a>',
        add,
        listed,
    )
