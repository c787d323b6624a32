import time

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self):
        # /api/status reports uptime from here: the moment this server process loaded its apps.
        self.started_at = time.monotonic()

        from . import allowances, personas, pricing, tracing
        from .directives import standing_directives
        from .memory import caller_memory
        from .models import CallerAllowance, Directive, ModelPrice, Persona
        from .prompt_context import provides

        # What each process keeps (agents.cache) is dropped when an edit here changes it.
        personas.cache.clear_on_change(Persona)
        pricing.prices.clear_on_change(ModelPrice)
        allowances.operators_limits.clear_on_change(CallerAllowance)
        # The persona's standing instructions, right after its own prompt; the same for all its callers.
        provides(standing_directives, per_persona=True, changes_with=[Directive])
        provides(caller_memory)  # a returning caller's notes go into every prompt of theirs
        tracing.configure()  # on when OTEL_EXPORTER_OTLP_ENDPOINT is set
