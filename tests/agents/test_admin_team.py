"""The control panel for standing instructions (directives) and spend against budget."""

from decimal import Decimal

import pytest
from django.urls import reverse

from agents import budgets
from agents.models import DailySpend, Directive
from tests.agents.test_persona_validation import change_form
from tests.factories import make_persona, make_process

pytestmark = pytest.mark.django_db


@pytest.fixture
def tony(db):
    return make_persona(name="Tony", budget_usd=Decimal("5.00"))


def test_directives_are_listed_edited_switched_off_and_removed(admin_client, tony):
    saved = Directive.objects.create(persona=tony, text="Quote prices in euros.", process=make_process(tony))
    Directive.objects.create(persona=tony, text="Be brief.")
    changelist = reverse("admin:agents_directive_changelist")

    page = admin_client.get(changelist)
    assert page.status_code == 200
    assert {d.text for d in page.context["cl"].result_list} == {"Quote prices in euros.", "Be brief."}
    assert saved.process.public_id in page.content.decode()  # where it was saved

    edit = reverse("admin:agents_directive_change", args=[saved.pk])
    response = admin_client.post(edit, {"persona": tony.pk, "text": "Quote prices in dollars."})
    assert response.status_code == 302
    saved.refresh_from_db()
    assert (saved.text, saved.active) == ("Quote prices in dollars.", False)  # unticked: switched off

    delete = reverse("admin:agents_directive_delete", args=[saved.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert list(Directive.objects.values_list("text", flat=True)) == ["Be brief."]


def test_a_directive_longer_than_its_limit_is_refused_in_the_admin(admin_client, tony):
    response = admin_client.post(
        reverse("admin:agents_directive_add"), {"persona": tony.pk, "text": "x" * 1001, "active": "on"}
    )
    assert response.status_code == 200
    assert "at most 1000 characters" in str(response.context["adminform"].form.errors["text"])
    assert not Directive.objects.exists()


def test_directives_are_added_and_removed_inline_on_the_persona(admin_client, tony):
    old = Directive.objects.create(persona=tony, text="Sign off with 'Cheers'.")
    url = reverse("admin:agents_persona_change", args=[tony.pk])
    page = admin_client.get(url).content.decode()
    assert "Standing instructions (directives)" in page and "Sign off with" in page

    form = change_form(budget_usd="5.00") | {
        "directives-TOTAL_FORMS": "2",
        "directives-INITIAL_FORMS": "1",
        "directives-0-id": str(old.pk),
        "directives-0-persona": str(tony.pk),
        "directives-0-text": old.text,
        "directives-0-active": "on",
        "directives-0-DELETE": "on",
        "directives-1-persona": str(tony.pk),
        "directives-1-text": "Answer in French.",
        "directives-1-active": "on",
    }
    assert admin_client.post(url, form).status_code == 302

    assert list(tony.directives.values_list("text", "active")) == [("Answer in French.", True)]


def test_spend_against_budget_is_on_the_persona_pages_and_per_day(admin_client, tony, settings):
    settings.TRON_DEFAULT_DAILY_BUDGET_USD = None
    maya = make_persona(name="Maya", sort_order=2)
    budgets.settle(tony.pk, Decimal("1.25"), [])
    budgets.hold(tony, Decimal("0.50"))

    personas = admin_client.get(reverse("admin:agents_persona_changelist")).content.decode()
    assert "$1.25 of $5.00" in personas
    assert "$0.00 no daily budget" in personas  # Maya
    change = admin_client.get(reverse("admin:agents_persona_change", args=[tony.pk])).content.decode()
    assert "$1.25 of $5.00" in change

    days = admin_client.get(reverse("admin:agents_dailyspend_changelist"))
    assert days.status_code == 200
    (row,) = days.context["cl"].result_list
    assert (row.persona, row.spent_usd, row.reserved_usd, row.budget_usd) == (
        tony,
        Decimal("1.25"),
        Decimal("0.5"),
        Decimal("5"),
    )
    assert "25%" in days.content.decode()
    assert admin_client.get(reverse("admin:agents_dailyspend_change", args=[row.pk])).status_code == 200
    assert maya.pk not in DailySpend.objects.values_list("persona", flat=True)


def test_daily_spend_rows_cannot_be_added_or_edited(admin_client, tony):
    budgets.settle(tony.pk, Decimal("1"), [])
    row = DailySpend.objects.get()

    assert admin_client.get(reverse("admin:agents_dailyspend_add")).status_code == 403
    admin_client.post(reverse("admin:agents_dailyspend_change", args=[row.pk]), {"spent_usd": "0"})
    row.refresh_from_db()
    assert row.spent_usd == Decimal(1)
