import time

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self):
        # /api/status reports uptime from here: the moment this server process loaded its apps.
        self.started_at = time.monotonic()

        from .context import provides
        from .memory import caller_memory

        provides(caller_memory)  # a returning caller's notes go into every prompt of theirs

        from . import delegation  # noqa: F401 - registers spawn_agent and check_task
