"""Prepared statements: compiled once from the ORM, they select and change what the QuerySet would."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents import prepared
from agents.models import CallerSession, LLMCall, Message, Process
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


def test_a_read_makes_the_instances_the_queryset_would():
    process = make_process(make_persona())
    make_session("caller-1", process, ended_at=timezone.now())
    still = prepared.read(
        lambda pk: CallerSession.objects.filter(pk=pk).annotate(done=Q(ended_at__isnull=False)),
        CallerSession,
        pk="id",
    )
    [orm] = CallerSession.objects.annotate(done=Q(ended_at__isnull=False))
    [found] = still(pk=orm.pk)

    assert {f.attname: getattr(found, f.attname) for f in CallerSession._meta.concrete_fields} == {
        f.attname: getattr(orm, f.attname) for f in CallerSession._meta.concrete_fields
    }
    assert found.done is True and found.ended_at.tzinfo is not None  # converted, as the ORM converts
    assert not found._state.adding and found._state.db == "default"


def test_a_read_takes_no_select_related():
    joined = prepared.read(
        lambda pk: CallerSession.objects.filter(pk=pk).select_related("process"), CallerSession, pk="id"
    )
    with pytest.raises(TypeError, match="select_related"):
        joined(pk=1)


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


def _stored(instance) -> dict:
    """The row as the database holds it, but for what differs between two rows anyway."""
    row = type(instance).objects.filter(pk=instance.pk).values().get()
    return {name: value for name, value in row.items() if name not in {"id", "caller_id"}}


def _rows(process, now, caller_id):
    """Unsaved instances of each model a turn inserts, with values of each kind (JSON, decimal, null)."""
    return [
        Message(
            process=process,
            role="assistant",
            content="Calling it",
            tool_calls=[{"id": "c1", "type": "function", "function": {"name": "x", "arguments": "{}"}}],
            created_at=now,
        ),
        Message(process=process, role="user", content="Hi", tool_calls=None, created_at=now),
        LLMCall(
            process=process,
            provider="openai",
            model="gpt-4o-mini",
            cost_usd=Decimal("0.000001234"),
            ttft_ms=None,
            created_at=now,
        ),
        CallerSession(caller_id=caller_id, process=process, created_at=now, last_seen_at=now),
    ]


@pytest.mark.parametrize("index", range(4))
def test_an_insert_stores_what_save_would(index):
    process, now = make_process(make_persona()), timezone.now()
    by_orm = _rows(process, now, "+14155550101")[index]
    by_orm.save()
    inserted = _rows(process, now, "+14155550102")[index]

    assert prepared.insert(type(inserted))(inserted) is inserted

    assert inserted.pk not in (None, by_orm.pk) and not inserted._state.adding
    assert _stored(inserted) == _stored(by_orm)


def test_an_insert_takes_values_not_expressions():
    process = make_process(make_persona())
    with pytest.raises(TypeError, match="content"):
        prepared.insert(Message)(Message(process=process, role="user", content=Value("x")))
    assert not Message.objects.exists()


def test_a_prepared_process_insert_draws_again_when_its_id_is_taken():
    persona = make_persona()
    taken = make_process(persona)
    process = Process(persona=persona, public_id=taken.public_id)

    process.insert_with_a_free_id(lambda: prepared.insert(Process)(process))

    assert process.public_id != taken.public_id
    assert Process.objects.get(pk=process.pk).public_id == process.public_id
