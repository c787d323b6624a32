"""What the life loop produced reaches its persona's later prompts: current goals, the latest reflection."""

from io import StringIO

from django.core.management import call_command

from lifeloop.models import Goal, JournalEntry
from tests.factories import ago
from tests.lifeloop.conftest import system_of


def chat(persona):
    call_command("chat", "Hi", "--persona", persona, "--caller", f"ops-{persona}", stdout=StringIO())


def test_a_personas_goals_and_latest_reflection_are_in_its_own_prompts_only(crew, llm):
    tony = crew["tony"]
    Goal.objects.create(persona=tony, title="Cut inference cost")
    Goal.objects.create(persona=tony, title="Hire an SRE")
    Goal.objects.create(persona=tony, title="Old idea", status="dropped")
    JournalEntry.objects.create(persona=tony, kind="reflection", text="Old insight.", created_at=ago(days=2))
    JournalEntry.objects.create(persona=tony, kind="reflection", text="- Small scopes ship.\n- Rest.")
    JournalEntry.objects.create(persona=tony, kind="journal", text="Not a reflection.")
    llm.reset(tokens=["Hi."])

    chat("tony")
    system = system_of(llm.last)
    assert "Your current goals: Hire an SRE; Cut inference cost." in system
    assert "Your latest reflection: - Small scopes ship. - Rest." in system
    assert "Old idea" not in system and "Old insight." not in system and "Not a reflection." not in system

    chat("maya")
    assert "Your current goals" not in system_of(llm.last)
    assert "Cut inference cost" not in system_of(llm.last)


def test_the_context_is_short(crew, llm):
    tony = crew["tony"]
    for number in range(8):
        Goal.objects.create(persona=tony, title=f"Goal {number} " + "x" * 150)
    JournalEntry.objects.create(persona=tony, kind="reflection", text="y" * 5000)
    llm.reset(tokens=["Hi."])
    chat("tony")
    life = [m["content"] for m in llm.last.body["messages"] if m["content"].startswith("Your current goals")]
    assert len(life) == 1
    assert life[0].count("Goal ") == 5
    assert len(life[0]) < 1400
