"""Create or update the django-q2 schedules this app needs, by name, so running it again changes nothing.

Schedules live in code, not hand-made in the admin; `make run` (and any deploy) runs this. django-q2's
Schedule.name is not unique, so this command is what keeps one row per name. Apps built on agents add
theirs through an AppConfig method `setup_schedules(dry_run=...)` that returns one line per change (the
life loop: each persona's activities, from its settings).
"""

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction
from django_q.models import Schedule

SCHEDULES = [
    {
        "name": "agents: end idle sessions",
        "func": "agents.tasks.sweep_idle_sessions",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
        "repeats": -1,
    },
    {
        # Slack messages stored while the broker was down, or left by a worker that died.
        "name": "integrations: resume waiting Slack threads",
        "func": "integrations.slack.tasks.resume_waiting",
        "schedule_type": Schedule.MINUTES,
        "minutes": 1,
        "repeats": -1,
    },
    {
        # Callers' words past TRON_KEEP_TRANSCRIPTS_DAYS / TRON_KEEP_LLM_CALLS_DAYS (agents.retention).
        "name": "agents: retention",
        "func": "agents.tasks.keep_within_retention",
        "schedule_type": Schedule.HOURLY,
        "repeats": -1,
    },
    {
        "name": "integrations: Slack retention",  # Slack messages past TRON_KEEP_SLACK_DAYS
        "func": "integrations.slack.retention.prune_old_messages",
        "schedule_type": Schedule.HOURLY,
        "repeats": -1,
    },
]


class Command(BaseCommand):
    help = "Create or update the periodic tasks (idle-session sweep, waiting Slack threads, retention, the personas' life loops)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="report, write nothing")

    def handle(self, *args, dry_run=False, verbosity=1, **options):
        with transaction.atomic():
            for spec in SCHEDULES:
                fields = {k: v for k, v in spec.items() if k != "name"}
                existing = Schedule.objects.filter(name=spec["name"]).order_by("id")
                first = existing.first()
                if dry_run:
                    action = "create" if first is None else "update"
                elif first is None:
                    Schedule.objects.create(name=spec["name"], **fields)
                    action = "created"
                else:
                    existing.exclude(pk=first.pk).delete()  # duplicates made by hand
                    Schedule.objects.filter(pk=first.pk).update(**fields)
                    action = "updated"
                if verbosity > 0:
                    self.stdout.write(f"{action}: {spec['name']} ({spec['func']})")
            for config in apps.get_app_configs():
                if hook := getattr(config, "setup_schedules", None):
                    for line in hook(dry_run=dry_run):
                        if verbosity > 0:
                            self.stdout.write(f"{'would ' if dry_run else ''}{line}")
