import time

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self):
        # /api/status reports uptime from here: the moment this server process loaded its apps.
        self.started_at = time.monotonic()

        from .context import provides
        from .directives import standing_directives  # also registers the save_directive tool
        from .memory import caller_memory  # also registers save_person_memory and recall_person

        provides(standing_directives)  # the persona's standing instructions, right after its own prompt
        provides(caller_memory)  # a returning caller's notes go into every prompt of theirs
