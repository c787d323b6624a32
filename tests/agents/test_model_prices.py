"""Model prices set in the admin: over the defaults, applied at once in the process that saved them, within
TRON_CACHE_SECONDS in the others, and read from memory on the event loop."""

from decimal import Decimal

import pytest
from django.urls import reverse

from agents import pricing
from agents.models import ModelPrice
from tests.factories import make_llm_call, make_process

CHANGELIST = reverse("admin:agents_modelprice_changelist")
ADD = reverse("admin:agents_modelprice_add")
WAIT = 30  # seconds a wait may last: a bound, not a latency check


def add_price(client, model, input_price, output_price):
    return client.post(
        ADD, {"model": model, "input_usd_per_million": input_price, "output_usd_per_million": output_price}
    )


@pytest.mark.django_db
def test_a_price_set_in_the_admin_prices_the_next_call(admin_client):
    assert pricing.cost_usd("acme-large", 1_000_000, 0) == 0  # unknown: no price
    assert add_price(admin_client, "Acme-Large", "3", "12").status_code == 302
    assert pricing.cost_usd("acme-large-2026-01-01", 1_000_000, 1_000_000) == Decimal("15")
    assert pricing.cost_usd("openai/ACME-LARGE", 0, 500_000) == Decimal("6")


@pytest.mark.django_db
def test_a_price_set_in_the_admin_replaces_the_default_and_deleting_it_restores_it(admin_client):
    assert pricing.price_for("gpt-4o-mini") == (Decimal("0.15"), Decimal("0.60"))
    add_price(admin_client, "gpt-4o-mini", "1", "2")
    assert pricing.price_for("gpt-4o-mini") == (Decimal("1"), Decimal("2"))
    price = ModelPrice.objects.get()
    response = admin_client.post(reverse("admin:agents_modelprice_delete", args=[price.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert pricing.price_for("gpt-4o-mini") == (Decimal("0.15"), Decimal("0.60"))


@pytest.mark.django_db
def test_a_model_priced_zero_is_free_on_the_dashboard(admin_client, tony):
    make_llm_call(make_process(tony), model="acme-local", cost_usd=0)
    assert "no price set for acme-local" in admin_client.get("/admin/").content.decode()
    add_price(admin_client, "acme-local", "0", "0")
    html = admin_client.get("/admin/").content.decode()
    assert "no price set" not in html
    assert (
        '<td>acme-local</td><td class="num">1</td><td class="num">120</td><td class="num">free</td>' in html
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("model", "input_price", "message"),
    [
        ("GPT-4O-MINI", "1", "This model has a price already"),
        ("acme", "-1", "Must not be negative."),
    ],
)
def test_the_admin_refuses_a_duplicate_or_negative_price(admin_client, model, input_price, message):
    ModelPrice.objects.create(model="gpt-4o-mini", input_usd_per_million=1, output_usd_per_million=1)
    response = add_price(admin_client, model, input_price, "1")
    assert response.status_code == 200
    assert message in response.content.decode()
    assert ModelPrice.objects.count() == 1


@pytest.mark.django_db
def test_the_list_shows_the_defaults_the_prices_apply_over(admin_client, settings):
    settings.TRON_PRICES = {"house-model": {"input": 0.5, "output": 1}}
    pricing.clear_cache()
    ModelPrice.objects.create(model="gpt-4o", input_usd_per_million=1, output_usd_per_million=4)
    html = admin_client.get(CHANGELIST).content.decode()
    defaults = " ".join(html.split('id="default-prices"')[1].split("</table>")[0].split())
    assert "<td>house-model</td><td>$0.50 in / $1.00 out</td>" in defaults
    assert "<td>smollm2-135m-instruct</td><td>free</td>" in defaults
    assert "$2.50 in / $10.00 out" in html.split('id="result_list"')[1]  # what the row replaces


@pytest.mark.django_db
def test_another_process_reads_a_change_within_the_cache_time(settings):
    price = ModelPrice.objects.create(model="acme", input_usd_per_million=1, output_usd_per_million=1)
    assert pricing.cost_usd("acme", 1_000_000, 0) == Decimal(1)
    # Written by another process: no signal reaches this one.
    ModelPrice.objects.filter(pk=price.pk).update(input_usd_per_million=7)
    settings.TRON_CACHE_SECONDS = 3600
    assert pricing.cost_usd("acme", 1_000_000, 0) == Decimal(1)  # its copy, until it is due
    settings.TRON_CACHE_SECONDS = 0
    assert pricing.cost_usd("acme", 1_000_000, 0) == Decimal(7)
