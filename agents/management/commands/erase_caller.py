"""Erase everything stored about a caller who asked to be forgotten (agents.erasure): the same as the
sessions list's admin action "Erase everything about these callers…".

    manage.py erase_caller +14155551234            # a phone number, in any form
    manage.py erase_caller req-5f0c… U0ADA0001     # caller ids as the admin shows them, a Slack user id

A caller with a turn waiting or running is refused (exit status 1): run it again once the turn ended.
"""

from django.core.management.base import BaseCommand, CommandError

from agents.erasure import CallerBusy, erase


class Command(BaseCommand):
    help = "Erase everything about a caller: their transcripts, sessions, memory, usage and Slack rows."

    def add_arguments(self, parser):
        parser.add_argument(
            "callers",
            nargs="+",
            metavar="caller",
            help="a caller id as the admin shows it (+14155551234, req-…, user-…, elevenlabs-user-…, conv-…, "
            "call-…, slack-…), a phone number in any form, or a Slack user id",
        )

    def handle(self, *args, callers, **options):
        if not any(value.strip() for value in callers):
            raise CommandError("Name the caller to erase.")
        try:
            erased = erase(callers, by="manage.py erase_caller")
        except CallerBusy as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Erased: {erased.summary()}.")
        if erased.trace_ids:
            self.stdout.write(
                "Their conversations' traces, to delete in the tracing backend: " + " ".join(erased.trace_ids)
            )
