"""A release's database steps, run once per release, on one machine, before the nodes are restarted
(deploy/systemd/tron-release.service; the README's "Running in production"):

1. `check --deploy --fail-level WARNING`: a missing secret or a development setting stops the release
   before anything is changed;
2. `migrate`;
3. `load_team` (personas the team file adds; edited ones are left alone), `setup_schedules`,
   `ensure_admin`.

Nodes never migrate when they start: several starting at once would race, and during a rolling restart
the nodes still on the old release keep serving on the migrated schema, so a release's migrations must
be ones the previous release can run on. `make run` (one machine) runs the same steps itself.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Once per release, before the nodes restart: deployment checks, migrate, team, schedules, admin user."
    )

    def handle(self, *args, verbosity=1, **options):
        call_command("check", deploy=True, fail_level="WARNING", verbosity=verbosity)
        call_command("migrate", interactive=False, verbosity=verbosity)
        call_command("load_team", verbosity=verbosity)
        call_command("setup_schedules", verbosity=verbosity)
        call_command("ensure_admin", verbosity=verbosity)
        self.stdout.write(self.style.SUCCESS("Release steps done: restart the nodes one at a time."))
