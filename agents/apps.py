import time

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self):
        # /api/status reports uptime from here: the moment this server process loaded its apps.
        self.started_at = time.monotonic()

        from django.db.models.signals import post_delete, post_save

        from . import pricing
        from .context import clear_cache, provides
        from .directives import standing_directives  # also registers the save_directive tool
        from .memory import caller_memory  # also registers save_person_memory and recall_person
        from .models import Directive, ModelPrice

        # The persona's standing instructions, right after its own prompt; the same for all its callers.
        provides(standing_directives, per_persona=True)
        post_save.connect(clear_cache, sender=Directive, dispatch_uid="agents.directive.saved")
        post_delete.connect(clear_cache, sender=Directive, dispatch_uid="agents.directive.deleted")
        # A price saved in the admin prices this process's next call; other processes read it within
        # TRON_PERSONA_CACHE_SECONDS (agents.pricing).
        post_save.connect(pricing.clear_cache, sender=ModelPrice, dispatch_uid="agents.modelprice.saved")
        post_delete.connect(pricing.clear_cache, sender=ModelPrice, dispatch_uid="agents.modelprice.deleted")
        provides(caller_memory)  # a returning caller's notes go into every prompt of theirs

        from . import delegation  # noqa: F401 - registers spawn_agent and check_task
