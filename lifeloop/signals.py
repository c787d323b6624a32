"""A persona's schedules follow its settings: saving it (the admin, load_team) updates them at once."""

import logging

from django_q.models import Schedule

from . import schedules

log = logging.getLogger(__name__)


def persona_saved(sender, instance, raw=False, **kwargs):
    if raw:  # loading fixtures
        return
    schedules.sync([instance])


def persona_deleted(sender, instance, **kwargs):
    Schedule.objects.filter(func=schedules.TASK, args__startswith=f"{instance.pk},").delete()
