from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    # Hooks agents.erasure calls without importing this app (agents imports no app built on it).

    def erasure_subject(self, who) -> None:
        """The other ids of a caller being erased: VAPI call ids, a Slack user's threads."""
        from .erasure import erasure_subject

        erasure_subject(who)

    def erase_caller(self, who) -> dict[str, int]:
        """The Slack rows about a caller being erased."""
        from .erasure import erase_caller

        return erase_caller(who)
