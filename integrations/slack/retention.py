"""Slack messages are kept TRON_KEEP_SLACK_DAYS (0: forever): an hourly task (`manage.py
setup_schedules`) deletes the answered and failed ones received before that, in batches
(agents.retention). Messages still waiting are never pruned; threads stay (a channel, a timestamp and
the persona that answers there: nobody's words). The conversations' transcripts follow
TRON_KEEP_TRANSCRIPTS_DAYS."""

from django.conf import settings

from agents.retention import cutoff, in_batches
from integrations.models import SlackMessage

DONE = [SlackMessage.Status.ANSWERED, SlackMessage.Status.FAILED]


def prune_old_messages(now=None) -> str:
    before = cutoff(settings.TRON_KEEP_SLACK_DAYS, now)
    if before is None:
        return "nothing to prune (Slack messages are kept forever)"
    old = SlackMessage.objects.filter(received_at__lt=before, status__in=DONE)
    return f"deleted {in_batches(old, lambda rows: rows.delete())} Slack message(s)"
