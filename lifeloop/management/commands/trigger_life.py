"""Run a life-loop activity now, from the shell, as /internal/life/trigger does over HTTP.

    manage.py trigger_life post --persona tony    # Tony writes (and publishes) a post
    manage.py trigger_life news                   # every persona whose life loop is on, side by side

Why it exists: to see an activity work (or fail) without waiting for its hour, and to demo the loop.
Manual runs ignore the schedule and never take a scheduled slot. Exits non-zero when a run failed.
"""

from django.core.management.base import BaseCommand, CommandError

from agents.llm.local import model_process_while_needed
from lifeloop.models import ActivityRun
from lifeloop.runner import result_text, run_activity
from lifeloop.trigger import ACTIVITY_NAMES, UnknownPersona, find_persona, life_personas, run_all


class Command(BaseCommand):
    help = "Run a life-loop activity now for one persona, or for every persona whose life loop is on."

    def add_arguments(self, parser):
        parser.add_argument("activity", choices=ACTIVITY_NAMES)
        parser.add_argument("--persona", default=None, help="one persona (default: all with a life loop)")

    def handle(self, *args, activity, persona, **options):
        try:
            targets = [find_persona(persona)] if persona else life_personas()
        except UnknownPersona as exc:
            raise CommandError(str(exc)) from exc
        if not targets:
            raise CommandError(
                "No persona has its life loop on: pass --persona, or switch one on in the admin."
            )
        with model_process_while_needed():
            if len(targets) == 1:
                runs = {targets[0].name: run_activity(targets[0], activity)}
            else:
                runs = run_all(targets, activity)
        for name, run in runs.items():
            self.stdout.write(f"{name}: {result_text(run)}")
        failed = [name for name, run in runs.items() if run.status == ActivityRun.Status.FAILED]
        if failed:
            raise CommandError(f"{activity} failed for {', '.join(failed)}.")
