"""When each persona's activities run: hours of the persona's time zone, kept as django-q2 schedules.

Each persona whose life loop is on has one django-q2 Schedule per activity with hours (`life:
<Persona> <activity>`, func `lifeloop.tasks.run_scheduled`, args `<persona id>, '<activity>'`). They are
created and updated from the persona's settings (`sync`): by `setup_schedules`, whenever a persona is
saved, and by every scheduled run for its own persona.

django-q2 computes cron times in one time zone for all schedules, so a schedule's cron holds the UTC
hours of its next occurrences and `sync` sets `next_run` to the exact next slot in the persona's zone
(daylight saving time included) whenever it is in the future and differs. A schedule already due is
left alone: the scheduler is about to run it.

A run's slot is the latest scheduled hour at or before the moment it runs (`latest_slot`): after
downtime, the one run the scheduler makes (it does not catch up, and a cron's next time is computed
from now) takes the most recent missed slot, and ActivityRun's unique (persona, activity, slot) makes a
second run of the same slot impossible, whichever worker tries.
"""

import logging
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

from agents.models import Persona

from .models import Activity

log = logging.getLogger(__name__)

TASK = "lifeloop.tasks.run_scheduled"
NAME_PREFIX = "life: "

# The original server's hours (docs: original-tron.md §8); a persona's life_schedule overrides them per
# activity, and an empty list switches an activity off.
DEFAULT_HOURS = {
    Activity.NEWS: [6, 12, 18],
    Activity.GOALS: [9],
    Activity.TEAM_CHECK: [10, 14, 17],
    Activity.REFLECTION: [15, 21],
    Activity.JOURNAL: [18, 22],
    Activity.POST: [8, 12, 17, 20],
}


def hours_for(persona: Persona, activity: str) -> list[int]:
    """The hours (of the persona's time zone) the activity runs at; [] when it is off."""
    if not (persona.enabled and persona.life_enabled):
        return []
    hours = (persona.life_schedule or {}).get(activity, DEFAULT_HOURS[activity])
    return sorted(set(hours))


def _zone(persona: Persona) -> ZoneInfo:
    try:
        return ZoneInfo(persona.time_zone or "UTC")
    except (ValueError, OSError):  # not a valid name: the model's validator refuses it, the shell may not
        log.warning("Persona %s has an unknown time zone %r; using UTC", persona.name, persona.time_zone)
        return ZoneInfo("UTC")


def _slots(persona: Persona, activity: str, around: datetime, days: range):
    zone = _zone(persona)
    today = around.astimezone(zone).date()
    for offset in days:
        day = today + timedelta(days=offset)
        for hour in hours_for(persona, activity):
            yield datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC)


def latest_slot(persona: Persona, activity: str, now: datetime | None = None) -> datetime | None:
    """The latest scheduled hour at or before `now` (in UTC), or None when the activity has no hours."""
    now = now or timezone.now()
    past = [slot for slot in _slots(persona, activity, now, range(-2, 1)) if slot <= now]
    return max(past, default=None)


def next_slot(persona: Persona, activity: str, now: datetime | None = None) -> datetime | None:
    """The first scheduled hour after `now` (in UTC), or None when the activity has no hours."""
    now = now or timezone.now()
    future = [slot for slot in _slots(persona, activity, now, range(0, 3)) if slot > now]
    return min(future, default=None)


def cron_for(persona: Persona, activity: str, now: datetime) -> str:
    """A cron line (UTC) with the UTC hour of each scheduled hour's next occurrence."""
    zone = _zone(persona)
    today = now.astimezone(zone).date()
    upcoming = []
    for hour in hours_for(persona, activity):
        for offset in range(3):
            slot = datetime.combine(today + timedelta(days=offset), time(hour), tzinfo=zone).astimezone(UTC)
            if slot > now:
                upcoming.append(slot)
                break
    upcoming.sort()
    minute = upcoming[0].minute  # zones' offsets are whole hours or one fixed fraction of one
    return f"{minute} {','.join(str(hour) for hour in sorted({slot.hour for slot in upcoming}))} * * *"


def schedule_args(persona: Persona, activity: str) -> str:
    return f"{persona.pk}, {activity!r}"


def wanted(persona: Persona, now: datetime) -> dict[str, dict]:
    """The schedules this persona should have, by args."""
    specs = {}
    for activity in Activity.values:
        if hours_for(persona, activity):
            specs[schedule_args(persona, activity)] = {
                "name": f"{NAME_PREFIX}{persona.name} {activity}",
                "cron": cron_for(persona, activity, now),
                "next_run": next_slot(persona, activity, now),
            }
    return specs


def sync(personas, *, now: datetime | None = None, prune: bool = False, dry_run: bool = False) -> list[str]:
    """Make the life-loop schedules of `personas` match their settings; with `prune`, also delete life
    schedules of personas that no longer exist. Returns what changed, one line each."""
    now = now or timezone.now()
    specs = {}
    for persona in personas:
        specs.update(wanted(persona, now))
    existing = Schedule.objects.filter(func=TASK)
    if not prune:
        prefixes = [f"{persona.pk}," for persona in personas]
        existing = [s for s in existing if s.args and s.args.startswith(tuple(prefixes))]
    changes = []
    with transaction.atomic():
        kept = set()
        for schedule in existing:
            spec = specs.get(schedule.args)
            if spec is None or schedule.args in kept:
                changes.append(f"delete: {schedule.name}")
                if not dry_run:
                    schedule.delete()
                continue
            kept.add(schedule.args)
            update = {k: spec[k] for k in ("name", "cron") if getattr(schedule, k) != spec[k]}
            due = schedule.next_run is not None and schedule.next_run <= now
            if not due and schedule.next_run != spec["next_run"]:
                update["next_run"] = spec["next_run"]
            if schedule.schedule_type != Schedule.CRON or schedule.repeats != -1:
                update.update(schedule_type=Schedule.CRON, repeats=-1)
            if update:
                changes.append(f"update: {spec['name']} ({', '.join(sorted(update))})")
                if not dry_run:
                    Schedule.objects.filter(pk=schedule.pk).update(**update)
        for args, spec in specs.items():
            if args in kept:
                continue
            changes.append(f"create: {spec['name']} ({spec['cron']} UTC)")
            if not dry_run:
                created = Schedule.objects.create(
                    func=TASK, args=args, schedule_type=Schedule.CRON, repeats=-1, **spec
                )
                # Schedule.save() computes a new cron schedule's next_run in django-q2's one time zone.
                Schedule.objects.filter(pk=created.pk).update(next_run=spec["next_run"])
    return changes


def sync_all(*, dry_run: bool = False) -> list[str]:
    return sync(list(Persona.objects.all()), prune=True, dry_run=dry_run)


def scheduled_persona_ids() -> set[int]:
    """Ids of the personas that have at least one life-loop schedule."""
    ids = set()
    for args in Schedule.objects.filter(func=TASK).exclude(repeats=0).values_list("args", flat=True):
        head = (args or "").split(",", 1)[0].strip()
        if head.isdigit():
            ids.add(int(head))
    return ids


def hour_start(persona: Persona, now: datetime) -> datetime:
    """The start of the hour of the persona's time zone that `now` is in (in UTC)."""
    local = now.astimezone(_zone(persona))
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
