from django.apps import AppConfig


class LifeloopConfig(AppConfig):
    name = "lifeloop"
    verbose_name = "Life loop"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from agents import prompt_context
        from agents.models import Persona

        from . import signals
        from .models import Goal, JournalEntry
        from .prompt_goals import goals_and_reflection

        prompt_context.provides(goals_and_reflection, per_persona=True, changes_with=[Goal, JournalEntry])
        post_save.connect(signals.persona_saved, sender=Persona, dispatch_uid="lifeloop.persona_saved")
        post_delete.connect(signals.persona_deleted, sender=Persona, dispatch_uid="lifeloop.persona_deleted")

    # Hooks the agents app calls without importing this one (agents imports no app built on it).

    def setup_schedules(self, *, dry_run: bool = False) -> list[str]:
        """`manage.py setup_schedules`: every persona's life-loop schedules, from its settings."""
        from .schedules import sync_all

        return sync_all(dry_run=dry_run)

    def life_loop_persona_ids(self) -> set[int]:
        """/api/status's `active_personas`: the personas that have life-loop schedules."""
        from .schedules import scheduled_persona_ids

        return scheduled_persona_ids()

    def default_life_hours(self) -> dict[str, list[int]]:
        """The persona form's default hours per activity (agents.persona_form)."""
        from .schedules import DEFAULT_HOURS

        return {str(activity): list(hours) for activity, hours in DEFAULT_HOURS.items()}
