"""Prepared statements: compiled once from the ORM, they select and change what the QuerySet would."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents import prepared
from agents.models import CallerSession, Process
from tests.factories import make_persona, make_process, make_session

pytestmark = pytest.mark.django_db


seen_since = prepared.read(
    lambda cutoff, channel: (
        CallerSession.objects.filter(last_seen_at__gte=cutoff, channel=channel)
        .annotate(later=F("last_seen_at"))
        .order_by("id")
    ),
    CallerSession,
    cutoff="last_seen_at",
    channel="channel",
)

add_cost = prepared.update(
    lambda pk, cost, error: (
        Process.objects.filter(pk=pk),
        {"cost_usd": F("cost_usd") + cost, "error": Coalesce(error, F("error"))},
    ),
    Process,
    pk="id",
    cost="cost_usd",
    error="error",
)


@pytest.mark.parametrize("minutes", [0, 5, 15, 60])
def test_a_read_selects_what_its_queryset_selects_for_each_value(minutes):
    now = timezone.now()
    process = make_process(make_persona())
    for age in (1, 10, 30):
        make_session(f"caller-{age}", process, last_seen_at=now - timedelta(minutes=age))
    cutoff = now - timedelta(minutes=minutes)

    found = seen_since(cutoff=cutoff, channel="http")

    expected = CallerSession.objects.filter(last_seen_at__gte=cutoff, channel="http").order_by("id")
    assert [s.caller_id for s in found] == [s.caller_id for s in expected]
    assert all(s.later == s.last_seen_at for s in found)  # annotations come as attributes, converted
    assert seen_since(cutoff=cutoff, channel="slack") == []


@pytest.mark.parametrize(
    ("error", "kept"),
    [(None, "earlier failure"), ("", ""), ("upstream down", "upstream down")],
)
def test_an_update_changes_what_its_queryset_would(error, kept):
    process = make_process(make_persona())
    Process.objects.filter(pk=process.pk).update(cost_usd=Decimal("0.5"), error="earlier failure")

    assert add_cost(pk=process.pk, cost=Decimal("0.25"), error=error) == 1
    assert add_cost(pk=process.pk + 1000, cost=Decimal("1"), error=error) == 0

    process.refresh_from_db()
    assert (process.cost_usd, process.error) == (Decimal("0.75"), kept)


def test_the_values_must_be_the_ones_it_was_prepared_with():
    with pytest.raises(TypeError, match="cutoff"):
        seen_since(channel="http")
