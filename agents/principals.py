"""Who a turn runs for: a principal the edge established from what authenticated the request, never
from anything the model or a caller's words say. Tools check it (agents.tools); work started by a turn
(a delegated task, the memory writer) runs with the principal that started it."""

from dataclasses import dataclass

from django.db import models


class Trust(models.TextChoices):
    PUBLIC = "public", "Public caller"  # phone, ElevenLabs, the chat API: anyone who can reach the server
    TEAM = "team", "Team member"  # Slack workspace members, manage.py chat
    OPERATOR = "operator", "Operator"  # SLACK_ADMIN_USERS, staff users of the admin
    LIFE = "life", "Life loop"  # the persona's own day, which reads text from the internet


@dataclass(frozen=True)
class Principal:
    trust: Trust
    # Whose own data "the caller" means (their notes, their allowance): the caller id of the person who
    # authenticated, which delegated work and the memory writer carry on; "" for nobody.
    caller_id: str = ""
    # Who it is, for the record: a Slack user id, an admin username; "" when the caller id says it.
    name: str = ""
    # A public caller's limits are counted under this (agents.allowances): their caller id when the edge
    # could vouch for it, else their address; "" for no limits.
    allowance: str = ""

    def __str__(self) -> str:
        who = self.name or self.caller_id
        return f"{self.trust.value} ({who})" if who else self.trust.value
