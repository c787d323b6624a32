"""Operators see what Slack delivered and what became of it, read-only."""

import pytest
from django.urls import reverse

from integrations.models import SlackMessage, SlackThread
from tests.factories import make_process

pytestmark = pytest.mark.django_db


def _failed_message(tony):
    thread = SlackThread.objects.create(team_id="T0001", channel="C0GENERAL", thread_ts="1.000001")
    return SlackMessage.objects.create(
        event_id="Ev0001",
        thread=thread,
        kind="mention",
        user="U0ADA0001",
        ts="1.000001",
        text="<@UBOT> hello",
        status="failed",
        error="Slack: not_in_channel",
        reply="Hello!",
        process=make_process(tony),
    )


def test_failed_messages_are_listed_with_why(admin_client, tony):
    message = _failed_message(tony)
    response = admin_client.get(
        reverse("admin:integrations_slackmessage_changelist") + "?status__exact=failed"
    )
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [message]
    detail = admin_client.get(reverse("admin:integrations_slackmessage_change", args=[message.pk]))
    assert detail.status_code == 200
    assert b"not_in_channel" in detail.content and b"Hello!" in detail.content


def test_slack_rows_cannot_be_added_or_edited(admin_client, tony):
    message = _failed_message(tony)
    assert admin_client.get(reverse("admin:integrations_slackmessage_add")).status_code == 403
    url = reverse("admin:integrations_slackmessage_change", args=[message.pk])
    admin_client.post(url, {"status": "answered"})
    message.refresh_from_db()
    assert message.status == "failed"
    assert admin_client.get(reverse("admin:integrations_slackthread_changelist")).status_code == 200
