"""Persona's rules, which live on the model: the validators as tables, the admin refusing what breaks them.

`load_team` runs the same rules through `full_clean()`; tests/agents/test_load_team.py checks its messages.
"""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from agents.models import Persona
from agents.validators import LIFE_ACTIVITIES, validate_life_schedule, validate_string_list
from lifeloop.models import Activity
from tests.factories import make_persona

# --- The validators -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [
        {},
        {"news": [6, 12, 18]},
        {"news": [], "post": [0, 23]},
        {activity: [9] for activity in LIFE_ACTIVITIES},
    ],
)
def test_a_valid_schedule_passes(schedule):
    validate_life_schedule(schedule)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ([6], "Must be an object of activity"),
        ("news", "Must be an object of activity"),
        (None, "Must be an object of activity"),
        ({"nap": [13]}, "Unknown activity 'nap'; expected one of news, goals,"),
        ({"News": [6]}, "Unknown activity 'News'"),
        ({"team-check": [6]}, "Unknown activity 'team-check'"),
        ({"news": [24]}, "'news' must be a list of hours from 0 to 23."),
        ({"news": [25]}, "'news' must be a list of hours from 0 to 23."),
        ({"news": [-1]}, "'news' must be a list of hours from 0 to 23."),
        ({"news": [6.5]}, "'news' must be a list of hours from 0 to 23."),
        ({"news": ["6"]}, "'news' must be a list of hours from 0 to 23."),
        ({"news": [True]}, "'news' must be a list of hours from 0 to 23."),
        ({"news": 6}, "'news' must be a list of hours from 0 to 23."),
        ({"goals": [9], "journal": [22, 99]}, "'journal' must be a list of hours"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_problem(schedule, message):
    with pytest.raises(ValidationError) as excinfo:
        validate_life_schedule(schedule)
    assert message in excinfo.value.messages[0]


def test_the_schedules_activities_are_the_life_loops():
    """`agents` may not import `lifeloop`, so the validator keeps its own list; this keeps them equal."""
    assert set(LIFE_ACTIVITIES) == set(Activity.values)


@pytest.mark.parametrize("value", [[], ["web_search"], ["engineering", "ai"]])
def test_a_list_of_names_passes(value):
    validate_string_list(value)


@pytest.mark.parametrize(
    "value",
    ["web_search", {"web_search": True}, None, [""], ["ok", 1], [" padded"], ["padded "], [["nested"]]],
)
def test_anything_but_a_list_of_clean_names_is_refused(value):
    with pytest.raises(ValidationError, match="Must be a list of non-empty strings"):
        validate_string_list(value)


# --- The model's field rules, through full_clean() ------------------------------------------------


def persona(**values) -> Persona:
    return Persona(**{"name": "Bo", "role": "Engineer", "system_prompt": "You are Bo.", **values})


@pytest.mark.django_db
@pytest.mark.parametrize(
    "values",
    [
        {},
        {"temperature": 0},
        {"temperature": 2},
        {"temperature": 0.7},
        {"budget_usd": Decimal("0")},
        {"budget_usd": Decimal("5.25")},
        {"sort_order": 32767},
        {"kind": "specialist"},
        {"life_schedule": {"news": [6]}, "life_enabled": True},
        {"time_zone": "Europe/Berlin"},
        {"time_zone": "America/Argentina/Buenos_Aires"},
        {"news_feeds": ["https://example.com/feed.xml", "http://127.0.0.1:8000/rss"]},
    ],
)
def test_a_valid_persona_passes(values):
    persona(**values).full_clean()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"temperature": 7}, "temperature", "Must be a number from 0 to 2."),
        ({"temperature": 2.01}, "temperature", "Must be a number from 0 to 2."),
        ({"temperature": -0.5}, "temperature", "Must be a number from 0 to 2."),
        ({"budget_usd": Decimal("-1")}, "budget_usd", "Must not be negative."),
        ({"budget_usd": Decimal("1.005")}, "budget_usd", "Ensure that there are no more than 2 decimal places."),
        ({"budget_usd": Decimal("1e12")}, "budget_usd", "Ensure that there are no more than 12 digits in total."),
        ({"sort_order": 32768}, "sort_order", "Ensure this value is less than or equal to 32767."),
        ({"kind": "intern"}, "kind", "Value 'intern' is not a valid choice."),
        ({"name": ""}, "name", "This field cannot be blank."),
        ({"name": "B" * 65}, "name", "Ensure this value has at most 64 characters (it has 65)."),
        ({"role": ""}, "role", "This field cannot be blank."),
        ({"system_prompt": ""}, "system_prompt", "This field cannot be blank."),
        ({"tools": "web_search"}, "tools", "Must be a list of non-empty strings"),
        ({"focus_areas": [""]}, "focus_areas", "Must be a list of non-empty strings"),
        ({"life_schedule": {"nap": [13]}}, "life_schedule", "Unknown activity 'nap'"),
        ({"life_schedule": {"news": [25]}}, "life_schedule", "'news' must be a list of hours from 0 to 23."),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "'Mars/Olympus' is not a time zone name"),
        ({"time_zone": "europe/berlin"}, "time_zone", "is not a time zone name"),
        ({"time_zone": "../../etc/passwd"}, "time_zone", "is not a time zone name"),
        ({"time_zone": ""}, "time_zone", "This field cannot be blank."),
        ({"news_feeds": "https://example.com/rss"}, "news_feeds", "Must be a list of feed URLs"),
        ({"news_feeds": ["ftp://example.com/rss"]}, "news_feeds", "'ftp://example.com/rss' is not an http(s) URL."),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_on_its_field(values, field, message):
    with pytest.raises(ValidationError) as excinfo:
        persona(**values).full_clean()
    assert list(excinfo.value.message_dict) == [field]
    assert message in excinfo.value.message_dict[field][0]


@pytest.mark.django_db
def test_a_name_is_unique_ignoring_case():
    make_persona(name="Tony")
    with pytest.raises(ValidationError, match="A persona with this name already exists"):
        persona(name="tony").full_clean()
    Persona.objects.named("Tony").full_clean()  # a persona is no duplicate of itself


# --- The reporting line (Persona.clean_fields) -----------------------------------------------------------

LOOP = "A persona cannot report to itself, directly or through its leads."


@pytest.mark.django_db
def test_a_saved_persona_cannot_report_to_itself():
    tony = make_persona(name="Tony")
    tony.reports_to = tony
    with pytest.raises(ValidationError) as excinfo:
        tony.full_clean()
    assert excinfo.value.message_dict == {"reports_to": [LOOP]}


@pytest.mark.django_db
def test_a_persona_cannot_report_to_someone_who_reports_to_it():
    tony = make_persona(name="Tony")
    sarah = make_persona(name="Sarah", reports_to=tony)
    derek = make_persona(name="Derek", reports_to=sarah)
    tony.reports_to = derek
    with pytest.raises(ValidationError) as excinfo:
        tony.full_clean()
    assert excinfo.value.message_dict == {"reports_to": [LOOP]}
    Persona.objects.get(pk=derek.pk).full_clean()  # the saved line (no loop) is fine


def test_unsaved_personas_forming_a_loop_are_refused():
    bo, cy = persona(name="Bo"), persona(name="Cy")
    bo.reports_to, cy.reports_to = cy, bo
    with pytest.raises(ValidationError, match="cannot report to itself"):
        bo.full_clean(validate_constraints=False)


@pytest.mark.django_db
def test_a_loop_further_up_the_line_ends_the_walk_without_blaming_this_persona():
    """Rows saved before the rule existed may loop; checking someone below them must still finish."""
    tony, maya = make_persona(name="Tony"), make_persona(name="Maya")
    Persona.objects.filter(pk=tony.pk).update(reports_to=maya)
    Persona.objects.filter(pk=maya.pk).update(reports_to=tony)
    persona(reports_to=Persona.objects.get(pk=tony.pk)).full_clean()


# --- The admin refuses the same values ------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def change_form(**overrides):
    form = {
        "name": "Tony",
        "role": "CTO",
        "kind": "executive",
        "reports_to": "",
        "enabled": "on",
        "sort_order": "1",
        "system_prompt": "You are Tony.",
        "tone": "",
        "focus_areas": "",  # one a line
        "tools": [],  # checkboxes
        "model": "",
        "temperature": "0.7",
        "budget_usd": "",
        # the life schedule, hours a line per activity (empty: the activity's default hours)
        **{f"schedule_{activity}": "" for activity in LIFE_ACTIVITIES},
        "time_zone": "UTC",
        "news_feeds": "",  # one a line
        # the directives inline, empty
        "directives-TOTAL_FORMS": "0",
        "directives-INITIAL_FORMS": "0",
    }
    return {**form, **overrides}


def change_url(persona):
    return reverse("admin:agents_persona_change", args=[persona.pk])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"temperature": "7"}, "temperature", "Must be a number from 0 to 2."),
        ({"temperature": "-1"}, "temperature", "Must be a number from 0 to 2."),
        ({"budget_usd": "-5"}, "budget_usd", "Must not be negative."),
        ({"sort_order": "40000"}, "sort_order", "Ensure this value is less than or equal to 32767."),
        ({"schedule_news": "6, 25"}, "schedule_news", "News: &quot;25&quot; is not an hour. Write hours from 0 to 23"),
        ({"schedule_journal": "six"}, "schedule_journal", "Journal: &quot;six&quot; is not an hour."),
        ({"schedule_news": "[6, 12]"}, "schedule_news", "News: &quot;[6&quot; is not an hour."),
        ({"time_zone": "Berlin"}, "time_zone", "is not a time zone name"),
        ({"news_feeds": "https://example.com/rss\nnot a url"}, "news_feeds", "&#x27;not a url&#x27; is not an http(s) URL."),
        ({"tools": ["web_search"]}, "tools", "Select a valid choice. web_search is not one of the available choices."),
        ({"name": "Maya"}, "__all__", "A persona with this name already exists"),
        ({"name": "MAYA"}, "__all__", "A persona with this name already exists"),
    ],
)  # fmt: skip
def test_the_admin_refuses_a_bad_value_with_a_form_error_and_saves_nothing(
    admin_client, tony, maya, overrides, field, message
):
    before = list(Persona.objects.order_by("pk").values())

    response = admin_client.post(change_url(tony), change_form(**overrides))

    assert response.status_code == 200  # the form again, not the redirect of a save
    form = response.context["adminform"].form
    assert list(form.errors) == [field]
    assert message in str(form.errors[field])
    assert list(Persona.objects.order_by("pk").values()) == before


@pytest.mark.django_db
def test_the_admin_refuses_a_reporting_loop_on_the_reports_to_field(admin_client, tony):
    sarah = make_persona(name="Sarah", reports_to=tony)

    response = admin_client.post(change_url(tony), change_form(reports_to=str(sarah.pk)))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"reports_to": [LOOP]}
    tony.refresh_from_db()
    assert tony.reports_to is None


@pytest.mark.django_db
def test_the_admin_add_form_refuses_a_bad_value_and_creates_nothing(admin_client):
    response = admin_client.post(reverse("admin:agents_persona_add"), change_form(name="Bo", temperature="7"))

    assert response.status_code == 200
    assert "temperature" in response.context["adminform"].form.errors
    assert not Persona.objects.exists()


@pytest.mark.django_db
def test_the_admin_saves_values_at_the_edges_of_the_rules(admin_client, tony):
    form = change_form(temperature="2", budget_usd="0", schedule_news="0, 23", schedule_post="off")

    response = admin_client.post(change_url(tony), form)

    assert response.status_code == 302
    tony.refresh_from_db()
    assert (tony.temperature, tony.budget_usd) == (2.0, Decimal("0"))
    assert tony.life_schedule == {"news": [0, 23], "post": []}


@pytest.mark.django_db
def test_the_changelist_switches_still_save_when_old_rows_loop(admin_client, tony, maya):
    """The changelist edits only `enabled` and `life_enabled`; a loop saved before the rule must not
    turn that form into an error about a field it does not show."""
    Persona.objects.filter(pk=tony.pk).update(reports_to=maya)
    Persona.objects.filter(pk=maya.pk).update(reports_to=tony)
    form = {
        "form-TOTAL_FORMS": "2",
        "form-INITIAL_FORMS": "2",
        "form-0-id": str(tony.pk),
        "form-0-enabled": "on",
        "form-1-id": str(maya.pk),
        "_save": "Save",
    }

    response = admin_client.post(reverse("admin:agents_persona_changelist"), form)

    assert response.status_code == 302
    assert Persona.objects.get(pk=maya.pk).enabled is False
