"""The persona's form in the admin: its lists and its schedule edited as words, not JSON.

Tools are checkboxes from the tool registry; focus areas and news feeds are one item per line; the life
schedule is a line of hours per activity. The form turns them into the values the model stores, and the
model's own validators (agents.validators) still judge them, so the admin and `load_team` refuse the
same values.
"""

from django import forms
from django.apps import apps
from django.core.exceptions import ValidationError

from .models import Persona
from .tools import TOOLS
from .validators import LIFE_ACTIVITIES, validate_life_schedule

OFF = "off"


class LinesField(forms.CharField):
    """A list of strings, one per line in a textarea; blank lines and surrounding spaces are dropped."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 60})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        return [line.strip() for line in (value or "").splitlines() if line.strip()]


def hours_text(hours) -> str:
    return ", ".join(str(hour) for hour in hours) if hours else OFF


def parse_hours(activity: str, text: str) -> list[int] | None:
    """The hours typed for `activity`: None for its default (left empty), [] for "off", else the hours."""
    text = text.strip().lower()
    if not text:
        return None
    if text == OFF:
        return []
    hours = []
    for part in text.replace(";", ",").replace(" ", ",").split(","):
        if not part:
            continue
        if not part.isdigit() or not 0 <= int(part) <= 23:
            raise ValidationError(
                '%(activity)s: "%(part)s" is not an hour. Write hours from 0 to 23 separated by commas '
                '(e.g. 6, 12, 18), "off" to switch it off, or leave it empty for the default hours.',
                code="schedule_hours",
                params={"activity": activity_label(activity), "part": part},
            )
        hours.append(int(part))
    return sorted(set(hours))


def activity_label(activity: str) -> str:
    return activity.replace("_", " ").capitalize()


def default_life_hours() -> dict[str, list[int]]:
    """The life loop's default hours per activity, from the app that runs it (an AppConfig with
    `default_life_hours()`; agents imports no app built on it). {} when there is none."""
    hours: dict[str, list[int]] = {}
    for config in apps.get_app_configs():
        if hook := getattr(config, "default_life_hours", None):
            hours.update(hook())
    return hours


class ScheduleField(forms.CharField):
    """The hours of one life-loop activity, as a line of text (`parse_hours`)."""

    def __init__(self, activity: str):
        super().__init__(label=activity_label(activity), required=False)
        self.activity = activity

    def clean(self, value):
        return parse_hours(self.activity, super().clean(value) or "")


def tool_choices(known: list[str]) -> list[tuple[str, str]]:
    """The registry's tools as checkboxes, and the names in `known` this server has no tool for (tools of
    the Go original in team.toml), kept rather than dropped by a save that never showed them."""
    choices = [(name, f"{name}: {tool.description}") for name, tool in sorted(TOOLS.items())]
    return choices + [
        (name, f"{name} (no such tool here: kept, not offered)") for name in known if name not in TOOLS
    ]


class PersonaForm(forms.ModelForm):
    tools = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The tools this persona's model may call.",
    )
    focus_areas = LinesField(required=False, help_text="One topic per line.")
    news_feeds = LinesField(
        required=False,
        help_text="One RSS, Atom or JSON Feed URL per line; none: the feeds of TRON_NEWS_FEEDS.",
    )
    # The life schedule, a line per activity (validators.LIFE_ACTIVITIES; a test keeps them equal).
    schedule_news = ScheduleField("news")
    schedule_goals = ScheduleField("goals")
    schedule_team_check = ScheduleField("team_check")
    schedule_reflection = ScheduleField("reflection")
    schedule_journal = ScheduleField("journal")
    schedule_post = ScheduleField("post")

    class Meta:
        model = Persona
        # Every setting but life_schedule, which is edited as the schedule_<activity> lines above.
        fields = [
            "name",
            "role",
            "kind",
            "reports_to",
            "enabled",
            "sort_order",
            "system_prompt",
            "tone",
            "focus_areas",
            "tools",
            "model",
            "temperature",
            "budget_usd",
            "life_enabled",
            "time_zone",
            "news_feeds",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tools"].choices = tool_choices(self.instance.tools if self.instance.pk else [])
        defaults = default_life_hours()
        schedule = self.instance.life_schedule or {}
        for activity in LIFE_ACTIVITIES:
            field = self.fields[f"schedule_{activity}"]
            default = defaults.get(activity)
            shown = f"Default: {hours_text(default)}. " if default is not None else ""
            field.help_text = shown + 'Hours (0-23) separated by commas, "off", or empty for the default.'
            field.widget.attrs["placeholder"] = hours_text(default) if default is not None else ""
            if activity in schedule:
                self.initial[f"schedule_{activity}"] = hours_text(schedule[activity])

    def clean(self):
        cleaned = super().clean()
        fields = [f"schedule_{activity}" for activity in LIFE_ACTIVITIES]
        if all(name in cleaned for name in fields):  # each line was valid
            schedule = {
                activity: cleaned[name]
                for activity, name in zip(LIFE_ACTIVITIES, fields, strict=True)
                if cleaned[name] is not None
            }
            validate_life_schedule(schedule)
            self.instance.life_schedule = schedule
        return cleaned


SCHEDULE_FIELDS = [f"schedule_{activity}" for activity in LIFE_ACTIVITIES]
