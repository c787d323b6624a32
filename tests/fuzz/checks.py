"""What must hold after any request, whatever it was: every row an edge writes fits its columns, holds
text a database stores, and reads back, through the ORM and through the control API."""

import httpx2
from django.db import models

from agents.models import CallerSession, Message, Process
from integrations.models import SlackMessage, SlackThread

WRITTEN_FROM_OUTSIDE = (Process, CallerSession, Message, SlackThread, SlackMessage)


def assert_nothing_stored_is_garbage(server):
    for model in WRITTEN_FROM_OUTSIDE:
        for row in model.objects.all():  # the ORM's converters read every column back
            for field in model._meta.concrete_fields:
                value = getattr(row, field.attname)
                if isinstance(value, str):
                    assert "\x00" not in value, (model, field.name)
                    value.encode("utf-8")  # no lone surrogate
                    if isinstance(field, models.CharField):
                        assert len(value) <= field.max_length, (model, field.name, len(value))
    for path in ("/api/processes?limit=1000", "/api/sessions?include_ended=true&limit=1000"):
        response = httpx2.get(f"{server.url}{path}", timeout=30)
        assert response.status_code == 200, (path, response.text[:500])


def assert_an_answer_not_a_failure(response):
    """Below 500, and an error in the envelope."""
    assert response.status_code < 500, response.text[:500]
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
