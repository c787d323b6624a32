"""Export conversations as JSONL, one conversation a line: in OpenAI's chat fine-tuning format, or in the
replay's input format (agents.recordings). The same as the process list's export actions in the admin.

    manage.py export_conversations --persona tony --since 2026-12-01 > tony.jsonl
    manage.py export_conversations --format replay --process a1b2c3d4 --process e5f6a7b8 -o two.jsonl

Only what is stored is read: conversations and lines a retention rule removed are not there. Memory
updates and replays are not conversations and are never exported.
"""

import contextlib
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from agents.models import Persona, Process
from agents.recordings import FORMS, export_lines


class Command(BaseCommand):
    help = "Export conversations as JSONL (OpenAI fine-tuning, or the replay's input)."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=sorted(FORMS), default="openai", help="default: openai")
        parser.add_argument("--persona", help="only this persona's conversations (any case)")
        parser.add_argument("--process", action="append", default=[], help="a process id (repeatable)")
        parser.add_argument(
            "--since", help="only conversations started on or after this UTC date (YYYY-MM-DD)"
        )
        parser.add_argument("--limit", type=int, help="at most this many, the latest")
        parser.add_argument("-o", "--output", help="a file to write (default: standard output)")

    def handle(self, *args, format, persona, process, since, limit, output, **options):
        processes = Process.objects.all()
        if persona:
            ids = Persona.objects.ids_named(persona)
            if not ids:
                raise CommandError(f"No persona is called {persona!r}.")
            processes = processes.filter(persona__in=ids)
        if process:
            processes = processes.filter(public_id__in=[p.strip().lower() for p in process])
        if since:
            try:
                start = datetime.strptime(since, "%Y-%m-%d").replace(tzinfo=UTC)
            except ValueError:
                raise CommandError(f"--since must be a date like 2026-12-01, got {since!r}") from None
            processes = processes.filter(started_at__gte=start)
        if limit is not None:
            if limit < 1:
                raise CommandError("--limit must be at least 1")
            latest = processes.order_by("-started_at", "-id").values_list("pk", flat=True)[:limit]
            processes = Process.objects.filter(pk__in=list(latest))
        count = 0
        with open(output, "w", encoding="utf-8") if output else contextlib.nullcontext(self.stdout) as stream:
            for line in export_lines(processes, format):
                stream.write(line + "\n")
                count += 1
        if options["verbosity"] > 0:
            self.stderr.write(f"Exported {count} conversation(s) as {format} JSONL.")
