import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from agents.models import Persona
from tests.factories import make_persona

EXECUTIVES = ["Tony", "Maya", "Alex", "Jordan", "Riley"]
TEAMS = {
    "Tony": ["Sarah", "Gary", "Derek", "Claire"],
    "Maya": ["Priya", "Jasper", "Naomi", "Zoe"],
    "Alex": ["Quinn", "Mia", "Finn"],
    "Jordan": ["Harper", "Blake", "Morgan", "Avery"],
    "Riley": ["Taylor", "Cameron", "Drew", "Jamie"],
}
DEFAULT_HOURS = {
    "news": [6, 12, 18],
    "goals": [9],
    "team_check": [10, 14, 17],
    "reflection": [15, 21],
    "journal": [18, 22],
}
POST_HOURS = {
    "Tony": [8, 12, 17, 20],
    "Maya": [9, 13, 16, 19],
    "Alex": [7, 14, 21],
    "Jordan": [10, 15, 18],
    "Riley": [11, 14, 17, 20],
}

VALID_PERSONA = """
[[persona]]
name = "Ada"
role = "CTO"
system_prompt = "You are Ada."
"""
BO = 'name = "Bo"\nrole = "X"\nsystem_prompt = "Hi"\n'


def load_team(*args, **options) -> str:
    out = io.StringIO()
    call_command("load_team", *args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def snapshot():
    return list(Persona.objects.order_by("pk").values())


def write_team(tmp_path, text: str):
    path = tmp_path / "team.toml"
    path.write_text(text)
    return path


@pytest.mark.django_db
def test_it_loads_the_five_executives_with_role_focus_tone_and_prompt():
    load_team()

    executives = Persona.objects.filter(kind=Persona.Kind.EXECUTIVE)
    assert [p.name for p in executives] == EXECUTIVES
    roles = {p.name: p.role for p in executives}
    assert roles == {"Tony": "CTO", "Maya": "CMO", "Alex": "CEO", "Jordan": "CFO", "Riley": "CPO"}
    tony = Persona.objects.named("tony")
    assert tony.focus_areas == ["engineering", "technology", "architecture", "ai", "infrastructure"]
    assert tony.tone == "Technical and pragmatic, with dry humor"
    assert "list_servers" in tony.system_prompt
    assert Persona.objects.named("Jordan").focus_areas[:2] == ["finance", "runway"]
    assert all(p.reports_to is None for p in executives)


@pytest.mark.django_db
def test_tonys_specialists_report_to_tony():
    load_team()

    tony = Persona.objects.named("Tony")
    reports = tony.reports.all()
    assert [p.name for p in reports] == TEAMS["Tony"]
    assert all(p.kind == Persona.Kind.SPECIALIST for p in reports)
    assert Persona.objects.named("Derek").tools == [
        "read_file", "write_file", "list_files", "web_search", "execute", "create_project",
        "start_server", "stop_server", "get_server_url", "list_servers", "get_project_status",
    ]  # fmt: skip


@pytest.mark.django_db
def test_it_loads_all_24_personas_each_specialist_under_their_lead():
    output = load_team()

    assert Persona.objects.count() == 24
    assert "created 24, updated 0, unchanged 0" in output
    for lead, team in TEAMS.items():
        assert sorted(p.name for p in Persona.objects.named(lead).reports.all()) == sorted(team)
    assert not Persona.objects.filter(kind=Persona.Kind.SPECIALIST, reports_to=None).exists()


@pytest.mark.django_db
def test_it_orders_executives_first_then_specialists_grouped_by_lead():
    load_team()

    names = list(Persona.objects.values_list("name", flat=True))
    assert names[:5] == EXECUTIVES
    assert names[5:] == [name for lead in EXECUTIVES for name in TEAMS[lead]]
    assert [Persona.objects.named(n).sort_order for n in EXECUTIVES] == [1, 2, 3, 4, 5]


@pytest.mark.django_db
def test_it_copies_the_originals_tony_tools_temperature_and_budget():
    load_team()

    tony = Persona.objects.named("Tony")
    assert tony.tools == [  # the original's, and check_task beside spawn_agent (delegation)
        "list_team", "spawn_agent", "check_task", "schedule_callback", "web_search", "identify_caller", "create_project",
        "list_projects", "list_servers", "get_server_url", "save_directive", "save_person_memory",
        "read_file", "write_file", "list_files",
        "recall_person",  # not the original's: its memory was write-only
    ]  # fmt: skip
    assert tony.temperature == 0.7
    assert tony.budget_usd == Decimal("5.00")
    assert Persona.objects.named("Mia").budget_usd == Decimal("2.00")
    assert Persona.objects.named("Jasper").temperature == 0.8


@pytest.mark.django_db
def test_it_leaves_the_model_empty_so_the_server_default_applies():
    load_team()

    assert set(Persona.objects.values_list("model", flat=True)) == {""}


@pytest.mark.django_db
def test_running_it_twice_changes_nothing():
    load_team()
    before = snapshot()

    output = load_team()

    assert snapshot() == before
    assert Persona.objects.count() == 24
    assert "created 0, updated 0, unchanged 24" in output


@pytest.mark.django_db
def test_running_it_twice_with_update_changes_nothing():
    load_team()
    before = snapshot()

    output = load_team("--update")

    assert snapshot() == before
    assert "created 0, updated 0, unchanged 24" in output


@pytest.mark.django_db
def test_it_keeps_an_admin_edit_without_update():
    load_team()
    Persona.objects.filter(name="Tony").update(tone="Grumpy", system_prompt="You are Tony, briefly.")

    output = load_team()

    tony = Persona.objects.named("Tony")
    assert (tony.tone, tony.system_prompt) == ("Grumpy", "You are Tony, briefly.")
    assert "created 0, updated 0, unchanged 24 (1 differs from the file" in output


@pytest.mark.django_db
def test_it_only_creates_the_personas_that_are_missing():
    make_persona(name="tony", role="Chief Tinkerer", system_prompt="You are tony.")

    output = load_team()

    assert Persona.objects.count() == 24
    assert Persona.objects.named("Tony").role == "Chief Tinkerer"
    assert Persona.objects.named("Sarah").reports_to == Persona.objects.named("Tony")
    assert "created 23, updated 0, unchanged 1" in output


@pytest.mark.django_db
def test_update_restores_the_files_values():
    load_team()
    file_prompt = Persona.objects.named("Tony").system_prompt
    Persona.objects.filter(name="Tony").update(
        tone="Grumpy", system_prompt="You are Tony.", focus_areas=["golf"], budget_usd=Decimal("99")
    )
    Persona.objects.filter(name="Sarah").update(reports_to=Persona.objects.named("Maya"))

    output = load_team("--update")

    tony = Persona.objects.named("Tony")
    assert tony.tone == "Technical and pragmatic, with dry humor"
    assert tony.system_prompt == file_prompt
    assert tony.focus_areas == ["engineering", "technology", "architecture", "ai", "infrastructure"]
    assert tony.budget_usd == Decimal("5.00")
    assert Persona.objects.named("Sarah").reports_to == tony
    assert "created 0, updated 2, unchanged 22" in output


@pytest.mark.django_db
def test_update_keeps_fields_the_file_does_not_set():
    load_team()
    Persona.objects.filter(name="Tony").update(model="claude-sonnet-4-20250514", enabled=False)

    load_team("--update")

    tony = Persona.objects.named("Tony")
    assert (tony.model, tony.enabled) == ("claude-sonnet-4-20250514", False)


@pytest.mark.django_db
def test_dry_run_writes_nothing():
    output = load_team("--dry-run")

    assert Persona.objects.count() == 0
    assert "Dry run, nothing written" in output
    assert "would have created 24, updated 0, unchanged 0" in output


@pytest.mark.django_db
def test_dry_run_with_update_reports_the_change_but_writes_nothing():
    load_team()
    Persona.objects.filter(name="Tony").update(tone="Grumpy")
    before = snapshot()

    output = load_team("--update", "--dry-run", verbosity=2)

    assert snapshot() == before
    assert "update Tony: tone" in output
    assert "would have created 0, updated 1, unchanged 23" in output


@pytest.mark.django_db
def test_verbosity_zero_prints_nothing_and_verbosity_two_lists_each_persona():
    assert load_team(verbosity=0) == ""
    assert "keep Sarah" in load_team(verbosity=2)


@pytest.mark.django_db
def test_it_loads_another_file_and_resolves_leads_already_in_the_database(tmp_path):
    make_persona(name="Tony")
    path = write_team(
        tmp_path,
        VALID_PERSONA
        + """
[[persona]]
name = "Bo"
role = "Engineer"
kind = "specialist"
reports_to = "tony"
system_prompt = "You are Bo."
""",
    )

    output = load_team("--file", str(path))

    assert "created 2, updated 0, unchanged 0" in output
    assert Persona.objects.named("Bo").reports_to == Persona.objects.named("Tony")
    assert Persona.objects.named("Ada").kind == Persona.Kind.EXECUTIVE


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("persona", "message"),
    [
        (BO + 'mood = "sunny"', "persona Bo: unknown key(s) 'mood'"),
        ('role = "X"\nsystem_prompt = "Hi"', "persona #2: key 'name' is missing"),
        ('name = "Bo"\nsystem_prompt = "Hi"', "persona Bo: key 'role' is missing"),
        ('name = "Bo"\nrole = "X"', "persona Bo: key 'system_prompt' is missing"),
        ('name = "Bo"\nrole = "X"\nsystem_prompt = " "', "persona Bo: key 'system_prompt': This field cannot be blank"),
        ('name = " "\nrole = "X"\nsystem_prompt = "Hi"', "persona #2: key 'name': This field cannot be blank"),
        ('name = "' + "B" * 65 + '"\nrole = "X"\nsystem_prompt = "Hi"', "key 'name': Ensure this value has at most 64"),
        (BO + 'kind = "intern"', "persona Bo: key 'kind': Value 'intern' is not a valid choice"),
        (BO + "kind = 1", "persona Bo: key 'kind' must be a string"),
        (BO + 'reports_to = "Nobody"', "persona Bo: key 'reports_to': no persona named 'Nobody'"),
        (BO + 'reports_to = "bo"', "persona Bo: key 'reports_to': A persona cannot report to itself"),
        (BO + 'reports_to = "Cy"\n[[persona]]\nname = "Cy"\nrole = "X"\nsystem_prompt = "Hi"\nreports_to = "Bo"',
         "persona Bo: key 'reports_to': A persona cannot report to itself, directly or through its leads"),
        ('name = "ADA"\nrole = "X"\nsystem_prompt = "Hi"', "persona ADA: key 'name': duplicate name"),
        (BO + 'tools = "web_search"', "persona Bo: key 'tools': Must be a list of non-empty strings"),
        (BO + 'tools = ["web_search", ""]', "persona Bo: key 'tools': Must be a list of non-empty strings"),
        (BO + "focus_areas = [1]", "persona Bo: key 'focus_areas': Must be a list of non-empty strings"),
        (BO + "temperature = 3.5", "persona Bo: key 'temperature': Must be a number from 0 to 2"),
        (BO + "temperature = -0.1", "persona Bo: key 'temperature': Must be a number from 0 to 2"),
        (BO + 'temperature = "0.5"', "persona Bo: key 'temperature' must be a number"),
        (BO + "budget_usd = 1.005", "persona Bo: key 'budget_usd': Ensure that there are no more than 2 decimal"),
        (BO + "budget_usd = -1", "persona Bo: key 'budget_usd': Must not be negative"),
        (BO + "budget_usd = nan", "persona Bo: key 'budget_usd' must be"),
        (BO + "temperature = inf", "persona Bo: key 'temperature' must be a number"),
        (BO + "life_enabled = 1", "persona Bo: key 'life_enabled' must be true or false"),
        (BO + "life_schedule = { news = [25] }", "persona Bo: key 'life_schedule': 'news' must be a list"),
        (BO + "life_schedule = { nap = [13] }", "persona Bo: key 'life_schedule': Unknown activity 'nap'"),
        (BO + "life_schedule = [6]", "persona Bo: key 'life_schedule': Must be an object of activity"),
        (BO + "sort_order = 40000", "persona Bo: key 'sort_order': Ensure this value is less than or equal to"),
        (BO + "sort_order = true", "persona Bo: key 'sort_order' must be a whole number"),
    ],
)  # fmt: skip
def test_a_bad_file_gives_a_command_error_naming_the_problem_and_writes_nothing(tmp_path, persona, message):
    # The valid persona comes first, so "writes nothing" also means "not even the good rows".
    path = write_team(tmp_path, VALID_PERSONA + "\n[[persona]]\n" + persona + "\n")

    with pytest.raises(CommandError) as excinfo:
        load_team("--file", str(path))

    assert message in str(excinfo.value)
    assert Persona.objects.count() == 0


@pytest.mark.django_db
def test_a_missing_file_is_a_command_error(tmp_path):
    with pytest.raises(CommandError, match="Team file not found"):
        load_team("--file", str(tmp_path / "nope.toml"))


@pytest.mark.django_db
def test_a_file_that_is_not_toml_is_a_command_error(tmp_path):
    path = write_team(tmp_path, "[[persona]\nname = ")

    with pytest.raises(CommandError, match="is not valid TOML"):
        load_team("--file", str(path))
    assert Persona.objects.count() == 0


@pytest.mark.django_db
def test_executives_have_the_life_loop_and_a_schedule_and_specialists_do_not():
    load_team()

    for name in EXECUTIVES:
        persona = Persona.objects.named(name)
        assert persona.life_enabled
        assert persona.life_schedule == {**DEFAULT_HOURS, "post": POST_HOURS[name]}
    specialists = Persona.objects.filter(kind=Persona.Kind.SPECIALIST)
    assert specialists.count() == 19
    assert not specialists.filter(life_enabled=True).exists()
    assert all(p.life_schedule == {} for p in specialists)
    assert list(Persona.objects.with_life_loop().values_list("name", flat=True)) == EXECUTIVES


@pytest.mark.django_db
def test_every_system_prompt_is_substantial_and_mentions_its_persona():
    load_team()

    for persona in Persona.objects.all():
        prompt = persona.system_prompt
        words = len(prompt.split())
        assert f"You are {persona.name}" in prompt
        assert "phone call" in prompt
        assert "never invent" in prompt.lower()
        if persona.kind == Persona.Kind.EXECUTIVE:
            assert len(prompt) > 300 and 120 <= words <= 300, persona.name
            assert "$25K" in prompt
            assert all(name in prompt for name in TEAMS[persona.name])
        else:
            assert 60 <= words <= 150, persona.name
            assert persona.reports_to.name in prompt


@pytest.mark.django_db
def test_alex_is_the_ceo_and_jordan_the_cfo_everywhere():
    load_team()

    alex, jordan = Persona.objects.named("Alex"), Persona.objects.named("Jordan")
    assert "You are Alex, the CEO" in alex.system_prompt
    assert "You are Jordan, the CFO" in jordan.system_prompt
    for persona in Persona.objects.exclude(pk__in=[alex.pk, jordan.pk]):
        assert "Alex (CFO)" not in persona.system_prompt
        assert "Jordan (COO)" not in persona.system_prompt
        assert "Jordan (CEO)" not in persona.system_prompt
